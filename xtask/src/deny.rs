//! `cargo xtask deny`: `cargo deny` over the root workspace and firmware-sim with the project's
//! `deny.toml` — licenses (an allow-list), bans (duplicate versions, wildcards), sources
//! (crates.io only) and, when a `RustSec` advisory database is at hand, advisories.
//!
//! Installs `cargo-deny` (`cargo install cargo-deny --locked`, its release profile's fat LTO and
//! single codegen unit overridden: the slow part of its build) when it is missing. Advisories:
//! a local database (`~/.cargo/advisory-db*`, as `cargo deny fetch` leaves it) is used offline;
//! without one, `cargo deny fetch db` is tried once with a time limit; if that fails too (no
//! network to the database's git host), the advisories check is skipped with a printed note and
//! the other three checks still run.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::fetch::fetch;
use crate::{cargo, run};

/// How long `cargo deny fetch` may try before the advisories check is skipped.
const FETCH_LIMIT: Duration = Duration::from_secs(90);

/// Runs the checks (see the module docs).
pub fn deny(root: &Path) -> crate::Result {
    ensure_cargo_deny(root)?;
    let config = root.join("deny.toml");
    let advisories = advisory_db(root);
    let checks: &[&str] = if let Some(db) = &advisories {
        println!("deny: advisories from {}", db.display());
        &["advisories", "licenses", "bans", "sources"]
    } else {
        println!(
            "deny: NOTE: no RustSec advisory database on this machine and `cargo deny fetch` could \
             not get one; skipping the advisories check (licenses, bans and sources still run)"
        );
        &["licenses", "bans", "sources"]
    };
    // `deny.toml`'s duplicate-version exceptions cover both workspaces; each may leave one of
    // them unused (`unmatched-skip` is allowed there, per workspace).
    for (name, manifest) in [
        ("workspace", "Cargo.toml"),
        ("firmware-sim", "firmware-sim/Cargo.toml"),
        ("capi", "capi/Cargo.toml"),
    ] {
        println!("deny: {name}");
        // `--offline` below: the crates must be in the cargo home already, whatever ran before.
        fetch(root, manifest)?;
        let manifest = root.join(manifest);
        let mut cmd = cargo(root);
        cmd.args([
            "deny",
            "--offline",
            "--log-level",
            "warn",
            "--manifest-path",
        ])
        .arg(&manifest)
        .arg("--config")
        .arg(&config)
        .args(["check", "--show-stats", "--allow", "unmatched-skip"])
        .args(checks);
        run(&mut cmd)?;
    }
    Ok(())
}

fn ensure_cargo_deny(root: &Path) -> crate::Result {
    let present = cargo(root)
        .args(["deny", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    println!(
        "deny: installing cargo-deny (once per machine; a few minutes): cargo install cargo-deny \
         --locked, without its release profile's fat LTO and single codegen unit"
    );
    let started = Instant::now();
    // cargo-deny has no optional features to leave out; its build time is its profile's
    // `lto = "fat"`, `codegen-units = 1`. Cargo's environment overrides the manifest's profile;
    // the checks are the same, only the binary is a little larger and slower (seconds here).
    run(cargo(root)
        .args(["install", "cargo-deny", "--locked"])
        .env("CARGO_PROFILE_RELEASE_LTO", "off")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16"))?;
    println!("deny: cargo-deny installed in {:.0?}", started.elapsed());
    Ok(())
}

/// `~/.cargo` (or `$CARGO_HOME`).
fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}

/// `cargo deny`'s database directory (`db-path` in `deny.toml`: `$CARGO_HOME/advisory-dbs`)
/// when it holds a database.
fn local_db() -> Option<PathBuf> {
    let dbs = cargo_home()?.join("advisory-dbs");
    if has_advisories(&dbs) {
        return Some(dbs);
    }
    let audit = cargo_home()?.join("advisory-db");
    if audit.join("crates").is_dir() {
        println!(
            "deny: {} (cargo-audit's copy) is not where cargo deny looks; run `cargo deny fetch`",
            audit.display()
        );
    }
    None
}

/// True when `dir` (or one level below it: `cargo deny` keeps each database in a hashed
/// subdirectory) holds a `crates/` tree of advisories.
fn has_advisories(dir: &Path) -> bool {
    if dir.join("crates").is_dir() {
        return true;
    }
    std::fs::read_dir(dir)
        .is_ok_and(|entries| entries.flatten().any(|e| e.path().join("crates").is_dir()))
}

/// The advisory database to use: a local one, or one fetched now (bounded in time).
fn advisory_db(root: &Path) -> Option<PathBuf> {
    if let Some(db) = local_db() {
        return Some(db);
    }
    println!("deny: no local advisory database; trying `cargo deny fetch db` once");
    let config = root.join("deny.toml");
    let mut child = cargo(root)
        .args(["deny", "--config"])
        .arg(&config)
        .args(["fetch", "db"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let started = Instant::now();
    let fetched = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.success(),
            Ok(None) if started.elapsed() < FETCH_LIMIT => {
                std::thread::sleep(Duration::from_millis(200));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break false;
            }
        }
    };
    if fetched { local_db() } else { None }
}
