//! mitoken's project tasks, run as `cargo xtask <task>`.
//!
//! Plain Rust over `std::process::Command`, so there is no shell script to keep in sync.
//!
//! - `ci`: everything CI runs: `cargo fetch` of every workspace, format check, clippy
//!   (`-D warnings`), the whole test suite, mitoken-core's tests and clippy without its
//!   `sources` feature (the guest's IMDS-only build), the compatibility matrix (real Azure SDKs), the
//!   no_std proof, the C API, the Debian package's install test, `cargo deny`, a benchmark
//!   smoke run, firmware-sim fmt + clippy, `sim`, and 30 s of each fuzz target; it ends with
//!   the compatibility matrix and one line of totals (tests per step and overall, each step's
//!   time).
//! - `fresh-ci`: the rehearsal of a fresh machine: `.ci/run` in a fresh clone of `HEAD` with an
//!   empty cargo home and the apt-installed tools removed first (`docs/development.md`).
//! - `nostd`: only the no_std proof.
//! - `capi`: the C API: its checks, header check, no allocator symbols, `fetch_token.c` against
//!   the emulator (natively and under valgrind), code size and stack (`docs/c-api.md`).
//! - `deny`: `cargo deny` (licenses, duplicate versions, sources, advisories when a local
//!   database exists) over the workspace and firmware-sim.
//! - `dist`: release artifacts in `target/dist/` (Debian package, tarball + SHA-256); `ci` also
//!   installs, checks and purges the package.
//! - `sim`: boot firmware-sim under QEMU against `mitoken emulate` and check its tokens.
//! - `relay`: the guestfwd relay QEMU starts for `sim` (not for people).
//! - `bench`: parse/build/server instruction counts and wall clock against peers, the emulator
//!   and bridge under `wrk` load against nginx, client start-to-token against curl and Python,
//!   footprint and scaling: `docs/benchmarks.md`, `docs/bench-*.svg`, the README's table.
//! - `fuzz`: the `cargo fuzz` targets, `--seconds N` each (default 60); `--report` writes
//!   `docs/fuzzing.md`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

mod bench;
mod capi;
mod deny;
mod dist;
mod elf;
mod fetch;
mod fresh;
mod fuzz;
mod nostd;
mod relay;
mod sim;
mod summary;

use summary::Summary;

/// A failed step: what ran and why it failed.
#[derive(Debug)]
pub struct StepFailed {
    step: String,
    reason: String,
}

impl std::fmt::Display for StepFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step, self.reason)
    }
}

type Result<T = ()> = std::result::Result<T, StepFailed>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let task = args.first().map_or("help", String::as_str);
    if task == "relay" {
        // Its stdio is the guest's TCP stream: nothing else may be printed.
        return relay::main(&args[1..]);
    }
    let outcome = match task {
        "ci" => return ci(),
        "fresh-ci" => return fresh::fresh_ci(&root()),
        "nostd" => nostd::prove(&root()),
        "capi" => capi::capi(&root()),
        "deny" => deny::deny(&root()),
        "dist" => dist::dist(&root()).and_then(|a| {
            if args.iter().any(|a| a == "--install-test") {
                dist::test_package(&a)
            } else {
                Ok(())
            }
        }),
        "sim" => sim::sim(&root()),
        "bench" => bench::run_bench(&root(), args.iter().any(|a| a == "--smoke")),
        "fuzz" => fuzz::Options::parse(&args[1..]).and_then(|o| fuzz::run_fuzz(&root(), &o)),
        "help" | "--help" | "-h" => {
            print_help();
            Ok(())
        }
        other => Err(StepFailed {
            step: "xtask".into(),
            reason: format!("unknown task `{other}` (try `cargo xtask help`)"),
        }),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_help() {
    println!(
        "cargo xtask <task>\n\n\
         tasks:\n  \
         ci      fetch, format check, clippy -D warnings, all tests (and the core's without sources),\n          \
                 no_std proof, cargo deny, bench smoke, compatibility matrix and sources (real SDKs),\n          \
                 C API, package test, sim, fuzz 30 s each\n  \
         fresh-ci  rehearse a fresh machine: .ci/run in a fresh clone of HEAD, empty CARGO_HOME, apt tools removed\n  \
         nostd   build a #![no_std] staticlib that links mitoken-core\n  \
         capi    C API: header check, nm (no malloc), fetch_token.c vs the emulator + valgrind, size, stack\n  \
         deny    cargo deny: licenses, duplicate versions, sources, advisories (local db)\n  \
         dist    release artifacts in target/dist: .deb (cargo-deb), tarball + SHA-256, glibc needed;\n          \
                 --install-test: then dpkg -i, check, dpkg -r, dpkg --purge (root)\n  \
         bench   parse/serve/load/client/footprint/scaling benchmarks -> docs/benchmarks.md + SVG\n          \
                 charts + README table (under 15 min); --smoke: every measurement, tiny (CI)\n  \
         sim     boot firmware-sim in QEMU against `mitoken emulate`, check its tokens\n  \
         fuzz    cargo fuzz targets [--seconds N (60)] [--target NAME] [--report -> docs/fuzzing.md]"
    );
}

/// The workspace root (the parent of this crate's manifest directory).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn ci() -> ExitCode {
    let root = root();
    let mut summary = Summary::start();
    let outcome = ci_steps(&root, &mut summary);
    if let Err(e) = &outcome {
        eprintln!("xtask: FAILED: {e}");
    }
    println!("{}", summary.line());
    if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The steps of `cargo xtask ci`, in order; the first failure stops the run.
/// The real-SDK tests of the emulated managed-identity sources (docs/sources-emulator.md).
const SOURCE_TESTS: [&str; 7] = [
    "source_app_service",
    "source_app_service_2017",
    "source_azure_ml",
    "source_cloud_shell",
    "source_arc",
    "source_service_fabric",
    "source_workload_identity",
];

fn ci_steps(root: &Path, s: &mut Summary) -> Result {
    s.step("fetch the crates of every workspace", "fetch", || {
        fetch::fetch_all(root)
    })?;
    s.step("format check", "fmt", || {
        run(cargo(root).args(["fmt", "--all", "--", "--check"]))
    })?;
    s.step("clippy", "clippy", || clippy(root, &["--workspace"]))?;
    s.test_step(
        "tests",
        "tests",
        cargo(root).args(["test", "--workspace", "--all-targets", "--no-fail-fast"]),
    )?;
    s.test_step(
        "doc tests",
        "doc tests",
        cargo(root).args(["test", "--workspace", "--doc", "--no-fail-fast"]),
    )?;
    imds_only_steps(root, s)?;
    s.step("no_std proof", "nostd", || nostd::prove(root))?;
    s.step(
        "cargo deny (licenses, bans, sources, advisories)",
        "deny",
        || deny::deny(root),
    )?;
    s.step("benchmark smoke", "bench smoke", || {
        bench::run_bench(root, true)
    })?;
    s.test_step(
        "compatibility matrix (real Azure SDKs, unmodified)",
        "compat",
        cargo(root).args([
            "test",
            "-p",
            "mitoken-tests",
            "--test",
            "compat_matrix",
            "--",
            "--ignored",
            "--nocapture",
        ]),
    )?;
    let mut sources = vec!["test", "-p", "mitoken-tests"];
    for test in SOURCE_TESTS {
        sources.extend(["--test", test]);
    }
    sources.extend(["--", "--ignored", "--nocapture"]);
    let step = "managed-identity sources (real SDKs per emulated source)";
    s.test_step(step, "sources", cargo(root).args(&sources))?;
    s.step("C API", "capi", || capi::capi(root))?;
    s.step("package: dist, dpkg -i/-r/--purge", "package", || {
        dist::dist(root).and_then(|a| dist::test_package(&a))
    })?;
    s.step("firmware-sim format check", "sim fmt", || {
        run(cargo(&root.join("firmware-sim")).args(["fmt", "--", "--check"]))
    })?;
    s.step("firmware-sim clippy", "sim clippy", || {
        clippy(&root.join("firmware-sim"), &["--release"])
    })?;
    s.step("firmware sim", "sim", || sim::sim(root))?;
    s.step("fuzz (30 s per target)", "fuzz", || {
        fuzz::run_fuzz(
            root,
            &fuzz::Options {
                seconds: 30,
                target: None,
                report: false,
            },
        )
    })?;
    print_compat_table(root);
    Ok(())
}

/// `cargo clippy <what> --all-targets -- -D warnings` in the workspace at `root`.
fn clippy(root: &Path, what: &[&str]) -> Result {
    run(cargo(root)
        .arg("clippy")
        .args(what)
        .args(["--all-targets", "--", "-D", "warnings"]))
}

/// mitoken-core without its `sources` feature — the guest's and the C API's build: IMDS only,
/// the other sources refused. Clippy, then its tests.
fn imds_only_steps(root: &Path, s: &mut Summary) -> Result {
    s.step("clippy, core without sources", "clippy imds-only", || {
        clippy(root, &["-p", "mitoken-core", "--no-default-features"])
    })?;
    s.test_step(
        "tests, core without sources",
        "imds-only",
        cargo(root).args([
            "test",
            "-p",
            "mitoken-core",
            "--no-default-features",
            "--all-targets",
            "--no-fail-fast",
        ]),
    )
}

/// Prints the compatibility matrix the "compatibility matrix" step wrote into
/// docs/compatibility.md, so it closes the run's output.
fn print_compat_table(root: &Path) {
    let text = std::fs::read_to_string(root.join("docs/compatibility.md")).unwrap_or_default();
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| l.trim_end() != "<!-- compat-table:begin -->")
        .skip(1)
        .take_while(|l| l.trim_end() != "<!-- compat-table:end -->")
        .collect();
    if !table.is_empty() {
        println!(
            "\ncompatibility matrix (docs/compatibility.md):\n\n{}\n",
            table.join("\n")
        );
    }
}

/// Runs one named step, printing its name and duration.
pub fn step(name: &str, f: impl FnOnce() -> Result) -> Result {
    println!("==> {name}");
    let t = Instant::now();
    f()?;
    println!("<== {name}: ok ({:.1?})", t.elapsed());
    Ok(())
}

/// A `cargo` command rooted at `dir`.
pub fn cargo(dir: &Path) -> Command {
    let mut c = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(dir);
    c
}

/// Runs `cmd`, failing unless it exits 0.
pub fn run(cmd: &mut Command) -> Result {
    let shown = format!("{cmd:?}");
    let status = cmd.status().map_err(|e| StepFailed {
        step: shown.clone(),
        reason: format!("could not start: {e}"),
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(StepFailed {
            step: shown,
            reason: format!("exited with {status}"),
        })
    }
}
