//! Exchange tests over the IMDS fixtures (`fixtures/`), fed at every split.

use super::*;
use crate::request::Selector;

const OK: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/imds-token-response.http"
));
const OK_CHUNKED: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/imds-token-response-chunked.http"
));
const NOT_FOUND: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/imds-error-400.http"
));
const THROTTLED: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/imds-error-429.http"
));

/// Runs a whole exchange, delivering `response` in pieces of at most `step` bytes (and sending
/// the request in pieces of 7 bytes), then calls `check` on the outcome.
fn exchange(response: &[u8], step: usize, eof: bool, check: impl FnOnce(Outcome<'_>)) {
    let mut buf = [0u8; 8192];
    let request = TokenRequest::new("https://management.azure.com/");
    let mut ex = Exchange::new(&request, &Endpoint::Imds, &mut buf, Limits::default()).unwrap();
    let mut request_bytes = [0u8; 512];
    let mut request_len = 0;
    while !ex.request_sent() {
        let chunk = ex.to_send();
        let n = chunk.len().min(7);
        request_bytes[request_len..request_len + n].copy_from_slice(&chunk[..n]);
        request_len += n;
        ex.sent(n);
    }
    assert!(request_bytes[..request_len].starts_with(b"GET /metadata/identity/oauth2/token?"));
    let mut at = 0;
    let mut progress = Progress::NeedMore;
    while at < response.len() {
        assert_eq!(
            progress,
            Progress::NeedMore,
            "complete before the last byte"
        );
        let free = ex.receive_buf().unwrap();
        let n = step.min(response.len() - at).min(free.len());
        free[..n].copy_from_slice(&response[at..at + n]);
        at += n;
        progress = ex.received(n).unwrap();
    }
    if eof {
        progress = ex.eof().unwrap();
    }
    assert_eq!(progress, Progress::Complete);
    check(ex.finish(1_796_000_000).unwrap());
}

fn expect_fixture_token(outcome: Outcome<'_>) {
    let Outcome::Token(token) = outcome else {
        panic!("expected a token, got {outcome:?}")
    };
    assert!(token.access_token.expose().starts_with("eyJ0eXAi"));
    assert_eq!(token.resource, "https://management.azure.com/");
    assert_eq!(token.token_type, "Bearer");
    assert!(token.expires_on.is_some());
}

#[test]
fn token_at_every_step_size() {
    for step in 1..=OK.len() {
        exchange(OK, step, false, expect_fixture_token);
    }
}

#[test]
fn chunked_token_at_every_step_size() {
    for step in 1..=OK_CHUNKED.len() {
        exchange(OK_CHUNKED, step, false, expect_fixture_token);
    }
}

#[test]
fn service_errors_keep_status_text_and_retry_after() {
    for step in [1, 3, 64, 4096] {
        exchange(NOT_FOUND, step, false, |o| {
            let Outcome::Service(e) = o else {
                panic!("{o:?}")
            };
            assert_eq!(e.status, 400);
            assert_eq!(e.error, "invalid_request");
            assert_eq!(e.description, Some("Identity not found"));
        });
        exchange(THROTTLED, step, false, |o| {
            let Outcome::Service(e) = o else {
                panic!("{o:?}")
            };
            assert_eq!(e.status, 429);
            assert_eq!(e.error, "too_many_requests");
        });
    }
    let with_retry =
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n";
    exchange(with_retry, 5, false, |o| {
        let Outcome::Service(e) = o else {
            panic!("{o:?}")
        };
        assert_eq!((e.status, e.retry_after, e.error), (429, Some(7), ""));
    });
}

#[test]
fn text_bodies_become_descriptions() {
    let docker =
        b"HTTP/1.0 403 Forbidden\r\n\r\nconnecting to 169.254.169.254:80: unreachable network";
    exchange(docker, 9, true, |o| {
        let Outcome::Service(e) = o else {
            panic!("{o:?}")
        };
        assert_eq!(e.status, 403);
        assert_eq!(
            e.description,
            Some("connecting to 169.254.169.254:80: unreachable network")
        );
    });
}

#[test]
fn truncated_response_is_closed_early() {
    let mut buf = [0u8; 8192];
    let request = TokenRequest::new("https://x/");
    let mut ex = Exchange::new(&request, &Endpoint::Imds, &mut buf, Limits::default()).unwrap();
    let n = ex.to_send().len();
    ex.sent(n);
    let cut = &OK[..OK.len() - 10];
    ex.receive_buf().unwrap()[..cut.len()].copy_from_slice(cut);
    assert_eq!(ex.received(cut.len()).unwrap(), Progress::NeedMore);
    assert_eq!(ex.eof(), Err(ClientError::ClosedEarly));
}

#[test]
fn small_buffer_reports_response_too_large() {
    let mut buf = [0u8; 1024];
    let request = TokenRequest::new("https://x/");
    let mut ex = Exchange::new(&request, &Endpoint::Imds, &mut buf, Limits::default()).unwrap();
    let n = ex.to_send().len();
    ex.sent(n);
    let mut at = 0;
    let err = loop {
        let free = match ex.receive_buf() {
            Ok(f) => f,
            Err(e) => break e,
        };
        let n = free.len().min(OK.len() - at);
        free[..n].copy_from_slice(&OK[at..at + n]);
        at += n;
        if let Err(e) = ex.received(n) {
            break e;
        }
    };
    assert_eq!(err, ClientError::ResponseTooLarge { capacity: 1024 });
}

#[test]
fn request_that_does_not_fit_says_how_much_is_needed() {
    let mut buf = [0u8; 16];
    let request = TokenRequest::new("https://management.azure.com/")
        .with_selector(Selector::ClientId("11111111-2222-3333-4444-555555555555"));
    let err = Exchange::new(&request, &Endpoint::Imds, &mut buf, Limits::default()).unwrap_err();
    let ClientError::Request(RequestError::BufferTooSmall { required }) = err else {
        panic!("{err:?}")
    };
    assert!(required > 16);
}

#[test]
fn out_of_order_calls_are_misuse_not_panics() {
    let mut buf = [0u8; 1024];
    let request = TokenRequest::new("https://x/");
    let mut ex = Exchange::new(&request, &Endpoint::Imds, &mut buf, Limits::default()).unwrap();
    assert_eq!(ex.receive_buf().unwrap_err(), ClientError::Misuse);
    assert_eq!(ex.received(3), Err(ClientError::Misuse));
    let n = ex.to_send().len();
    ex.sent(n);
    assert_eq!(ex.received(usize::MAX), Err(ClientError::Misuse));
    assert_eq!(ex.finish(0).unwrap_err(), ClientError::Misuse);
}

#[test]
fn control_chars_found_on_bytes_as_by_chars() {
    // Every char up to U+0800 (all of C0, DEL, C1 and their neighbours), alone and between
    // ASCII letters, and a few above.
    let chars = (0..0x800u32)
        .chain([0xFEFF, 0x2028, 0x1_F600])
        .filter_map(char::from_u32);
    for c in chars {
        let mut buf = [0u8; 8];
        let text = c.encode_utf8(&mut buf[1..]);
        let len = text.len();
        buf[0] = b'a';
        buf[len + 1] = b'z';
        let framed = core::str::from_utf8(&buf[..len + 2]).unwrap();
        for s in [framed, &framed[1..=len]] {
            assert_eq!(
                has_control_char(s),
                s.chars().any(char::is_control),
                "U+{:04X} in {s:?}",
                u32::from(c)
            );
        }
    }
}
