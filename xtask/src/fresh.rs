//! `cargo xtask fresh-ci`: the rehearsal of a fresh machine, in one command.
//!
//! A green `cargo xtask ci` on a machine that built the project before proves little: the cargo
//! home already holds every crate and tool, the apt packages are installed, `target/` holds a
//! Python venv. This task takes all of that away, then runs CI exactly as CI does:
//!
//! 1. `git clone` of this checkout, `HEAD` checked out detached, into a new temporary directory
//!    with nothing beside it (no `shared/`, no `target/`, no venv);
//! 2. an empty `CARGO_HOME` in that directory, its `bin` first in `PATH` (before `~/.cargo/bin`,
//!    which keeps rustup's proxies: toolchains stay in `RUSTUP_HOME`), so the registry index,
//!    every crate, `cargo-deny` and `cargo-fuzz` are fetched and built again;
//! 3. `apt-get remove -y` of the packages CI installs itself ([`APT_INSTALLED_BY_CI`]) and of
//!    the bookworm-backports source the sim adds;
//! 4. `CI=true bash .ci/run` in the clone, standard input closed; its wall time is printed and
//!    its status is ours. The temporary directory is deleted after a pass and kept after a
//!    failure (its path is printed).
//!
//! Needs root (for `apt-get`). Uncommitted changes are not rehearsed (a warning says so).

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::{StepFailed, run};

/// The Debian packages `cargo xtask ci` installs when their programs are missing (the sim's
/// QEMU, the benchmarks' load tools), removed before the rehearsal. Tools the base machine
/// already has (curl, valgrind, binutils, util-linux, qemu-utils) stay.
pub const APT_INSTALLED_BY_CI: [&str; 7] = [
    "qemu-system-x86",
    "qemu-system-common",
    "qemu-system-data",
    "wrk",
    "nginx-light",
    "nginx-common",
    "hyperfine",
];

/// The apt source `cargo xtask sim` adds for QEMU (a fresh machine does not have it).
const BACKPORTS_SOURCE: &str = "/etc/apt/sources.list.d/bookworm-backports.sources";

fn fail(step: &str, reason: impl Into<String>) -> StepFailed {
    StepFailed {
        step: step.into(),
        reason: reason.into(),
    }
}

/// Runs the rehearsal (see the module docs) and returns `.ci/run`'s verdict.
pub fn fresh_ci(root: &Path) -> ExitCode {
    match rehearse(root) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xtask fresh-ci: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn rehearse(root: &Path) -> crate::Result<bool> {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !is_root {
        return Err(fail(
            "fresh-ci",
            "needs root: it removes apt packages and CI installs them again",
        ));
    }
    let head = git_output(root, &["rev-parse", "HEAD"])?;
    if !git_output(root, &["status", "--porcelain", "--untracked-files=no"])?.is_empty() {
        println!("fresh-ci: WARNING: uncommitted changes are not rehearsed (HEAD {head} is)");
    }
    let base = temp_dir()?;
    let clone = base.join("mitoken");
    let cargo_home = base.join("cargo-home");
    std::fs::create_dir_all(cargo_home.join("bin"))
        .map_err(|e| fail("fresh-ci: cargo home", e.to_string()))?;
    println!(
        "fresh-ci: cloning {} at {head} into {}",
        root.display(),
        clone.display()
    );
    run(Command::new("git")
        .args(["clone", "--quiet", "--no-checkout"])
        .arg(root)
        .arg(&clone))?;
    run(Command::new("git")
        .arg("-C")
        .arg(&clone)
        .args(["checkout", "--quiet", "--detach", &head]))?;

    remove_apt_packages()?;

    let path = search_path(&cargo_home)?;
    let mut cmd = Command::new("bash");
    cmd.arg(".ci/run")
        .current_dir(&clone)
        .stdin(Stdio::null())
        .env("CI", "true")
        .env("CARGO_HOME", &cargo_home)
        .env("PATH", path);
    // Nothing of this cargo invocation or of a local setup may leak into the clone's run.
    for (key, _) in env::vars_os() {
        let key_str = key.to_string_lossy();
        if (key_str.starts_with("CARGO") && key_str != "CARGO_HOME")
            || key_str.starts_with("RUSTC")
            || key_str.starts_with("MITOKEN_")
            || key_str == "RUSTUP_TOOLCHAIN"
            || key_str == "RUSTFLAGS"
            || key_str == "VIRTUAL_ENV"
        {
            cmd.env_remove(&key);
        }
    }
    println!(
        "fresh-ci: CI=true bash .ci/run in {} (CARGO_HOME={})",
        clone.display(),
        cargo_home.display()
    );
    let started = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| fail("fresh-ci: bash .ci/run", e.to_string()))?;
    let wall = started.elapsed().as_secs();
    let took = format!("{}m{:02}s", wall / 60, wall % 60);
    if status.success() {
        println!("fresh-ci: .ci/run passed on a fresh clone of {head} in {took} (wall time)");
        if let Err(e) = std::fs::remove_dir_all(&base) {
            println!("fresh-ci: could not remove {}: {e}", base.display());
        }
        Ok(true)
    } else {
        println!(
            "fresh-ci: .ci/run FAILED ({status}) on a fresh clone of {head} after {took} (wall \
             time); the clone and its cargo home are kept in {}",
            base.display()
        );
        Ok(false)
    }
}

/// `git -C root ARGS`, its trimmed standard output.
fn git_output(root: &Path, args: &[&str]) -> crate::Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .map_err(|e| fail("git", e.to_string()))?;
    if !out.status.success() {
        return Err(fail(
            &format!("git {}", args.join(" ")),
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A new, empty directory under the system's temporary directory.
fn temp_dir() -> crate::Result<PathBuf> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = env::temp_dir().join(format!("mitoken-fresh-ci-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir)
        .map_err(|e| fail("fresh-ci: temp dir", format!("{}: {e}", dir.display())))?;
    Ok(dir)
}

/// `PATH` with the empty cargo home's `bin` first and `~/.cargo/bin` (rustup's proxies) after
/// it.
fn search_path(cargo_home: &Path) -> crate::Result<OsString> {
    let mut dirs = vec![cargo_home.join("bin")];
    if let Some(home) = env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    let current = env::var_os("PATH").unwrap_or_default();
    let rest: Vec<PathBuf> = env::split_paths(&current)
        .filter(|d| !dirs.contains(d))
        .collect();
    dirs.extend(rest);
    env::join_paths(dirs).map_err(|e| fail("fresh-ci: PATH", e.to_string()))
}

/// Whether `package` is installed (per dpkg).
fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.stdout.ends_with(b" installed"))
}

/// Removes the packages CI installs (those installed now) and the backports source.
fn remove_apt_packages() -> crate::Result {
    let present: Vec<&str> = APT_INSTALLED_BY_CI
        .iter()
        .copied()
        .filter(|p| installed(p))
        .collect();
    if present.is_empty() {
        println!(
            "fresh-ci: none of {} is installed",
            APT_INSTALLED_BY_CI.join(", ")
        );
    } else {
        println!("fresh-ci: apt-get remove -y {}", present.join(" "));
        run(Command::new("apt-get")
            .args(["remove", "-y", "-q"])
            .args(&present)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null()))?;
    }
    if Path::new(BACKPORTS_SOURCE).exists() {
        println!("fresh-ci: removing {BACKPORTS_SOURCE}");
        std::fs::remove_file(BACKPORTS_SOURCE)
            .map_err(|e| fail("fresh-ci: backports source", e.to_string()))?;
        // Forget its package lists too, as on a machine that never had it.
        run(Command::new("apt-get")
            .args(["update", "-q"])
            .stdout(Stdio::null()))?;
    }
    Ok(())
}
