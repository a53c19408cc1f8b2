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

#[cfg(test)]
mod tests {
    use super::*;

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
