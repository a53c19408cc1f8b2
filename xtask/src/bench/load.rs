//! Servers under load on loopback with plain `wrk` (no Lua script: wrk's own static request,
//! its own report): req/s and latency of cached tokens from `mitoken emulate` and `mitoken
//! bridge`, against nginx serving a static file of the same size in the same run.
//!
//! Every run records the load generator's own CPU use (from `/proc/<pid>/stat`, utime + stime
//! over the middle of the run, as a share of its one CPU) and the server's. A run whose
//! generator used more than [`GENERATOR_LIMIT`](super::wrk::GENERATOR_LIMIT) of its CPU
//! measured the generator, not the server: it is marked invalid and never enters a ratio. The nginx rounds are the calibration:
//! they show the rate the generator reaches on the same seat against a server known to be
//! fast.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::fail;
use super::procs::{self, Cpus};
use super::wrk::{Run, Settings, wrk};

/// A server measured in every round.
#[derive(Debug, Clone)]
pub struct Server {
    /// Its name in the report.
    pub name: &'static str,
    /// What the requests are.
    pub what: String,
    /// One run per round.
    pub runs: Vec<Run>,
    /// Peak `VmRSS` sampled during its runs and `VmHWM` after them (KiB).
    pub rss_load_kib: Option<(u64, u64)>,
    /// System calls per request (perf), or why not.
    pub syscalls: Result<super::per_request::Syscalls, String>,
}

impl Server {
    /// The valid round with the most req/s (none when every round was invalid).
    pub fn best(&self) -> Option<&Run> {
        self.runs
            .iter()
            .filter(|r| r.valid())
            .max_by(|a, b| a.rps.total_cmp(&b.rps))
    }

    /// The median p99 latency (µs) of the valid rounds: one round's p99 moves by 2× on a
    /// shared machine (a few ms stalls of either side), so a tail is compared round against
    /// round, not from the one run with the most req/s.
    pub fn median_p99(&self) -> Option<f64> {
        let mut p99: Vec<f64> = self
            .runs
            .iter()
            .filter(|r| r.valid())
            .map(|r| r.percentile(99.0))
            .filter(|v| v.is_finite())
            .collect();
        p99.sort_by(f64::total_cmp);
        let n = p99.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => p99.get(n / 2).copied(),
            _ => Some((p99.get(n / 2 - 1)? + p99.get(n / 2)?) / 2.0),
        }
    }
}

/// Everything the load measurement found.
pub struct Load {
    /// nginx first, then the emulator, then the bridge.
    pub servers: Vec<Server>,
    /// Size of the token response body served (and of nginx's file), bytes.
    pub body_len: usize,
    /// The emulator's `VmRSS` idle (after start and one token), KiB.
    pub emulator_rss_idle_kib: Option<u64>,
    /// Python `azure-identity` cached `get_token` calls per second (in-process), or why not.
    pub python_ops: Result<(f64, u64), String>,
    /// The settings used.
    pub settings: Settings,
}

impl Load {
    /// nginx's best valid req/s (the reference of every ratio).
    pub fn nginx(&self) -> Option<f64> {
        self.servers.first().and_then(Server::best).map(|b| b.rps)
    }

    /// The server the report calls `name`.
    pub fn server(&self, name: &str) -> Option<&Server> {
        self.servers.iter().find(|s| s.name == name)
    }

    /// `name`'s best valid req/s over nginx's.
    pub fn vs_nginx(&self, name: &str) -> Option<f64> {
        let best = self.server(name)?.best()?;
        Some(best.rps / self.nginx()?)
    }
}

/// Samples a process's `VmRSS` every 100 ms while `f` runs; returns `f`'s result and the peak.
fn sampling_rss<T>(pid: u32, f: impl FnOnce() -> T) -> (T, u64) {
    let done = AtomicBool::new(false);
    let mut peak = 0;
    let result = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut peak = 0;
            while !done.load(Ordering::Relaxed) {
                if let Some((rss, _)) = procs::rss_kib(pid) {
                    peak = peak.max(rss);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            peak
        });
        let r = f();
        done.store(true, Ordering::Relaxed);
        peak = sampler.join().unwrap_or(0);
        r
    });
    (result, peak)
}

/// The servers, ready: `(name, what, url, pid)`.
struct Target {
    name: &'static str,
    what: String,
    url: String,
    pid: u32,
}

/// Starts nginx and the bridge next to the running emulator, runs wrk against each in
/// interleaved rounds, and measures the Python cached `get_token` cost.
#[allow(clippy::too_many_lines)]
pub fn measure(
    mitoken: &Path,
    emulator: (&procs::Proc, SocketAddr),
    python: Option<&Path>,
    work: &Path,
    cpus: Cpus,
    settings: Settings,
) -> crate::Result<Load> {
    let (emu, emu_addr) = emulator;
    let (status, body) = procs::get(emu_addr, procs::IMDS_PATH)?;
    if status != 200 {
        return Err(fail("emulator", format!("token request answered {status}")));
    }
    let emulator_rss_idle_kib = procs::rss_kib(emu.pid()).map(|r| r.0);
    let (nginx, nginx_addr) = procs::nginx(&work.join("nginx"), &body, cpus)?;
    let (nginx_status, nginx_body) = procs::get(nginx_addr, "/token.json")?;
    if nginx_status != 200 || nginx_body.len() != body.len() {
        return Err(fail(
            "nginx",
            format!("answered {nginx_status} with {} bytes", nginx_body.len()),
        ));
    }
    let mut targets = vec![
        Target {
            name: "nginx",
            what: format!("static file of {} B (one worker)", body.len()),
            url: format!("http://{nginx_addr}/token.json"),
            pid: nginx.pid(),
        },
        Target {
            name: "mitoken emulate",
            what: "IMDS token path, cached token (default identity)".into(),
            url: format!("http://{emu_addr}{}", procs::IMDS_PATH),
            pid: emu.pid(),
        },
    ];
    let (bridge, bridge_addr) = procs::bridge(mitoken, cpus, emu_addr)?;
    let (status, _) = procs::get(bridge_addr, procs::EXTENSION_PATH)?;
    if status != 200 {
        return Err(fail("bridge", format!("token request answered {status}")));
    }
    targets.push(Target {
        name: "mitoken bridge",
        what: "legacy extension path, token cached by the bridge".into(),
        url: format!("http://{bridge_addr}{}", procs::EXTENSION_PATH),
        pid: bridge.pid(),
    });
    let mut servers: Vec<Server> = targets
        .iter()
        .map(|t| Server {
            name: t.name,
            what: t.what.clone(),
            runs: Vec::new(),
            rss_load_kib: None,
            syscalls: Err("not measured".into()),
        })
        .collect();
    for round in 0..settings.rounds {
        for (t, server) in targets.iter().zip(&mut servers) {
            println!(
                "bench: wrk round {}/{} {} ({} s)",
                round + 1,
                settings.rounds,
                t.name,
                settings.seconds
            );
            let (run, peak) = sampling_rss(t.pid, || wrk(&t.url, settings, cpus, t.pid));
            let run = run?;
            println!(
                "bench:   {:.0} req/s, p50 {:.0} µs, p99 {:.0} µs, {} errors; CPU: wrk {}, server {}{}",
                run.rps,
                run.percentile(50.0),
                run.percentile(99.0),
                run.errors,
                percent(run.generator_cpu),
                percent(run.server_cpu),
                if run.valid() { "" } else { " — INVALID" }
            );
            server.runs.push(run);
            let hwm = procs::rss_kib(t.pid).map_or(0, |r| r.1);
            let prev = server.rss_load_kib.unwrap_or((0, 0));
            server.rss_load_kib = Some((prev.0.max(peak), prev.1.max(hwm)));
        }
    }
    if super::per_request::perf_works() {
        for (t, server) in targets.iter().zip(&mut servers) {
            println!("bench: system calls per request of {} (perf)", t.name);
            server.syscalls = super::per_request::syscalls(t.pid, &t.url, settings, cpus)
                .map_err(|e| e.to_string());
        }
    } else {
        for server in &mut servers {
            server.syscalls = Err("perf cannot count syscall tracepoints here".into());
        }
    }
    drop(bridge);
    drop(nginx);
    let python_ops = match python {
        Some(py) => python_inproc(
            py,
            emu_addr,
            if settings.seconds <= 1 { 200 } else { 100_000 },
        ),
        None => Err("no Python with azure-identity".into()),
    };
    Ok(Load {
        servers,
        body_len: body.len(),
        emulator_rss_idle_kib,
        python_ops,
        settings,
    })
}

/// `97 %`, or `?` when not measured.
pub fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "?".into(), |v| format!("{v:.0} %"))
}

/// The Python script timing `n` cached `get_token` calls after a first (fetching) one.
const PY_INPROC: &str = r#"
import sys, time
from azure.identity import ManagedIdentityCredential
scope = "https://management.azure.com/.default"
cred = ManagedIdentityCredential()
cred.get_token(scope)
n = int(sys.argv[1])
t = time.perf_counter()
for _ in range(n):
    cred.get_token(scope)
print("MITOKEN-PY", n, time.perf_counter() - t)
"#;

/// Environment that points `azure-identity` at the emulator and nothing else.
pub fn python_env(cmd: &mut Command, emu: SocketAddr) {
    cmd.env("AZURE_POD_IDENTITY_AUTHORITY_HOST", format!("http://{emu}"))
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    for var in [
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
        "MSI_ENDPOINT",
        "MSI_SECRET",
        "AZURE_FEDERATED_TOKEN_FILE",
        "AZURE_CLIENT_ID",
        "IMDS_ENDPOINT",
    ] {
        cmd.env_remove(var);
    }
}

/// Cached `get_token` calls per second in one Python process, and the call count.
fn python_inproc(python: &Path, emu: SocketAddr, n: u64) -> Result<(f64, u64), String> {
    let mut cmd = Command::new(python);
    cmd.args(["-c", PY_INPROC, &n.to_string()]);
    python_env(&mut cmd, emu);
    let out = cmd.output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let secs: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MITOKEN-PY "))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .ok_or_else(|| {
            format!(
                "python failed: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            )
        })?;
    #[allow(clippy::cast_precision_loss)] // n is small
    let ops = n as f64 / secs;
    Ok((ops, n))
}
