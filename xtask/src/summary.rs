//! The totals of a `cargo xtask ci` run: the test counts of every step that runs `cargo test`
//! (read from libtest's `test result:` lines while the output streams on to the console) and the
//! time of every step, folded into one closing line.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Result, StepFailed};

/// Tests counted from `test result:` lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Tests that passed.
    pub passed: u64,
    /// Tests that failed.
    pub failed: u64,
    /// Tests marked `#[ignore]`.
    pub ignored: u64,
}

impl Counts {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: Counts) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.ignored += other.ignored;
    }
}

/// The counts of one libtest `test result:` line, e.g.
/// `test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s`;
/// `None` for any other line.
pub fn parse_result_line(line: &str) -> Option<Counts> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let (_, fields) = rest.split_once(". ")?;
    let mut counts = Counts::default();
    let mut seen = 0;
    for field in fields.split(';') {
        let mut words = field.split_whitespace();
        let (Some(n), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        match what {
            "passed" => counts.passed = n,
            "failed" => counts.failed = n,
            "ignored" => counts.ignored = n,
            _ => continue,
        }
        seen += 1;
    }
    (seen == 3).then_some(counts)
}

/// Runs `cmd` (a `cargo test`), echoing its standard output line by line to `echo` as it comes
/// (the console, in CI) and adding up its `test result:` lines. Standard error is inherited.
/// The counts come back whether or not the command succeeded.
pub fn run_counting(cmd: &mut Command, echo: &mut dyn Write) -> (Counts, Result) {
    let shown = format!("{cmd:?}");
    let mut counts = Counts::default();
    let mut child = match cmd.stdout(Stdio::piped()).spawn() {
        Ok(child) => child,
        Err(e) => {
            return (
                counts,
                Err(StepFailed {
                    step: shown,
                    reason: format!("could not start: {e}"),
                }),
            );
        }
    };
    if let Some(stdout) = child.stdout.take() {
        let mut reader = BufReader::new(stdout);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let _ = echo.write_all(&line);
            let _ = echo.flush();
            if let Some(c) = parse_result_line(&String::from_utf8_lossy(&line)) {
                counts.add(c);
            }
            line.clear();
        }
    }
    let outcome = match child.wait() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(StepFailed {
            step: shown,
            reason: format!("exited with {status}"),
        }),
        Err(e) => Err(StepFailed {
            step: shown,
            reason: e.to_string(),
        }),
    };
    (counts, outcome)
}

/// One step as it ran.
#[derive(Debug, Clone)]
struct Record {
    short: &'static str,
    took: Duration,
    ok: bool,
    tests: Option<Counts>,
}

/// The steps of one run, in order, and when the run started.
#[derive(Debug)]
pub struct Summary {
    started: Instant,
    steps: Vec<Record>,
}

impl Summary {
    /// A run starting now.
    pub fn start() -> Self {
        Summary {
            started: Instant::now(),
            steps: Vec::new(),
        }
    }

    /// Runs a step without tests: prints `==> name`, then `<== name: ok (time)` on success,
    /// and records it under `short`.
    pub fn step(&mut self, name: &str, short: &'static str, f: impl FnOnce() -> Result) -> Result {
        println!("==> {name}");
        let t = Instant::now();
        let outcome = f();
        self.record(name, short, t.elapsed(), outcome.is_ok(), None);
        outcome
    }

    /// Runs a `cargo test` step through [`run_counting`] and records its counts.
    pub fn test_step(&mut self, name: &str, short: &'static str, cmd: &mut Command) -> Result {
        println!("==> {name}");
        let t = Instant::now();
        let (counts, outcome) = run_counting(cmd, &mut std::io::stdout());
        self.record(name, short, t.elapsed(), outcome.is_ok(), Some(counts));
        outcome
    }

    fn record(
        &mut self,
        name: &str,
        short: &'static str,
        took: Duration,
        ok: bool,
        tests: Option<Counts>,
    ) {
        if ok {
            println!("<== {name}: ok ({took:.1?})");
        } else {
            println!("<== {name}: FAILED ({took:.1?})");
        }
        self.steps.push(Record {
            short,
            took,
            ok,
            tests,
        });
    }

    /// The closing line: overall test totals, the totals of each test step, every step's time
    /// (a failed one marked), and the verdict with the whole run's time.
    pub fn line(&self) -> String {
        let mut total = Counts::default();
        for c in self.steps.iter().filter_map(|s| s.tests) {
            total.add(c);
        }
        let mut out = format!(
            "xtask ci: {} passed, {} failed, {} ignored",
            total.passed, total.failed, total.ignored
        );
        for s in &self.steps {
            if let Some(c) = s.tests {
                let _ = write!(
                    out,
                    " | {}: {} passed, {} failed, {} ignored",
                    s.short, c.passed, c.failed, c.ignored
                );
            }
        }
        out.push_str(" | steps:");
        for (i, s) in self.steps.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            let mark = if s.ok { "" } else { " FAILED" };
            let _ = write!(out, "{sep}{} {}{mark}", s.short, secs(s.took));
        }
        let verdict = if self.steps.iter().all(|s| s.ok) {
            "all green"
        } else {
            "FAILED"
        };
        let _ = write!(out, " | {verdict} in {}", secs(self.started.elapsed()));
        out
    }
}

/// `12s`, or `3m05s` from a minute on.
fn secs(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libtest_result_lines() {
        assert_eq!(
            parse_result_line(
                "test result: ok. 12 passed; 0 failed; 3 ignored; 0 measured; 0 filtered out; \
                 finished in 0.01s"
            ),
            Some(Counts {
                passed: 12,
                failed: 0,
                ignored: 3
            })
        );
        assert_eq!(
            parse_result_line(
                "test result: FAILED. 7 passed; 2 failed; 0 ignored; 0 measured; 5 filtered out; \
                 finished in 1.20s\n"
            ),
            Some(Counts {
                passed: 7,
                failed: 2,
                ignored: 0
            })
        );
    }

    #[test]
    fn ignores_other_lines() {
        for line in [
            "",
            "running 3 tests",
            "test parse::ok ... ok",
            "test result: ok.",
            "test result: ok. many passed; 0 failed; 0 ignored",
            "   Doc-tests mitoken_core",
        ] {
            assert_eq!(parse_result_line(line), None, "{line:?}");
        }
    }

    #[test]
    fn streams_and_counts_a_real_process() {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "echo 'test result: ok. 2 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out'; \
             echo noise; \
             echo 'test result: FAILED. 3 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out'; \
             exit 101",
        ]);
        let mut echoed = Vec::new();
        let (counts, outcome) = run_counting(&mut cmd, &mut echoed);
        assert_eq!(
            String::from_utf8_lossy(&echoed).lines().collect::<Vec<_>>()[1],
            "noise",
            "every line is passed on"
        );
        assert_eq!(
            counts,
            Counts {
                passed: 5,
                failed: 1,
                ignored: 1
            }
        );
        assert!(outcome.is_err());
    }

    #[test]
    fn the_line_has_totals_per_step_and_times() {
        let mut s = Summary::start();
        s.steps = vec![
            Record {
                short: "fmt",
                took: Duration::from_secs(2),
                ok: true,
                tests: None,
            },
            Record {
                short: "tests",
                took: Duration::from_secs(125),
                ok: true,
                tests: Some(Counts {
                    passed: 10,
                    failed: 0,
                    ignored: 1,
                }),
            },
            Record {
                short: "doc tests",
                took: Duration::from_secs(30),
                ok: false,
                tests: Some(Counts {
                    passed: 3,
                    failed: 1,
                    ignored: 0,
                }),
            },
        ];
        let line = s.line();
        assert!(
            line.starts_with(
                "xtask ci: 13 passed, 1 failed, 1 ignored | tests: 10 passed, 0 failed, 1 ignored \
                 | doc tests: 3 passed, 1 failed, 0 ignored | steps: fmt 2s, tests 2m05s, \
                 doc tests 30s FAILED | FAILED in "
            ),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }
}
