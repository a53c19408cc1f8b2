//! A whole client ↔ server exchange in memory: `client::Exchange` against `Server::handle`,
//! with both directions cut into arbitrary reads.
//!
//! Input: structured (via `arbitrary`): flavor, identity table, the `TokenRequest` fields
//! (resource, selector, api-version, bypass-cache, connection; values drawn from the table, from
//! case-changed table values, or arbitrary text), the issuer's behaviour and two split seeds.
//! Properties:
//! - the client refuses to build a request exactly when `TokenRequest::validate` does;
//! - the server answers only once the whole request has arrived, consuming exactly it;
//! - the client completes exactly when the whole answer has arrived;
//! - the client gets a token exactly when the request is valid for the server (accepted
//!   `api-version`, a selector the table resolves, an issuer that issues); then the token is
//!   the one issued for the resolved identity, which matches the selector, with the requested
//!   resource echoed back and the issued lifetimes;
//! - otherwise it gets an IMDS error (a non-200 status with an `error` code, and the issuer's
//!   `Retry-After` when it throttles);
//! - no panics anywhere.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use mitoken_core::client::{ClientError, Exchange, Outcome, Progress};
use mitoken_core::http::Limits;
use mitoken_core::identity::{self, Flavor, IdentityKind};
use mitoken_core::request::{
    Connection, DEFAULT_API_VERSION, Endpoint, ResIdParam, Selector, TokenRequest,
};
use mitoken_core::server::{self, Config, Handled, IDENTITY_API_VERSIONS, Server};
use mitoken_fuzz::{FuzzIssuer, IssueMode, NOW, SAMI, TENANT, UAMIS, cuts, table};

const RESOURCES: [&str; 3] = [
    "https://management.azure.com/",
    "https://vault.azure.net",
    "api://a b+c/%41?x=y&z",
];

/// A table value, a case-changed one, or arbitrary text.
fn value(u: &mut Unstructured<'_>, known: &[&str]) -> Result<String> {
    Ok(match u.int_in_range(0..=3)? {
        0 | 1 => (*u.choose(known)?).to_owned(),
        2 => u.choose(known)?.to_ascii_uppercase(),
        _ => short_text(u)?,
    })
}

fn short_text(u: &mut Unstructured<'_>) -> Result<String> {
    let s: String = u.arbitrary()?;
    Ok(s.chars().take(120).collect())
}

#[derive(Debug)]
struct Case {
    flavor: Flavor,
    sami: bool,
    uamis: usize,
    resource: String,
    selector: Option<(u8, String, ResIdParam)>,
    api_version: String,
    bypass_cache: bool,
    keep_alive: bool,
    mode: IssueMode,
    client_seed: u8,
    server_seed: u8,
}

impl Case {
    fn build(u: &mut Unstructured<'_>) -> Result<Self> {
        let flavor = if u.arbitrary()? {
            Flavor::Extension
        } else {
            Flavor::Imds
        };
        let resource = match u.int_in_range(0..=3usize)? {
            3 => short_text(u)?,
            i => RESOURCES[i].to_owned(),
        };
        let clients: Vec<&str> = [SAMI.0].into_iter().chain(UAMIS.map(|i| i.0)).collect();
        let objects: Vec<&str> = [SAMI.1].into_iter().chain(UAMIS.map(|i| i.1)).collect();
        let res_ids: Vec<&str> = UAMIS.map(|i| i.2).to_vec();
        let selector = match u.int_in_range(0..=3u8)? {
            0 => None,
            1 => Some((1, value(u, &clients)?, ResIdParam::MsiResId)),
            2 => Some((2, value(u, &objects)?, ResIdParam::MsiResId)),
            _ => {
                let param = if u.arbitrary()? {
                    ResIdParam::MiResId
                } else {
                    ResIdParam::MsiResId
                };
                Some((3, value(u, &res_ids)?, param))
            }
        };
        let api_version = match u.int_in_range(0..=3)? {
            0 | 1 => DEFAULT_API_VERSION.to_owned(),
            2 => (*u.choose(&["2025-04-07", "2017-09-01", "2018-02-01 "])?).to_owned(),
            _ => short_text(u)?,
        };
        let mode = match u.int_in_range(0..=7)? {
            0..=4 => IssueMode::Ok,
            5 => IssueMode::UnknownResource,
            6 => IssueMode::Throttled(u.arbitrary()?),
            _ => IssueMode::Failed,
        };
        Ok(Case {
            flavor,
            sami: u.arbitrary()?,
            uamis: u.int_in_range(0..=3)?,
            resource,
            selector,
            api_version,
            bypass_cache: u.arbitrary()?,
            keep_alive: u.arbitrary()?,
            mode,
            client_seed: u.arbitrary()?,
            server_seed: u.arbitrary()?,
        })
    }
}

#[allow(clippy::too_many_lines)]
fn run(case: &Case) {
    let t = table(case.flavor, case.sami, case.uamis);
    let endpoint = match case.flavor {
        Flavor::Imds => Endpoint::Imds,
        _ => Endpoint::Extension,
    };
    let selector = case.selector.as_ref().map(|(kind, v, param)| match kind {
        1 => Selector::ClientId(v),
        2 => Selector::ObjectId(v),
        _ => Selector::ResourceId {
            id: v,
            param: *param,
        },
    });
    let mut req = TokenRequest::new(&case.resource)
        .with_api_version(&case.api_version)
        .with_bypass_cache(case.bypass_cache)
        .with_connection(if case.keep_alive {
            Connection::KeepAlive
        } else {
            Connection::Close
        });
    req.selector = selector;

    let mut cbuf = vec![0u8; 16 * 1024];
    let mut ex = match Exchange::new(&req, &endpoint, &mut cbuf, Limits::default()) {
        Ok(ex) => ex,
        Err(ClientError::Request(e)) => {
            assert_eq!(
                req.validate(&endpoint),
                Err(e),
                "refused only invalid requests"
            );
            return;
        }
        Err(e) => panic!("unexpected {e:?}"),
    };
    assert_eq!(req.validate(&endpoint), Ok(()));

    // Client → server, in the client seed's pieces.
    let mut work = vec![0u8; 16 * 1024];
    let config = Config::new(case.flavor).with_tenant_id(TENANT);
    let mut srv = Server::new(&t, config, &mut work);
    let mut conn = srv.connection();
    let mut issuer = FuzzIssuer::new(case.mode);
    let mut out = vec![0u8; 16 * 1024];
    let request_len = ex.to_send().len();
    let mut input = Vec::new();
    let mut answer = None;
    for cut in cuts(case.client_seed, request_len) {
        let piece = cut - input.len();
        input.extend_from_slice(&ex.to_send()[..piece]);
        ex.sent(piece);
        let handled = srv
            .handle(&mut conn, &mut input, NOW, &mut issuer, &mut out)
            .expect("ample buffers");
        match handled {
            Handled::Partial => assert!(cut < request_len, "whole request left unanswered"),
            Handled::Response(r) => {
                assert_eq!(cut, request_len, "answered a partial request");
                assert_eq!(r.consumed, request_len);
                answer = Some(r);
            }
        }
    }
    assert!(ex.request_sent());
    let answer = answer.expect("an answer");
    assert!(answer.len > 0, "the fuzz issuer never closes");
    if answer.keep_alive {
        assert!(case.keep_alive);
    }

    // Server → client, in the server seed's pieces.
    let wire = &out[..answer.len];
    let mut given = 0;
    for cut in cuts(case.server_seed, wire.len()) {
        let dst = ex.receive_buf().expect("room for the answer");
        dst[..cut - given].copy_from_slice(&wire[given..cut]);
        let progress = ex.received(cut - given).expect("a valid answer");
        given = cut;
        assert_eq!(
            progress == Progress::Complete,
            cut == wire.len(),
            "completes at the end"
        );
    }

    // What should have happened.
    let sel = match selector {
        None => identity::Selector::Default,
        Some(Selector::ClientId(v)) => identity::Selector::ClientId(v),
        Some(Selector::ObjectId(v)) => identity::Selector::ObjectId(v),
        Some(Selector::ResourceId { id, .. }) => identity::Selector::ResourceId(id),
    };
    let api_ok = case.flavor == Flavor::Extension
        || IDENTITY_API_VERSIONS.contains(&case.api_version.as_str());
    let resolved = t.resolve(&sel);
    let expect_token = api_ok && resolved.is_ok() && case.mode == IssueMode::Ok;

    match ex.finish(NOW).expect("a complete answer") {
        Outcome::Token(tok) => {
            assert!(expect_token, "token for an invalid request: {case:?}");
            assert_eq!(answer.status, 200);
            let server::Outcome::Token {
                resolved: r,
                bypass_cache,
            } = answer.outcome
            else {
                panic!("server reported {:?}", answer.outcome);
            };
            assert_eq!(Ok(r), resolved, "the identity the table resolves");
            assert!(r.identity.matches(&sel), "identity matches the selector");
            // Sent in both styles (the extension flavor honours it too).
            assert_eq!(bypass_cache, case.bypass_cache);
            let expected = FuzzIssuer::token_for(r.slot.index(), case.resource.len());
            assert_eq!(tok.access_token.expose(), expected);
            assert_eq!(tok.resource, case.resource, "resource echoed back");
            assert_eq!(tok.token_type, "Bearer");
            assert_eq!(tok.expires_on, Some(NOW + 86_400));
            assert_eq!(tok.expires_in, Some(86_400));
            assert_eq!(tok.not_before, Some(NOW - 300));
            if case.flavor == Flavor::Imds {
                assert_eq!(tok.client_id, Some(r.identity.client_id));
            }
            if r.identity.kind == IdentityKind::SystemAssigned {
                assert!(case.sami);
            }
            assert_eq!(issuer.calls, 1);
        }
        Outcome::Service(e) => {
            assert!(
                !expect_token,
                "no token for a valid request: {case:?} → {e:?}"
            );
            assert_ne!(e.status, 200);
            assert_eq!(e.status, answer.status);
            assert!(!e.error.is_empty(), "an IMDS error code");
            if let IssueMode::Throttled(Some(s)) = case.mode
                && api_ok
                && resolved.is_ok()
            {
                assert_eq!((e.status, e.retry_after), (429, Some(u64::from(s))));
            }
        }
        other => panic!("unexpected outcome {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    if let Ok(case) = Case::build(&mut u) {
        run(&case);
    }
});
