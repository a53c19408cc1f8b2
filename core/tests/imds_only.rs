//! The core built without its `sources` feature (the bare-metal guest's and the C API's build):
//! IMDS and the VM extension work as ever, every other source is refused before a byte is
//! written, and the other sources' answer shapes are not read.
//!
//! Run by `cargo xtask ci` (step "core without sources":
//! `cargo test -p mitoken-core --no-default-features`); `sources.rs` covers the default build.

#![cfg(not(feature = "sources"))]

use mitoken_core::cache::CacheKey;
use mitoken_core::engine::{Answer, Ask, Cause, Engine, EngineConfig, Reply};
use mitoken_core::request::{Endpoint, RequestError, Style, TokenRequest};
use mitoken_core::token::{Field, JsonError, ServiceError, Token};

const RESOURCE: &str = "https://management.azure.com/";

fn endpoint(style: Style) -> Endpoint<'static> {
    Endpoint::parse_url_for("http://127.0.0.1:8080/msi/token", style).unwrap()
}

#[test]
fn imds_and_the_extension_are_written() {
    let r = TokenRequest::new(RESOURCE);
    let mut buf = [0u8; 1024];
    let n = r.write(&Endpoint::Imds, &mut buf).unwrap();
    let text = core::str::from_utf8(&buf[..n]).unwrap();
    assert!(
        text.starts_with("GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F HTTP/1.1\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nMetadata: true\r\n"), "{text}");
    let n = r.write(&endpoint(Style::Extension), &mut buf).unwrap();
    assert!(buf[..n].starts_with(b"GET /msi/token?resource=https%3A%2F%2Fmanagement.azure.com%2F"));
}

#[test]
fn every_other_source_is_refused_before_a_byte_is_written() {
    for style in Style::ALL {
        if matches!(style, Style::Imds | Style::Extension | Style::ServiceFabric) {
            continue; // Service Fabric is https only: checked below
        }
        let r = TokenRequest::new(RESOURCE).with_secret("s3cr3t");
        let mut buf = [0xAAu8; 1024];
        assert_eq!(
            r.write(&endpoint(style), &mut buf),
            Err(RequestError::SourceNotBuilt),
            "{style:?}"
        );
        assert!(buf.iter().all(|&b| b == 0xAA), "{style:?} wrote bytes");
        assert_eq!(
            r.validate(&endpoint(style)),
            Err(RequestError::SourceNotBuilt)
        );
    }
    let sf =
        Endpoint::parse_url_for("https://127.0.0.1:2377/msi/token", Style::ServiceFabric).unwrap();
    assert_eq!(
        TokenRequest::new(RESOURCE)
            .with_secret("s")
            .write(&sf, &mut [0; 1024]),
        Err(RequestError::SourceNotBuilt)
    );
    assert!(
        RequestError::SourceNotBuilt.to_string().contains("sources"),
        "{}",
        RequestError::SourceNotBuilt
    );
}

/// The engine keys any source; the request it hands the shell for another source cannot be
/// written, and the shell's report of that fails the caller at once, with no retry.
#[test]
fn a_request_to_another_source_fails_its_caller_without_a_byte_sent() {
    let mut engine: Engine<4, 2048, 256, 4, 8> = Engine::new(EngineConfig::DEFAULT, 1);
    let now = 1_800_000_000_000;
    let key = CacheKey::new(endpoint(Style::AppService), None, RESOURCE);
    let Ok(Ask::Wait(ticket)) = engine.request(&key, now, now + 60_000, false) else {
        panic!("a new key waits for its flight");
    };
    let t = engine.poll_transmit(now).expect("one attempt");
    let (flight, endpoint) = (t.flight, t.key.endpoint);
    let written = t
        .request("2019-08-01")
        .with_secret("s")
        .write(&endpoint, &mut [0; 1024]);
    let refused = written.unwrap_err();
    assert_eq!(refused, RequestError::SourceNotBuilt);
    engine
        .handle_reply(flight, now, Reply::Unsendable(refused))
        .unwrap();
    assert!(engine.poll_transmit(now).is_none(), "not retried");
    let wake = engine
        .poll_wake(now)
        .expect("the caller is answered at once");
    assert_eq!(wake.ticket, ticket);
    let Answer::Failed(f) = wake.answer else {
        panic!("a failure, not {:?}", wake.answer);
    };
    assert_eq!(f.cause, Cause::Unsendable(RequestError::SourceNotBuilt));
    assert_eq!(engine.poll_at(), None, "nothing left to do");
}

#[test]
fn other_sources_answer_shapes_are_not_read() {
    // App Service 2017's localized date `expires_on`.
    let body = br#"{"access_token":"t","expires_on":"09/14/2017 00:00:00 PM +00:00","resource":"r","token_type":"Bearer"}"#;
    assert_eq!(
        Token::parse(body, &mut []),
        Err(JsonError::InvalidNumber {
            field: Field::ExpiresOn
        })
    );
    // App Service's nested error object.
    let body = br#"{"error":{"code":"SecretHeaderNotFound","message":"m"}}"#;
    assert_eq!(
        ServiceError::parse(401, None, body, &mut []),
        Err(JsonError::InvalidType {
            field: Field::Error
        })
    );
    // IMDS's own shapes are read as ever.
    let body =
        br#"{"access_token":"t","expires_on":"1800000000","resource":"r","token_type":"Bearer"}"#;
    assert_eq!(
        Token::parse(body, &mut []).map(|t| t.expires_on),
        Ok(Some(1_800_000_000))
    );
}
