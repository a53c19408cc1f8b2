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
        // Fast path: whole words that need no escape (tokens are base64url: all of them are),
        // about 1.5 instructions a byte instead of 5 (callgrind).
        i = i.saturating_add(clean_words(bytes.get(i..).unwrap_or_default()));
        // The next word holds a byte to escape, or fewer than 8 bytes are left: byte by byte.
        let end = i.saturating_add(8).min(bytes.len());
        while i < end {
            let Some(&b) = bytes.get(i) else { break };
            if needs_escape(b) {
                w.put(bytes.get(start..i).unwrap_or_default());
                write_escape(b, w);
                start = i.saturating_add(1);
            }
            i = i.saturating_add(1);
        }
    }
    w.put(bytes.get(start..).unwrap_or_default());
    w.put_byte(b'"');
}

/// How many bytes at the start of `bytes`, in whole 8-byte words, need no escape: 32 bytes
/// at a time, then word by word. The word after them (if any) holds a byte to escape.
fn clean_words(bytes: &[u8]) -> usize {
    let word = |c: &[u8]| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
    let mut n = 0usize;
    for block in bytes.chunks_exact(32) {
        if block
            .chunks_exact(8)
            .fold(0, |mask, c| mask | escape_mask(word(c)))
            != 0
        {
            break;
        }
        n = n.saturating_add(32);
    }
    for c in bytes.get(n..).unwrap_or_default().chunks_exact(8) {
        if escape_mask(word(c)) != 0 {
            break;
        }
        n = n.saturating_add(8);
    }
    n
}

/// True when one of the eight bytes of `x` is one [`needs_escape`] names.
#[cfg(test)]
const fn word_needs_escape(x: u64) -> bool {
    escape_mask(x) != 0
}

/// Non-zero when one of the eight bytes of `x` is one [`needs_escape`] names: a byte below
/// `0x20`, `"` or `\`. Exact (no false alarm, nothing missed): the "has a byte less than n"
/// and "has a zero byte" word tests, the latter on `x` XOR the repeated `"` and `\`.
#[inline]
const fn escape_mask(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    // `"` (0x22) and `\` (0x5C) in every byte.
    let q = x ^ (ONES * 0x22);
    let quote = q.wrapping_sub(ONES) & !q & HIGH;
    let b = x ^ (ONES * 0x5C);
    let backslash = b.wrapping_sub(ONES) & !b & HIGH;
    below_space | quote | backslash
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

#[cfg(test)]
mod tests {
    use super::{needs_escape, word_needs_escape};

    fn bytewise(w: [u8; 8]) -> bool {
        w.iter().any(|&b| needs_escape(b))
    }

    #[test]
    fn the_word_test_agrees_with_the_byte_test_for_every_byte_at_every_position() {
        for clean in [b'a', b'.', b'-', 0x7F, 0x80, 0xFF, b' '] {
            for at in 0..8 {
                for b in 0..=255u8 {
                    let mut w = [clean; 8];
                    w[at] = b;
                    assert_eq!(
                        word_needs_escape(u64::from_le_bytes(w)),
                        bytewise(w),
                        "{w:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_word_test_agrees_with_the_byte_test_on_pseudo_random_words() {
        // Bytes drawn mostly from the interesting ones, to mix escapes, borrows and high bits.
        let pool = [
            0u8, 0x1F, 0x20, 0x21, b'"', b'#', b'[', b'\\', b']', 0x7F, 0x80, 0xA2, 0xDC, 0xFF,
        ];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..200_000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let mut w = [0u8; 8];
            for (k, byte) in w.iter_mut().enumerate() {
                let [r, ..] = (state >> (k * 8)).to_le_bytes();
                *byte = if r & 1 == 0 {
                    pool[usize::from(r >> 1) % pool.len()]
                } else {
                    r
                };
            }
            assert_eq!(
                word_needs_escape(u64::from_le_bytes(w)),
                bytewise(w),
                "{w:?}"
            );
        }
    }
}
