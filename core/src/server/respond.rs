//! Response writing: the HTTP head (`core::http` writers) in front of a JSON body
//! (`core::token` writers), into the caller's buffer.

use super::{Config, HandleError};
use crate::http::{end_head, reason_phrase, write_content_length, write_header, write_status_line};
use crate::source::Source;
use crate::token::write_json_string;
use crate::write::{BufferTooSmall, SliceWriter};

pub(crate) use crate::token::{Shape, TokenJson, write_error_json, write_token_json};

/// The media type of every answer.
pub const CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// Longest response head we write (the `Server` header is dropped if it would not fit).
const HEAD_MAX: usize = 640;

/// A body that did not fit `out`: the response needs its size plus a head.
pub(crate) fn too_small(e: BufferTooSmall) -> HandleError {
    HandleError::OutputTooSmall {
        required: e.required.saturating_add(HEAD_MAX),
    }
}

/// Writes `{"<key>":"<value>"}`.
fn one_member(key: &str, value: &str, out: &mut [u8]) -> Result<usize, HandleError> {
    let mut w = SliceWriter::new(out);
    w.put_byte(b'{');
    write_json_string(key, &mut w);
    w.put_byte(b':');
    write_json_string(value, &mut w);
    w.put_byte(b'}');
    w.finish().map_err(too_small)
}

/// Writes `{"error":…,"error_description":…}`, or `{"error":…}` when `description` is `None`.
pub(crate) fn error_json(
    error: &str,
    description: Option<&str>,
    out: &mut [u8],
) -> Result<usize, HandleError> {
    match description {
        Some(d) => write_error_json(error, d, out).map_err(too_small),
        None => one_member("error", error, out),
    }
}

/// Writes `{"tenantId":…}`.
pub(crate) fn info_json(tenant_id: &str, out: &mut [u8]) -> Result<usize, HandleError> {
    one_member("tenantId", tenant_id, out)
}

/// What goes in the head besides the body length.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadParams {
    pub status: u16,
    pub retry_after: Option<u32>,
    pub keep_alive: bool,
    /// A `HEAD` request: write the head (with the body's length) but not the body.
    pub head_only: bool,
}

/// Writes the head into `w`: status line, `Content-Type`, `Content-Length`, optional `Server`,
/// `Retry-After`, `Connection: close`.
fn write_head(w: &mut SliceWriter<'_>, config: &Config<'_>, head: HeadParams, body_len: usize) {
    let reason = match reason_phrase(head.status) {
        "" => "Error",
        r => r,
    };
    // Statuses come from the catalogue or a shell `Fault`; an out-of-range one becomes a 500.
    if write_status_line(w, head.status, reason).is_err() {
        let _ = write_status_line(w, 500, "Internal Server Error");
    }
    let _ = write_header(w, "Content-Type", CONTENT_TYPE);
    write_content_length(w, u64::try_from(body_len).unwrap_or(u64::MAX));
    if let Some(secs) = head.retry_after {
        let mut digits = [0u8; 10];
        let mut d = SliceWriter::new(&mut digits);
        d.put_u64(u64::from(secs));
        if let Ok(n) = d.finish() {
            let _ = write_header(w, "Retry-After", digits.get(..n).unwrap_or_default());
        }
    }
    if !head.keep_alive {
        let _ = write_header(w, "Connection", "close");
    }
    if let Some(id) = config.correlation_id.filter(|s| s.len() <= 64) {
        let _ = write_header(w, "X-CORRELATION-ID", id);
    }
    if head.status == 401
        && config.source == Source::Arc
        && let Some(realm) = config.realm.filter(|s| s.len() <= HEAD_MAX / 2)
    {
        // Unquoted, as HIMDS sends it: every SDK splits the value on `=`.
        let mut value = [0u8; HEAD_MAX / 2 + 16];
        let mut v = SliceWriter::new(&mut value);
        v.put_str("Basic realm=");
        v.put_str(realm);
        if let Ok(n) = v.finish() {
            let _ = write_header(w, "WWW-Authenticate", value.get(..n).unwrap_or_default());
        }
    }
    if let Some(server) = config.server_header.filter(|s| s.len() <= HEAD_MAX / 2) {
        // A value with CR/LF is refused by the writer and simply not sent.
        let _ = write_header(w, "Server", server);
    }
    end_head(w);
}

/// Writes a whole response into `out`: `body` writes the JSON body at the start of the buffer
/// it is given and returns its length; the head is then put in front of it.
pub(crate) fn response(
    config: &Config<'_>,
    head: HeadParams,
    body: impl FnOnce(&mut [u8]) -> Result<usize, HandleError>,
    out: &mut [u8],
) -> Result<usize, HandleError> {
    let body_len = body(&mut *out)?;
    let mut head_buf = [0u8; HEAD_MAX];
    let mut w = SliceWriter::new(&mut head_buf);
    write_head(&mut w, config, head, body_len);
    let head_len = w.len().min(HEAD_MAX);
    let sent_body = if head.head_only { 0 } else { body_len };
    let total = head_len.saturating_add(sent_body);
    if total > out.len() {
        return Err(HandleError::OutputTooSmall { required: total });
    }
    out.copy_within(..sent_body.min(out.len()), head_len.min(out.len()));
    if let (Some(dst), Some(src)) = (out.get_mut(..head_len), head_buf.get(..head_len)) {
        dst.copy_from_slice(src);
    }
    Ok(total)
}
