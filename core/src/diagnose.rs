//! What an answer from the IMDS address means, for diagnostics (`mitoken doctor`).
//!
//! The shell fetches one token with the ordinary client ([`crate::client::Exchange`]); these
//! functions read what came back:
//! - [`classify_error`]: an error answer is IMDS's (an `error` JSON member, the way IMDS writes
//!   every error) or something else's — a container runtime's, a proxy's or a firewall's page —
//!   and, for IMDS's, which of the errors users misread it is ([`ErrorMeaning`]).
//! - [`service_clock_skew`] and [`clock_verdict`]: how far the machine's clock is from the token
//!   service's, from the token's own times.
//!
//! A `200 OK` whose body [`crate::token::Token::parse`] accepts is IMDS's shape; one it refuses
//! is not (the shell reports the parser's error).

/// What an error answer from the IMDS address means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorMeaning {
    /// Not IMDS: the body is not IMDS's error JSON (an HTML or text page, or nothing). Something
    /// between the machine and IMDS answered: a container runtime, a proxy, a firewall.
    NotImds,
    /// IMDS: the identity asked for is not assigned to this VM (or the VM has none):
    /// `400 Identity not found`. IMDS is up.
    IdentityNotFound,
    /// IMDS: several user-assigned identities and no selector.
    SelectorRequired,
    /// IMDS: the resource is unknown to Entra ID (`AADSTS500011`).
    UnknownResource,
    /// IMDS: another `400` (a malformed request).
    BadRequest,
    /// IMDS: `429`, too many requests for this identity.
    Throttled,
    /// IMDS: `404` or `410` while IMDS is being updated (retry within 70 s).
    Updating,
    /// IMDS: `5xx`.
    ServerError,
    /// IMDS: another status.
    Other,
}

/// Reads an error answer: HTTP `status`, the body's `error` member (empty when the body was not
/// error JSON, as [`crate::client::Outcome::Service`] reports it) and its `error_description`.
pub fn classify_error(status: u16, error: &str, description: Option<&str>) -> ErrorMeaning {
    if error.is_empty() {
        return ErrorMeaning::NotImds;
    }
    let description = description.unwrap_or("");
    match status {
        400 if contains_ignore_case(description, "identity not found") => {
            ErrorMeaning::IdentityNotFound
        }
        400 if contains_ignore_case(description, "multiple user assigned identities") => {
            ErrorMeaning::SelectorRequired
        }
        400 if contains_ignore_case(description, "AADSTS500011") => ErrorMeaning::UnknownResource,
        400 => ErrorMeaning::BadRequest,
        429 => ErrorMeaning::Throttled,
        404 | 410 => ErrorMeaning::Updating,
        500..=599 => ErrorMeaning::ServerError,
        _ => ErrorMeaning::Other,
    }
}

/// True when `needle` (ASCII) occurs in `haystack`, ignoring ASCII case.
fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// A clock skew below this many seconds (either way) is fine.
pub const SKEW_OK_SECS: u64 = 60;
/// A clock skew beyond this many seconds breaks tokens: Entra ID allows five minutes.
pub const SKEW_FAIL_SECS: u64 = 300;

/// The token service's clock minus the machine's, in seconds, from a token answer received at
/// `now` (machine clock, Unix seconds): the service wrote `expiry` (`expires_on`, absolute) and
/// `remaining` (`expires_in`, relative to its own now), so `expires_on − expires_in` is its clock when it
/// answered. `None` unless both were sent. This works for tokens IMDS served from its cache.
pub fn service_clock_skew(expiry: Option<u64>, remaining: Option<u64>, now: u64) -> Option<i64> {
    let service_now = expiry?.checked_sub(remaining?)?;
    let diff = i128::from(service_now) - i128::from(now);
    i64::try_from(diff).ok()
}

/// The verdict on the machine's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClockVerdict {
    /// Within [`SKEW_OK_SECS`] of the service's and the token is valid now.
    Ok,
    /// Off by more than [`SKEW_OK_SECS`] but less than [`SKEW_FAIL_SECS`].
    Drifting,
    /// The token's `not_before` is after the machine's now: the machine's clock is behind and
    /// this machine (and anything checking the token with its clock) treats it as not yet valid.
    NotYetValid,
    /// Off by [`SKEW_FAIL_SECS`] or more.
    Skewed,
}

/// The verdict from the measured `skew` ([`service_clock_skew`], if known) and the token's
/// `not_before` (if sent), at `now` (machine clock).
pub fn clock_verdict(skew: Option<i64>, not_before: Option<u64>, now: u64) -> ClockVerdict {
    let off = skew.map_or(0, i64::unsigned_abs);
    if off >= SKEW_FAIL_SECS {
        ClockVerdict::Skewed
    } else if not_before.is_some_and(|nbf| nbf > now) {
        ClockVerdict::NotYetValid
    } else if off > SKEW_OK_SECS {
        ClockVerdict::Drifting
    } else {
        ClockVerdict::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_that_are_not_json_are_not_imds() {
        assert_eq!(classify_error(403, "", None), ErrorMeaning::NotImds);
        assert_eq!(
            classify_error(403, "", Some("Forbidden")),
            ErrorMeaning::NotImds
        );
    }

    #[test]
    fn imds_errors_are_named() {
        let c = |s, e, d| classify_error(s, e, Some(d));
        assert_eq!(
            c(400, "invalid_request", "Identity not found"),
            ErrorMeaning::IdentityNotFound
        );
        assert_eq!(
            c(
                400,
                "invalid_request",
                "Multiple user assigned identities exist, please specify"
            ),
            ErrorMeaning::SelectorRequired
        );
        assert_eq!(
            c(400, "invalid_resource", "AADSTS500011: The resource"),
            ErrorMeaning::UnknownResource
        );
        assert_eq!(
            c(400, "invalid_request", "Bad request"),
            ErrorMeaning::BadRequest
        );
        assert_eq!(c(429, "too_many_requests", ""), ErrorMeaning::Throttled);
        assert_eq!(c(410, "service_unavailable", ""), ErrorMeaning::Updating);
        assert_eq!(c(503, "service_unavailable", ""), ErrorMeaning::ServerError);
        assert_eq!(c(403, "forbidden", ""), ErrorMeaning::Other);
    }

    #[test]
    fn skew_comes_from_expires_on_minus_expires_in() {
        assert_eq!(service_clock_skew(Some(1_000), Some(400), 500), Some(100));
        assert_eq!(service_clock_skew(Some(1_000), Some(400), 700), Some(-100));
        assert_eq!(service_clock_skew(Some(1_000), None, 700), None);
        assert_eq!(service_clock_skew(Some(10), Some(400), 700), None);
        assert_eq!(service_clock_skew(Some(u64::MAX), Some(0), 0), None);
    }

    #[test]
    fn verdicts() {
        assert_eq!(clock_verdict(Some(5), Some(90), 100), ClockVerdict::Ok);
        assert_eq!(clock_verdict(Some(-61), None, 100), ClockVerdict::Drifting);
        assert_eq!(
            clock_verdict(Some(0), Some(101), 100),
            ClockVerdict::NotYetValid
        );
        assert_eq!(
            clock_verdict(Some(-300), Some(0), 100),
            ClockVerdict::Skewed
        );
        assert_eq!(clock_verdict(None, None, 100), ClockVerdict::Ok);
    }
}
