//! Per-connection parsing state (a request's head and body framed from the bytes received) and
//! the writers of whole responses (token, rejection, fault) that [`Server::handle`] and
//! [`Server::answer`] share.

use super::respond::{self, HeadParams};
use super::{Fault, HandleError, Rejection, RequestView};
#[cfg(doc)]
use super::{IssueError, Issuer, Server};
use crate::http::{BodyDecoder, HttpError, Limits, Method, RequestParser, Status};
use crate::identity::Resolved;
use crate::write::SliceWriter;

/// The parsing state of one client connection: where the current request's head and body are.
///
/// Keep one per connection and pass it to every [`Server::handle`] call for that connection.
#[derive(Debug, Clone)]
pub struct ServerConnection {
    parser: RequestParser,
    limits: Limits,
    /// Length of the completed head and the decoder of the body that follows it.
    body: Option<(usize, BodyDecoder)>,
}

impl ServerConnection {
    /// A fresh connection parsing requests within `limits` (default: 8 KiB lines, 64 headers;
    /// [`Config::limits`](super::Config::limits)).
    pub const fn new(limits: Limits) -> Self {
        ServerConnection {
            parser: RequestParser::new(limits),
            limits,
            body: None,
        }
    }

    /// Forgets the request in progress; the next call parses from the start of its buffer.
    pub fn reset(&mut self) {
        self.parser.reset();
        self.body = None;
    }

    /// Parses (more of) the request at the start of `input`: its head, then its body, decoded
    /// in place. The one HTTP front of [`Server::handle`] and
    /// [`Relay::handle`](super::Relay::handle). After [`Framed::Failed`] the caller answers
    /// and closes; after [`Framed::Request`] it answers and calls [`reset`](Self::reset).
    pub(crate) fn frame<'i>(&mut self, input: &'i mut [u8], mode: super::Mode) -> Framed<'i> {
        let head_len = if let Some((len, _)) = self.body {
            len
        } else {
            match self.parser.parse_framing(input) {
                Ok(Status::Partial) => return Framed::Partial,
                Ok(Status::Complete { value, len }) => {
                    self.body = Some((len, BodyDecoder::new(value, self.limits)));
                    len
                }
                Err(e) => return Framed::Failed(http_rejection(e)),
            }
        };
        let decoded = match self.body.as_mut() {
            Some((_, decoder)) => {
                let tail = input.get_mut(head_len..).unwrap_or_default();
                decoder.decode(tail)
            }
            None => Err(HttpError::BufferMismatch),
        };
        let (body_len, body_raw) = match decoded {
            Ok(Status::Partial) => return Framed::Partial,
            Ok(Status::Complete { value, len }) => (value, len),
            Err(e) => return Framed::Failed(http_rejection(e)),
        };
        let consumed = head_len.saturating_add(body_raw);
        let input: &'i [u8] = input;
        let Some(head) = self.parser.head(input) else {
            return Framed::Failed(Rejection::MalformedRequest);
        };
        let body = input
            .get(head_len..head_len.saturating_add(body_len))
            .unwrap_or_default();
        // One pass over the header block for every field the server reads (the first of each).
        // A relay refuses proxied requests whatever the flavor, `Forwarded` (RFC 7239) too.
        let relay = mode == super::Mode::Relay;
        let (mut metadata, mut content_type, mut forwarded_for) = (None, None, false);
        let (mut identity_header, mut secret, mut authorization) = (None, None, None);
        for (name, value) in head.headers.fields() {
            if name.eq_ignore_ascii_case(b"Metadata") {
                metadata = metadata.or(Some(value));
            } else if name.eq_ignore_ascii_case(b"Content-Type") {
                content_type = content_type.or(Some(value));
            } else if name.eq_ignore_ascii_case(b"X-Forwarded-For")
                || (relay && name.eq_ignore_ascii_case(b"Forwarded"))
            {
                forwarded_for = true;
            } else if name.eq_ignore_ascii_case(b"X-IDENTITY-HEADER") {
                identity_header = identity_header.or(Some(value));
            } else if name.eq_ignore_ascii_case(b"secret") {
                secret = secret.or(Some(value));
            } else if name.eq_ignore_ascii_case(b"Authorization") {
                authorization = authorization.or(Some(value));
            }
        }
        let view = RequestView {
            method: head.method.as_str(),
            path: head.target.path,
            query: head.target.query.unwrap_or_default().as_bytes(),
            metadata,
            forwarded_for,
            content_type,
            body,
            identity_header,
            secret,
            authorization,
        };
        let ctx = Ctx {
            keep_alive: head.keep_alive,
            head_only: head.method == Method::Head,
            consumed,
        };
        Framed::Request(FramedRequest {
            view,
            authority: head.target.authority,
            ctx,
        })
    }
}

/// What [`ServerConnection::frame`] found.
pub(crate) enum Framed<'i> {
    /// The request is not complete yet.
    Partial,
    /// The bytes cannot be a request we accept: answer this and close.
    Failed(Rejection),
    /// A complete request.
    Request(FramedRequest<'i>),
}

/// A complete request, borrowed from the input.
pub(crate) struct FramedRequest<'i> {
    /// What validation looks at.
    pub view: RequestView<'i>,
    /// `host[:port]` of an absolute-form target.
    pub authority: Option<&'i str>,
    /// How to answer it.
    pub ctx: Ctx,
}

/// A response written by [`Server::handle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response<'a> {
    /// Bytes of the input the request took; drop them and call again with what follows
    /// (pipelined requests) if `keep_alive`.
    pub consumed: usize,
    /// The response is the first `len` bytes of the output buffer.
    pub len: usize,
    /// Its HTTP status.
    pub status: u16,
    /// False: close the connection after sending the response.
    pub keep_alive: bool,
    /// What the request was and how it was answered (for logs and per-identity counters).
    pub outcome: Outcome<'a>,
}

/// How a request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome<'a> {
    /// A token was issued.
    Token {
        /// For this identity.
        resolved: Resolved<'a>,
        /// `bypass_cache=true` was asked for.
        bypass_cache: bool,
    },
    /// `/metadata/identity/info` was answered.
    Info,
    /// An error from the catalogue.
    Rejected {
        /// Which one.
        rejection: Rejection,
        /// The identity, when the request resolved to one (issuer failures).
        resolved: Option<Resolved<'a>>,
    },
    /// A [`Fault`] from the issuer.
    Fault {
        /// The identity, when the fault came from [`Issuer::issue`].
        resolved: Option<Resolved<'a>>,
    },
    /// [`IssueError::Close`]: nothing to send; close the connection.
    Closed {
        /// The identity the request resolved to.
        resolved: Resolved<'a>,
    },
    /// [`Issuer::serve_other`] answered a path the server does not own.
    Other,
    /// Relay mode: a token from upstream was written by
    /// [`Relay::write_token`](super::Relay::write_token).
    Relayed,
    /// Relay mode: an upstream error (or the shell's own error for a failed upstream) was
    /// written by [`Relay::write_upstream_error`](super::Relay::write_upstream_error).
    Upstream,
}

/// Maps an HTTP parse failure to its answer.
fn http_rejection(e: HttpError) -> Rejection {
    match e {
        HttpError::LineTooLong | HttpError::TooManyHeaders => Rejection::HeadTooLarge,
        HttpError::BodyTooLarge => Rejection::BodyTooLarge,
        _ => Rejection::MalformedRequest,
    }
}

/// Writes `template` with each `(placeholder, value)` substituted once, in order.
fn fill(w: &mut SliceWriter<'_>, template: &str, subs: &[(&str, &str)]) {
    let mut rest = template;
    for (placeholder, value) in subs {
        if let Some((before, after)) = rest.split_once(placeholder) {
            w.put_str(before);
            w.put_str(value);
            rest = after;
        }
    }
    w.put_str(rest);
}

/// Answers bytes whose framing failed (400 / 431 / 413, `keep_alive: false`) and resets
/// `conn` once written: the one answer of [`Server::handle`], [`Server::receive`] and
/// [`Relay::handle`](super::Relay::handle) to input that is not a request.
pub(crate) fn framing_failed(
    config: &super::Config<'_>,
    conn: &mut ServerConnection,
    rejection: Rejection,
    consumed: usize,
    out: &mut [u8],
) -> Result<Response<'static>, HandleError> {
    let ctx = Ctx {
        keep_alive: false,
        head_only: false,
        consumed,
    };
    let texts = Texts::default();
    let response = write_rejection(config, rejection, None, &texts, &ctx, &mut [], out)?;
    conn.reset();
    Ok(response)
}

/// Room a JSON answer needs beyond the token, for the `WorkTooSmall` estimate.
pub(crate) const MIN_JSON_ROOM: usize = 1024;

/// Request facts that outlive parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ctx {
    pub keep_alive: bool,
    pub head_only: bool,
    pub consumed: usize,
}

/// Values substituted into dynamic error descriptions.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Texts<'t> {
    /// The request path, or the whole absolute-form target (`http://host/path`).
    pub path: &'t str,
    /// The authority of an absolute-form target: `Unknown Source http://<authority><path>`.
    pub authority: Option<&'t str>,
    pub resource: &'t str,
    pub tenant: &'t str,
    /// The api-version asked for (as sent), for a source's api-version error.
    pub api_version: &'t str,
}

pub(crate) fn finish<'a>(
    config: &super::Config<'_>,
    status: u16,
    retry_after: Option<u32>,
    ctx: &Ctx,
    body: impl FnOnce(&mut [u8]) -> Result<usize, HandleError>,
    outcome: Outcome<'a>,
    out: &mut [u8],
) -> Result<Response<'a>, HandleError> {
    let head = HeadParams {
        status,
        retry_after,
        keep_alive: ctx.keep_alive,
        head_only: ctx.head_only,
    };
    let len = respond::response(config, head, body, out)?;
    Ok(Response {
        consumed: ctx.consumed,
        len,
        status,
        keep_alive: ctx.keep_alive,
        outcome,
    })
}

pub(crate) fn write_rejection<'a>(
    config: &super::Config<'_>,
    rejection: Rejection,
    resolved: Option<Resolved<'a>>,
    texts: &Texts<'_>,
    ctx: &Ctx,
    area: &mut [u8],
    out: &mut [u8],
) -> Result<Response<'a>, HandleError> {
    write_rejection_retry(config, rejection, resolved, texts, None, ctx, area, out)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn write_rejection_retry<'a>(
    config: &super::Config<'_>,
    rejection: Rejection,
    resolved: Option<Resolved<'a>>,
    texts: &Texts<'_>,
    retry_after: Option<u32>,
    ctx: &Ctx,
    area: &mut [u8],
    out: &mut [u8],
) -> Result<Response<'a>, HandleError> {
    if config.is_source() {
        let parts = super::sources::source_error(config.source, rejection).into();
        let retry_after = rejection
            .has_retry_after()
            .then(|| retry_after.unwrap_or(config.default_retry_after));
        let ctx = Ctx {
            keep_alive: ctx.keep_alive && !rejection.closes_connection(),
            ..*ctx
        };
        let outcome = Outcome::Rejected {
            rejection,
            resolved,
        };
        return write_source_error(config, &parts, texts, retry_after, &ctx, outcome, out);
    }
    let flavor = config.flavor;
    let description = rejection.description(flavor);
    // A description with the path / resource / tenant filled in is rendered into `area`.
    let dynamic = match rejection {
        Rejection::UnknownSource | Rejection::InvalidResource => description,
        _ => None,
    };
    let description = if let Some(template) = dynamic {
        let mut w = SliceWriter::new(&mut *area);
        if rejection == Rejection::UnknownSource {
            w.put_str(template);
            if let Some(authority) = texts.authority {
                w.put_str("http://");
                w.put_str(authority);
            }
            w.put_str(texts.path);
        } else {
            let subs = [("<resource>", texts.resource), ("<tenant>", texts.tenant)];
            fill(&mut w, template, &subs);
        }
        let text_len = w.finish().map_err(|e| HandleError::WorkTooSmall {
            required: e.required,
        })?;
        let text = area.get(..text_len).unwrap_or_default();
        Some(core::str::from_utf8(text).unwrap_or_default())
    } else {
        description
    };
    let error = rejection.error(flavor);
    let body = |o: &mut [u8]| respond::error_json(error, description, o);
    let retry_after = rejection
        .has_retry_after()
        .then(|| retry_after.unwrap_or(config.default_retry_after));
    let ctx = Ctx {
        keep_alive: ctx.keep_alive && !rejection.closes_connection(),
        ..*ctx
    };
    let outcome = Outcome::Rejected {
        rejection,
        resolved,
    };
    finish(
        config,
        rejection.status(flavor),
        retry_after,
        &ctx,
        body,
        outcome,
        out,
    )
}

/// Writes `fault` as a whole response for `ctx`'s request, or with no request behind it
/// ([`bare_fault`]).
pub(crate) fn write_fault<'a>(
    config: &super::Config<'_>,
    fault: &Fault<'_>,
    resolved: Option<Resolved<'a>>,
    ctx: &Ctx,
    out: &mut [u8],
) -> Result<Response<'a>, HandleError> {
    let retry_after = match fault.status {
        429 | 503 => Some(fault.retry_after.unwrap_or(config.default_retry_after)),
        _ => fault.retry_after,
    };
    if config.is_source() {
        let parts = super::sources::ErrorParts {
            status: fault.status,
            code: fault.error,
            message: fault.description.unwrap_or(fault.error),
        };
        let outcome = Outcome::Fault { resolved };
        let texts = Texts::default();
        return write_source_error(config, &parts, &texts, retry_after, ctx, outcome, out);
    }
    let body = |o: &mut [u8]| respond::error_json(fault.error, fault.description, o);
    finish(
        config,
        fault.status,
        retry_after,
        ctx,
        body,
        Outcome::Fault { resolved },
        out,
    )
}

/// Writes `fault` with no request behind it (`Connection: close` unless `keep_alive`), e.g. to
/// turn a connection away before reading it: [`Server::write_fault`] and
/// [`Relay::write_fault`](super::Relay::write_fault). Returns the response length.
pub(crate) fn bare_fault(
    config: &super::Config<'_>,
    fault: &Fault<'_>,
    keep_alive: bool,
    out: &mut [u8],
) -> Result<usize, HandleError> {
    let ctx = Ctx {
        keep_alive,
        head_only: false,
        consumed: 0,
    };
    write_fault(config, fault, None, &ctx, out).map(|r| r.len)
}

/// Writes a source's error answer (its body shape, its status).
fn write_source_error<'a>(
    config: &super::Config<'_>,
    parts: &super::sources::ErrorParts<'_>,
    texts: &Texts<'_>,
    retry_after: Option<u32>,
    ctx: &Ctx,
    outcome: Outcome<'a>,
    out: &mut [u8],
) -> Result<Response<'a>, HandleError> {
    let source_texts = super::sources::ErrorTexts {
        path: texts.path,
        api_version: texts.api_version,
        resource: texts.resource,
        correlation_id: config.correlation_id.unwrap_or_default(),
    };
    let body = |o: &mut [u8]| {
        super::sources::write_error_body(config.source, parts, &source_texts, o)
            .map_err(respond::too_small)
    };
    finish(config, parts.status, retry_after, ctx, body, outcome, out)
}
