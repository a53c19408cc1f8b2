//! Tests through the `extern "C"` functions, as a C caller uses them, and the property test:
//! any response, split anywhere, gets the same verdict through the C API as from the Rust core
//! fed in one piece.
//!
//! Every `unsafe` here is a call of the C API with pointers to live locals of the right types
//! (or deliberate NULLs), which is its whole contract; the per-block rules of the library are
//! relaxed for that reason only.
#![allow(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block,
    clippy::cast_sign_loss
)]

use core::ptr;
use std::string::String;
use std::vec::Vec;

use mitoken_core::client::{Exchange, Outcome, Progress};
use mitoken_core::http::Limits;
use mitoken_core::request::{Endpoint, Style, TokenRequest};
use proptest::prelude::*;

use crate::*;

const RESOURCE: &str = "https://management.azure.com/";
const HOST: &str = "127.0.0.1";
const NOW: u64 = 1_700_000_000;
const BUF: usize = 4096;

fn zeroed_exchange() -> mitoken_exchange {
    mitoken_exchange {
        opaque: [0; MITOKEN_EXCHANGE_WORDS],
    }
}

fn zeroed_retry() -> mitoken_retry {
    mitoken_retry {
        opaque: [0; MITOKEN_RETRY_WORDS],
    }
}

fn request() -> mitoken_request {
    mitoken_request {
        resource: mitoken_str::of(RESOURCE),
        selector_kind: MITOKEN_SELECTOR_NONE,
        selector: mitoken_str::EMPTY,
        endpoint_kind: MITOKEN_ENDPOINT_CUSTOM,
        host: mitoken_str::of(HOST),
        port: 8080,
        path: mitoken_str::EMPTY,
        style: MITOKEN_STYLE_IMDS,
        api_version: mitoken_str::EMPTY,
        bypass_cache: false,
    }
}

fn text(s: mitoken_str) -> Vec<u8> {
    if s.ptr.is_null() {
        return Vec::new();
    }
    // SAFETY: the library lends `len` bytes of the exchange buffer, which the test still holds.
    unsafe { core::slice::from_raw_parts(s.ptr.cast::<u8>(), s.len) }.to_vec()
}

/// What a response came to, comparable between the two paths.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Token {
        access_token: Vec<u8>,
        token_type: Vec<u8>,
        resource: Vec<u8>,
        client_id: Vec<u8>,
        expires_at: u64,
    },
    Service {
        status: u16,
        error: Vec<u8>,
        description: Vec<u8>,
        retry_after: Option<u64>,
    },
    Error(mitoken_result),
}

/// Drives the C API: request out, `response` in as `chunks` (cycled), finish.
fn through_c(response: &[u8], chunks: &[usize]) -> Verdict {
    let mut ex = zeroed_exchange();
    let mut buf = [0u8; BUF];
    let req = request();
    // SAFETY (all calls below): every pointer is to a live local of the right type; `buf`
    // outlives the exchange and the response read from it.
    let r = unsafe { mitoken_exchange_start(&raw mut ex, &raw const req, buf.as_mut_ptr(), BUF) };
    assert_eq!(r, mitoken_result::Ok);
    let (mut data, mut len) = (ptr::null(), 0usize);
    // SAFETY: as above.
    let r = unsafe { mitoken_exchange_to_send(&raw mut ex, &raw mut data, &raw mut len) };
    assert_eq!(r, mitoken_result::Ok);
    assert!(len > 0);
    // SAFETY: as above.
    assert_eq!(
        unsafe { mitoken_exchange_sent(&raw mut ex, len) },
        mitoken_result::Ok
    );

    let mut fed = 0;
    let mut step = 0;
    let mut progress = mitoken_result::NeedMore;
    while progress == mitoken_result::NeedMore && fed < response.len() {
        let (mut free, mut cap) = (ptr::null_mut(), 0usize);
        // SAFETY: as above.
        let r = unsafe { mitoken_exchange_receive_buf(&raw mut ex, &raw mut free, &raw mut cap) };
        if r != mitoken_result::Ok {
            return Verdict::Error(r);
        }
        let want = chunks
            .get(step % chunks.len().max(1))
            .copied()
            .unwrap_or(1)
            .max(1);
        step += 1;
        let n = want.min(cap).min(response.len() - fed);
        // SAFETY: the library offered `cap` ≥ n writable bytes at `free`.
        unsafe { ptr::copy_nonoverlapping(response[fed..].as_ptr(), free, n) };
        fed += n;
        // SAFETY: as above.
        progress = unsafe { mitoken_exchange_received(&raw mut ex, n) };
    }
    if progress == mitoken_result::NeedMore {
        // SAFETY: as above.
        progress = unsafe { mitoken_exchange_eof(&raw mut ex) };
    }
    if progress != mitoken_result::Complete {
        return Verdict::Error(progress);
    }
    let mut out = core::mem::MaybeUninit::<mitoken_response>::uninit();
    // SAFETY: as above; `out` is written on OK.
    let r = unsafe { mitoken_exchange_finish(&raw mut ex, NOW, out.as_mut_ptr()) };
    if r != mitoken_result::Ok {
        return Verdict::Error(r);
    }
    // SAFETY: `finish` returned OK, so it wrote `out`.
    let out = unsafe { out.assume_init() };
    match out.kind {
        mitoken_response_kind::Token => Verdict::Token {
            access_token: text(out.access_token),
            token_type: text(out.token_type),
            resource: text(out.resource),
            client_id: text(out.client_id),
            expires_at: out.expires_at,
        },
        mitoken_response_kind::ServiceError => Verdict::Service {
            status: out.status,
            error: text(out.error),
            description: text(out.error_description),
            retry_after: out.has_retry_after.then_some(out.retry_after),
        },
    }
}

/// The Rust core's own verdict, the response fed in one piece.
fn through_core(response: &[u8]) -> Verdict {
    let mut buf = [0u8; BUF];
    let endpoint = Endpoint::Custom {
        host: HOST,
        port: 8080,
        path: mitoken_core::request::IMDS_TOKEN_PATH,
        style: Style::Imds,
    };
    let request = TokenRequest::new(RESOURCE);
    let mut ex = Exchange::new(&request, &endpoint, &mut buf, Limits::DEFAULT).expect("fits");
    let n = ex.to_send().len();
    ex.sent(n);
    let mut fed = 0;
    let mut progress = Progress::NeedMore;
    while progress == Progress::NeedMore && fed < response.len() {
        let free = match ex.receive_buf() {
            Ok(f) => f,
            Err(e) => return Verdict::Error(e.into()),
        };
        let n = free.len().min(response.len() - fed);
        free[..n].copy_from_slice(&response[fed..fed + n]);
        fed += n;
        progress = match ex.received(n) {
            Ok(p) => p,
            Err(e) => return Verdict::Error(e.into()),
        };
    }
    if progress == Progress::NeedMore
        && let Err(e) = ex.eof()
    {
        return Verdict::Error(e.into());
    }
    match ex.finish(NOW) {
        Ok(Outcome::Token(t)) => Verdict::Token {
            access_token: t.access_token.expose().as_bytes().to_vec(),
            token_type: t.token_type.as_bytes().to_vec(),
            resource: t.resource.as_bytes().to_vec(),
            client_id: t.client_id.unwrap_or("").as_bytes().to_vec(),
            expires_at: t.expires_at(NOW),
        },
        Ok(Outcome::Service(e)) => Verdict::Service {
            status: e.status,
            error: e.error.as_bytes().to_vec(),
            description: e.description.unwrap_or("").as_bytes().to_vec(),
            retry_after: e.retry_after,
        },
        Ok(_) => Verdict::Error(mitoken_result::Misuse),
        Err(e) => Verdict::Error(e.into()),
    }
}

fn token_response(token: &str, expires_in: u64, extra_header: &str) -> Vec<u8> {
    let body = std::format!(
        "{{\"access_token\":\"{token}\",\"client_id\":\"c0000000-0000-4000-8000-000000000001\",\
         \"expires_in\":\"{expires_in}\",\"resource\":\"{RESOURCE}\",\"token_type\":\"Bearer\"}}"
    );
    std::format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra_header}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn error_response(status: u16, description: &str, retry_after: Option<u32>) -> Vec<u8> {
    let body =
        std::format!("{{\"error\":\"invalid_request\",\"error_description\":\"{description}\"}}");
    let ra = retry_after.map_or_else(String::new, |s| std::format!("Retry-After: {s}\r\n"));
    std::format!(
        "HTTP/1.1 {status} Whatever\r\n{ra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Responses: valid tokens and errors, the same mutated (bytes flipped, cut, inserted), and
/// noise.
fn responses() -> impl Strategy<Value = Vec<u8>> {
    let token = ("[A-Za-z0-9._-]{1,3000}", 0u64..100_000, prop::bool::ANY).prop_map(
        |(t, e, chunked_hint)| {
            token_response(&t, e, if chunked_hint { "X-Hint: 1\r\n" } else { "" })
        },
    );
    let error = (
        prop::sample::select(std::vec![400u16, 404, 410, 429, 500, 503]),
        "[ -~&&[^\"\\\\]]{0,80}",
        prop::option::of(0u32..120),
    )
        .prop_map(|(s, d, ra)| error_response(s, &d, ra));
    let valid = prop_oneof![token, error];
    let mutated = (
        valid.clone(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    )
        .prop_map(|(mut bytes, edits)| {
            for (at, byte, kind) in edits {
                if bytes.is_empty() {
                    break;
                }
                let i = at.index(bytes.len());
                match kind {
                    0 => bytes[i] = byte,
                    1 => bytes.truncate(i),
                    _ => bytes.insert(i, byte),
                }
            }
            bytes
        });
    let noise = prop::collection::vec(any::<u8>(), 0..600);
    prop_oneof![3 => valid, 5 => mutated, 1 => noise]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any response, split at any points, never crashes the C API and gets the same verdict
    /// as the Rust core fed the same bytes in one piece.
    #[test]
    fn c_api_agrees_with_core(
        response in responses(),
        chunks in prop::collection::vec(1usize..700, 1..8),
    ) {
        prop_assert_eq!(through_c(&response, &chunks), through_core(&response));
    }
}

#[test]
fn a_token_and_an_error_come_through() {
    let Verdict::Token { access_token, .. } =
        through_c(&token_response("eyJ0.e30.sig", 3600, ""), &[7])
    else {
        panic!("want a token");
    };
    assert_eq!(access_token, b"eyJ0.e30.sig");
    let v = through_c(&error_response(400, "Identity not found", None), &[1]);
    assert!(
        matches!(v, Verdict::Service { status: 400, ref description, .. } if description == b"Identity not found")
    );
}

#[test]
fn null_pointers_are_errors_not_crashes() {
    let mut ex = zeroed_exchange();
    let mut buf = [0u8; 64];
    let req = request();
    let null = mitoken_result::NullArgument;
    // SAFETY (all calls below): pointers are NULL or to live locals.
    unsafe {
        assert_eq!(
            mitoken_exchange_start(ptr::null_mut(), &raw const req, buf.as_mut_ptr(), 64),
            null
        );
        assert_eq!(
            mitoken_exchange_start(&raw mut ex, ptr::null(), buf.as_mut_ptr(), 64),
            null
        );
        assert_eq!(
            mitoken_exchange_start(&raw mut ex, &raw const req, ptr::null_mut(), 64),
            null
        );
        assert_eq!(mitoken_request_size(ptr::null(), &mut 0), null);
        assert_eq!(mitoken_request_size(&raw const req, ptr::null_mut()), null);
        assert_eq!(
            mitoken_exchange_to_send(ptr::null_mut(), &mut ptr::null(), &mut 0),
            null
        );
        assert_eq!(mitoken_exchange_sent(ptr::null_mut(), 1), null);
        assert_eq!(
            mitoken_exchange_receive_buf(ptr::null_mut(), &mut ptr::null_mut(), &mut 0),
            null
        );
        assert_eq!(mitoken_exchange_received(ptr::null_mut(), 1), null);
        assert_eq!(mitoken_exchange_eof(ptr::null_mut()), null);
        assert_eq!(
            mitoken_exchange_finish(ptr::null_mut(), 0, ptr::null_mut()),
            null
        );
        assert_eq!(
            mitoken_exchange_error_text(ptr::null_mut(), ptr::null_mut(), 0, ptr::null_mut()),
            null
        );
        assert_eq!(mitoken_retry_policy_imds(ptr::null_mut()), null);
        assert_eq!(mitoken_retry_start(ptr::null_mut(), ptr::null(), 0), null);
        assert_eq!(
            mitoken_retry_decide(ptr::null_mut(), 0, ptr::null(), 0, ptr::null_mut()),
            null
        );
        assert_eq!(
            mitoken_retry_deadline(ptr::null_mut(), ptr::null_mut()),
            null
        );
        assert_eq!(
            mitoken_retry_error_text(ptr::null_mut(), ptr::null_mut(), 0, ptr::null_mut()),
            null
        );
        assert_eq!(
            mitoken_attempt_from_response(ptr::null(), ptr::null_mut()),
            null
        );
        assert_eq!(mitoken_attempt_from_result(-14, ptr::null_mut()), null);
        assert_eq!(mitoken_cache_init(ptr::null_mut()), null);
        assert_eq!(
            mitoken_cache_insert(ptr::null_mut(), ptr::null(), ptr::null_mut(), 0),
            null
        );
        assert_eq!(
            mitoken_cache_get(ptr::null_mut(), ptr::null(), 0, ptr::null_mut()),
            null
        );
        assert_eq!(mitoken_cache_remove(ptr::null_mut(), ptr::null()), null);
        assert_eq!(
            mitoken_cache_next_refresh(ptr::null_mut(), ptr::null_mut()),
            null
        );
        // A string with a NULL pointer but a length is refused too.
        let mut bad = request();
        bad.host = mitoken_str {
            ptr: ptr::null(),
            len: 3,
        };
        assert_eq!(
            mitoken_exchange_start(&raw mut ex, &raw const bad, buf.as_mut_ptr(), 64),
            null
        );
    }
}

#[test]
fn unstarted_storage_is_misuse() {
    let mut ex = zeroed_exchange();
    let mut r = zeroed_retry();
    let attempt = mitoken_attempt {
        kind: MITOKEN_ATTEMPT_TIMEOUT,
        status: 0,
        has_retry_after: false,
        retry_after: 0,
    };
    let mut d = core::mem::MaybeUninit::<mitoken_decision>::uninit();
    // SAFETY: pointers to live locals.
    unsafe {
        assert_eq!(
            mitoken_exchange_sent(&raw mut ex, 1),
            mitoken_result::Misuse
        );
        assert_eq!(mitoken_exchange_eof(&raw mut ex), mitoken_result::Misuse);
        assert_eq!(
            mitoken_retry_decide(&raw mut r, 0, &raw const attempt, 0, d.as_mut_ptr()),
            mitoken_result::Misuse
        );
    }
}

#[test]
fn request_errors_are_typed_and_explained() {
    let mut ex = zeroed_exchange();
    let mut buf = [0u8; 512];
    let mut req = request();
    req.resource = mitoken_str::of("https://x/\r\nEvil: 1");
    let mut text = [0 as core::ffi::c_char; 256];
    let mut len = 0usize;
    // SAFETY: pointers to live locals.
    unsafe {
        assert_eq!(
            mitoken_exchange_start(&raw mut ex, &raw const req, buf.as_mut_ptr(), 512),
            mitoken_result::ControlCharacter
        );
        assert_eq!(
            mitoken_exchange_error_text(&raw mut ex, text.as_mut_ptr(), 256, &raw mut len),
            mitoken_result::Ok
        );
    }
    let msg: Vec<u8> = text[..len].iter().map(|&c| c as u8).collect();
    assert_eq!(
        msg,
        b"cannot build the request: resource contains CR, LF or another control character"
    );
    // Too small a buffer: the size needed is known in advance.
    let req = request();
    let mut need = 0usize;
    // SAFETY: pointers to live locals.
    unsafe {
        assert_eq!(
            mitoken_request_size(&raw const req, &raw mut need),
            mitoken_result::Ok
        );
        assert_eq!(
            mitoken_exchange_start(&raw mut ex, &raw const req, buf.as_mut_ptr(), need - 1),
            mitoken_result::BufferTooSmall
        );
        assert_eq!(
            mitoken_exchange_start(&raw mut ex, &raw const req, buf.as_mut_ptr(), need),
            mitoken_result::Ok
        );
    }
}

#[test]
fn retry_decisions_follow_the_core() {
    let mut r = zeroed_retry();
    let mut policy = core::mem::MaybeUninit::<mitoken_retry_policy>::uninit();
    let mut d = core::mem::MaybeUninit::<mitoken_decision>::uninit();
    // SAFETY: pointers to live locals; `policy` and `d` are written before they are read.
    unsafe {
        assert_eq!(
            mitoken_retry_policy_imds(policy.as_mut_ptr()),
            mitoken_result::Ok
        );
        assert_eq!(
            mitoken_retry_start(&raw mut r, policy.as_ptr(), 0),
            mitoken_result::Ok
        );
        let gone = mitoken_attempt {
            kind: MITOKEN_ATTEMPT_STATUS,
            status: 410,
            has_retry_after: false,
            retry_after: 0,
        };
        assert_eq!(
            mitoken_retry_decide(&raw mut r, 500, &raw const gone, 0, d.as_mut_ptr()),
            mitoken_result::Ok
        );
        let d1 = d.assume_init();
        assert_eq!(
            (d1.kind, d1.at_ms, d1.attempts),
            (mitoken_decision_kind::Retry, 10_500, 1)
        );
        let bad = mitoken_attempt {
            status: 403,
            ..gone
        };
        assert_eq!(
            mitoken_retry_decide(&raw mut r, 11_000, &raw const bad, 0, d.as_mut_ptr()),
            mitoken_result::Ok
        );
        let d2 = d.assume_init();
        assert_eq!(
            (d2.kind, d2.give_up, d2.status),
            (
                mitoken_decision_kind::GiveUp,
                mitoken_give_up::NotRetryable,
                403
            )
        );
        let unknown = mitoken_attempt { kind: 99, ..gone };
        assert_eq!(
            mitoken_retry_decide(&raw mut r, 11_000, &raw const unknown, 0, d.as_mut_ptr()),
            mitoken_result::InvalidArgument
        );
    }
}

#[test]
fn every_result_has_a_text() {
    for code in -40..40 {
        let p = mitoken_result_text(code);
        assert!(!p.is_null());
        // SAFETY: the library returns static NUL-terminated text.
        let s = unsafe { core::ffi::CStr::from_ptr(p) };
        assert!(!s.is_empty());
    }
}

#[test]
#[allow(clippy::large_stack_arrays)] // 19 KB in a test thread's 2 MiB stack
fn the_cache_keeps_a_token_from_an_exchange() {
    let mut cache = std::boxed::Box::new(mitoken_cache {
        opaque: [0; MITOKEN_CACHE_WORDS],
    });
    let mut ex = zeroed_exchange();
    let mut buf = [0u8; BUF];
    let req = request();
    let response = token_response("eyJ0.e30.sig", 3600, "");
    let mut out = core::mem::MaybeUninit::<mitoken_cached_token>::uninit();
    let now_ms = NOW * 1000;
    unsafe {
        let c = &raw mut *cache;
        assert_eq!(
            mitoken_cache_get(c, &raw const req, now_ms, out.as_mut_ptr()),
            mitoken_result::Misuse
        );
        assert_eq!(mitoken_cache_init(c), mitoken_result::Ok);
        assert_eq!(
            mitoken_cache_get(c, &raw const req, now_ms, out.as_mut_ptr()),
            mitoken_result::CacheMiss
        );
        // Not finished with a token yet: nothing to insert.
        assert_eq!(
            mitoken_cache_insert(c, &raw const req, &raw mut ex, now_ms),
            mitoken_result::Misuse
        );

        assert_eq!(
            mitoken_exchange_start(&raw mut ex, &raw const req, buf.as_mut_ptr(), BUF),
            mitoken_result::Ok
        );
        let (mut data, mut len) = (ptr::null(), 0usize);
        mitoken_exchange_to_send(&raw mut ex, &raw mut data, &raw mut len);
        mitoken_exchange_sent(&raw mut ex, len);
        let (mut free, mut cap) = (ptr::null_mut(), 0usize);
        mitoken_exchange_receive_buf(&raw mut ex, &raw mut free, &raw mut cap);
        ptr::copy_nonoverlapping(response.as_ptr(), free, response.len());
        assert_eq!(
            mitoken_exchange_received(&raw mut ex, response.len()),
            mitoken_result::Complete
        );
        let mut resp = core::mem::MaybeUninit::<mitoken_response>::uninit();
        assert_eq!(
            mitoken_exchange_finish(&raw mut ex, NOW, resp.as_mut_ptr()),
            mitoken_result::Ok
        );
        assert_eq!(
            mitoken_cache_insert(c, &raw const req, &raw mut ex, now_ms),
            mitoken_result::Ok
        );
        // The cache copied the token: the buffer can be reused.
        buf.fill(0);

        assert_eq!(
            mitoken_cache_get(c, &raw const req, now_ms + 1000, out.as_mut_ptr()),
            mitoken_result::Ok
        );
        let got = out.assume_init();
        assert!(got.fresh);
        assert_eq!(text(got.access_token), b"eyJ0.e30.sig");
        assert_eq!(got.expires_at_ms, now_ms + 3_600_000);
        let mut at = 0u64;
        assert_eq!(
            mitoken_cache_next_refresh(c, &raw mut at),
            mitoken_result::Ok
        );
        assert_eq!(at, now_ms + 55 * 60_000);
        // Due for refresh 5 min before expiry of a 1 h token, gone at expiry.
        assert_eq!(
            mitoken_cache_get(c, &raw const req, now_ms + 56 * 60_000, out.as_mut_ptr()),
            mitoken_result::Ok
        );
        assert!(!out.assume_init().fresh);
        // Another identity is another key.
        let mut other = request();
        other.selector_kind = MITOKEN_SELECTOR_CLIENT_ID;
        other.selector = mitoken_str::of("c1000000-0000-4000-8000-000000000001");
        assert_eq!(
            mitoken_cache_get(c, &raw const other, now_ms, out.as_mut_ptr()),
            mitoken_result::CacheMiss
        );
        assert_eq!(
            mitoken_cache_get(c, &raw const req, now_ms + 3_600_000, out.as_mut_ptr()),
            mitoken_result::CacheMiss
        );
        assert_eq!(
            mitoken_cache_remove(c, &raw const req),
            mitoken_result::CacheMiss
        );
        assert_eq!(
            mitoken_cache_next_refresh(c, &raw mut at),
            mitoken_result::CacheMiss
        );
    }
}
