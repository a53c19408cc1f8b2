//! Percent-encoding and query strings (`a=b&c=d`).
//!
//! * [`encode`] / [`encode_into`] / [`encoded_len`]: percent-encode a query or form value.
//!   Unreserved characters (`A–Z a–z 0–9 - . _ ~`, RFC 3986 §2.3) stay as they are; every other
//!   byte, including `/`, `:`, space and each byte of a multi-byte UTF-8 character, becomes
//!   `%XX` with upper-case hex. Space is `%20`, never `+`.
//! * [`decode_into`]: percent-decode into a caller buffer, with [`Plus`] choosing whether `+`
//!   means a space (HTML forms, `application/x-www-form-urlencoded`) or itself.
//! * [`Pairs`]: a zero-copy iterator over the raw (still encoded) pairs of a query string.

use core::fmt;

use crate::write::{BufferTooSmall, SliceWriter};

/// Why a percent-encoded value could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueryError {
    /// A `%` at byte `offset` of the input is not followed by two hex digits.
    MalformedEscape {
        /// Offset of the `%` in the encoded input.
        offset: usize,
    },
    /// The decoded bytes are not valid UTF-8 (for example `%FF`, or half a character).
    InvalidUtf8,
    /// The output buffer is too small; `required` bytes would hold the decoded value.
    BufferTooSmall {
        /// Bytes the decoded value needs.
        required: usize,
    },
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MalformedEscape { offset } => write!(
                f,
                "malformed percent-escape at byte {offset}: '%' must be followed by two hex digits"
            ),
            Self::InvalidUtf8 => f.write_str("percent-decoded value is not valid UTF-8"),
            Self::BufferTooSmall { required } => {
                write!(f, "decode buffer too small: {required} bytes required")
            }
        }
    }
}

impl core::error::Error for QueryError {}

impl From<BufferTooSmall> for QueryError {
    fn from(e: BufferTooSmall) -> Self {
        Self::BufferTooSmall {
            required: e.required,
        }
    }
}

/// What a `+` in an encoded value means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Plus {
    /// `+` is a literal plus sign (RFC 3986 query semantics).
    #[default]
    Literal,
    /// `+` is a space (`application/x-www-form-urlencoded`, used by HTML forms and by clients
    /// such as Go's `url.Values.Encode` even in query strings).
    Space,
}

/// The upper-case hex digit for the low four bits of `n`.
const fn hex_digit(n: u8) -> u8 {
    match n & 0x0F {
        d @ 0..=9 => b'0' + d,
        d => b'A' + (d - 10),
    }
}

/// True for RFC 3986 unreserved characters, which are never percent-encoded.
const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Appends the percent-encoded form of `value` to `w`.
pub fn encode(value: &[u8], w: &mut SliceWriter<'_>) {
    let mut rest = value;
    while !rest.is_empty() {
        // Copy the longest run of unreserved bytes in one go.
        let run = rest
            .iter()
            .position(|&b| !is_unreserved(b))
            .unwrap_or(rest.len());
        let (plain, tail) = rest.split_at(run);
        w.put(plain);
        let Some((&b, tail)) = tail.split_first() else {
            break;
        };
        w.put(&[b'%', hex_digit(b >> 4), hex_digit(b & 0x0F)]);
        rest = tail;
    }
}

/// Percent-encodes `value` into `out`; returns the number of bytes written.
pub fn encode_into(value: &[u8], out: &mut [u8]) -> Result<usize, BufferTooSmall> {
    let mut w = SliceWriter::new(out);
    encode(value, &mut w);
    w.finish()
}

/// The exact length of the percent-encoded form of `value`.
pub fn encoded_len(value: &[u8]) -> usize {
    value.iter().fold(0usize, |n, &b| {
        n.saturating_add(if is_unreserved(b) { 1 } else { 3 })
    })
}

const fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `src` into `out` and returns the decoded text, borrowed from `out`.
///
/// `%XX` (either hex case) becomes the byte `0xXX`; with [`Plus::Space`] a `+` becomes a space.
/// A `%` not followed by two hex digits is [`QueryError::MalformedEscape`]; a result that is not
/// UTF-8 is [`QueryError::InvalidUtf8`]. The decoded value is never longer than `src`, so an
/// `out` of `src.len()` bytes always suffices; a smaller one that does not fit gives
/// [`QueryError::BufferTooSmall`] with the exact size needed (malformed input is reported first).
pub fn decode_into<'o, S>(src: &S, out: &'o mut [u8], plus: Plus) -> Result<&'o str, QueryError>
where
    S: AsRef<[u8]> + ?Sized,
{
    let len = decode_bytes(src.as_ref(), out, plus)?;
    let decoded = out
        .get(..len)
        .ok_or(QueryError::BufferTooSmall { required: len })?;
    core::str::from_utf8(decoded).map_err(|_| QueryError::InvalidUtf8)
}

/// [`decode_into`] without the UTF-8 check of the result: its length. Runs of bytes that
/// need no decoding are copied whole.
pub(crate) fn decode_bytes(src: &[u8], out: &mut [u8], plus: Plus) -> Result<usize, QueryError> {
    let mut w = SliceWriter::new(out);
    let special = |b: u8| b == b'%' || (b == b'+' && plus == Plus::Space);
    let mut i = 0usize;
    loop {
        let rest = src.get(i..).unwrap_or_default();
        let run = rest.iter().position(|&b| special(b)).unwrap_or(rest.len());
        w.put(rest.get(..run).unwrap_or_default());
        i = i.saturating_add(run);
        match src.get(i) {
            None => break,
            Some(b'%') => {
                let hi = src.get(i.saturating_add(1)).copied().and_then(hex_val);
                let lo = src.get(i.saturating_add(2)).copied().and_then(hex_val);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(QueryError::MalformedEscape { offset: i });
                };
                w.put_byte((hi << 4) | lo);
                i = i.saturating_add(3);
            }
            Some(_) => {
                // `+` meaning a space.
                w.put_byte(b' ');
                i = i.saturating_add(1);
            }
        }
    }
    Ok(w.finish()?)
}

/// A zero-copy iterator over the `key=value` pairs of a query string or form body.
///
/// Pairs are separated by `&`; empty segments (`a=1&&b=2`, a trailing `&`) are skipped. A
/// segment without `=` yields its whole text as the key and an empty value. Keys and values are
/// returned raw, still percent-encoded: decode them with [`decode_into`] (duplicate keys are the
/// caller's business; IMDS rejects them). A leading `?` is not stripped.
#[derive(Debug, Clone)]
pub struct Pairs<'a> {
    rest: &'a [u8],
}

impl<'a> Pairs<'a> {
    /// Iterates over the pairs of `query` (the text after `?`, or a form body).
    pub fn new<S: AsRef<[u8]> + ?Sized>(query: &'a S) -> Self {
        Self {
            rest: query.as_ref(),
        }
    }
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (segment, rest) = match self.rest.iter().position(|&b| b == b'&') {
                Some(amp) => {
                    let (seg, tail) = self.rest.split_at(amp);
                    (seg, tail.get(1..).unwrap_or(&[]))
                }
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            if segment.is_empty() {
                continue;
            }
            return Some(match segment.iter().position(|&b| b == b'=') {
                Some(eq) => {
                    let (k, v) = segment.split_at(eq);
                    (k, v.get(1..).unwrap_or(&[]))
                }
                None => (segment, &[][..]),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_basic() {
        let mut buf = [0u8; 64];
        let n = encode_into(b"https://management.azure.com/", &mut buf).unwrap();
        assert_eq!(&buf[..n], b"https%3A%2F%2Fmanagement.azure.com%2F");
        assert_eq!(encoded_len(b"https://management.azure.com/"), n);
    }

    #[test]
    fn decode_basic() {
        let mut buf = [0u8; 64];
        assert_eq!(
            decode_into("a%2fb+c%20", &mut buf, Plus::Space).unwrap(),
            "a/b c "
        );
        assert_eq!(decode_into("a+b", &mut buf, Plus::Literal).unwrap(), "a+b");
    }
}
