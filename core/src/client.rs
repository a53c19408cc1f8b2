//! The sans-I/O client exchange: one token request out, one response in, over one caller-lent
//! buffer.
//!
//! [`Exchange`] writes the request into the buffer; the shell sends [`Exchange::to_send`] and
//! reports [`Exchange::sent`]; then it reads into [`Exchange::receive_buf`] and reports
//! [`Exchange::received`] (or [`Exchange::eof`]) until the response is complete; finally
//! [`Exchange::finish`] parses the body into an [`Outcome`] that borrows from the buffer. The
//! response parser is incremental: each call examines only the new bytes.
//!
//! The buffer is reused: the response overwrites the request once that has been sent, and the
//! part of the buffer after the response is the scratch space for JSON strings with escapes.
//! Size it for the largest response you accept (IMDS tokens are 1.5–4 KB; 16 KiB is generous).
//!
//! ```
//! use mitoken_core::client::{Exchange, Outcome, Progress};
//! use mitoken_core::http::Limits;
//! use mitoken_core::request::{Endpoint, TokenRequest};
//!
//! let mut buf = [0u8; 4096];
//! let request = TokenRequest::new("https://management.azure.com/");
//! let mut ex = Exchange::new(&request, &Endpoint::Imds, &mut buf, Limits::default()).unwrap();
//! assert!(ex.to_send().starts_with(b"GET /metadata/identity/oauth2/token?"));
//! let n = ex.to_send().len();
//! ex.sent(n);
//! let answer = b"HTTP/1.1 410 Gone\r\nContent-Length: 0\r\n\r\n";
//! ex.receive_buf().unwrap()[..answer.len()].copy_from_slice(answer);
//! assert_eq!(ex.received(answer.len()).unwrap(), Progress::Complete);
//! let Outcome::Service(e) = ex.finish(0).unwrap() else { panic!("expected a 410") };
//! assert_eq!(e.status, 410);
//! ```

use core::fmt;

use crate::arc::{self, ArcError};
use crate::http::{HttpError, Limits, Response, ResponseReader, RetryAfter, Status};
use crate::request::{Endpoint, RequestError, Style, TokenRequest};
use crate::token::{JsonError, ServiceError, Token};

/// What went wrong in a client exchange (the transport's own errors are the driver's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientError {
    /// The request could not be built (invalid value, or the buffer is too small for it).
    Request(RequestError),
    /// The response is not valid HTTP/1.1, or breaks a limit.
    Http(HttpError),
    /// The response is HTTP 200 but its body is not a valid token.
    Json(JsonError),
    /// The response does not fit in the buffer of `capacity` bytes.
    ResponseTooLarge {
        /// The buffer's length.
        capacity: usize,
    },
    /// The peer closed the connection before the response was complete.
    ClosedEarly,
    /// The exchange was driven out of order (e.g. `finish` before the response was complete,
    /// or more bytes reported than the buffer offered).
    Misuse,
    /// Azure Arc: a malformed challenge, or a token for another identity than the one named.
    Arc(ArcError),
    /// The transport refused the peer: its TLS certificate does not match the pinned
    /// thumbprint, or the TLS handshake failed (reported by the shell; not retried).
    PeerRejected,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Request(e) => write!(f, "cannot build the request: {e}"),
            Self::Http(e) => write!(f, "invalid HTTP response: {e}"),
            Self::Json(e) => write!(f, "invalid token response: {e}"),
            Self::ResponseTooLarge { capacity } => {
                write!(f, "response larger than the {capacity}-byte buffer")
            }
            Self::ClosedEarly => f.write_str("connection closed before the response was complete"),
            Self::Misuse => f.write_str("client exchange driven out of order"),
            Self::Arc(e) => fmt::Display::fmt(e, f),
            Self::PeerRejected => f.write_str(
                "the server was refused in the TLS handshake (certificate not the pinned one)",
            ),
        }
    }
}

impl core::error::Error for ClientError {}

impl From<RequestError> for ClientError {
    fn from(e: RequestError) -> Self {
        Self::Request(e)
    }
}

impl From<HttpError> for ClientError {
    fn from(e: HttpError) -> Self {
        Self::Http(e)
    }
}

impl From<ArcError> for ClientError {
    fn from(e: ArcError) -> Self {
        Self::Arc(e)
    }
}

impl From<JsonError> for ClientError {
    fn from(e: JsonError) -> Self {
        Self::Json(e)
    }
}

/// Whether the response is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Progress {
    /// Read more bytes into [`Exchange::receive_buf`].
    NeedMore,
    /// Call [`Exchange::finish`].
    Complete,
}

/// The answer of the token service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome<'b> {
    /// HTTP 200 with a valid token.
    Token(Token<'b>),
    /// Any other status. The status, `Retry-After` and the body's `error` /
    /// `error_description` are kept; a body that is not error JSON leaves `error` empty and puts
    /// printable text, if any, in `description`.
    Service(ServiceError<'b>),
    /// Azure Arc's first answer: `401` with `WWW-Authenticate: Basic realm=<path>`. Check the
    /// path ([`arc::check_key_path`]), read the key and send the request again with it as the
    /// secret ([`TokenRequest::with_secret`]).
    ArcChallenge {
        /// The key file's path, as the realm names it (not yet checked).
        key_path: &'b str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Sending,
    Receiving,
    Done(Response),
}

/// One token request/response exchange over a caller-lent buffer. See the [module](self) docs.
#[derive(Debug)]
pub struct Exchange<'b> {
    buf: &'b mut [u8],
    request_len: usize,
    sent: usize,
    filled: usize,
    reader: ResponseReader,
    phase: Phase,
    style: Style,
    /// The request carried a secret (for Arc: this is the second, authorized request).
    authorized: bool,
}

impl<'b> Exchange<'b> {
    /// Writes `request` for `endpoint` into `buf` and starts the exchange. `limits` bound the
    /// response head and body.
    pub fn new(
        request: &TokenRequest<'_>,
        endpoint: &Endpoint<'_>,
        buf: &'b mut [u8],
        limits: Limits,
    ) -> Result<Self, ClientError> {
        let request_len = request.write(endpoint, buf)?;
        Ok(Self {
            buf,
            request_len,
            sent: 0,
            filled: 0,
            reader: ResponseReader::new(limits),
            phase: Phase::Sending,
            style: endpoint.style(),
            authorized: request.secret.is_some(),
        })
    }

    /// The request bytes not sent yet (empty once all are sent).
    pub fn to_send(&self) -> &[u8] {
        match self.phase {
            Phase::Sending => self.buf.get(self.sent..self.request_len).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Records that `n` more request bytes were sent.
    pub fn sent(&mut self, n: usize) {
        if self.phase == Phase::Sending {
            self.sent = self.sent.saturating_add(n).min(self.request_len);
            if self.sent == self.request_len {
                self.phase = Phase::Receiving;
            }
        }
    }

    /// True once the whole request has been sent.
    pub fn request_sent(&self) -> bool {
        self.phase != Phase::Sending
    }

    /// Where to read the next response bytes. Fails when the buffer is full.
    pub fn receive_buf(&mut self) -> Result<&mut [u8], ClientError> {
        if self.phase != Phase::Receiving {
            return Err(ClientError::Misuse);
        }
        let capacity = self.buf.len();
        match self.buf.get_mut(self.filled..) {
            Some(free) if !free.is_empty() => Ok(free),
            _ => Err(ClientError::ResponseTooLarge { capacity }),
        }
    }

    /// Records that `n` bytes were read into [`receive_buf`](Self::receive_buf) and parses them.
    pub fn received(&mut self, n: usize) -> Result<Progress, ClientError> {
        if self.phase != Phase::Receiving {
            return Err(ClientError::Misuse);
        }
        let filled = self.filled.checked_add(n).ok_or(ClientError::Misuse)?;
        if filled > self.buf.len() {
            return Err(ClientError::Misuse);
        }
        self.filled = filled;
        match self.reader.feed(self.buf, filled)? {
            Status::Partial => {
                if filled == self.buf.len() {
                    Err(ClientError::ResponseTooLarge {
                        capacity: self.buf.len(),
                    })
                } else {
                    Ok(Progress::NeedMore)
                }
            }
            Status::Complete { value, .. } => {
                self.phase = Phase::Done(value);
                Ok(Progress::Complete)
            }
        }
    }

    /// Records that the peer closed the connection. Completes a response delimited by the close;
    /// otherwise the response was cut short.
    pub fn eof(&mut self) -> Result<Progress, ClientError> {
        match self.phase {
            Phase::Done(_) => Ok(Progress::Complete),
            Phase::Sending => Err(ClientError::ClosedEarly),
            Phase::Receiving => {
                if self.filled == 0 {
                    return Err(ClientError::ClosedEarly);
                }
                match self.reader.finish_eof(self.buf, self.filled) {
                    Ok((value, _)) => {
                        self.phase = Phase::Done(value);
                        Ok(Progress::Complete)
                    }
                    Err(HttpError::TruncatedBody | HttpError::TruncatedHead) => {
                        Err(ClientError::ClosedEarly)
                    }
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Parses the complete response. `now` (Unix seconds) turns a `Retry-After` date into
    /// seconds.
    pub fn finish(self, now: u64) -> Result<Outcome<'b>, ClientError> {
        let Phase::Done(response) = self.phase else {
            return Err(ClientError::Misuse);
        };
        let range = response.body_range();
        let (used, scratch) = self.buf.split_at_mut(self.filled.min(self.buf.len()));
        let used: &'b [u8] = used;
        let body: &'b [u8] = used.get(range).ok_or(ClientError::Misuse)?;
        if response.status == 200 {
            return Ok(Outcome::Token(Token::parse_for(self.style, body, scratch)?));
        }
        if cfg!(feature = "sources")
            && response.status == 401
            && self.style == Style::Arc
            && !self.authorized
        {
            let challenge = self
                .reader
                .head(used)
                .and_then(|h| h.headers.get_str("www-authenticate"));
            if let Some(value) = challenge {
                let key_path = arc::parse_challenge(value)?;
                return Ok(Outcome::ArcChallenge { key_path });
            }
        }
        let retry_after = response.retry_after.map(|r| match r {
            RetryAfter::Seconds(s) => u64::from(s),
            RetryAfter::At(_) => r.delay_from(now),
        });
        let err = ServiceError::parse(response.status, retry_after, body, scratch)
            .unwrap_or_else(|_| non_json_error(response.status, retry_after, body));
        Ok(Outcome::Service(err))
    }
}

/// Checks an outcome against the request that produced it: for Azure Arc, a token answering a
/// request that named a user-assigned identity must echo that identity ([`arc::check_echo`]).
/// The drivers in [`crate::io`] call this; a shell driving [`Exchange`] itself should too.
pub fn check_outcome(
    outcome: &Outcome<'_>,
    request: &TokenRequest<'_>,
    endpoint: &Endpoint<'_>,
) -> Result<(), ClientError> {
    if !cfg!(feature = "sources") {
        return Ok(());
    }
    if let (Outcome::Token(token), Some(selector), Style::Arc) =
        (outcome, &request.selector, endpoint.style())
    {
        arc::check_echo(selector, token)?;
    }
    Ok(())
}

/// A service error whose body is not error JSON (e.g. an empty 410, a proxy's text 403).
fn non_json_error(status: u16, retry_after: Option<u64>, body: &[u8]) -> ServiceError<'_> {
    let text = core::str::from_utf8(body)
        .ok()
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 512 && !has_control_char(t));
    ServiceError {
        status,
        error: "",
        description: text,
        retry_after,
        correlation_id: None,
    }
}

/// True if `text` holds a control character (Unicode `Cc`: U+0000–U+001F, U+007F–U+009F),
/// found on the UTF-8 bytes (U+0080–U+009F are `C2 80`–`C2 9F`) without decoding chars.
fn has_control_char(text: &str) -> bool {
    let b = text.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        c < 0x20
            || c == 0x7F
            || (c == 0xC2 && b.get(i + 1).is_some_and(|n| (0x80..=0x9F).contains(n)))
    })
}

#[cfg(test)]
mod tests;
