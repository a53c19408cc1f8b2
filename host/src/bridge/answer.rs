//! What the bridge asks upstream for a relayed request, and how it answers: the legacy token
//! shape from a cached or fetched token, and upstream failures as legacy-compatible errors.
//!
//! Pure functions (no I/O, no clock), unit-tested here; the connection loop is in
//! `bridge::serve`.

use mitoken_core::cache::CachedToken;
use mitoken_core::catalogue;
use mitoken_core::client::ClientError;
use mitoken_core::engine::{Cause, Description, ErrorAnswer as CoreAnswer, Failure};
use mitoken_core::identity::Selector;
use mitoken_core::request::{RequestError, ResIdParam, Selector as RequestSelector, TokenRequest};
use mitoken_core::server::RelayRequest;
use mitoken_core::token::{Secret, ServiceError, TokenJson};

use crate::client::{FetchFailure, TokenResponse};
use crate::token_client::{GetTokenError, IdentitySelector, TokenSpec};

/// The core request for a relayed one, borrowing it: what the cache is keyed by. Must match
/// [`token_spec`]`(request).as_request(api_version)` (a test checks it), so a token fetched
/// through the slow path is found by the fast one.
pub fn token_request<'a>(request: &RelayRequest<'a>, api_version: &'a str) -> TokenRequest<'a> {
    let mut r = TokenRequest::new(request.resource)
        .with_api_version(api_version)
        .with_bypass_cache(request.bypass_cache);
    let selector = match request.selector {
        Selector::ClientId(id) => Some(RequestSelector::ClientId(id)),
        Selector::ObjectId(id) => Some(RequestSelector::ObjectId(id)),
        // Both spellings go upstream as IMDS's documented `msi_res_id`.
        Selector::ResourceId(id) => Some(RequestSelector::ResourceId {
            id,
            param: ResIdParam::MsiResId,
        }),
        _ => None,
    };
    if let Some(selector) = selector {
        r = r.with_selector(selector);
    }
    r
}

/// The owned request for the token client (single-flight key, upstream request).
pub fn token_spec(request: &RelayRequest<'_>) -> TokenSpec {
    let selector = match request.selector {
        Selector::ClientId(id) => Some(IdentitySelector::ClientId(id.to_owned())),
        Selector::ObjectId(id) => Some(IdentitySelector::ObjectId(id.to_owned())),
        Selector::ResourceId(id) => Some(IdentitySelector::ResourceId {
            id: id.to_owned(),
            mi_spelling: false,
        }),
        _ => None,
    };
    TokenSpec {
        resource: request.resource.to_owned(),
        selector,
        bypass_cache: request.bypass_cache,
    }
}

/// True when a token says it belongs to another identity than the `client_id` the request
/// selected (GUIDs compare case-insensitively). Requests by object or resource id, or without
/// a selector, and tokens that do not name their client id, cannot be checked this way; the
/// cache key (selector and resource as sent) is what keeps them apart.
pub fn wrong_identity(selector: Selector<'_>, token_client_id: Option<&str>) -> bool {
    match (selector, token_client_id) {
        (Selector::ClientId(asked), Some(got)) => !asked.eq_ignore_ascii_case(got),
        _ => false,
    }
}

/// The answer for a cached token at `now_ms` (Unix ms): `expires_in` counts down from the
/// cache's expiry.
pub fn cached_json<'c>(cached: &CachedToken<'c>, now_ms: u64, resource: &'c str) -> TokenJson<'c> {
    let expires_in = cached.expires_in(now_ms);
    let now = now_ms / 1000;
    TokenJson {
        access_token: cached.access_token,
        client_id: cached.client_id.unwrap_or_default(),
        expires_in,
        expires_on: cached
            .expires_on
            .unwrap_or_else(|| now.saturating_add(expires_in)),
        ext_expires_in: expires_in,
        not_before: cached.not_before.unwrap_or(now),
        resource,
    }
}

/// The answer for a token the client returned (fetched, or from its cache) at `now` (Unix s).
pub fn fetched_json<'t>(token: &'t TokenResponse, now: u64, resource: &'t str) -> TokenJson<'t> {
    let expires_in = token
        .expires_in
        .or_else(|| token.expires_on.map(|on| on.saturating_sub(now)))
        .unwrap_or(0);
    TokenJson {
        access_token: Secret::new(token.access_token.expose()),
        client_id: token.client_id.as_deref().unwrap_or_default(),
        expires_in,
        expires_on: token
            .expires_on
            .unwrap_or_else(|| now.saturating_add(expires_in)),
        ext_expires_in: token.ext_expires_in.unwrap_or(expires_in),
        not_before: token.not_before.unwrap_or(now),
        resource,
    }
}

/// An error answer, owned: what [`mitoken_core::server::Relay::write_upstream_error`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorAnswer {
    /// HTTP status.
    pub status: u16,
    /// The `error` field.
    pub error: String,
    /// The `error_description` field.
    pub description: String,
    /// `Retry-After` seconds.
    pub retry_after: Option<u32>,
}

impl ErrorAnswer {
    /// The owned copy of the core's answer. The upstream's and the server's own texts pass
    /// through; the bridge's explanations are marked `mitoken bridge:` and, when the shell has
    /// the last attempt's detail (address, OS error), say it in full (`failed`).
    fn of_core(a: &CoreAnswer<'_>, failed: Option<(&GetTokenError, &FetchFailure)>) -> Self {
        let detail = failed.filter(|(_, last)| !detail_is_empty(last));
        let tries = match failed {
            Some((
                GetTokenError::Failed {
                    retry: None,
                    attempts,
                    ..
                },
                _,
            )) if *attempts == 1 => " (1 attempt)".to_owned(),
            Some((
                GetTokenError::Failed {
                    retry: None,
                    attempts,
                    ..
                },
                _,
            )) => format!(" ({attempts} attempts)"),
            _ => String::new(),
        };
        let description = match (a.description, detail) {
            (d, _) if d.is_passed_through() => d.to_string(),
            (Description::Unavailable(_), Some((e, _))) => {
                format!("mitoken bridge: IMDS unavailable: {e}{tries}")
            }
            (Description::Unusable(_), Some((e, _))) => format!("mitoken bridge: {e}{tries}"),
            (d, _) => format!("mitoken bridge: {d}"),
        };
        Self {
            status: a.status,
            error: a.error.to_owned(),
            description,
            retry_after: a.retry_after.map(|r| u32::try_from(r).unwrap_or(u32::MAX)),
        }
    }
}

/// True for the stand-in failures that carry no address.
fn detail_is_empty(f: &FetchFailure) -> bool {
    match f {
        FetchFailure::Connect { addr, .. }
        | FetchFailure::Io { addr, .. }
        | FetchFailure::Timeout { addr, .. }
        | FetchFailure::Protocol { addr, .. } => addr.is_empty(),
        FetchFailure::InvalidRequest(_)
        | FetchFailure::Service(_)
        | FetchFailure::ArcChallenge { .. }
        | FetchFailure::ArcKey(_)
        | FetchFailure::NoTlsTransport
        | FetchFailure::Tls(_) => true,
    }
}

/// The core's view of the last attempt's failure.
fn cause_of(last: &FetchFailure) -> Cause<'_> {
    match last {
        FetchFailure::InvalidRequest(e) => Cause::Unsendable(*e),
        FetchFailure::Connect { .. } => Cause::ConnectFailed,
        FetchFailure::Io { .. } => Cause::Io,
        FetchFailure::Timeout { .. } => Cause::Timeout,
        FetchFailure::Protocol { error, .. } => Cause::InvalidResponse(*error),
        FetchFailure::Service(s) => Cause::Service(ServiceError::new(
            s.status,
            &s.error,
            s.description.as_deref(),
            s.retry_after,
        )),
        // The bridge asks IMDS only; these come from other sources' protocols.
        FetchFailure::ArcChallenge { .. } => Cause::Service(ServiceError::new(401, "", None, None)),
        FetchFailure::ArcKey(_) => Cause::Unsendable(RequestError::MissingSecret {
            source: mitoken_core::source::Source::Arc,
        }),
        FetchFailure::NoTlsTransport => Cause::Unsendable(RequestError::HttpsNotSupported),
        FetchFailure::Tls(_) => Cause::InvalidResponse(ClientError::PeerRejected),
    }
}

/// How a failure to get a token is answered: the core's policy
/// ([`mitoken_core::engine::answer`]) — IMDS's own error passed through, `503` with
/// `Retry-After: 5` when IMDS cannot be reached, `502` when its answer is not a token, `400`
/// when the request cannot be written for it.
pub fn error_answer(e: &GetTokenError) -> ErrorAnswer {
    match e {
        GetTokenError::Failed {
            last,
            retry,
            attempts,
        } => {
            let failure = Failure::new(cause_of(last), *retry, *attempts);
            ErrorAnswer::of_core(&CoreAnswer::for_failure(&failure), Some((e, last)))
        }
        GetTokenError::DeadlinePassed(_) => {
            ErrorAnswer::of_core(&CoreAnswer::deadline_passed(), None)
        }
        GetTokenError::Busy(_) => ErrorAnswer {
            status: 503,
            error: catalogue::error_code(503).to_owned(),
            description: format!("mitoken bridge: {e}"),
            retry_after: Some(1),
        },
        GetTokenError::Endpoint { .. } => ErrorAnswer {
            status: 500,
            error: "unknown".to_owned(),
            description: format!("mitoken bridge: {e}"),
            retry_after: None,
        },
    }
}

/// The answer when a token names another identity than the one asked for: the token is
/// withheld.
pub fn wrong_identity_answer() -> ErrorAnswer {
    ErrorAnswer::of_core(&CoreAnswer::wrong_identity(), None)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use mitoken_core::cache::CacheKey;
    use mitoken_core::http::Limits;
    use mitoken_core::identity::Flavor;
    use mitoken_core::request::{Endpoint, RequestError};
    use mitoken_core::retry::RetryError;
    use mitoken_core::server::{Config, Relay, Relayed};

    use super::*;
    use crate::client::ServiceFailure;

    fn with_relayed(query: &str, f: impl FnOnce(&RelayRequest<'_>)) {
        let relay = Relay::new(Config::new(Flavor::Extension).with_limits(Limits::DEFAULT));
        let mut conn = relay.connection();
        let mut input =
            format!("GET /oauth2/token?{query} HTTP/1.1\r\nMetadata: true\r\n\r\n").into_bytes();
        let (mut work, mut out) = (vec![0u8; 4096], vec![0u8; 4096]);
        match relay.handle(&mut conn, &mut input, &mut work, &mut out) {
            Ok(Relayed::Relay(r)) => f(&r),
            other => panic!("{query}: {other:?}"),
        }
    }

    #[test]
    fn fast_and_slow_paths_share_cache_keys() {
        for query in [
            "resource=https%3A%2F%2Fvault.azure.net",
            "resource=r&client_id=20000000-0000-4000-8000-000000000002",
            "resource=r&object_id=X",
            "resource=r&msi_res_id=%2Fsubscriptions%2Fx",
            "resource=r&mi_res_id=%2Fsubscriptions%2Fx",
            "resource=r&bypass_cache=true&client_id=y",
        ] {
            with_relayed(query, |r| {
                let borrowed = token_request(r, "2018-02-01");
                let spec = token_spec(r);
                let owned = spec.as_request("2018-02-01");
                let endpoint = Endpoint::Imds;
                assert_eq!(
                    CacheKey::for_request(&borrowed, endpoint),
                    CacheKey::for_request(&owned, endpoint),
                    "{query}"
                );
                assert_eq!(borrowed, owned, "{query}");
            });
        }
        // The two resource-id spellings share one key; other selectors never do.
        let key = |q: &str| {
            let mut k = None;
            with_relayed(q, |r| k = Some(token_spec(r)));
            k.unwrap()
        };
        assert_eq!(
            key("resource=r&msi_res_id=a"),
            key("resource=r&mi_res_id=a")
        );
        assert_ne!(key("resource=r&client_id=a"), key("resource=r&object_id=a"));
        assert_ne!(key("resource=r&client_id=a"), key("resource=r"));
    }

    #[test]
    fn identity_check() {
        let asked = Selector::ClientId("20000000-0000-4000-8000-00000000000A");
        assert!(!wrong_identity(
            asked,
            Some("20000000-0000-4000-8000-00000000000a")
        ));
        assert!(wrong_identity(
            asked,
            Some("20000000-0000-4000-8000-00000000000b")
        ));
        assert!(!wrong_identity(asked, None));
        assert!(!wrong_identity(Selector::Default, Some("x")));
        assert!(!wrong_identity(Selector::ObjectId("y"), Some("x")));
    }

    fn failed(last: FetchFailure, attempts: u32) -> GetTokenError {
        GetTokenError::Failed {
            last,
            retry: Some(RetryError::GoneTooLong { attempts }),
            attempts,
        }
    }

    fn service(
        status: u16,
        error: &str,
        description: Option<&str>,
        ra: Option<u64>,
    ) -> FetchFailure {
        FetchFailure::Service(ServiceFailure {
            status,
            error: error.to_owned(),
            description: description.map(str::to_owned),
            retry_after: ra,
            correlation_id: None,
        })
    }

    #[test]
    fn error_mapping() {
        let a = error_answer(&failed(
            service(400, "invalid_request", Some("Identity not found"), None),
            1,
        ));
        assert_eq!(
            a,
            ErrorAnswer {
                status: 400,
                error: "invalid_request".into(),
                description: "Identity not found".into(),
                retry_after: None
            }
        );
        let a = error_answer(&failed(service(429, "", None, Some(1 << 40)), 6));
        assert_eq!((a.status, a.error.as_str()), (429, "too_many_requests"));
        assert_eq!(a.retry_after, Some(u32::MAX));
        assert!(a.description.contains("HTTP 429"));
        let a = error_answer(&failed(service(302, "", None, None), 1));
        assert_eq!((a.status, a.error.as_str()), (502, "bad_gateway"));
        let a = error_answer(&failed(
            FetchFailure::Connect {
                addr: "169.254.169.254:80".into(),
                source: Arc::new(std::io::ErrorKind::ConnectionRefused.into()),
            },
            6,
        ));
        assert_eq!(
            (a.status, a.error.as_str(), a.retry_after),
            (503, "service_unavailable", Some(5))
        );
        assert!(
            a.description.contains("169.254.169.254:80") && a.description.contains("6 attempts"),
            "{}",
            a.description
        );
        let a = error_answer(&failed(
            FetchFailure::Timeout {
                addr: "h:1".into(),
                after: Duration::from_secs(10),
            },
            1,
        ));
        assert!(
            a.description.contains("no answer from h:1"),
            "{}",
            a.description
        );
        let a = error_answer(&GetTokenError::Failed {
            last: FetchFailure::InvalidRequest(RequestError::NotHttpUrl),
            retry: None,
            attempts: 1,
        });
        assert_eq!(a.status, 400);
        // `client_id=` names no identity: the server's own answer, not a bridge message.
        let a = error_answer(&GetTokenError::Failed {
            last: FetchFailure::InvalidRequest(RequestError::Empty {
                field: mitoken_core::request::RequestField::ClientId,
            }),
            retry: None,
            attempts: 1,
        });
        assert_eq!(
            (a.status, a.error.as_str(), a.description.as_str()),
            (400, "invalid_request", "Identity not found")
        );
    }
}
