//! `mitoken_response`: a parsed answer, as pointers into the exchange buffer.

use mitoken_core::client::Outcome;
use mitoken_core::token::{ServiceError, Token};

use crate::raw::mitoken_str;

/// What kind of answer a `mitoken_response` holds.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum mitoken_response_kind {
    /// HTTP 200 with a valid token: the token fields are set.
    Token = 1,
    /// Any other status: `status`, `error`, `error_description` and `retry_after` are set.
    ServiceError = 2,
}

/// A parsed answer. Every `mitoken_str` points into the exchange buffer (or is `{NULL, 0}`
/// when absent): valid until that buffer is written to or reused, never NUL-terminated (print
/// with `"%.*s", (int)s.len, s.ptr`). Nothing in it needs freeing.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct mitoken_response {
    /// Token or service error.
    pub kind: mitoken_response_kind,
    /// HTTP status (200 for a token).
    pub status: u16,
    /// The bearer token. A secret: never log it.
    pub access_token: mitoken_str,
    /// `token_type` (`Bearer`).
    pub token_type: mitoken_str,
    /// `resource` as the service echoed it.
    pub resource: mitoken_str,
    /// `client_id` of the identity, if sent.
    pub client_id: mitoken_str,
    /// `object_id` of the identity, if sent.
    pub object_id: mitoken_str,
    /// `msi_res_id` of the identity, if sent.
    pub msi_res_id: mitoken_str,
    /// True when `expires_in` was sent.
    pub has_expires_in: bool,
    /// `expires_in`: seconds the token was valid for when sent.
    pub expires_in: u64,
    /// True when `expires_on` was sent.
    pub has_expires_on: bool,
    /// `expires_on`: expiry, Unix seconds.
    pub expires_on: u64,
    /// True when `not_before` was sent.
    pub has_not_before: bool,
    /// `not_before`: Unix seconds.
    pub not_before: u64,
    /// When the token expires, Unix seconds: `expires_on` if sent, else the `now` given to
    /// `mitoken_exchange_finish` plus `expires_in`.
    pub expires_at: u64,
    /// Service error: the `error` code (e.g. `invalid_request`), empty if the body had none.
    pub error: mitoken_str,
    /// Service error: `error_description` (or the body's text), if any. IMDS puts the reason
    /// here, e.g. "Identity not found".
    pub error_description: mitoken_str,
    /// True when the response had a `Retry-After`.
    pub has_retry_after: bool,
    /// `Retry-After` in seconds (an HTTP date is turned into seconds from `now`).
    pub retry_after: u64,
}

impl mitoken_response {
    const EMPTY: Self = Self {
        kind: mitoken_response_kind::ServiceError,
        status: 0,
        access_token: mitoken_str::EMPTY,
        token_type: mitoken_str::EMPTY,
        resource: mitoken_str::EMPTY,
        client_id: mitoken_str::EMPTY,
        object_id: mitoken_str::EMPTY,
        msi_res_id: mitoken_str::EMPTY,
        has_expires_in: false,
        expires_in: 0,
        has_expires_on: false,
        expires_on: 0,
        has_not_before: false,
        not_before: 0,
        expires_at: 0,
        error: mitoken_str::EMPTY,
        error_description: mitoken_str::EMPTY,
        has_retry_after: false,
        retry_after: 0,
    };

    /// The C view of `outcome`; `now` is Unix seconds.
    pub fn of(outcome: &Outcome<'_>, now: u64) -> Self {
        match outcome {
            Outcome::Token(t) => Self::of_token(t, now),
            Outcome::Service(e) => Self::of_error(e),
            // `Outcome` is non-exhaustive; a future kind is reported as an empty error.
            _ => Self::EMPTY,
        }
    }

    fn of_token(t: &Token<'_>, now: u64) -> Self {
        Self {
            kind: mitoken_response_kind::Token,
            status: 200,
            access_token: mitoken_str::of(t.access_token.expose()),
            token_type: mitoken_str::of(t.token_type),
            resource: mitoken_str::of(t.resource),
            client_id: mitoken_str::of_opt(t.client_id),
            object_id: mitoken_str::of_opt(t.object_id),
            msi_res_id: mitoken_str::of_opt(t.msi_res_id),
            has_expires_in: t.expires_in.is_some(),
            expires_in: t.expires_in.unwrap_or(0),
            has_expires_on: t.expires_on.is_some(),
            expires_on: t.expires_on.unwrap_or(0),
            has_not_before: t.not_before.is_some(),
            not_before: t.not_before.unwrap_or(0),
            expires_at: t.expires_at(now),
            ..Self::EMPTY
        }
    }

    fn of_error(e: &ServiceError<'_>) -> Self {
        Self {
            kind: mitoken_response_kind::ServiceError,
            status: e.status,
            error: mitoken_str::of(e.error),
            error_description: mitoken_str::of_opt(e.description),
            has_retry_after: e.retry_after.is_some(),
            retry_after: e.retry_after.unwrap_or(0),
            ..Self::EMPTY
        }
    }
}
