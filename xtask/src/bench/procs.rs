//! The servers the load and client measurements run against — `mitoken emulate`,
//! `mitoken bridge` and nginx — as child processes on loopback, pinned with `taskset` when the
//! machine has two CPUs or more (servers alone on CPU 1, load generator and clients on CPU 0),
//! and stopped (SIGTERM, then SIGKILL) when dropped; and the CPU time a process used, from
//! `/proc`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::fail;
use crate::StepFailed;

/// The resource every measured request asks for.
pub const RESOURCE: &str = "https://management.azure.com/";
/// The IMDS token path and query the emulator is measured on (the default identity).
pub const IMDS_PATH: &str = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F";
/// The legacy extension's token path and query the bridge is measured on.
pub const EXTENSION_PATH: &str = "/oauth2/token?resource=https%3A%2F%2Fmanagement.azure.com%2F";

/// Where servers and load generators run: the server alone on CPU 1, the load generator and
/// the clients on CPU 0, when there are two or more CPUs.
#[derive(Debug, Clone, Copy)]
pub struct Cpus {
    /// The servers' CPU.
    pub server: Option<usize>,
    /// The load generator's / clients' CPU.
    pub client: Option<usize>,
    /// CPUs available.
    pub count: usize,
}

impl Cpus {
    /// Pins when there are at least two CPUs and `taskset` exists.
    pub fn detect() -> Self {
        let count = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let taskset = super::tools::in_path("taskset").is_some();
        if count >= 2 && taskset {
            Cpus {
                server: Some(1),
                client: Some(0),
                count,
            }
        } else {
            Cpus {
                server: None,
                client: None,
                count,
            }
        }
    }

    /// True when servers and clients are pinned apart.
    pub fn pinned(&self) -> bool {
        self.server.is_some()
    }
}

/// `program` run on `cpu` (through `taskset -c`), or as is.
pub fn pinned(cpu: Option<usize>, program: impl AsRef<std::ffi::OsStr>) -> Command {
    match cpu {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(c.to_string()).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// A child process stopped when dropped.
pub struct Proc {
    child: Child,
}

impl Proc {
    /// Its process id (`taskset` execs the program, so it is the server's own).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (graceful: nginx's master stops its worker), then SIGKILL after 5 s.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// True while it runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts a server that prints `listening on http://ADDR` as its first stdout line (as
/// `mitoken emulate` and `mitoken bridge` do) and returns it with that address. The rest of its
/// stdout is drained in the background.
fn start_announcing(name: &str, mut cmd: Command) -> crate::Result<(Proc, SocketAddr)> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(name, format!("cannot start {cmd:?}: {e}")))?;
    let stdout = child.stdout.take();
    let mut proc = Proc { child };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Some(out) = stdout else { return };
        let mut lines = BufReader::new(out).lines();
        for line in lines.by_ref().map_while(Result::ok) {
            if let Some(addr) = line
                .split("http://")
                .nth(1)
                .and_then(|rest| rest.split(['/', ' ']).next())
                .and_then(|a| a.parse::<SocketAddr>().ok())
            {
                let _ = tx.send(addr);
                break;
            }
        }
        for _ in lines.map_while(Result::ok) {}
    });
    if let Ok(addr) = rx.recv_timeout(Duration::from_mins(2)) {
        Ok((proc, addr))
    } else {
        proc.stop();
        Err(fail(
            name,
            "did not print `listening on http://ADDR` within 120 s",
        ))
    }
}

/// A program run through a wrapper (e.g. `valgrind --tool=callgrind …`), on `cpu`.
pub fn wrapped(cpu: Option<usize>, wrapper: &[String], program: &Path) -> Command {
    match wrapper.split_first() {
        Some((first, rest)) => {
            let mut cmd = pinned(cpu, first);
            cmd.args(rest).arg(program);
            cmd
        }
        None => pinned(cpu, program),
    }
}

/// `mitoken emulate` (built-in VM, IMDS flavor) on an ephemeral loopback port, logging only
/// warnings (the default `info` writes one log line per request).
pub fn emulator(mitoken: &Path, cpus: Cpus) -> crate::Result<(Proc, SocketAddr)> {
    emulator_wrapped(mitoken, cpus, &[])
}

/// [`emulator`] run through `wrapper`.
pub fn emulator_wrapped(
    mitoken: &Path,
    cpus: Cpus,
    wrapper: &[String],
) -> crate::Result<(Proc, SocketAddr)> {
    let mut cmd = wrapped(cpus.server, wrapper, mitoken);
    cmd.args(["emulate", "--listen", "127.0.0.1:0", "--log", "warn"]);
    start_announcing("mitoken emulate", cmd)
}

/// `mitoken bridge` answering legacy-extension requests from `upstream` (the emulator),
/// logging at `info`: the level its Debian package runs it with (`MITOKEN_LOG=info` in
/// `host/dist/bridge.env`; one line per new client process, none per request).
pub fn bridge(
    mitoken: &Path,
    cpus: Cpus,
    upstream: SocketAddr,
) -> crate::Result<(Proc, SocketAddr)> {
    bridge_wrapped(mitoken, cpus, upstream, &[])
}

/// [`bridge`] run through `wrapper`.
pub fn bridge_wrapped(
    mitoken: &Path,
    cpus: Cpus,
    upstream: SocketAddr,
    wrapper: &[String],
) -> crate::Result<(Proc, SocketAddr)> {
    let mut cmd = wrapped(cpus.server, wrapper, mitoken);
    cmd.args([
        "bridge",
        "--listen",
        "127.0.0.1:0",
        "--log",
        "info",
        "--upstream",
    ])
    .arg(format!("http://{upstream}"));
    start_announcing("mitoken bridge", cmd)
}

/// True when this process runs as root (`/proc/self/status` `Uid:` 0).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().next())
            == Some("0")
    })
}

/// A free loopback port (bound and released; nginx cannot report an ephemeral one).
fn free_port() -> crate::Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| fail("free port", e))
}

/// nginx in the foreground (one worker, no access log, keep-alive without a request limit)
/// serving `body` as `/token.json` from a config generated in `dir`.
pub fn nginx(dir: &Path, body: &[u8], cpus: Cpus) -> crate::Result<(Proc, SocketAddr)> {
    nginx_wrapped(dir, body, cpus, &[])
}

/// [`nginx`] run through `wrapper`; with a wrapper, as one process (`master_process off`: the
/// worker is the process the wrapper sees).
pub fn nginx_wrapped(
    dir: &Path,
    body: &[u8],
    cpus: Cpus,
    wrapper: &[String],
) -> crate::Result<(Proc, SocketAddr)> {
    let www = dir.join("www");
    std::fs::create_dir_all(&www).map_err(|e| fail("nginx dir", e))?;
    std::fs::write(www.join("token.json"), body).map_err(|e| fail("nginx file", e))?;
    let port = free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let d = dir.display();
    let conf = format!(
        "daemon off;\n{single}{user}worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  default_type application/json;\n\
         keepalive_requests 1000000;\n  keepalive_timeout 60s;\n\
         client_body_temp_path {d}/tmp-body;\n  proxy_temp_path {d}/tmp-proxy;\n\
         fastcgi_temp_path {d}/tmp-fcgi;\n  uwsgi_temp_path {d}/tmp-uwsgi;\n\
         scgi_temp_path {d}/tmp-scgi;\n\
         server {{\n    listen {addr};\n    root {www};\n  }}\n}}\n",
        www = www.display(),
        // Run as root, nginx's worker would switch to an unprivileged user and so could not be
        // watched (perf's syscall counts); it keeps root's uid, like the master.
        user = if running_as_root() {
            "user root;\n"
        } else {
            ""
        },
        single = if wrapper.is_empty() {
            ""
        } else {
            "master_process off;\n"
        }
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).map_err(|e| fail("nginx config", e))?;
    let nginx = super::tools::in_path("nginx")
        .or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.is_file()))
        .ok_or_else(|| fail("nginx", "nginx not found"))?;
    let mut cmd = wrapped(cpus.server, wrapper, &nginx);
    cmd.arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = cmd.spawn().map_err(|e| fail("nginx", e))?;
    let mut proc = Proc { child };
    let t = Instant::now();
    while t.elapsed() < Duration::from_mins(1) {
        if TcpStream::connect(addr).is_ok() {
            return Ok((proc, addr));
        }
        if !proc.alive() {
            let mut err = String::new();
            if let Some(mut e) = proc.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            return Err(fail("nginx", format!("exited at start: {err}{log}")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(fail("nginx", format!("not listening on {addr} after 60 s")))
}

/// One `GET` with `Metadata: true` and `Connection: close`: the status and the body.
pub fn get(addr: SocketAddr, path: &str) -> Result<(u16, Vec<u8>), StepFailed> {
    let mut s = TcpStream::connect(addr).map_err(|e| fail("GET", format!("{addr}: {e}")))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| fail("GET", e))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nMetadata: true\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| fail("GET", e))?;
    let mut all = Vec::new();
    s.read_to_end(&mut all).map_err(|e| fail("GET", e))?;
    let head_end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| fail("GET", format!("no response head from {addr}{path}")))?;
    let status = std::str::from_utf8(all.get(9..12).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, all.split_off(head_end + 4)))
}

/// Clock ticks per second of `/proc/<pid>/stat`'s times (`getconf CLK_TCK`; 100 if unknown).
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .filter(|t: &f64| *t > 0.0)
        .unwrap_or(100.0)
}

/// The fields of `/proc/<pid>/stat` after the command name (`state` is the first).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// CPU time a process used so far, all threads (utime + stime), in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let f = stat_fields(pid)?;
    // Fields 14 and 15 of stat(5); the first after the name is field 3.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The live child processes of `pid` (nginx's worker).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| {
            stat_fields(child)
                .and_then(|f| f.get(1)?.parse::<u32>().ok())
                .is_some_and(|parent| parent == pid)
        })
        .collect()
}

/// [`cpu_ticks`] of `pid` plus that of its live child processes (nginx's worker).
pub fn cpu_ticks_with_children(pid: u32) -> Option<u64> {
    let own = cpu_ticks(pid)?;
    let children: u64 = children(pid).into_iter().filter_map(cpu_ticks).sum();
    Some(own + children)
}

/// A process's resident set (`VmRSS`) and peak (`VmHWM`) in KiB, from `/proc/<pid>/status`.
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}
