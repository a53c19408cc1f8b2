//! `cargo xtask bench`: noise-free instruction counts (callgrind) for mitoken-core's parsers
//! against their peers in the same run, written to `docs/benchmarks.md`.
//!
//! Instructions per call = (Ir of N+1 calls − Ir of 1 call) / N, collected only inside the
//! measured function (`--toggle-collect`), so start-up and the harness do not count.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{StepFailed, cargo, run};

/// One measured entry point of `core/benches/parse_callgrind.rs`.
struct Case {
    arg: &'static str,
    label: &'static str,
}

const RESPONSE: [Case; 3] = [
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

const BODY: [Case; 3] = [
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

/// Runs the parse benchmarks. `smoke` only checks that every parser agrees and runs once
/// under callgrind (seconds), without writing the report.
pub fn run_bench(root: &Path, smoke: bool) -> crate::Result {
    let bin = build_parse_bench(root)?;
    run(&mut Command::new(&bin))?; // the harness's own agreement check
    let iterations = if smoke { 10 } else { 1000 };
    let mut report = String::new();
    let _ = writeln!(
        report,
        "# Benchmarks\n\nWritten by `cargo xtask bench`; instruction counts from \
         `valgrind --tool=callgrind`, per call, on the shared fixtures. Ratios are to the \
         usual std approach measured in the same run.\n"
    );
    for (title, cases) in [
        (
            "Whole 200-OK response (`imds-token-response.http`: head + 2.5 KB JSON body)",
            &RESPONSE,
        ),
        ("Body only (`imds-token-body.json`)", &BODY),
    ] {
        let mut counts = Vec::new();
        for case in cases {
            counts.push(instructions(&bin, case.arg, iterations)?);
        }
        let peer = counts.get(1).copied().unwrap_or(1).max(1);
        let _ = writeln!(
            report,
            "## {title}\n\n| parser | instructions | ratio to {} |\n|---|---:|---:|",
            cases[1].label
        );
        for (case, count) in cases.iter().zip(&counts) {
            #[allow(clippy::cast_precision_loss)] // counts are far below 2^52
            let ratio = *count as f64 / peer as f64;
            let _ = writeln!(report, "| {} | {count} | {ratio:.2}× |", case.label);
        }
        report.push('\n');
    }
    let _ = writeln!(
        report,
        "Reproduce: `cargo xtask bench` (or by hand: `cargo bench -p mitoken-core --bench \
         parse_callgrind --no-run`, then `valgrind --tool=callgrind --toggle-collect='*run_<parser>' \
         <bench binary> <parser> <N>`). Wall-clock comparisons of the same parsers: `cargo bench \
         -p mitoken-core --bench parse` (criterion)."
    );
    print!("{report}");
    if !smoke {
        let out = root.join("docs/benchmarks.md");
        std::fs::write(&out, &report).map_err(|e| StepFailed {
            step: "bench".into(),
            reason: format!("cannot write {}: {e}", out.display()),
        })?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

fn build_parse_bench(root: &Path) -> crate::Result<PathBuf> {
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
        .map_err(|e| StepFailed {
            step: "bench build".into(),
            reason: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(StepFailed {
            step: "bench build".into(),
            reason: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"]["name"] == "parse_callgrind")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| StepFailed {
            step: "bench build".into(),
            reason: "cargo reported no parse_callgrind executable".into(),
        })
}

/// Instructions per call of `parser`, measured under callgrind.
fn instructions(bin: &Path, parser: &str, iterations: u64) -> crate::Result<u64> {
    let once = callgrind_total(bin, parser, 1)?;
    let many = callgrind_total(bin, parser, iterations + 1)?;
    Ok(many.saturating_sub(once) / iterations)
}

fn callgrind_total(bin: &Path, parser: &str, iterations: u64) -> crate::Result<u64> {
    let out_file = std::env::temp_dir().join(format!(
        "mitoken-callgrind-{}-{parser}-{iterations}",
        std::process::id()
    ));
    let status = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(format!("--toggle-collect=*run_{parser}"))
        .arg(bin)
        .arg(parser)
        .arg(iterations.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| StepFailed {
            step: "callgrind".into(),
            reason: format!("cannot run valgrind (apt-get install valgrind): {e}"),
        })?;
    if !status.success() {
        return Err(StepFailed {
            step: format!("callgrind {parser}"),
            reason: format!("valgrind exited with {status}"),
        });
    }
    let text = std::fs::read_to_string(&out_file).map_err(|e| StepFailed {
        step: "callgrind".into(),
        reason: format!("cannot read {}: {e}", out_file.display()),
    })?;
    let _ = std::fs::remove_file(&out_file);
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| StepFailed {
            step: "callgrind".into(),
            reason: "no totals in callgrind output".into(),
        })
}
