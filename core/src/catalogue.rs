//! The error catalogue: for an HTTP status, the `error` code and default `error_description`
//! IMDS answers with (protocol.md §1.9). One table, used by the server's rejections
//! ([`crate::server`]), the emulator's fault rules and the bridge's mapping of upstream
//! failures ([`crate::engine::ErrorAnswer`]).
//!
//! ```
//! use mitoken_core::catalogue;
//!
//! let e = catalogue::for_status(429);
//! assert_eq!((e.error, e.description), ("too_many_requests", "Too many requests"));
//! assert_eq!(catalogue::for_status(502).error, "server_error");
//! assert_eq!(catalogue::BAD_GATEWAY.error, "bad_gateway");
//! ```

use crate::source::Source;

/// The catalogue's entry for one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusError {
    /// The HTTP status.
    pub status: u16,
    /// The body's `error` code.
    pub error: &'static str,
    /// A default `error_description`.
    pub description: &'static str,
}

/// The `error` code and default description for `status`. Statuses without an entry of their
/// own: other statuses from 500 up are `server_error`, any other `invalid_request`.
pub const fn for_status(status: u16) -> StatusError {
    let (error, description) = match status {
        403 => ("forbidden", "Forbidden"),
        404 => ("not_found", "IMDS endpoint is updating"),
        405 => ("method_not_allowed", "Not allowed"),
        410 => (
            "service_unavailable",
            "IMDS is being updated; retry within 70 seconds",
        ),
        429 => ("too_many_requests", "Too many requests"),
        500 => ("server_error", "Internal server error"),
        503 => ("service_unavailable", "Service unavailable"),
        s if s >= 500 => ("server_error", "Server error"),
        _ => ("invalid_request", "Bad request"),
    };
    StatusError {
        status,
        error,
        description,
    }
}

/// A relay's own answer when the upstream's answer cannot be used (not IMDS's: IMDS itself
/// answers 502 as `server_error`).
pub const BAD_GATEWAY: StatusError = StatusError {
    status: 502,
    error: "bad_gateway",
    description: "Bad gateway",
};

/// Just the `error` code for `status` (see [`for_status`]).
pub const fn error_code(status: u16) -> &'static str {
    for_status(status).error
}

/// What went wrong with a request to one of the non-IMDS sources the emulator imitates: the
/// key of [`for_source`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SourceFailure {
    /// The secret header (`X-IDENTITY-HEADER`, `secret`) is missing or wrong.
    SecretMissing,
    /// `api-version` missing or not the source's.
    UnsupportedApiVersion,
    /// `resource` missing or empty.
    ResourceMissing,
    /// The request is malformed in another way (parameters, method, content type).
    BadRequest,
    /// The path is not the source's token endpoint.
    NotFound,
    /// The named user-assigned identity does not exist (or no identity applies).
    IdentityNotFound,
    /// Azure ML: no `clientid` parameter.
    ClientIdRequired,
    /// Cloud Shell: the audience is not on the allowlist.
    AudienceNotSupported,
    /// Arc step 1: no `Authorization` header; the answer carries the challenge.
    ChallengeRequired,
    /// Arc step 2: the `Authorization` header does not carry the current key.
    KeyInvalid,
    /// Arc: the identity is not assigned to the machine.
    IdentityNotAssigned,
    /// Issuing failed.
    IssueFailed,
    /// Too many requests.
    Throttled,
    /// Temporarily unavailable.
    Unavailable,
}

/// A source's answer to a [`SourceFailure`]: its status, a code (the `ErrorCode` / `code` of the
/// source's error body, where it has one) and its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceError {
    /// The HTTP status.
    pub status: u16,
    /// The error code.
    pub code: &'static str,
    /// The message. In [`APP_SERVICE_API_VERSION_MESSAGE`] and [`CLOUD_SHELL_AUDIENCE_MESSAGE`]
    /// `<path>`, `<version>` and `<resource>` are placeholders the server fills in.
    pub message: &'static str,
}

/// App Service's message for an unsupported api-version (observed; nested `UnsupportedApiVersion`
/// error). `<path>` and `<version>` are filled in.
pub const APP_SERVICE_API_VERSION_MESSAGE: &str = "The HTTP resource that matches the request URI \
     '<path>' does not support the API version '<version>'.";

/// Cloud Shell's message for an audience that is not on its allowlist (documented).
/// `<resource>` is filled in.
pub const CLOUD_SHELL_AUDIENCE_MESSAGE: &str = "Audience <resource> isn't a supported MSI token audience. Supported audiences are listed at \
     https://aka.ms/cloudshell/msi-audiences";

/// App Service's 500 text (observed, typo included).
pub const APP_SERVICE_ISSUE_FAILED: &str =
    "An unexpected error occured while fetching the AAD Token.";

/// The answer of `source` to `failure` (docs/protocol.md §4; docs/sources-emulator.md lists
/// each entry and whether it was observed or is our choice).
pub const fn for_source(source: Source, failure: SourceFailure) -> SourceError {
    use SourceFailure as F;
    let legacy = matches!(source, Source::AppService2017 | Source::AzureMl);
    let (status, code, message) = match failure {
        F::SecretMissing if legacy => (401, "unauthorized", "Missing or invalid secret header."),
        F::SecretMissing => (
            403,
            "forbidden",
            "Missing or invalid X-IDENTITY-HEADER header.",
        ),
        F::UnsupportedApiVersion => match source {
            Source::AppService => (
                400,
                "UnsupportedApiVersion",
                APP_SERVICE_API_VERSION_MESSAGE,
            ),
            _ => (
                400,
                "invalid_request",
                "api-version is invalid or was not specified in the request.",
            ),
        },
        F::ResourceMissing => (
            400,
            "invalid_request",
            "Required query variable 'resource' is missing",
        ),
        F::BadRequest => (400, "invalid_request", "Bad request"),
        F::NotFound => (404, "not_found", "Not found"),
        F::IdentityNotFound => (
            400,
            "invalid_request",
            "Unable to find the requested managed identity.",
        ),
        F::ClientIdRequired => (
            400,
            "invalid_request",
            "Required query variable 'clientid' is missing",
        ),
        F::AudienceNotSupported => (400, "AudienceNotSupported", CLOUD_SHELL_AUDIENCE_MESSAGE),
        F::ChallengeRequired => (
            401,
            "unauthorized_client",
            "Authorization header required: read the key file named in WWW-Authenticate",
        ),
        F::KeyInvalid => (401, "unauthorized_client", "Invalid or expired key"),
        F::IdentityNotAssigned => (
            404,
            "not_found",
            "The requested identity has not been assigned to this resource.",
        ),
        F::IssueFailed if matches!(source, Source::AppService) => {
            (500, "server_error", APP_SERVICE_ISSUE_FAILED)
        }
        F::IssueFailed => (500, "server_error", "Failed to issue a token; retry later"),
        F::Throttled => (429, "too_many_requests", "Too many requests"),
        F::Unavailable => (503, "service_unavailable", "Service unavailable"),
    };
    SourceError {
        status,
        code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        let f = |s, x| for_source(s, x);
        assert_eq!(
            f(Source::AppService, SourceFailure::SecretMissing).status,
            403
        );
        assert_eq!(
            f(Source::AppService2017, SourceFailure::SecretMissing).status,
            401
        );
        assert_eq!(f(Source::AzureMl, SourceFailure::SecretMissing).status, 401);
        assert_eq!(
            f(Source::AppService, SourceFailure::UnsupportedApiVersion).code,
            "UnsupportedApiVersion"
        );
        assert_eq!(
            f(Source::Arc, SourceFailure::IdentityNotAssigned).status,
            404
        );
        assert_eq!(f(Source::Arc, SourceFailure::ChallengeRequired).status, 401);
        assert!(
            f(Source::AppService, SourceFailure::IssueFailed)
                .message
                .contains("occured")
        );
    }

    #[test]
    fn table() {
        for (status, code) in [
            (400, "invalid_request"),
            (401, "invalid_request"),
            (404, "not_found"),
            (410, "service_unavailable"),
            (429, "too_many_requests"),
            (500, "server_error"),
            (502, "server_error"),
            (503, "service_unavailable"),
            (504, "server_error"),
            (302, "invalid_request"),
            (600, "server_error"),
        ] {
            assert_eq!(error_code(status), code, "{status}");
            assert_eq!(for_status(status).status, status);
        }
    }
}
