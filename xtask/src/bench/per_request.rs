//! What one request costs each server, measured so that the machine's load does not matter:
//!
//! - **instructions per request** in the server's own process (user space): the server runs
//!   under callgrind with instrumentation off, one plain wrk warm-up, then instrumentation on
//!   for a plain wrk run; instructions ÷ requests wrk completed (the ≤ 32 requests in flight
//!   at the edges are noise below 0.3 %). For `mitoken`, the inclusive share of its main steps
//!   (functions named in [`STEPS`]) is reported too;
//! - **system calls per request**: perf's `syscalls` tracepoints on the running server during a
//!   plain wrk run (when `perf` can read them; else not reported), by call. perf watches the
//!   server's process and its child processes: nginx's master only waits, its worker serves
//!   (watching the master alone counted nothing, and nginx's row read "not measured").

use std::path::Path;
use std::process::{Command, Stdio};

use super::fail;
use super::procs::{self, Cpus};
use super::wrk::{Settings, wrk};

/// A step of `mitoken`'s request path and the function whose inclusive cost is that step
/// (a substring of callgrind's function name; functions inlined into their caller are counted
/// in the caller's step).
pub struct Step {
    /// How the report names the step.
    pub label: &'static str,
    /// The function(s), as callgrind names them.
    pub functions: &'static [&'static str],
}

/// The steps measured in `mitoken emulate` and `mitoken bridge` (functions that do not call
/// each other, so the shares add up).
pub const STEPS: [Step; 7] = [
    Step {
        label: "wait for bytes + read (tokio readiness, timer, `recvfrom`)",
        functions: &["serve_loop::connection::wait_for_bytes"],
    },
    Step {
        label: "HTTP request parsing (request line, headers, framing)",
        functions: &["mitoken_core::server::conn::ServerConnection::frame "],
    },
    Step {
        label: "query parameters, IMDS validation",
        functions: &["mitoken_core::server::validate "],
    },
    Step {
        label: "token lookup in the core's cache (bridge; the emulator's `HashMap` lookup is inlined, under *other*)",
        functions: &[
            "mitoken_core::cache::TokenCache<_,_,_>::find ",
            "mitoken_core::cache::Entry<_,_>::view ",
        ],
    },
    Step {
        label: "token JSON body (escape + copy)",
        functions: &["mitoken_core::token::emit::write_token_json "],
    },
    Step {
        label: "response head",
        functions: &["mitoken_core::server::respond::write_head "],
    },
    Step {
        label: "write the answer (`sendto`)",
        functions: &["serve_loop::connection::Reply::send"],
    },
];

/// One server's cost per request.
#[derive(Debug, Clone)]
pub struct Cost {
    /// The server's name in the report.
    pub name: &'static str,
    /// Requests measured under callgrind.
    pub requests: u64,
    /// User-space instructions per request.
    pub instructions: u64,
    /// Per [`STEPS`] entry: instructions per request (empty for nginx).
    pub steps: Vec<u64>,
}

/// System calls per request during a plain wrk run, by call (`total` first).
#[derive(Debug, Clone, Default)]
pub struct Syscalls(pub Vec<(String, f64)>);

/// The calls counted (besides the total).
const CALLS: [&str; 13] = [
    "recvfrom",
    "read",
    "readv",
    "sendto",
    "write",
    "writev",
    "sendfile64",
    "epoll_wait",
    "openat",
    "newfstatat",
    "pread64",
    "close",
    "getrandom",
];

/// True when `perf stat` can count syscall tracepoints here.
pub fn perf_works() -> bool {
    Command::new("perf")
        .args(["stat", "-x,", "-e", "raw_syscalls:sys_enter", "--", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .any(|l| l.contains("raw_syscalls:sys_enter") && !l.contains("not"))
        })
}

/// Counts the system calls of `pid` and its child processes over a whole plain wrk run
/// (at least 3 s) that loads `url`; per request wrk completed. perf is attached before wrk
/// starts and detaches after it ends, so every request of the run is inside the count (a
/// window inside the run, divided by wrk's average rate, was off by the rate's variation on a
/// loaded machine); the idle moments at either end add next to nothing.
pub fn syscalls(pid: u32, url: &str, s: Settings, cpus: Cpus) -> crate::Result<Syscalls> {
    let mut events = vec!["raw_syscalls:sys_enter".to_owned()];
    events.extend(CALLS.iter().map(|c| format!("syscalls:sys_enter_{c}")));
    let s = Settings {
        seconds: s.seconds.max(3),
        ..s
    };
    let pids: Vec<String> = std::iter::once(pid)
        .chain(procs::children(pid))
        .map(|p| p.to_string())
        .collect();
    let perf = Command::new("perf")
        .args([
            "stat",
            "-x,",
            "-e",
            &events.join(","),
            "-p",
            &pids.join(","),
        ])
        .args(["--", "sleep", &s.seconds.saturating_add(2).to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail("perf", e))?;
    std::thread::sleep(std::time::Duration::from_millis(500));
    let run = wrk(url, s, cpus, pid);
    let perf = perf.wait_with_output().map_err(|e| fail("perf", e))?;
    let run = run?;
    #[allow(clippy::cast_precision_loss)] // request counts are far below 2^52
    let requests = run.requests as f64;
    let text = String::from_utf8_lossy(&perf.stderr);
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(',').collect();
        let (Some(count), Some(event)) = (f.first(), f.get(2)) else {
            continue;
        };
        let Ok(count) = count.parse::<f64>() else {
            continue;
        };
        let name = if *event == "raw_syscalls:sys_enter" {
            "total"
        } else {
            event.trim_start_matches("syscalls:sys_enter_")
        };
        if count > 0.0 && requests > 0.0 {
            out.push((name.to_owned(), count / requests));
        }
    }
    if out.is_empty() {
        return Err(fail(
            "perf",
            format!(
                "no counts ({})",
                text.lines().next().unwrap_or("no output").trim()
            ),
        ));
    }
    Ok(Syscalls(out))
}

/// The callgrind command every server runs under (instrumentation off until told).
fn callgrind(out: &Path) -> Vec<String> {
    vec![
        "valgrind".into(),
        "--tool=callgrind".into(),
        "--instr-atstart=no".into(),
        format!("--callgrind-out-file={}", out.display()),
    ]
}

fn callgrind_control(pid: u32, on: bool) -> crate::Result {
    let status = Command::new("callgrind_control")
        .args(["-i", if on { "on" } else { "off" }, &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| fail("callgrind_control", e))?;
    if status.success() {
        Ok(())
    } else {
        Err(fail("callgrind_control", status))
    }
}

/// Runs wrk against a server started under callgrind and reads its instructions per request.
fn measure_one(
    name: &'static str,
    proc: &mut procs::Proc,
    url: &str,
    out: &Path,
    s: Settings,
    cpus: Cpus,
) -> crate::Result<Cost> {
    let pid = proc.pid();
    let warm = Settings { seconds: 1, ..s };
    wrk(url, warm, cpus, pid)?;
    callgrind_control(pid, true)?;
    let run = wrk(url, s, cpus, pid)?;
    callgrind_control(pid, false)?;
    proc.stop(); // callgrind writes its file at exit
    let requests = run.requests;
    let annotated = Command::new("callgrind_annotate")
        .args(["--inclusive=yes", "--threshold=100"])
        .arg(out)
        .output()
        .map_err(|e| fail("callgrind_annotate", e))?;
    let text = String::from_utf8_lossy(&annotated.stdout);
    let _ = std::fs::remove_file(out);
    let count = |line: &str| -> Option<u64> {
        line.split_whitespace()
            .next()?
            .replace(',', "")
            .parse()
            .ok()
    };
    let total = text
        .lines()
        .find(|l| l.contains("PROGRAM TOTALS"))
        .and_then(count)
        .ok_or_else(|| fail("callgrind_annotate", format!("{name}: no totals")))?;
    let per = |n: u64| n / requests.max(1);
    let steps = if name == "nginx" {
        Vec::new()
    } else {
        STEPS
            .iter()
            .map(|step| {
                let sum: u64 = step
                    .functions
                    .iter()
                    .map(|f| {
                        // The function's own line ("file:function [binary]"), not lines of
                        // functions inlined into it.
                        text.lines()
                            .filter(|l| l.contains(f) && l.trim_end().ends_with(']'))
                            .filter(|l| l.contains(&format!(":{}", f.trim_start())))
                            .filter_map(count)
                            .max()
                            .unwrap_or(0)
                    })
                    .sum();
                per(sum)
            })
            .collect()
    };
    Ok(Cost {
        name,
        requests,
        instructions: per(total),
        steps,
    })
}

/// Starts a server under callgrind (`start`) and measures it, up to three times: now and then a
/// run ends with no counts in callgrind's file (seen with nginx), and
/// one lost count should not fail the whole bench.
fn measure_retrying(
    name: &'static str,
    out: &Path,
    s: Settings,
    cpus: Cpus,
    mut start: impl FnMut() -> crate::Result<(procs::Proc, String)>,
) -> crate::Result<Cost> {
    let mut attempt = 1;
    loop {
        println!("bench: {name} under callgrind ({} s of wrk)", s.seconds);
        let (mut proc, url) = start()?;
        match measure_one(name, &mut proc, &url, out, s, cpus) {
            Ok(cost) => return Ok(cost),
            Err(e) if attempt < 3 => {
                println!("bench:   {name}, attempt {attempt}: {e}; once more");
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Instructions per request of nginx, the emulator and the bridge (the bridge's upstream is the
/// native emulator at `upstream`), each alone under callgrind on the server CPU.
pub fn instructions(
    mitoken: &Path,
    upstream: std::net::SocketAddr,
    body: &[u8],
    work: &Path,
    cpus: Cpus,
    s: Settings,
) -> crate::Result<Vec<Cost>> {
    let mut costs = Vec::new();
    let out = work.join("callgrind.out");
    let wrapper = callgrind(&out);
    costs.push(measure_retrying("nginx", &out, s, cpus, || {
        let (nginx, addr) = procs::nginx_wrapped(&work.join("nginx-cg"), body, cpus, &wrapper)?;
        Ok((nginx, format!("http://{addr}/token.json")))
    })?);
    costs.push(measure_retrying("mitoken emulate", &out, s, cpus, || {
        let (emu, addr) = procs::emulator_wrapped(mitoken, cpus, &wrapper)?;
        Ok((emu, format!("http://{addr}{}", procs::IMDS_PATH)))
    })?);
    costs.push(measure_retrying("mitoken bridge", &out, s, cpus, || {
        let (bridge, addr) = procs::bridge_wrapped(mitoken, cpus, upstream, &wrapper)?;
        let (status, _) = procs::get(addr, procs::EXTENSION_PATH)?;
        if status != 200 {
            return Err(fail("bridge", format!("token request answered {status}")));
        }
        Ok((bridge, format!("http://{addr}{}", procs::EXTENSION_PATH)))
    })?);
    for c in &costs {
        println!(
            "bench:   {}: {} instructions per request ({} requests)",
            c.name, c.instructions, c.requests
        );
    }
    Ok(costs)
}
