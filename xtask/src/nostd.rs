//! The no_std proof: mitoken-core links into a `#![no_std]` staticlib with its own
//! `#[panic_handler]` and `panic = "abort"`.
//!
//! If any dependency drags in `std`, the link fails with a duplicate `panic_impl` lang item. To
//! show the proof can fail, it also builds the same crate with mitoken-core's `std` feature and
//! expects *that* build to fail.

use std::path::Path;
use std::process::Stdio;

use crate::{StepFailed, cargo, run};

/// Builds `nostd-check` (must succeed) and its `std` twin (must fail).
pub fn prove(root: &Path) -> crate::Result {
    let dir = root.join("nostd-check");
    run(cargo(&dir).args(["build", "--release", "--quiet"]))?;
    let lib = dir.join("target/release/libnostd_check.a");
    let size = std::fs::metadata(&lib)
        .map(|m| m.len())
        .map_err(|e| StepFailed {
            step: "no_std proof".into(),
            reason: format!("{} missing after build: {e}", lib.display()),
        })?;
    println!("no_std staticlib linked: {} ({size} bytes)", lib.display());

    let with_std = cargo(&dir)
        .args([
            "build",
            "--release",
            "--quiet",
            "--features",
            "mitoken-core/std",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| StepFailed {
            step: "no_std proof (std twin)".into(),
            reason: format!("could not start cargo: {e}"),
        })?;
    let stderr = String::from_utf8_lossy(&with_std.stderr);
    if with_std.status.success() || !stderr.contains("panic_impl") {
        return Err(StepFailed {
            step: "no_std proof (std twin)".into(),
            reason: "building with mitoken-core/std should fail with a duplicate `panic_impl`; \
                     the proof would not catch std leaking in"
                .into(),
        });
    }
    println!("std twin refused as expected (duplicate panic_impl)");
    Ok(())
}
