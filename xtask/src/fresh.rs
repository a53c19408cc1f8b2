//! `cargo xtask fresh-ci`: the rehearsal of a fresh machine, in one command.
//!
//! A green `cargo xtask ci` on a machine that built the project before proves little: the cargo
//! home already holds every crate and tool, the apt packages are installed, `target/` holds a
//! Python venv. This task takes all of that away, then runs CI exactly as CI does:
//!
//! 1. `git clone` of this checkout, `HEAD` checked out detached, into a new temporary directory
//!    with nothing beside it (no `shared/`, no `target/`, no venv);
//! 2. an empty `CARGO_HOME` in that directory, its `bin` first in `PATH`, then links to
//!    rustup's proxies alone (`cargo`, `rustc`, …; toolchains stay in `RUSTUP_HOME`) instead of
//!    `~/.cargo/bin`, where a `cargo install`ed `cargo-deny` would still be found; so the
//!    registry index, every crate, `cargo-deny` and `cargo-fuzz` are fetched and built again;
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

    let rustup_bin = base.join("rustup-bin");
    rustup_proxies(&rustup_bin)?;
    let path = search_path(&cargo_home, &rustup_bin)?;
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

/// `PATH` for the rehearsal: the empty cargo home's `bin` first, then `rustup_bin` (rustup's
/// proxies alone, see [`rustup_proxies`]), then the current `PATH` without `~/.cargo/bin`, so a
/// `cargo-deny` or `cargo-fuzz` installed there is not found.
fn search_path(cargo_home: &Path, rustup_bin: &Path) -> crate::Result<OsString> {
    let home_bin = env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin"));
    let mut dirs = vec![cargo_home.join("bin"), rustup_bin.to_path_buf()];
    let current = env::var_os("PATH").unwrap_or_default();
    let rest: Vec<PathBuf> = env::split_paths(&current)
        .filter(|d| !dirs.contains(d) && Some(d) != home_bin.as_ref())
        .collect();
    dirs.extend(rest);
    env::join_paths(dirs).map_err(|e| fail("fresh-ci: PATH", e.to_string()))
}

/// Makes `dir` hold symbolic links to rustup and its proxies (`cargo`, `rustc`, `rustfmt`, …:
/// the entries of `~/.cargo/bin` that are rustup itself under another name) and nothing else
/// from `~/.cargo/bin`: tools installed there by `cargo install` stay out of the rehearsal.
fn rustup_proxies(dir: &Path) -> crate::Result {
    use std::os::unix::fs::MetadataExt as _;
    let io = |e: std::io::Error| fail("fresh-ci: rustup proxies", e.to_string());
    let home_bin = env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cargo/bin"))
        .ok_or_else(|| fail("fresh-ci: rustup proxies", "HOME is not set"))?;
    let rustup = std::fs::metadata(home_bin.join("rustup")).map_err(io)?;
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut linked = Vec::new();
    for entry in std::fs::read_dir(&home_bin).map_err(io)? {
        let path = entry.map_err(io)?.path();
        // `metadata` follows symbolic links: a proxy is rustup's own file.
        let is_rustup = std::fs::metadata(&path)
            .is_ok_and(|m| m.dev() == rustup.dev() && m.ino() == rustup.ino());
        if let (true, Some(name)) = (is_rustup, path.file_name()) {
            std::os::unix::fs::symlink(&path, dir.join(name)).map_err(io)?;
            linked.push(name.to_string_lossy().into_owned());
        }
    }
    linked.sort();
    println!(
        "fresh-ci: PATH gets rustup's proxies only ({}), not the rest of {}",
        linked.join(" "),
        home_bin.display()
    );
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs rustup in `~/.cargo/bin` (a prerequisite of the project, docs/development.md).
    #[test]
    fn only_rustups_proxies_are_linked() {
        let dir = temp_dir().expect("temp dir");
        let bin = dir.join("rustup-bin");
        rustup_proxies(&bin).expect("rustup proxies");
        let names: Vec<String> = std::fs::read_dir(&bin)
            .expect("read")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        for proxy in ["cargo", "rustc", "rustup"] {
            assert!(
                names.iter().any(|n| n == proxy),
                "{proxy} missing: {names:?}"
            );
        }
        assert!(
            names.iter().all(|n| !n.starts_with("cargo-")
                || n == "cargo-clippy"
                || n == "cargo-fmt"
                || n == "cargo-miri"),
            "a cargo-installed tool was linked: {names:?}"
        );
        let path = search_path(&dir.join("cargo-home"), &bin).expect("PATH");
        let home_bin = PathBuf::from(env::var_os("HOME").expect("HOME")).join(".cargo/bin");
        assert!(!env::split_paths(&path).any(|d| d == home_bin), "{path:?}");
        assert_eq!(env::split_paths(&path).nth(1), Some(bin));
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
