//! Writers for HTTP/1.1 heads over a [`SliceWriter`].
//!
//! Each writer validates its whole input before writing anything, so a refused call leaves
//! the writer unchanged. Running out of room is not an error here: the writer counts the bytes
//! and [`SliceWriter::finish`] reports how many were needed.

use super::WriteError;
use super::line::{is_field_byte, is_tchar};
use crate::write::SliceWriter;

/// Writes `method SP target SP HTTP/1.1 CRLF`. The method must be a token; the target must be
/// non-empty visible ASCII (no spaces, no control characters).
pub fn write_request_line(
    w: &mut SliceWriter<'_>,
    method: &str,
    target: &str,
) -> Result<(), WriteError> {
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(WriteError::InvalidMethod);
    }
    if target.is_empty() || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(WriteError::InvalidTarget);
    }
    w.put_str(method);
    w.put_byte(b' ');
    w.put_str(target);
    w.put(b" HTTP/1.1\r\n");
    Ok(())
}

/// Writes `HTTP/1.1 SP status SP reason CRLF`. The status must be in 100..=999 and the reason
/// free of control characters (HTAB allowed).
pub fn write_status_line(
    w: &mut SliceWriter<'_>,
    status: u16,
    reason: &str,
) -> Result<(), WriteError> {
    if !(100..=999).contains(&status) {
        return Err(WriteError::InvalidStatus);
    }
    if !reason.bytes().all(is_field_byte) {
        return Err(WriteError::InvalidReason);
    }
    w.put(b"HTTP/1.1 ");
    w.put_u64(u64::from(status));
    w.put_byte(b' ');
    w.put_str(reason);
    w.put(b"\r\n");
    Ok(())
}

/// Writes `name: value CRLF`. The name must be a non-empty token; the value must not contain
/// CR, LF or any other control character except HTAB (so it cannot inject headers).
pub fn write_header(
    w: &mut SliceWriter<'_>,
    name: &str,
    value: impl AsRef<[u8]>,
) -> Result<(), WriteError> {
    let value = value.as_ref();
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(WriteError::InvalidHeaderName);
    }
    if !value.iter().all(|&b| is_field_byte(b)) {
        return Err(WriteError::InvalidHeaderValue);
    }
    w.put_str(name);
    w.put(b": ");
    w.put(value);
    w.put(b"\r\n");
    Ok(())
}

/// Writes `Content-Length: n CRLF`.
pub fn write_content_length(w: &mut SliceWriter<'_>, n: u64) {
    w.put(b"Content-Length: ");
    w.put_u64(n);
    w.put(b"\r\n");
}

/// Ends the head with the blank line.
pub fn end_head(w: &mut SliceWriter<'_>) {
    w.put(b"\r\n");
}

/// The usual reason phrase for `status` (empty for codes without one here).
pub const fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}
