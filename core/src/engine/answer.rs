//! The answer a caller whose request failed gets, as an IMDS-style error (status, `error`,
//! `error_description`, `Retry-After`): the bridge's policy for upstream failures.
//!
//! | upstream failure (after the retries the policy allows) | answer |
//! |---|---|
//! | an error status 400–599 | the same status, `error`, description and `Retry-After`; a missing `error` from the [catalogue], a missing description says so |
//! | any other status (a redirect, say) | `502 bad_gateway` |
//! | unreachable (connection refused or reset, timeouts) | `503 service_unavailable`, `Retry-After: 5` |
//! | not a token response, or a token too large to keep | `502 bad_gateway` |
//! | the request cannot be written (control character) | `400 invalid_request` |
//! | an empty selector value (`client_id=`) | `400 invalid_request`, `Identity not found`, as the server answers |
//! | the caller's deadline passed while waiting | `503 service_unavailable`, `Retry-After: 5` |

use core::fmt;

use super::failure::{Cause, Failure};
use crate::catalogue;
use crate::request::{RequestError, RequestField};

/// `Retry-After` (seconds) when the upstream is unreachable or the caller's wait ran out.
pub const UNAVAILABLE_RETRY_AFTER_S: u64 = 5;

/// An error answer for a caller. `description` renders with [`fmt::Display`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorAnswer<'e> {
    /// HTTP status.
    pub status: u16,
    /// The `error` field.
    pub error: &'e str,
    /// The `error_description` field.
    pub description: Description<'e>,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
}

/// The text of an [`ErrorAnswer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Description<'e> {
    /// The upstream's own `error_description`, passed through.
    Upstream(&'e str),
    /// A fixed text with the server's wording.
    Fixed(&'static str),
    /// The upstream answered `status` with no description.
    Missing {
        /// The upstream status.
        status: u16,
    },
    /// The upstream answered a status that is neither a token nor an error.
    NotAToken {
        /// The upstream status.
        status: u16,
    },
    /// The upstream could not be reached.
    Unavailable(Failure<'e>),
    /// The upstream's answer could not be used.
    Unusable(Failure<'e>),
    /// The request cannot be written for the upstream.
    Unsendable(RequestError),
    /// The caller's deadline passed before a token came.
    DeadlinePassed,
    /// The token names another identity than the one asked for; it is withheld.
    WrongIdentity,
}

impl Description<'_> {
    /// True when the text is the upstream's or the server's own wording; false when it is
    /// the relay's explanation (a shell may prefix its name).
    pub const fn is_passed_through(&self) -> bool {
        matches!(self, Self::Upstream(_) | Self::Fixed(_))
    }
}

impl fmt::Display for Description<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Upstream(text) | Self::Fixed(text) => f.write_str(text),
            Self::Missing { status } => {
                write!(f, "IMDS answered HTTP {status} without a description")
            }
            Self::NotAToken { status } => {
                write!(f, "IMDS answered HTTP {status} instead of a token")
            }
            Self::Unavailable(failure) => write!(f, "IMDS unavailable: {failure}"),
            Self::Unusable(failure) => write!(f, "{failure}"),
            Self::Unsendable(e) => write!(f, "the request cannot be sent to IMDS: {e}"),
            Self::DeadlinePassed => f.write_str("no token from IMDS within the caller's wait"),
            Self::WrongIdentity => f.write_str(
                "IMDS answered with a token for another client_id than the one requested; \
                 token withheld",
            ),
        }
    }
}

impl<'e> ErrorAnswer<'e> {
    /// The answer for a failed request (see the [module](self) table).
    pub fn for_failure(failure: &Failure<'e>) -> Self {
        match failure.cause {
            Cause::Service(s) if (400..=599).contains(&s.status) => Self {
                status: s.status,
                error: if s.error.is_empty() {
                    catalogue::error_code(s.status)
                } else {
                    s.error
                },
                description: s
                    .description
                    .map_or(Description::Missing { status: s.status }, |d| {
                        Description::Upstream(d)
                    }),
                retry_after: s.retry_after,
            },
            Cause::Service(s) => Self::bad_gateway(Description::NotAToken { status: s.status }),
            Cause::Timeout | Cause::ConnectFailed | Cause::Io => Self {
                status: 503,
                error: catalogue::error_code(503),
                description: Description::Unavailable(*failure),
                retry_after: Some(UNAVAILABLE_RETRY_AFTER_S),
            },
            Cause::InvalidResponse(_) | Cause::NotStored(_) => {
                Self::bad_gateway(Description::Unusable(*failure))
            }
            // An empty selector names no identity: the server's own answer for a selector that
            // matches nothing, without asking upstream.
            Cause::Unsendable(RequestError::Empty {
                field: RequestField::ClientId | RequestField::ObjectId | RequestField::ResourceId,
            }) => Self {
                status: 400,
                error: catalogue::error_code(400),
                description: Description::Fixed("Identity not found"),
                retry_after: None,
            },
            Cause::Unsendable(e) => Self {
                status: 400,
                error: catalogue::error_code(400),
                description: Description::Unsendable(e),
                retry_after: None,
            },
        }
    }

    /// The answer when the caller's deadline passed while it waited.
    pub const fn deadline_passed() -> Self {
        Self {
            status: 503,
            error: catalogue::error_code(503),
            description: Description::DeadlinePassed,
            retry_after: Some(UNAVAILABLE_RETRY_AFTER_S),
        }
    }

    /// The answer when a token names another identity than the one asked for (withheld).
    pub const fn wrong_identity() -> Self {
        Self::bad_gateway(Description::WrongIdentity)
    }

    const fn bad_gateway(description: Description<'e>) -> Self {
        Self {
            status: catalogue::BAD_GATEWAY.status,
            error: catalogue::BAD_GATEWAY.error,
            description,
            retry_after: None,
        }
    }
}
