//! Service Fabric's managed-identity endpoint, server side: what a request must carry, which
//! error each fault gets, and the bytes of both answers (docs/protocol.md §4.6); plus the
//! client's thumbprint rule (`IDENTITY_SERVER_THUMBPRINT`).
//!
//! The endpoint is HTTPS with a self-signed certificate (the transport is the host's); a request
//! is `GET <endpoint>?api-version=2019-07-01-preview&resource=<res>` with header
//! `Secret: <IDENTITY_HEADER>`. There are no user-assigned selectors: the identity is fixed by
//! the application's configuration. Success is
//! `{"token_type":"Bearer","access_token":…,"expires_on":<JSON number>,"resource":…}`;
//! errors are nested: `{"error":{"correlationId":…,"code":…,"message":…}}`.
//!
//! ```
//! use mitoken_core::service_fabric::{check_request, SfRejection};
//!
//! let mut scratch = [0u8; 256];
//! let ok = check_request(
//!     "api-version=2019-07-01-preview&resource=https%3A%2F%2Fvault.azure.net",
//!     Some("s3cret"),
//!     "s3cret",
//!     &mut scratch,
//! );
//! assert_eq!(ok, Ok("https://vault.azure.net"));
//! let bad = check_request("resource=x", Some("s3cret"), "s3cret", &mut scratch);
//! assert!(matches!(bad, Err(SfRejection::InvalidApiVersion { .. })));
//! ```
#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use core::fmt;

use crate::query::{Pairs, Plus, decode_into};
use crate::token::write_json_string;
use crate::write::{BufferTooSmall, SliceWriter};

/// The api-version the endpoint accepts.
pub const API_VERSION: &str = "2019-07-01-preview";
/// The token path of the emulated endpoint (the real one's, e.g. `https://localhost:2377/…`).
pub const TOKEN_PATH: &str = "/metadata/identity/oauth2/token";
/// Every user-assigned selector name any source uses; Service Fabric accepts none.
const SELECTORS: [&str; 6] = [
    "client_id",
    "clientid",
    "object_id",
    "principal_id",
    "msi_res_id",
    "mi_res_id",
];
/// Longest api-version echoed back in an `InvalidApiVersion` message.
const MAX_ECHOED_VERSION: usize = 64;

/// The `code` of a Service Fabric error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SfErrorCode {
    /// No `Secret` header.
    SecretHeaderNotFound,
    /// The secret names no application (unknown auth code), or the identity asked for is not
    /// the application's.
    ManagedIdentityNotFound,
    /// A required parameter (`resource`) is missing or empty.
    ArgumentNullOrEmpty,
    /// `api-version` missing or not [`API_VERSION`].
    InvalidApiVersion,
    /// The token service failed.
    InternalServerError,
}

impl SfErrorCode {
    /// The code as sent.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SecretHeaderNotFound => "SecretHeaderNotFound",
            Self::ManagedIdentityNotFound => "ManagedIdentityNotFound",
            Self::ArgumentNullOrEmpty => "ArgumentNullOrEmpty",
            Self::InvalidApiVersion => "InvalidApiVersion",
            Self::InternalServerError => "InternalServerError",
        }
    }
}

/// Why a token request is refused, with what the error body says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SfRejection<'a> {
    /// No `Secret` header: 401 `SecretHeaderNotFound`.
    SecretHeaderNotFound,
    /// A `Secret` that is not the application's: 404 `ManagedIdentityNotFound`.
    UnknownSecret,
    /// A user-assigned selector was sent; the application has only its configured identity:
    /// 404 `ManagedIdentityNotFound`.
    SelectorNotSupported,
    /// `api-version` absent (`None`) or another value: 400 `InvalidApiVersion`.
    InvalidApiVersion {
        /// The value sent (decoded, at most 64 bytes), if any.
        sent: Option<&'a str>,
    },
    /// `resource` absent or empty: 400 `ArgumentNullOrEmpty`.
    MissingResource,
    /// The query is not decodable (bad escape, not UTF-8, duplicate parameter): 400
    /// `ArgumentNullOrEmpty` naming the parameter.
    MalformedParameter {
        /// The parameter's name.
        name: &'static str,
    },
    /// The scratch buffer cannot hold the decoded resource; `required` bytes would.
    ScratchTooSmall {
        /// Bytes needed.
        required: usize,
    },
}

impl SfRejection<'_> {
    /// The HTTP status.
    pub const fn status(&self) -> u16 {
        match self {
            Self::SecretHeaderNotFound => 401,
            Self::UnknownSecret | Self::SelectorNotSupported => 404,
            Self::InvalidApiVersion { .. }
            | Self::MissingResource
            | Self::MalformedParameter { .. } => 400,
            Self::ScratchTooSmall { .. } => 500,
        }
    }

    /// The body's `code`.
    pub const fn code(&self) -> SfErrorCode {
        match self {
            Self::SecretHeaderNotFound => SfErrorCode::SecretHeaderNotFound,
            Self::UnknownSecret | Self::SelectorNotSupported => {
                SfErrorCode::ManagedIdentityNotFound
            }
            Self::InvalidApiVersion { .. } => SfErrorCode::InvalidApiVersion,
            Self::MissingResource | Self::MalformedParameter { .. } => {
                SfErrorCode::ArgumentNullOrEmpty
            }
            Self::ScratchTooSmall { .. } => SfErrorCode::InternalServerError,
        }
    }

    /// Writes the body's `message` (unquoted text).
    fn write_message(&self, w: &mut SliceWriter<'_>) {
        match self {
            Self::SecretHeaderNotFound => w.put_str("Secret is not found in the request headers."),
            Self::UnknownSecret => {
                w.put_str("Managed Identity not found for the specified application host.");
            }
            Self::SelectorNotSupported => w.put_str(
                "The application host has a single managed identity; user-assigned identity selectors are not supported.",
            ),
            Self::InvalidApiVersion { sent } => {
                w.put_str("The api-version '");
                w.put_str(sent.unwrap_or(""));
                w.put_str("' is not supported. Supported version is '");
                w.put_str(API_VERSION);
                w.put_str("'.");
            }
            Self::MissingResource => {
                w.put_str("The parameter 'resource' cannot be null or empty string.");
            }
            Self::MalformedParameter { name } => {
                w.put_str("The parameter '");
                w.put_str(name);
                w.put_str("' cannot be null or empty string.");
            }
            Self::ScratchTooSmall { .. } => w.put_str("An internal error occurred."),
        }
    }
}

impl fmt::Display for SfRejection<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 192];
        let mut w = SliceWriter::new(&mut buf);
        self.write_message(&mut w);
        let n = w.len().min(192);
        let text = buf
            .get(..n)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("");
        write!(f, "{} {}: {text}", self.status(), self.code().as_str())
    }
}

/// Checks a token request's query and `Secret` header against the application's secret and
/// returns the decoded `resource` (held in `scratch`).
///
/// Order, as the real endpoint answers: the secret header first (missing ⇒ 401), then the
/// api-version, then the secret's value, then selectors and `resource`. Extra parameters SDKs
/// add (`token_sha256_to_refresh`, `xms_cc`, `claims`) are tolerated.
pub fn check_request<'s>(
    query: &str,
    secret_header: Option<&str>,
    expected_secret: &str,
    scratch: &'s mut [u8],
) -> Result<&'s str, SfRejection<'s>> {
    let Some(secret) = secret_header else {
        return Err(SfRejection::SecretHeaderNotFound);
    };
    let mut api_version: Option<&[u8]> = None;
    let mut resource: Option<&[u8]> = None;
    let mut selector = false;
    for (key, value) in Pairs::new(query) {
        match key {
            b"api-version" if api_version.replace(value).is_some() => {
                return Err(SfRejection::MalformedParameter {
                    name: "api-version",
                });
            }
            b"resource" if resource.replace(value).is_some() => {
                return Err(SfRejection::MalformedParameter { name: "resource" });
            }
            k if SELECTORS.iter().any(|s| s.as_bytes() == k) => selector = true,
            _ => {}
        }
    }
    let (version_buf, rest) = scratch.split_at_mut(scratch.len().min(MAX_ECHOED_VERSION));
    match api_version {
        Some(v) if v == API_VERSION.as_bytes() => {}
        Some(v) => {
            let sent = decode_into(v, version_buf, Plus::Space).ok();
            return Err(SfRejection::InvalidApiVersion { sent });
        }
        None => return Err(SfRejection::InvalidApiVersion { sent: None }),
    }
    if !constant_time_eq(secret.as_bytes(), expected_secret.as_bytes()) {
        return Err(SfRejection::UnknownSecret);
    }
    if selector {
        return Err(SfRejection::SelectorNotSupported);
    }
    let raw = resource.ok_or(SfRejection::MissingResource)?;
    match decode_into(raw, rest, Plus::Space) {
        Ok("") => Err(SfRejection::MissingResource),
        Ok(r) => Ok(r),
        Err(crate::query::QueryError::BufferTooSmall { required }) => {
            Err(SfRejection::ScratchTooSmall { required })
        }
        Err(_) => Err(SfRejection::MalformedParameter { name: "resource" }),
    }
}

/// Compares two secrets without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Writes the success body: `{"token_type":"Bearer","access_token":…,"expires_on":N,"resource":…}`
/// with `expires_on` a JSON number, as the documentation shows.
pub fn write_token_body(
    access_token: &str,
    expires_on: u64,
    resource: &str,
    out: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    let mut w = SliceWriter::new(out);
    w.put_str("{\"token_type\":\"Bearer\",\"access_token\":");
    write_json_string(access_token, &mut w);
    w.put_str(",\"expires_on\":");
    w.put_u64(expires_on);
    w.put_str(",\"resource\":");
    write_json_string(resource, &mut w);
    w.put_byte(b'}');
    w.finish()
}

/// Writes an error body `{"error":{"correlationId":…,"code":…,"message":…}}` for `rejection`.
pub fn write_error_body(
    rejection: &SfRejection<'_>,
    correlation_id: &str,
    out: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    write_error_parts(rejection.code().as_str(), correlation_id, out, |w| {
        rejection.write_message(w);
    })
}

/// Writes an error body with any code and message (faults, throttling).
pub fn write_error_with(
    code: &str,
    message: &str,
    correlation_id: &str,
    out: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    write_error_parts(code, correlation_id, out, |w| w.put_str(message))
}

fn write_error_parts(
    code: &str,
    correlation_id: &str,
    out: &mut [u8],
    message: impl FnOnce(&mut SliceWriter<'_>),
) -> Result<usize, BufferTooSmall> {
    // The message is built first in a stack buffer so it can be escaped as a JSON string.
    let mut text = [0u8; 256];
    let mut tw = SliceWriter::new(&mut text);
    message(&mut tw);
    let n = tw.finish()?;
    let msg = text
        .get(..n)
        .and_then(|b| core::str::from_utf8(b).ok())
        .unwrap_or("");
    let mut w = SliceWriter::new(out);
    w.put_str("{\"error\":{\"correlationId\":");
    write_json_string(correlation_id, &mut w);
    w.put_str(",\"code\":");
    write_json_string(code, &mut w);
    w.put_str(",\"message\":");
    write_json_string(msg, &mut w);
    w.put_str("}}");
    w.finish()
}

/// Why an `IDENTITY_SERVER_THUMBPRINT` value is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ThumbprintError {
    /// After removing spaces and `:`, not 40 characters (a SHA-1 is 20 bytes).
    WrongLength {
        /// Hex digits found.
        digits: usize,
    },
    /// A character that is not a hex digit, a space or `:`.
    NotHex,
}

impl fmt::Display for ThumbprintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongLength { digits } => write!(
                f,
                "IDENTITY_SERVER_THUMBPRINT must be 40 hex digits (a SHA-1), found {digits}"
            ),
            Self::NotHex => f.write_str(
                "IDENTITY_SERVER_THUMBPRINT holds a character other than hex digits, spaces and ':'",
            ),
        }
    }
}

impl core::error::Error for ThumbprintError {}

/// Parses a certificate thumbprint as the SDKs normalise it: spaces and `:` removed, 40 hex
/// digits, either case.
pub fn parse_thumbprint(text: &str) -> Result<[u8; 20], ThumbprintError> {
    let mut out = [0u8; 20];
    let mut digits = 0usize;
    for b in text.bytes() {
        if matches!(b, b' ' | b':') {
            continue;
        }
        let v = match b {
            b'0'..=b'9' => b.wrapping_sub(b'0'),
            b'a'..=b'f' => b.wrapping_sub(b'a' - 10),
            b'A'..=b'F' => b.wrapping_sub(b'A' - 10),
            _ => return Err(ThumbprintError::NotHex),
        };
        if let Some(slot) = out.get_mut(digits / 2) {
            *slot = (*slot << 4) | v;
        }
        digits = digits.saturating_add(1);
    }
    if digits == 40 {
        Ok(out)
    } else {
        Err(ThumbprintError::WrongLength { digits })
    }
}

/// Writes a thumbprint the way Windows shows it (40 upper-case hex digits) into `out`.
pub fn write_thumbprint<'o>(digest: &[u8; 20], out: &'o mut [u8; 40]) -> &'o str {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for (pair, b) in out.chunks_exact_mut(2).zip(digest) {
        if let [hi, lo] = pair {
            *hi = HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0');
            *lo = HEX.get(usize::from(b & 0xF)).copied().unwrap_or(b'0');
        }
    }
    core::str::from_utf8(out).unwrap_or("")
}

#[cfg(test)]
mod tests;
