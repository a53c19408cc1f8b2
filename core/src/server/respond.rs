//! Response writing: JSON bodies (serde-json-core) and the HTTP head, into caller buffers.

use serde::Serialize;

use super::{Config, HandleError};
use crate::http::{end_head, reason_phrase, write_content_length, write_header, write_status_line};
use crate::write::SliceWriter;

/// The media type of every answer.
pub const CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// An upper bound of the JSON length of `fields` (every byte escaped as `\u00XX`), used as the
/// `required` size when serde-json-core runs out of room (it does not say how much it needed).
fn json_bound(fields: &[&str]) -> usize {
    fields.iter().fold(16usize, |n, f| {
        n.saturating_add(f.len().saturating_mul(6))
            .saturating_add(8)
    })
}

/// Longest response head we write (the `Server` header is dropped if it would not fit).
const HEAD_MAX: usize = 384;

/// Serializes `value` into `out`; `bound` is the `required` size reported when it does not fit.
pub(crate) fn json<T: Serialize>(
    value: &T,
    out: &mut [u8],
    bound: usize,
) -> Result<usize, HandleError> {
    serde_json_core::to_slice(value, out).map_err(|_| HandleError::OutputTooSmall {
        required: bound
            .max(out.len().saturating_add(1))
            .saturating_add(HEAD_MAX),
    })
}

#[derive(Serialize)]
struct ErrorBody<'e> {
    error: &'e str,
    error_description: &'e str,
}

#[derive(Serialize)]
struct PlainErrorBody<'e> {
    error: &'e str,
}

#[derive(Serialize)]
struct InfoBody<'e> {
    #[serde(rename = "tenantId")]
    tenant_id: &'e str,
}

/// Writes `{"error":…,"error_description":…}`, or `{"error":…}` when `description` is `None`.
pub(crate) fn error_json(
    error: &str,
    description: Option<&str>,
    out: &mut [u8],
) -> Result<usize, HandleError> {
    match description {
        Some(d) => json(
            &ErrorBody {
                error,
                error_description: d,
            },
            out,
            json_bound(&[error, d]),
        ),
        None => json(&PlainErrorBody { error }, out, json_bound(&[error])),
    }
}

/// Writes `{"tenantId":…}`.
pub(crate) fn info_json(tenant_id: &str, out: &mut [u8]) -> Result<usize, HandleError> {
    json(&InfoBody { tenant_id }, out, json_bound(&[tenant_id]))
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

/// The JSON shape of a token answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenShape {
    /// Modern IMDS (protocol.md §1.7, keys in the observed alphabetical order).
    Imds,
    /// Legacy VM extension (§2.3): `refresh_token:""`, no `client_id` / `ext_expires_in`.
    Extension,
}

/// The fields of a token answer, numbers already as decimal text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenFields<'t> {
    pub access_token: &'t str,
    pub client_id: &'t str,
    pub expires_in: u64,
    pub expires_on: u64,
    pub ext_expires_in: u64,
    pub not_before: u64,
    pub resource: &'t str,
}

#[derive(Serialize)]
struct ImdsTokenBody<'t> {
    access_token: &'t str,
    client_id: &'t str,
    expires_in: &'t str,
    expires_on: &'t str,
    ext_expires_in: &'t str,
    not_before: &'t str,
    resource: &'t str,
    token_type: &'t str,
}

#[derive(Serialize)]
struct ExtensionTokenBody<'t> {
    access_token: &'t str,
    refresh_token: &'t str,
    expires_in: &'t str,
    expires_on: &'t str,
    not_before: &'t str,
    resource: &'t str,
    token_type: &'t str,
}

/// Decimal text of a `u64` in a stack buffer.
struct Num([u8; 20], usize);

impl Num {
    fn new(n: u64) -> Self {
        let mut buf = [0u8; 20];
        let mut w = SliceWriter::new(&mut buf);
        w.put_u64(n);
        let len = w.len();
        Num(buf, len)
    }

    fn as_str(&self) -> &str {
        self.0
            .get(..self.1)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("0")
    }
}

/// Writes a token answer of `shape`; every value is a JSON string.
pub(crate) fn token_json(
    t: &TokenFields<'_>,
    shape: TokenShape,
    out: &mut [u8],
) -> Result<usize, HandleError> {
    let (lifetime, expiry) = (Num::new(t.expires_in), Num::new(t.expires_on));
    let (ext, not_before) = (Num::new(t.ext_expires_in), Num::new(t.not_before));
    let bound = json_bound(&[t.access_token, t.client_id, t.resource]).saturating_add(256);
    match shape {
        TokenShape::Imds => json(
            &ImdsTokenBody {
                access_token: t.access_token,
                client_id: t.client_id,
                expires_in: lifetime.as_str(),
                expires_on: expiry.as_str(),
                ext_expires_in: ext.as_str(),
                not_before: not_before.as_str(),
                resource: t.resource,
                token_type: "Bearer",
            },
            out,
            bound,
        ),
        TokenShape::Extension => json(
            &ExtensionTokenBody {
                access_token: t.access_token,
                refresh_token: "",
                expires_in: lifetime.as_str(),
                expires_on: expiry.as_str(),
                not_before: not_before.as_str(),
                resource: t.resource,
                token_type: "Bearer",
            },
            out,
            bound,
        ),
    }
}
