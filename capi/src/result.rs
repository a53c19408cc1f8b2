//! `mitoken_result`: what every function returns, and the fixed text of each code.

use core::ffi::{CStr, c_char};

use mitoken_core::client::ClientError;
use mitoken_core::request::RequestError;

/// What a call did. `0` and above is success (`OK`, or the progress of an exchange); below `0`
/// is an error. Each function lists the codes it returns; `mitoken_result_text` describes any.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum mitoken_result {
    /// Success.
    Ok = 0,
    /// The response is not complete yet: read more bytes into the receive buffer.
    NeedMore = 1,
    /// The response is complete: call `mitoken_exchange_finish`.
    Complete = 2,
    /// A required pointer argument is NULL (or a `mitoken_str` is `{NULL, len > 0}`).
    NullArgument = -1,
    /// A pointer to a struct or storage is not aligned for its type.
    Misaligned = -2,
    /// An argument is out of range: an unknown `MITOKEN_*` kind constant, or a length above
    /// `PTRDIFF_MAX`.
    InvalidArgument = -3,
    /// A string argument is not UTF-8.
    InvalidUtf8 = -4,
    /// The buffer you provided is too small; the function says where the size needed is.
    BufferTooSmall = -5,
    /// A request value contains CR, LF or another control character.
    ControlCharacter = -6,
    /// A required request value (resource, host, selector value) is empty.
    EmptyValue = -7,
    /// The custom endpoint's host is not a host name or IP address literal.
    InvalidHost = -8,
    /// The custom endpoint's path does not start with `/`, or has a space, `?`, `#` or non-ASCII.
    InvalidPath = -9,
    /// The custom endpoint's port is 0.
    InvalidPort = -10,
    /// The response is not valid HTTP/1.1 or breaks a limit. Not worth retrying.
    InvalidHttp = -11,
    /// The response is HTTP 200 but its body is not a valid token. Not worth retrying.
    InvalidToken = -12,
    /// The response does not fit in the exchange buffer.
    ResponseTooLarge = -13,
    /// The peer closed the connection before the response was complete (an I/O failure:
    /// retry).
    ClosedEarly = -14,
    /// Called out of order: the storage was never started, is finished or failed, or more
    /// bytes were reported than the buffer offered.
    Misuse = -15,
    /// The token cache's key (endpoint, selector, resource) is larger than
    /// `MITOKEN_CACHE_KEY_BYTES`.
    CacheKeyTooLarge = -16,
    /// The token's text is larger than `MITOKEN_CACHE_TOKEN_BYTES`.
    CacheTokenTooLarge = -17,
    /// The token is already expired; it was not cached.
    CacheExpired = -18,
    /// The token cache holds no token for this key (or only an expired one).
    CacheMiss = -19,
}

impl mitoken_result {
    /// Every code, for tests and for [`from_code`](Self::from_code).
    const ALL: [Self; 22] = [
        Self::Ok,
        Self::NeedMore,
        Self::Complete,
        Self::NullArgument,
        Self::Misaligned,
        Self::InvalidArgument,
        Self::InvalidUtf8,
        Self::BufferTooSmall,
        Self::ControlCharacter,
        Self::EmptyValue,
        Self::InvalidHost,
        Self::InvalidPath,
        Self::InvalidPort,
        Self::InvalidHttp,
        Self::InvalidToken,
        Self::ResponseTooLarge,
        Self::ClosedEarly,
        Self::Misuse,
        Self::CacheKeyTooLarge,
        Self::CacheTokenTooLarge,
        Self::CacheExpired,
        Self::CacheMiss,
    ];

    /// The code for an integer, if it is one.
    pub fn from_code(code: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|r| *r as i32 == code)
    }

    /// A fixed, NUL-terminated description.
    pub const fn text(self) -> &'static CStr {
        match self {
            Self::Ok => c"success",
            Self::NeedMore => c"response incomplete: read more bytes",
            Self::Complete => c"response complete",
            Self::NullArgument => c"a required pointer argument is NULL",
            Self::Misaligned => c"a pointer argument is not aligned for its type",
            Self::InvalidArgument => {
                c"an argument is out of range (unknown kind constant or length)"
            }
            Self::InvalidUtf8 => c"a string argument is not UTF-8",
            Self::BufferTooSmall => c"the buffer provided is too small",
            Self::ControlCharacter => {
                c"a request value contains CR, LF or another control character"
            }
            Self::EmptyValue => c"a required request value is empty",
            Self::InvalidHost => c"invalid endpoint host",
            Self::InvalidPath => c"invalid endpoint path",
            Self::InvalidPort => c"invalid endpoint port",
            Self::InvalidHttp => c"the response is not valid HTTP/1.1",
            Self::InvalidToken => c"the response is HTTP 200 but not a valid token",
            Self::ResponseTooLarge => c"the response does not fit in the exchange buffer",
            Self::ClosedEarly => c"the connection closed before the response was complete",
            Self::Misuse => c"called out of order (storage not started, finished or failed)",
            Self::CacheKeyTooLarge => c"cache key larger than MITOKEN_CACHE_KEY_BYTES",
            Self::CacheTokenTooLarge => c"token larger than MITOKEN_CACHE_TOKEN_BYTES",
            Self::CacheExpired => c"token already expired; not cached",
            Self::CacheMiss => c"no valid cached token for this key",
        }
    }
}

impl From<RequestError> for mitoken_result {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::BufferTooSmall { .. } => Self::BufferTooSmall,
            RequestError::ControlCharacter { .. } => Self::ControlCharacter,
            RequestError::Empty { .. } => Self::EmptyValue,
            RequestError::InvalidHost | RequestError::MissingHost => Self::InvalidHost,
            RequestError::InvalidPath => Self::InvalidPath,
            RequestError::InvalidPort => Self::InvalidPort,
            _ => Self::InvalidArgument,
        }
    }
}

impl From<ClientError> for mitoken_result {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Request(r) => r.into(),
            ClientError::Http(_) => Self::InvalidHttp,
            ClientError::Json(_) => Self::InvalidToken,
            ClientError::ResponseTooLarge { .. } => Self::ResponseTooLarge,
            ClientError::ClosedEarly => Self::ClosedEarly,
            _ => Self::Misuse,
        }
    }
}

/// A fixed, NUL-terminated English description of `code` (any integer; unknown codes get a
/// description saying so).
///
/// The returned pointer is to static storage: never free it; valid for the life of the program.
/// Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn mitoken_result_text(code: i32) -> *const c_char {
    mitoken_result::from_code(code)
        .map_or(c"unknown mitoken_result code", mitoken_result::text)
        .as_ptr()
}
