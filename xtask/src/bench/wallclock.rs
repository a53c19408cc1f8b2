//! Wall clock (criterion) of the same functions callgrind counts: `core/benches/parse.rs` and
//! `core/benches/serve.rs`; and of the host's in-process cached `TokenClient::get_token`
//! (`host/benches/get_token.rs`). Read back from criterion's `estimates.json` (median, ns).

use std::path::Path;

use super::fail;
use crate::{cargo, run};

/// Criterion medians in nanoseconds, by `group/function` id (e.g. `token_response/mitoken`).
pub struct Medians(pub Vec<(String, f64)>);

impl Medians {
    /// The median of `id`, if criterion measured it.
    pub fn get(&self, id: &str) -> Option<f64> {
        self.0.iter().find(|(k, _)| k == id).map(|(_, v)| *v)
    }
}

/// The benchmark ids the report uses.
pub const IDS: &[&str] = &[
    "token_response/mitoken",
    "token_response/httparse+serde_json",
    "token_response/httparse+serde_json_core",
    "token_body/mitoken",
    "token_body/serde_json",
    "token_body/serde_json_core",
    "request_build/mitoken",
    "request_build/format",
    "resolve_client/1",
    "resolve_client/10",
    "resolve_client/100",
    "resolve_client/1000",
    "resolve_resource/1",
    "resolve_resource/10",
    "resolve_resource/100",
    "resolve_resource/1000",
    "server_handle/1",
    "server_handle/10",
    "server_handle/100",
    "server_handle/1000",
    "cache_get/1",
    "cache_get/10",
    "cache_get/100",
    "cache_get/1000",
    GET_TOKEN_ID,
];

/// The criterion id of mitoken's in-process cached `TokenClient::get_token`.
pub const GET_TOKEN_ID: &str = "get_token/mitoken_cached";

/// Criterion's arguments: 0.5 s warm-up, 1.5 s measurement per function.
const BRIEF: [&str; 5] = ["--", "--warm-up-time", "0.5", "--measurement-time", "1.5"];

/// Runs the criterion benches briefly and reads the medians.
pub fn measure(root: &Path, target_dir: &Path) -> crate::Result<Medians> {
    run(cargo(root)
        .args([
            "bench",
            "-p",
            "mitoken-core",
            "--bench",
            "parse",
            "--bench",
            "serve",
        ])
        .args(BRIEF))?;
    // The release profile: its dependencies are the ones `mitoken` was just built with (the
    // bench profile's debug info would rebuild them all).
    run(cargo(root)
        .args([
            "bench",
            "--profile",
            "release",
            "-p",
            "mitoken-host",
            "--bench",
            "get_token",
        ])
        .args(BRIEF))?;
    let mut out = Vec::new();
    for id in IDS {
        let file = target_dir
            .join("criterion")
            .join(id)
            .join("new/estimates.json");
        let text = std::fs::read_to_string(&file)
            .map_err(|e| fail("criterion", format!("{}: {e}", file.display())))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| fail("criterion", e))?;
        if let Some(ns) = v["median"]["point_estimate"].as_f64() {
            out.push(((*id).to_owned(), ns));
        }
    }
    Ok(Medians(out))
}

/// `--smoke`: the host's `get_token` bench runs once in criterion's test mode (debug build, no
/// timing), so a broken bench fails CI.
pub fn smoke(root: &Path) -> crate::Result {
    run(cargo(root).args([
        "test",
        "--quiet",
        "-p",
        "mitoken-host",
        "--bench",
        "get_token",
    ]))
}
