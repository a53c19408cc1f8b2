//! Servers under load on loopback with `wrk`: req/s and the latency distribution of cached
//! tokens from `mitoken emulate` and `mitoken bridge`, against nginx serving a static file of
//! the same size in the same run; and the Python `azure-identity` in-process cached
//! `get_token` cost beside them.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::fail;
use super::procs::{self, Cpus};

/// wrk settings shared by every server.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Seconds per run.
    pub seconds: u32,
    /// Open connections.
    pub connections: u32,
    /// wrk threads.
    pub threads: u32,
    /// Runs per server, interleaved (nginx, emulator, bridge, nginx, …); the best is reported.
    pub rounds: u32,
}

/// Latency percentiles wrk is asked for (the CDF).
const PERCENTILES: [f64; 20] = [
    1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 90.0, 95.0, 97.5, 99.0, 99.5,
    99.9, 99.95, 99.99, 100.0,
];

/// One wrk run.
#[derive(Debug, Clone)]
pub struct Run {
    /// Requests per second.
    pub rps: f64,
    /// Requests completed.
    pub requests: u64,
    /// Socket errors, timeouts and non-2xx answers.
    pub errors: u64,
    /// `(percentile, latency µs)`.
    pub cdf: Vec<(f64, f64)>,
}

impl Run {
    /// The latency at percentile `p` (µs).
    pub fn percentile(&self, p: f64) -> f64 {
        self.cdf
            .iter()
            .find(|(q, _)| (*q - p).abs() < 1e-9)
            .map_or(f64::NAN, |c| c.1)
    }
}

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
}

impl Server {
    /// The round with the most req/s.
    pub fn best(&self) -> Option<&Run> {
        self.runs.iter().max_by(|a, b| a.rps.total_cmp(&b.rps))
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

/// The wrk script: its `done` prints the counts and the latency percentiles for us to parse.
fn lua() -> String {
    let ps: Vec<String> = PERCENTILES.iter().map(ToString::to_string).collect();
    format!(
        "done = function(summary, latency, requests)\n\
         \x20 local e = summary.errors\n\
         \x20 io.write(string.format(\"MITOKEN-SUM %d %d %d\\n\", summary.requests, \
         summary.duration, e.connect + e.read + e.write + e.status + e.timeout))\n\
         \x20 for _, p in ipairs({{{}}}) do\n\
         \x20   io.write(string.format(\"MITOKEN-P %g %d\\n\", p, latency:percentile(p)))\n\
         \x20 end\n\
         end\n",
        ps.join(", ")
    )
}

/// One wrk run against `url` with `Metadata: true`.
pub fn wrk(url: &str, s: Settings, cpus: Cpus, script: &Path) -> crate::Result<Run> {
    let out = procs::pinned(cpus.client, "wrk")
        .arg(format!("-t{}", s.threads))
        .arg(format!("-c{}", s.connections))
        .arg(format!("-d{}s", s.seconds))
        .args(["--latency", "-H", "Metadata: true", "-s"])
        .arg(script)
        .arg(url)
        .output()
        .map_err(|e| fail("wrk", e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(fail(
            "wrk",
            format!("{url}: {}{text}", String::from_utf8_lossy(&out.stderr)),
        ));
    }
    let mut run = Run {
        rps: 0.0,
        requests: 0,
        errors: 0,
        cdf: Vec::new(),
    };
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["MITOKEN-SUM", req, dur, err] => {
                run.requests = req.parse().unwrap_or(0);
                run.errors = err.parse().unwrap_or(0);
                let us: f64 = dur.parse().unwrap_or(0.0);
                #[allow(clippy::cast_precision_loss)] // request counts are far below 2^52
                let r = run.requests as f64;
                run.rps = if us > 0.0 { r / (us / 1e6) } else { 0.0 };
            }
            ["MITOKEN-P", p, us] => {
                if let (Ok(p), Ok(us)) = (p.parse(), us.parse()) {
                    run.cdf.push((p, us));
                }
            }
            _ => {}
        }
    }
    if run.requests == 0 {
        return Err(fail(
            "wrk",
            format!("{url}: no requests completed:\n{text}"),
        ));
    }
    Ok(run)
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
            what: format!("static file of {} B (`worker_processes 1`)", body.len()),
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
    let script = work.join("report.lua");
    std::fs::write(&script, lua()).map_err(|e| fail("wrk script", e))?;
    let mut servers: Vec<Server> = targets
        .iter()
        .map(|t| Server {
            name: t.name,
            what: t.what.clone(),
            runs: Vec::new(),
            rss_load_kib: None,
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
            let (run, peak) = sampling_rss(t.pid, || wrk(&t.url, settings, cpus, &script));
            let run = run?;
            println!(
                "bench:   {:.0} req/s, p50 {:.0} µs, p99 {:.0} µs, {} errors",
                run.rps,
                run.percentile(50.0),
                run.percentile(99.0),
                run.errors
            );
            server.runs.push(run);
            let hwm = procs::rss_kib(t.pid).map_or(0, |r| r.1);
            let prev = server.rss_load_kib.unwrap_or((0, 0));
            server.rss_load_kib = Some((prev.0.max(peak), prev.1.max(hwm)));
        }
    }
    drop(bridge);
    drop(nginx);
    let python_ops = match python {
        Some(py) => python_inproc(
            py,
            emu_addr,
            if settings.seconds <= 1 { 200 } else { 20_000 },
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
