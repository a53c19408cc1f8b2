//! Writers for token and error bodies in IMDS's exact wire shape.

use super::Secret;
use crate::write::{BufferTooSmall, SliceWriter};

/// The `ext_expires_in` modern IMDS sends (observed constant).
pub const IMDS_EXT_EXPIRES_IN: u64 = 86399;

/// Which server's body shape to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shape {
    /// Modern IMDS: `access_token, client_id, expires_in, expires_on, ext_expires_in,
    /// not_before, resource, token_type`, keys in alphabetical order, every value a string.
    #[default]
    Imds,
    /// Legacy VM extension (protocol §2.3): `access_token, refresh_token (""), expires_in,
    /// expires_on, not_before, resource, token_type`, every value a string.
    Extension,
}

/// The values of a token body to write. `token_type` is always `Bearer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenJson<'a> {
    /// The bearer token (redacted in `Debug`).
    pub access_token: Secret<'a>,
    /// Client ID of the identity used (IMDS shape only).
    pub client_id: &'a str,
    /// Seconds until expiry.
    pub expires_in: u64,
    /// Expiry, Unix seconds.
    pub expires_on: u64,
    /// Extended lifetime in seconds (IMDS shape only); IMDS sends [`IMDS_EXT_EXPIRES_IN`].
    pub ext_expires_in: u64,
    /// Start of validity, Unix seconds.
    pub not_before: u64,
    /// The resource the token is for.
    pub resource: &'a str,
}

/// Writes `s` as a JSON string literal (quotes included) to `w`.
///
/// `"` and `\` are backslash-escaped, control characters become `\n`, `\r`, `\t`, `\b`, `\f`
/// or `\u00XX`; everything else, including non-ASCII text and `/`, is copied as is.
pub fn write_json_string(s: &str, w: &mut SliceWriter<'_>) {
    w.put_byte(b'"');
    let bytes = s.as_bytes();
    // `bytes[start..i]` is clean and not yet written.
    let mut start = 0usize;
    let mut i = 0usize;
    while i < bytes.len() {
        // Fast path: 16 bytes that need no escape (tokens are base64url: all of them are).
        if let Some(chunk) = bytes.get(i..i.saturating_add(16))
            && !chunk
                .iter()
                .fold(false, |dirty, &b| dirty | needs_escape(b))
        {
            i = i.saturating_add(16);
            continue;
        }
        let Some(&b) = bytes.get(i) else { break };
        if needs_escape(b) {
            w.put(bytes.get(start..i).unwrap_or_default());
            write_escape(b, w);
            start = i.saturating_add(1);
        }
        i = i.saturating_add(1);
    }
    w.put(bytes.get(start..).unwrap_or_default());
    w.put_byte(b'"');
}

/// A byte JSON requires escaped inside a string.
#[inline]
#[allow(clippy::needless_bitwise_bool)] // branch-free on purpose: it vectorizes
const fn needs_escape(b: u8) -> bool {
    (b < 0x20) | (b == b'"') | (b == b'\\')
}

/// Writes the escape of `b` (one of [`needs_escape`]'s bytes).
fn write_escape(b: u8, w: &mut SliceWriter<'_>) {
    let short: &[u8] = match b {
        b'"' => b"\\\"",
        b'\\' => b"\\\\",
        b'\n' => b"\\n",
        b'\r' => b"\\r",
        b'\t' => b"\\t",
        0x08 => b"\\b",
        0x0C => b"\\f",
        _ => b"",
    };
    if short.is_empty() {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        w.put(b"\\u00");
        // b < 0x20: both nibbles index a 16-entry table.
        w.put_byte(HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'));
        w.put_byte(HEX.get(usize::from(b & 0x0F)).copied().unwrap_or(b'0'));
    } else {
        w.put(short);
    }
}

fn member_str(w: &mut SliceWriter<'_>, key: &str, value: &str) {
    w.put_byte(b'"');
    w.put_str(key);
    w.put_str("\":");
    write_json_string(value, w);
}

fn member_num(w: &mut SliceWriter<'_>, key: &str, value: u64) {
    w.put_byte(b'"');
    w.put_str(key);
    w.put_str("\":\"");
    w.put_u64(value);
    w.put_byte(b'"');
}

/// Writes a success body in `shape` into `out`; returns its length, or the exact size needed.
pub fn write_token_json(
    token: &TokenJson<'_>,
    shape: Shape,
    out: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    let mut w = SliceWriter::new(out);
    w.put_byte(b'{');
    member_str(&mut w, "access_token", token.access_token.expose());
    match shape {
        Shape::Imds => {
            w.put_byte(b',');
            member_str(&mut w, "client_id", token.client_id);
            w.put_byte(b',');
            member_num(&mut w, "expires_in", token.expires_in);
            w.put_byte(b',');
            member_num(&mut w, "expires_on", token.expires_on);
            w.put_byte(b',');
            member_num(&mut w, "ext_expires_in", token.ext_expires_in);
        }
        Shape::Extension => {
            w.put_str(",\"refresh_token\":\"\",");
            member_num(&mut w, "expires_in", token.expires_in);
            w.put_byte(b',');
            member_num(&mut w, "expires_on", token.expires_on);
        }
    }
    w.put_byte(b',');
    member_num(&mut w, "not_before", token.not_before);
    w.put_byte(b',');
    member_str(&mut w, "resource", token.resource);
    w.put_str(",\"token_type\":\"Bearer\"}");
    w.finish()
}

/// Writes `{"error":"<error>","error_description":"<description>"}` into `out`; returns its
/// length, or the exact size needed.
pub fn write_error_json(
    error: &str,
    description: &str,
    out: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    let mut w = SliceWriter::new(out);
    w.put_byte(b'{');
    member_str(&mut w, "error", error);
    w.put_byte(b',');
    member_str(&mut w, "error_description", description);
    w.put_byte(b'}');
    w.finish()
}
