//! `cargo fetch` of every Cargo workspace in the repository, so that steps which must run
//! offline (`cargo deny --offline`) find every crate in the cargo home, whatever ran before them.
//!
//! The repository holds five workspaces with their own `Cargo.lock`: the root one, `capi` (its
//! own panic strategy), `firmware-sim`
//! (its own target and profile), `fuzz` (cargo-fuzz's) and `nostd-check` (its own panic
//! strategy). On a fresh machine the cargo home holds none of their crates.

use std::path::Path;

use crate::{cargo, run};

/// The manifests of the repository's workspaces, relative to its root.
pub const WORKSPACES: [&str; 5] = [
    "Cargo.toml",
    "capi/Cargo.toml",
    "firmware-sim/Cargo.toml",
    "fuzz/Cargo.toml",
    "nostd-check/Cargo.toml",
];

/// Fetches the crates of every workspace (`cargo fetch --locked`: the lock files are not
/// changed).
pub fn fetch_all(root: &Path) -> crate::Result {
    WORKSPACES
        .iter()
        .try_for_each(|manifest| fetch(root, manifest))
}

/// Fetches the crates of the workspace whose manifest is `manifest` (relative to `root`).
pub fn fetch(root: &Path, manifest: &str) -> crate::Result {
    run(cargo(root)
        .args(["fetch", "--locked", "--quiet", "--manifest-path"])
        .arg(root.join(manifest)))
}
