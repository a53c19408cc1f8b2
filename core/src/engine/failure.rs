//! What an upstream attempt ended with ([`Reply`], from the shell) and what a caller whose
//! request failed is told ([`Failure`]), plus the fixed-size copy the engine keeps between the
//! two.

use core::fmt;

use crate::cache::CacheError;
use crate::client::{ClientError, Outcome};
use crate::request::RequestError;
use crate::retry::{AttemptResult, RetryError};
use crate::token::{ServiceError, Token};

/// Longest upstream `error` code kept for the callers of a failed request.
pub const ERROR_CODE_BYTES: usize = 64;
/// Longest upstream `error_description` kept; a longer one is dropped whole (never cut) and
/// callers get the catalogue's text for the status instead.
pub const DESCRIPTION_BYTES: usize = 512;

/// How one upstream attempt ended, as the shell reports it to
/// [`Engine::handle_reply`](super::Engine::handle_reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply<'a> {
    /// HTTP 200 with a valid token.
    Token(Token<'a>),
    /// Any other status.
    Service(ServiceError<'a>),
    /// The attempt took longer than the shell allows one attempt.
    Timeout,
    /// The connection could not be opened.
    ConnectFailed,
    /// The connection failed while sending or receiving, or closed early.
    Io,
    /// The answer is not valid HTTP or not a token (not retried).
    InvalidResponse(ClientError),
    /// The request could not be written (e.g. a control character in a value; not retried).
    Unsendable(RequestError),
}

impl<'a> From<Outcome<'a>> for Reply<'a> {
    /// An Arc challenge is not an answer to report: the shell answers it (reads the key, sends
    /// the authorized request) and reports how *that* ended, so the challenge and the
    /// authorized request are one attempt. One reported anyway is the `401` it is.
    fn from(o: Outcome<'a>) -> Self {
        match o {
            Outcome::Token(t) => Self::Token(t),
            Outcome::Service(e) => Self::Service(e),
            Outcome::ArcChallenge { .. } => Self::Service(ServiceError::new(401, "", None, None)),
        }
    }
}

impl From<ClientError> for Reply<'_> {
    /// A request that cannot be built is unsendable; a connection closed early is an I/O
    /// failure; anything else is an invalid response.
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Request(r) => Self::Unsendable(r),
            ClientError::ClosedEarly => Self::Io,
            other => Self::InvalidResponse(other),
        }
    }
}

/// What ended the last attempt of a request that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause<'e> {
    /// The service answered with a non-200 status. `error` is empty when its body had none;
    /// `description` is `None` when it had none or it was longer than [`DESCRIPTION_BYTES`].
    Service(ServiceError<'e>),
    /// The last attempt timed out.
    Timeout,
    /// The connection could not be opened.
    ConnectFailed,
    /// The connection failed while sending or receiving.
    Io,
    /// The answer was not valid HTTP or not a token.
    InvalidResponse(ClientError),
    /// The request could not be written for the upstream.
    Unsendable(RequestError),
    /// A token came, but the engine's cache could not hold it (too large for `T`, say), so it
    /// cannot be handed out.
    NotStored(CacheError),
}

impl Cause<'_> {
    /// True for transport failures (timeout, connection, I/O): the upstream was unreachable.
    pub const fn is_transport(&self) -> bool {
        matches!(self, Self::Timeout | Self::ConnectFailed | Self::Io)
    }
}

impl fmt::Display for Cause<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Service(e) => {
                write!(f, "HTTP {}", e.status)?;
                if !e.error.is_empty() {
                    write!(f, " {}", e.error)?;
                }
                if let Some(d) = e.description {
                    write!(f, ": {d}")?;
                }
                Ok(())
            }
            Self::Timeout => f.write_str("no answer in time"),
            Self::ConnectFailed => f.write_str("connection failed"),
            Self::Io => f.write_str("connection error"),
            Self::InvalidResponse(e) => write!(f, "{e}"),
            Self::Unsendable(e) => write!(f, "the request cannot be sent: {e}"),
            Self::NotStored(e) => write!(f, "token received but not kept: {e}"),
        }
    }
}

/// Why a caller got no token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Failure<'e> {
    /// What ended the last attempt.
    pub cause: Cause<'e>,
    /// Why retrying stopped; `None` when the cause is never retried (unsendable, not stored).
    pub retry: Option<RetryError>,
    /// Attempts made.
    pub attempts: u32,
}

impl<'e> Failure<'e> {
    /// A failure from its parts (e.g. one a shell kept in its own form).
    pub const fn new(cause: Cause<'e>, retry: Option<RetryError>, attempts: u32) -> Self {
        Self {
            cause,
            retry,
            attempts,
        }
    }
}

impl fmt::Display for Failure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.cause)?;
        match self.retry {
            Some(r) => write!(f, " ({r})"),
            None if self.attempts == 1 => f.write_str(" (1 attempt)"),
            None => write!(f, " ({} attempts)", self.attempts),
        }
    }
}

impl core::error::Error for Failure<'_> {}

/// [`Cause`] without its borrowed text, as a flight keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StoredCause {
    Service {
        status: u16,
        retry_after: Option<u64>,
    },
    Timeout,
    ConnectFailed,
    Io,
    InvalidResponse(ClientError),
    Unsendable(RequestError),
    NotStored(CacheError),
}

impl StoredCause {
    /// The retry policy's view; `None` for causes that are never retried.
    pub(super) const fn attempt(self) -> Option<AttemptResult> {
        Some(match self {
            Self::Service {
                status,
                retry_after,
            } => AttemptResult::status(status, retry_after),
            Self::Timeout => AttemptResult::Timeout,
            Self::ConnectFailed => AttemptResult::ConnectFailed,
            Self::Io => AttemptResult::Io,
            Self::InvalidResponse(_) => AttemptResult::InvalidResponse,
            Self::Unsendable(_) | Self::NotStored(_) => return None,
        })
    }
}

/// The last failure of a flight, texts included.
#[derive(Debug, Clone)]
pub(super) struct StoredFailure {
    pub(super) cause: StoredCause,
    error: heapless::String<ERROR_CODE_BYTES>,
    description: Option<heapless::String<DESCRIPTION_BYTES>>,
    pub(super) retry: Option<RetryError>,
    pub(super) attempts: u32,
}

impl StoredFailure {
    pub(super) fn new(cause: StoredCause, attempts: u32) -> Self {
        Self {
            cause,
            error: heapless::String::new(),
            description: None,
            retry: None,
            attempts,
        }
    }

    /// Copies a service error; texts that do not fit are dropped whole.
    pub(super) fn service(e: &ServiceError<'_>, attempts: u32) -> Self {
        let mut s = Self::new(
            StoredCause::Service {
                status: e.status,
                retry_after: e.retry_after,
            },
            attempts,
        );
        if s.error.push_str(e.error).is_err() {
            s.error.clear();
        }
        s.description = e.description.and_then(|d| {
            let mut text = heapless::String::new();
            text.push_str(d).ok().map(|()| text)
        });
        s
    }

    pub(super) fn view(&self) -> Failure<'_> {
        let cause = match self.cause {
            StoredCause::Service {
                status,
                retry_after,
            } => Cause::Service(ServiceError {
                status,
                error: self.error.as_str(),
                description: self.description.as_ref().map(heapless::String::as_str),
                retry_after,
                // Not kept: the shell has the last attempt's whole answer if it needs it.
                correlation_id: None,
            }),
            StoredCause::Timeout => Cause::Timeout,
            StoredCause::ConnectFailed => Cause::ConnectFailed,
            StoredCause::Io => Cause::Io,
            StoredCause::InvalidResponse(e) => Cause::InvalidResponse(e),
            StoredCause::Unsendable(e) => Cause::Unsendable(e),
            StoredCause::NotStored(e) => Cause::NotStored(e),
        };
        Failure {
            cause,
            retry: self.retry,
            attempts: self.attempts,
        }
    }
}
