//! The IMDS fixtures (`fixtures/` at the repository root), for the token tests and the benchmarks through
//! `#[path]` modules.
#![allow(dead_code)]

/// A real-shaped `200 OK` body from IMDS: a ~2.2 KB JWT, keys in alphabetical order, every
/// value a string.
pub const IMDS_TOKEN_BODY: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/imds-token-body.json"
));

/// The 400 "Identity not found" body (`imds-error-400.http`).
pub const IMDS_ERROR_400_BODY: &str =
    r#"{"error":"invalid_request","error_description":"Identity not found"}"#;

/// The 429 body (`imds-error-429.http`).
pub const IMDS_ERROR_429_BODY: &str =
    r#"{"error":"too_many_requests","error_description":"Too many requests"}"#;

/// The whole `200 OK` response with `Content-Length` (`imds-token-response.http`).
pub const IMDS_TOKEN_RESPONSE: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/imds-token-response.http"
));
