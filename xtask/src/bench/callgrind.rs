//! Noise-free instruction counts (callgrind) of `core/benches/parse_callgrind.rs`: the parsers
//! against their peers, request building, the server, and the scaling cases.
//!
//! Instructions per call = (Ir of N+1 calls − Ir of 1 call) / N, collected only inside the
//! measured function (`--toggle-collect`), so start-up, fixtures and the harness do not count.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use super::fail;
use crate::{StepFailed, cargo, run};

/// One measured entry point of `core/benches/parse_callgrind.rs`.
pub struct Case {
    /// Its argument (and `run_<arg>` function name).
    pub arg: &'static str,
    /// How the report names it.
    pub label: &'static str,
}

/// Whole 200-OK response: mitoken-core first, then the std peer the ratio is to.
pub const RESPONSE: [Case; 3] = [
    Case {
        arg: "mitoken_response",
        label: "mitoken-core (`ResponseReader` + `Token::parse`)",
    },
    Case {
        arg: "httparse_serde_json",
        label: "`httparse` + `serde_json`",
    },
    Case {
        arg: "httparse_serde_json_core",
        label: "`httparse` + `serde-json-core`",
    },
];

/// Body only.
pub const BODY: [Case; 3] = [
    Case {
        arg: "mitoken",
        label: "mitoken-core `Token::parse`",
    },
    Case {
        arg: "serde_json",
        label: "`serde_json` (borrowed `&str` derive)",
    },
    Case {
        arg: "serde_json_core",
        label: "`serde-json-core` (borrowed `&str` derive)",
    },
];

/// Request building.
pub const BUILD: [Case; 2] = [
    Case {
        arg: "build_mitoken",
        label: "mitoken-core `TokenRequest::write` (validated, into a reused buffer)",
    },
    Case {
        arg: "build_format",
        label: "`format!` + a percent-encoding helper (new `String`s, no validation)",
    },
];

/// The scaling cases, measured at each of [`SIZES`].
pub const SCALING: [Case; 4] = [
    Case {
        arg: "resolve_client",
        label: "`IdentityTable::resolve` by `client_id`",
    },
    Case {
        arg: "resolve_resource",
        label: "`IdentityTable::resolve` by `msi_res_id`",
    },
    Case {
        arg: "server_handle",
        label: "whole request through `Server::handle` (cached token)",
    },
    Case {
        arg: "cache_get",
        label: "core `TokenCache::get` (n cached tokens)",
    },
];

/// Identity / cache sizes of the scaling cases (as in `core/benches/common/serve.rs`).
pub const SIZES: [usize; 4] = [1, 10, 100, 1000];

/// All instruction counts of one run.
pub struct Counts {
    /// Per [`RESPONSE`] case.
    pub response: Vec<u64>,
    /// Per [`BODY`] case.
    pub body: Vec<u64>,
    /// Per [`BUILD`] case.
    pub build: Vec<u64>,
    /// Per [`SCALING`] case: `(n, instructions)` for each size measured.
    pub scaling: Vec<Vec<(usize, u64)>>,
}

/// Builds the harness and measures every case (in smoke mode: fewer iterations, and the
/// scaling cases at the largest size only).
pub fn measure(root: &Path, smoke: bool) -> crate::Result<Counts> {
    let bin = build_harness(root)?;
    run(&mut Command::new(&bin))?; // the harness's own agreement check
    let iterations = if smoke { 10 } else { 500 };
    let sizes: &[usize] = if smoke { &SIZES[3..] } else { &SIZES };
    let mut jobs: Vec<(&'static str, usize)> = Vec::new();
    for c in RESPONSE.iter().chain(&BODY).chain(&BUILD) {
        jobs.push((c.arg, 1));
    }
    for c in &SCALING {
        for &n in sizes {
            jobs.push((c.arg, n));
        }
    }
    let results = run_parallel(&bin, &jobs, iterations)?;
    let get = |arg: &str, n: usize| {
        results
            .iter()
            .find(|(a, m, _)| *a == arg && *m == n)
            .map_or(0, |r| r.2)
    };
    Ok(Counts {
        response: RESPONSE.iter().map(|c| get(c.arg, 1)).collect(),
        body: BODY.iter().map(|c| get(c.arg, 1)).collect(),
        build: BUILD.iter().map(|c| get(c.arg, 1)).collect(),
        scaling: SCALING
            .iter()
            .map(|c| sizes.iter().map(|&n| (n, get(c.arg, n))).collect())
            .collect(),
    })
}

type Measured = Vec<(&'static str, usize, u64)>;

/// Runs the jobs on as many threads as there are CPUs (callgrind counts do not depend on it).
fn run_parallel(
    bin: &Path,
    jobs: &[(&'static str, usize)],
    iterations: u64,
) -> crate::Result<Measured> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let next = Mutex::new(0usize);
    let out: Mutex<crate::Result<Measured>> = Mutex::new(Ok(Vec::new()));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let job = {
                        let mut guard = next
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        let job = *guard;
                        *guard += 1;
                        job
                    };
                    let Some(&(arg, size)) = jobs.get(job) else {
                        break;
                    };
                    let result = instructions(bin, arg, iterations, size);
                    let mut shared = out
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    match (result, shared.as_mut()) {
                        (Ok(count), Ok(done)) => done.push((arg, size, count)),
                        (Err(e), Ok(_)) => *shared = Err(e),
                        (_, Err(_)) => {}
                    }
                }
            });
        }
    });
    out.into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn build_harness(root: &Path) -> crate::Result<PathBuf> {
    let out = cargo(root)
        .args([
            "bench",
            "-p",
            "mitoken-core",
            "--bench",
            "parse_callgrind",
            "--no-run",
            "--message-format=json",
        ])
        .output()
        .map_err(|e| fail("bench build", e))?;
    if !out.status.success() {
        return Err(fail("bench build", String::from_utf8_lossy(&out.stderr)));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"]["name"] == "parse_callgrind")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| {
            fail(
                "bench build",
                "cargo reported no parse_callgrind executable",
            )
        })
}

/// Instructions per call of `case` at size `n`, measured under callgrind.
fn instructions(bin: &Path, case: &str, iterations: u64, n: usize) -> crate::Result<u64> {
    let once = callgrind_total(bin, case, 1, n)?;
    let many = callgrind_total(bin, case, iterations + 1, n)?;
    Ok(many.saturating_sub(once) / iterations)
}

fn callgrind_total(bin: &Path, case: &str, iterations: u64, n: usize) -> crate::Result<u64> {
    let out_file = std::env::temp_dir().join(format!(
        "mitoken-callgrind-{}-{case}-{n}-{iterations}",
        std::process::id()
    ));
    let status = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(format!("--toggle-collect=*run_{case}"))
        .arg(bin)
        .arg(case)
        .arg(iterations.to_string())
        .arg(n.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| fail("callgrind", format!("cannot run valgrind: {e}")))?;
    if !status.success() {
        return Err(StepFailed {
            step: format!("callgrind {case} {n}"),
            reason: format!("valgrind exited with {status}"),
        });
    }
    let text = std::fs::read_to_string(&out_file).map_err(|e| {
        fail(
            "callgrind",
            format!("cannot read {}: {e}", out_file.display()),
        )
    })?;
    let _ = std::fs::remove_file(&out_file);
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| fail("callgrind", "no totals in callgrind output"))
}
