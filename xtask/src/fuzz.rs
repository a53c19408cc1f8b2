//! `cargo xtask fuzz`: builds and runs the `cargo fuzz` targets in `fuzz/` for a bounded time
//! each, fails on the first crash (leaving its input under `fuzz/artifacts/<target>/`), and
//! reports executions per target, optionally into `docs/fuzzing.md`.
//!
//! Before running, the IMDS fixtures (`fixtures/`) are copied into the corpora as
//! `fixture-*` seeds, next to the checked-in `seed-*` files; libFuzzer adds its own finds to the
//! same directories (git ignores everything there but `seed-*`).

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{StepFailed, cargo, run};

/// Every fuzz target, in the order they run.
pub const TARGETS: [&str; 14] = [
    "response",
    "request",
    "token",
    "service_error",
    "query",
    "server",
    "source_server",
    "exchange",
    "expires_on",
    "arc",
    "source_request",
    "workload_form",
    "assertion_claims",
    "service_fabric",
];

/// Seconds per target when `--seconds` is not given.
pub const DEFAULT_SECONDS: u64 = 60;

/// Options of `cargo xtask fuzz`.
#[derive(Debug, Clone)]
pub struct Options {
    /// `-max_total_time` per target.
    pub seconds: u64,
    /// Only this target (all when `None`).
    pub target: Option<String>,
    /// Write the totals to `docs/fuzzing.md`.
    pub report: bool,
}

impl Options {
    /// Parses `[--seconds N] [--target NAME] [--report]`.
    pub fn parse(args: &[String]) -> crate::Result<Self> {
        let mut opts = Options {
            seconds: DEFAULT_SECONDS,
            target: None,
            report: false,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--seconds" => {
                    opts.seconds = it
                        .next()
                        .and_then(|s| s.parse().ok())
                        .filter(|&n| n > 0)
                        .ok_or_else(|| usage("--seconds needs a positive number"))?;
                }
                "--target" => {
                    let name = it.next().ok_or_else(|| usage("--target needs a name"))?;
                    if !TARGETS.contains(&name.as_str()) {
                        return Err(usage(&format!(
                            "unknown target `{name}` (one of {})",
                            TARGETS.join(", ")
                        )));
                    }
                    opts.target = Some(name.clone());
                }
                "--report" => opts.report = true,
                other => return Err(usage(&format!("unknown argument `{other}`"))),
            }
        }
        Ok(opts)
    }
}

fn usage(reason: &str) -> StepFailed {
    StepFailed {
        step: "cargo xtask fuzz [--seconds N] [--target NAME] [--report]".into(),
        reason: reason.into(),
    }
}

/// What one target's run reached.
#[derive(Debug, Clone)]
pub struct Totals {
    /// The target.
    pub target: String,
    /// Seconds libFuzzer reported (its `Done … in S second(s)` line).
    pub seconds: u64,
    /// Inputs executed (`stat::number_of_executed_units`).
    pub execs: u64,
    /// Files in the corpus directory afterwards.
    pub corpus: usize,
}

/// Runs the targets `opts` names; fails on the first crash.
pub fn run_fuzz(root: &Path, opts: &Options) -> crate::Result {
    let fuzz_dir = root.join("fuzz");
    ensure_cargo_fuzz(root)?;
    seed_corpora(root, &fuzz_dir)?;
    run(nightly(&fuzz_dir).args(["fuzz", "build"]))?;
    let targets: Vec<&str> = match &opts.target {
        Some(t) => vec![t.as_str()],
        None => TARGETS.to_vec(),
    };
    let mut all = Vec::new();
    for target in targets {
        let totals = run_target(&fuzz_dir, target, opts.seconds)?;
        println!(
            "fuzz {:<14} {:>4} s  {:>12} execs  {:>6} corpus files",
            totals.target, totals.seconds, totals.execs, totals.corpus
        );
        all.push(totals);
    }
    let execs: u64 = all.iter().map(|t| t.execs).sum();
    println!(
        "fuzz: {} target(s), {execs} execs in total, no crash",
        all.len()
    );
    if opts.report {
        let path = root.join("docs/fuzzing.md");
        fs::write(&path, report(&all)).map_err(|e| StepFailed {
            step: "write docs/fuzzing.md".into(),
            reason: e.to_string(),
        })?;
        println!("fuzz: wrote {}", path.display());
    }
    Ok(())
}

/// `cargo +nightly …` in `dir` (through rustup's `cargo`, not the stable `$CARGO` running us).
fn nightly(dir: &Path) -> Command {
    let mut c = Command::new("cargo");
    c.current_dir(dir)
        .arg("+nightly")
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN");
    c
}

fn ensure_cargo_fuzz(root: &Path) -> crate::Result {
    let present = nightly(root)
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    println!("fuzz: installing cargo-fuzz");
    let started = Instant::now();
    run(cargo(root).args(["install", "cargo-fuzz", "--locked"]))?;
    println!("fuzz: cargo-fuzz installed in {:.0?}", started.elapsed());
    Ok(())
}

/// Copies the IMDS fixtures (`fixtures/`) into the corpora as `fixture-*` seeds (split byte first).
fn seed_corpora(root: &Path, fuzz_dir: &Path) -> crate::Result {
    let fixtures = root.join("fixtures");
    let io = |e: std::io::Error| StepFailed {
        step: "seed the fuzz corpora".into(),
        reason: e.to_string(),
    };
    for target in TARGETS {
        fs::create_dir_all(fuzz_dir.join("corpus").join(target)).map_err(io)?;
    }
    let entries = fs::read_dir(&fixtures).map_err(|e| StepFailed {
        step: "seed the fuzz corpora".into(),
        reason: format!("{}: {e}", fixtures.display()),
    })?;
    let write = |target: &str, name: String, split: u8, bytes: &[u8]| {
        let mut seed = vec![split];
        seed.extend_from_slice(bytes);
        fs::write(fuzz_dir.join("corpus").join(target).join(name), seed).map_err(io)
    };
    for entry in entries {
        let path = entry.map_err(io)?.path();
        let (Some(stem), Some(ext)) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|s| s.to_str()),
        ) else {
            continue;
        };
        let bytes = fs::read(&path).map_err(io)?;
        match ext {
            "http" => {
                // Two-byte reads and one whole read.
                write("response", format!("fixture-{stem}"), b'a', &bytes)?;
                write("response", format!("fixture-whole-{stem}"), b'w', &bytes)?;
                let body = bytes
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map_or(&[][..], |at| &bytes[at + 4..]);
                let json_target = if stem.contains("error") {
                    "service_error"
                } else {
                    "token"
                };
                if body.starts_with(b"{") {
                    write(json_target, format!("fixture-{stem}"), b'0', body)?;
                }
            }
            "json" => write("token", format!("fixture-{stem}"), b'0', &bytes)?,
            _ => {}
        }
    }
    seed_source_corpora(&fixtures.join("sources"), fuzz_dir).map_err(io)
}

/// Seeds from `fixtures/sources/<source>/*.json`: token bodies for `token`, error bodies for
/// `service_error` (both after a `0` split byte), and each string `expires_on` as it is for
/// `expires_on` (which takes no split byte).
fn seed_source_corpora(dir: &Path, fuzz_dir: &Path) -> std::io::Result<()> {
    let Ok(sources) = fs::read_dir(dir) else {
        return Ok(());
    };
    let corpus = |target: &str, name: &str| fuzz_dir.join("corpus").join(target).join(name);
    for source in sources {
        let source = source?.path();
        let Some(source_name) = source.file_name().and_then(|s| s.to_str()) else {
            continue;
        };
        for file in fs::read_dir(&source)? {
            let path = file?.path();
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let bytes = fs::read(&path)?;
            let name = format!("fixture-{source_name}-{stem}");
            let target = if stem.contains("error") {
                "service_error"
            } else {
                "token"
            };
            let mut seed = vec![b'0'];
            seed.extend_from_slice(&bytes);
            fs::write(corpus(target, &name), seed)?;
            if let Some(on) = expires_on_text(&bytes) {
                fs::write(corpus("expires_on", &name), on)?;
            }
        }
    }
    Ok(())
}

/// The string value of `"expires_on"` in a fixture body, if it is a string.
fn expires_on_text(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let rest = text.split_once("\"expires_on\":\"")?.1;
    Some(rest.split_once('"')?.0.to_owned())
}

/// Runs one target, streaming libFuzzer's output through a filter that keeps the totals.
fn run_target(fuzz_dir: &Path, target: &str, seconds: u64) -> crate::Result<Totals> {
    println!("==> fuzz {target} ({seconds} s)");
    let started = Instant::now();
    let mut child = nightly(fuzz_dir)
        .args([
            "fuzz",
            "run",
            target,
            "--",
            "-print_final_stats=1",
            "-timeout=10",
        ])
        .arg(format!("-max_total_time={seconds}"))
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| StepFailed {
            step: format!("cargo fuzz run {target}"),
            reason: format!("could not start: {e}"),
        })?;
    let mut execs = None;
    let mut done_seconds = None;
    let mut artifact = None;
    let mut tail: Vec<String> = Vec::new();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr)
            .lines()
            .map_while(std::result::Result::ok)
        {
            if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
                execs = n.trim().parse().ok();
            } else if let Some(rest) = line.strip_prefix("Done ") {
                // "Done 257863 runs in 21 second(s)"
                let mut words = rest.split_whitespace();
                let runs = words.next().and_then(|n| n.parse().ok());
                execs = execs.or(runs);
                done_seconds = words.nth(2).and_then(|s| s.parse().ok());
            } else if let Some((_, path)) = line.split_once("Test unit written to ") {
                artifact = Some(PathBuf::from(path.trim()));
            }
            if line.starts_with('#') && !line.contains("DONE") {
                continue; // progress lines
            }
            tail.push(line);
            if tail.len() > 60 {
                tail.remove(0);
            }
        }
    }
    let status = child.wait().map_err(|e| StepFailed {
        step: format!("cargo fuzz run {target}"),
        reason: e.to_string(),
    })?;
    if !status.success() || artifact.is_some() {
        for line in &tail {
            eprintln!("{line}");
        }
        let reason = match &artifact {
            Some(path) => format!(
                "crashed ({status}); input kept at {} — reproduce with \
                 `cd fuzz && cargo +nightly fuzz run {target} {}`",
                path.display(),
                path.display()
            ),
            None => format!("exited with {status}"),
        };
        return Err(StepFailed {
            step: format!("fuzz {target}"),
            reason,
        });
    }
    let corpus = fs::read_dir(fuzz_dir.join("corpus").join(target)).map_or(0, Iterator::count);
    Ok(Totals {
        target: target.into(),
        seconds: done_seconds.unwrap_or_else(|| started.elapsed().as_secs()),
        execs: execs.unwrap_or(0),
        corpus,
    })
}

/// What each target asserts beyond "no panic" (the full list heads each target's file).
const PROPERTIES: [(&str, &str); 8] = [
    (
        "response",
        "`ResponseReader` / `ResponseParser` / `BodyDecoder`: same result whole vs split reads \
         and at EOF; never consumes more than fed; chunked decoding never touches unconsumed \
         bytes; accepted HTTP/1.0–1.1 heads match httparse (length, status, fields)",
    ),
    (
        "request",
        "`RequestParser` + `BodyDecoder`, pipelined: same requests and error whole vs split; \
         lengths within the input; `resource` / selector / `api-version` re-written by \
         `TokenRequest::write` parse back to the same decoded values",
    ),
    (
        "token",
        "`Token::parse`: body-sized scratch suffices, smaller gives the same or an exact \
         `ScratchTooSmall`; accepted bodies are JSON to serde_json with equal fields; no \
         control character in `access_token` / `token_type`; write → parse round trip",
    ),
    (
        "service_error",
        "`ServiceError::parse`: scratch contract as above; `error` / description equal \
         serde_json's (flat and nested shapes); `write_error_json` → parse round trip",
    ),
    (
        "query",
        "`decode_into` equals a reference decoder in both `+` modes, exact `BufferTooSmall`, \
         malformed input reported first; `decode(encode(x)) == x`, exact `encoded_len`; \
         `Pairs` yields exactly the non-empty segments",
    ),
    (
        "server",
        "`Server::handle` on raw bytes, pipelined: same answers whole vs split; `consumed` \
         within the input; each answer is one complete response (status as reported, JSON \
         body); issuer asked only for table identities",
    ),
    (
        "source_server",
        "`Server::handle` configured as App Service (2019, 2017), Azure ML, Cloud Shell or Arc, \
         on raw bytes, pipelined: the `server` target's properties, and a token only for a \
         request that carried the source's secret or key",
    ),
    (
        "exchange",
        "`client::Exchange` ↔ `Server::handle` with split reads both ways: request refused iff \
         invalid; server answers exactly at the end of the request, client completes exactly \
         at the end of the answer; a token iff the table resolves the selector (and it is that \
         identity's token, resource echoed), else an IMDS error",
    ),
];

/// Bugs the targets found: target, what, regression test.
const FOUND: [(&str, &str, &str); 2] = [
    (
        "token",
        "a raw DEL (0x7F) in `access_token` was accepted (only escaped tokens were checked for \
         control characters); fixed in `Token::parse`",
        "`core/tests/fuzz_regressions.rs::token_raw_del_in_access_token`",
    ),
    (
        "server",
        "not a server bug: the target's own check took `\\r\\nHEAD …` (the one empty line a \
         request may start with, RFC 9112 §2.2) for a non-HEAD request and demanded a body; \
         the check now skips that line",
        "`core/tests/fuzz_regressions.rs::server_head_after_an_empty_line_is_answered_with_the_head_alone`",
    ),
];

/// The Markdown of `docs/fuzzing.md`.
fn report(all: &[Totals]) -> String {
    let mut s = String::from(
        "# Fuzzing\n\nWritten by `cargo xtask fuzz --report` (libFuzzer via `cargo fuzz`, \
         address sanitizer and debug assertions on; `cargo xtask ci` runs each target for 30 s \
         and fails on any crash). Each target asserts properties, not only the absence of \
         panics:\n\n| target | asserts |\n|---|---|\n",
    );
    for (target, what) in PROPERTIES {
        let _ = writeln!(s, "| `{target}` | {what} |");
    }
    s.push_str(
        "\n## Last run\n\n| target | seconds | execs | execs/s | corpus files |\n\
         |---|---:|---:|---:|---:|\n",
    );
    for t in all {
        let rate = t.execs.checked_div(t.seconds).unwrap_or(t.execs);
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} | {} |",
            t.target, t.seconds, t.execs, rate, t.corpus
        );
    }
    let secs: u64 = all.iter().map(|t| t.seconds).sum();
    let execs: u64 = all.iter().map(|t| t.execs).sum();
    let _ = writeln!(
        s,
        "| **total** | {secs} ({:.2} h) | {execs} | | |",
        to_hours(secs)
    );
    s.push_str("\n## Bugs found\n\n| target | bug | regression test |\n|---|---|---|\n");
    for (target, what, test) in FOUND {
        let _ = writeln!(s, "| `{target}` | {what} | {test} |");
    }
    s
}

#[allow(clippy::cast_precision_loss)] // seconds of fuzzing stay far below 2^52
fn to_hours(secs: u64) -> f64 {
    secs as f64 / 3600.0
}
