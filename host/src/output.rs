//! How `mitoken token` prints a token: IMDS's JSON, the bare token, or the shape
//! `az account get-access-token` prints.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Local, TimeZone as _};
use serde::Serialize;

use crate::cli::OutputFormat;
use crate::client::TokenResponse;

/// `az account get-access-token`'s output fields.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AzShape<'a> {
    access_token: &'a str,
    expires_on: String,
    #[serde(rename = "expires_on")]
    expires_on_epoch: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<String>,
    token_type: &'a str,
}

/// Why a token could not be formatted.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// JSON serialization failed.
    #[error("cannot format the token as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The response carries no expiry (neither `expires_on` nor `expires_in`).
    #[error("the token response has no expiry, which the az format needs")]
    NoExpiry,
}

/// Formats `token` (received at `now`, Unix seconds) as `format` dictates.
pub fn render(
    token: &TokenResponse,
    format: OutputFormat,
    now: u64,
) -> Result<String, OutputError> {
    match format {
        OutputFormat::Json => Ok(serde_json::to_string_pretty(token)?),
        OutputFormat::Raw => Ok(token.access_token.expose().to_owned()),
        OutputFormat::Az => {
            let expires = token
                .expires_on
                .or_else(|| token.expires_in.map(|s| now.saturating_add(s)))
                .ok_or(OutputError::NoExpiry)?;
            let shape = AzShape {
                access_token: token.access_token.expose(),
                expires_on: local_time(expires),
                expires_on_epoch: expires,
                tenant: tenant_of(token.access_token.expose()),
                token_type: &token.token_type,
            };
            Ok(serde_json::to_string_pretty(&shape)?)
        }
    }
}

/// `az`'s `expiresOn`: local time as `YYYY-MM-DD HH:MM:SS.ffffff`.
fn local_time(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|s| Local.timestamp_opt(s, 0).single())
        .map_or_else(String::new, |t| {
            t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
        })
}

/// The `tid` claim of a JWT's payload, when the token is a JWT that has one.
fn tenant_of(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("tid")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_comes_from_the_tid_claim() {
        let payload =
            URL_SAFE_NO_PAD.encode(br#"{"aud":"x","tid":"f768064f-9585-47ad-a39e-ed24c2c063fe"}"#);
        let jwt = format!("eyJhbGciOiJSUzI1NiJ9.{payload}.c2ln");
        assert_eq!(
            tenant_of(&jwt).as_deref(),
            Some("f768064f-9585-47ad-a39e-ed24c2c063fe")
        );
        assert_eq!(tenant_of("not-a-jwt"), None);
        assert_eq!(tenant_of("a.!!!.c"), None);
    }

    #[test]
    fn local_time_has_az_shape() {
        let t = local_time(1_796_086_799);
        assert_eq!(t.len(), "2026-12-01 01:39:59.000000".len(), "{t}");
        assert!(t.ends_with(".000000"), "{t}");
    }
}
