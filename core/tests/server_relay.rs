//! Relay mode (`mitoken_core::server::Relay`): the server's HTTP front and checks without
//! identity resolution, with the answer written later. Table-driven refusals (and proof that
//! they are the server's own answers, byte for byte), the relay-only refusals, and round trips
//! through memory buffers with the core's client pieces, split at every byte.

mod server_common;

use mitoken_core::http::{Limits, ResponseReader, RetryAfter, Status};
use mitoken_core::identity::{Flavor, Selector};
use mitoken_core::request::{
    Connection, Endpoint, ResIdParam, Selector as ClientSelector, TokenRequest,
};
use mitoken_core::server::{
    Config, Fault, HandleError, Handled, Outcome, Relay, RelayRequest, Relayed, Response, Server,
};
use mitoken_core::token::{Secret, ServiceError, Token, TokenJson};
use server_common::{Mode, NOW, SAMI_UA2, TestIssuer, UA_CLIENT, UA_RES, table};

const RESOURCE: &str = "https://vault.azure.net";
const TOKEN: &str = "eyJ0eXAiOiJKV1QifQ.relayed.sig";

fn relay() -> Relay<'static> {
    Relay::new(Config::new(Flavor::Extension))
}

/// Runs `bytes` through a fresh relay connection; the answer must not be `Partial`.
fn run(
    relay: &Relay<'_>,
    bytes: &[u8],
    work_len: usize,
) -> (Result<Relayed<'static>, ()>, Vec<u8>) {
    let mut conn = relay.connection();
    let mut input = bytes.to_vec();
    let mut out = vec![0u8; 8192];
    let mut work = vec![0u8; work_len];
    match relay
        .handle(&mut conn, &mut input, &mut work, &mut out)
        .unwrap()
    {
        Relayed::Partial => panic!(
            "complete request reported partial: {:?}",
            String::from_utf8_lossy(bytes)
        ),
        Relayed::Response(r) => {
            out.truncate(r.len);
            (Ok(Relayed::Response(r)), out)
        }
        Relayed::Relay(_) => (Err(()), Vec::new()),
    }
}

fn parse_error(bytes: &[u8]) -> (u16, String, Option<String>, Option<RetryAfter>, bool) {
    let (head, body) = read_split(bytes, bytes.len());
    let mut scratch = [0u8; 512];
    let e = ServiceError::parse(head.status, None, &body, &mut scratch).unwrap();
    (
        e.status,
        e.error.to_owned(),
        e.description.map(str::to_owned),
        head.retry_after,
        head.keep_alive,
    )
}

/// Reads a response with the client's reader, split after `cut` bytes.
fn read_split(bytes: &[u8], cut: usize) -> (mitoken_core::http::Response, Vec<u8>) {
    let mut buf = vec![0u8; bytes.len()];
    let mut reader = ResponseReader::new(Limits::DEFAULT);
    buf[..cut].copy_from_slice(&bytes[..cut]);
    if cut < bytes.len() {
        assert!(
            reader.feed(&mut buf, cut).unwrap().is_partial(),
            "response prefix {cut}"
        );
        buf[cut..].copy_from_slice(&bytes[cut..]);
    }
    let Status::Complete { value, len } = reader.feed(&mut buf, bytes.len()).unwrap() else {
        panic!("complete response");
    };
    assert_eq!(len, bytes.len());
    let body = value.body(&buf).to_vec();
    (value, body)
}

fn get(target: &str, extra_headers: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: localhost:50342\r\n{extra_headers}\r\n")
}

const MD: &str = "Metadata: true\r\n";
const TARGET: &str = "/oauth2/token?resource=https%3A%2F%2Fvault.azure.net";

/// Requests both the server and the relay refuse, with the status, `error` and (a part of) the
/// `error_description` they answer with.
#[allow(clippy::too_many_lines)] // one table
fn shared_refusals() -> Vec<(&'static str, String, u16, &'static str, &'static str)> {
    let form = |ct: &str, body: &str| {
        format!(
            "POST /oauth2/token HTTP/1.1\r\nHost: localhost\r\nMetadata: true\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    vec![
        (
            "unknown path",
            get("/metadata/identity/oauth2/token?resource=r", MD),
            401,
            "unknown_source",
            "Unknown Source /metadata/identity/oauth2/token",
        ),
        (
            "method",
            format!("PUT {TARGET} HTTP/1.1\r\nMetadata: true\r\nContent-Length: 0\r\n\r\n"),
            405,
            "method_not_allowed",
            "Not allowed",
        ),
        (
            "HEAD",
            format!("HEAD {TARGET} HTTP/1.1\r\nMetadata: true\r\n\r\n"),
            405,
            "method_not_allowed",
            "",
        ),
        (
            "no Metadata",
            get(TARGET, ""),
            400,
            "bad_request_102",
            "Required metadata header not specified",
        ),
        (
            "Metadata false",
            get(TARGET, "Metadata: false\r\n"),
            400,
            "bad_request_102",
            "Required metadata header not specified",
        ),
        (
            "form type",
            form("text/plain", "resource=r"),
            400,
            "invalid_request",
            "POST body must be application/x-www-form-urlencoded",
        ),
        (
            "duplicate in query",
            get("/oauth2/token?resource=a&resource=b", MD),
            400,
            "invalid_request",
            "Duplicate query parameters",
        ),
        (
            "duplicate across query and form",
            form("application/x-www-form-urlencoded", "resource=b")
                .replace("/oauth2/token", "/oauth2/token?resource=a"),
            400,
            "invalid_request",
            "Duplicate query parameters",
        ),
        (
            "bad escape",
            get("/oauth2/token?resource=%ff", MD),
            400,
            "invalid_request",
            "not valid percent-encoded UTF-8",
        ),
        (
            "no resource",
            get("/oauth2/token?client_id=x", MD),
            400,
            "invalid_request",
            "Required query variable 'resource' is missing",
        ),
        (
            "empty resource",
            form("application/x-www-form-urlencoded", "resource="),
            400,
            "invalid_request",
            "Required query variable 'resource' is missing",
        ),
        (
            "two selectors",
            get(&format!("{TARGET}&client_id=a&object_id=b"), MD),
            400,
            "invalid_request",
            "Only one of client_id, object_id and msi_res_id",
        ),
        (
            "two resource-id spellings",
            get(&format!("{TARGET}&msi_res_id=a&mi_res_id=b"), MD),
            400,
            "invalid_request",
            "Only one of",
        ),
        (
            "too many parameters",
            get(
                &format!(
                    "{TARGET}{}",
                    (0..16).map(|i| format!("&p{i}=1")).collect::<Vec<_>>().concat()
                ),
                MD,
            ),
            400,
            "invalid_request",
            "Too many query parameters",
        ),
        (
            "malformed",
            "GET /oauth2/token HTTP/1.1\r\nBad Header\r\n\r\n".to_owned(),
            400,
            "bad_request",
            "Malformed HTTP request",
        ),
        (
            "HTTP/2 preface",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_owned(),
            400,
            "bad_request",
            "Malformed HTTP request",
        ),
        (
            "smuggling",
            "POST /oauth2/token HTTP/1.1\r\nMetadata: true\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_owned(),
            400,
            "bad_request",
            "Malformed HTTP request",
        ),
        (
            "oversized body",
            form("application/x-www-form-urlencoded", &"a".repeat(9000)),
            413,
            "bad_request",
            "Request body too large",
        ),
        (
            "oversized line",
            get(&format!("/oauth2/token?resource={}", "a".repeat(9000)), MD),
            431,
            "bad_request",
            "too large",
        ),
    ]
}

#[test]
fn refusals_are_the_servers_own_answers() {
    let t = table(Flavor::Extension, SAMI_UA2);
    let relay = relay();
    for (name, request, status, error, description) in shared_refusals() {
        let (relayed, bytes) = run(&relay, request.as_bytes(), 16 * 1024);
        let Ok(Relayed::Response(r)) = relayed else {
            panic!("{name}: relayed instead of refused");
        };
        assert_eq!(r.status, status, "{name}");
        assert!(
            matches!(r.outcome, Outcome::Rejected { resolved: None, .. }),
            "{name}"
        );
        if name == "HEAD" {
            // The head of a 405 without its body.
            assert!(bytes.starts_with(b"HTTP/1.1 405 "), "{name}");
            assert!(bytes.ends_with(b"\r\n\r\n"), "{name}");
        } else {
            let (st, err, desc, _, keep_alive) = parse_error(&bytes);
            assert_eq!((st, err.as_str()), (status, error), "{name}");
            assert!(desc.unwrap_or_default().contains(description), "{name}");
            assert_eq!(keep_alive, r.keep_alive, "{name}");
        }
        if matches!(status, 413 | 431) || error == "bad_request" {
            assert!(!r.keep_alive, "{name}: framing failures close");
        }
        // The server (same flavor, any table) answers the same bytes: one validation path.
        let mut work = vec![0u8; 16 * 1024];
        let mut server = Server::new(&t, Config::new(Flavor::Extension), &mut work);
        let mut conn = server.connection();
        let mut input = request.clone().into_bytes();
        let mut out = vec![0u8; 8192];
        let mut issuer = TestIssuer::new(Mode::Ok);
        let Handled::Response(sr) = server
            .handle(&mut conn, &mut input, NOW, &mut issuer, &mut out)
            .unwrap()
        else {
            panic!("{name}: server partial");
        };
        assert_eq!(
            &out[..sr.len],
            &bytes[..],
            "{name}: relay and server differ"
        );
        assert_eq!(
            (sr.consumed, sr.keep_alive),
            (r.consumed, r.keep_alive),
            "{name}"
        );
    }
}

#[test]
fn relay_only_refusals() {
    let relay = relay();
    let cases: [(&str, String, u16, &str, &str); 6] = [
        (
            "X-Forwarded-For",
            get(TARGET, "Metadata: true\r\nX-Forwarded-For: 10.0.0.1\r\n"),
            400,
            "invalid_request",
            "X-Forwarded-For",
        ),
        (
            "Forwarded",
            get(TARGET, "Metadata: true\r\nForwarded: for=10.0.0.1\r\n"),
            400,
            "invalid_request",
            "X-Forwarded-For",
        ),
        (
            "absolute-form, other host",
            get(&format!("http://evil.example{TARGET}"), MD),
            401,
            "unknown_source",
            "Unknown Source http://evil.example/oauth2/token",
        ),
        (
            "absolute-form, IMDS",
            get(&format!("http://169.254.169.254:80{TARGET}"), MD),
            401,
            "unknown_source",
            "Unknown Source http://169.254.169.254:80/oauth2/token",
        ),
        (
            "absolute-form, lookalike",
            get(&format!("http://localhost.evil.example{TARGET}"), MD),
            401,
            "unknown_source",
            "Unknown Source http://localhost.evil.example/oauth2/token",
        ),
        (
            "absolute-form, other host, bad path",
            get("http://evil.example/x", MD),
            401,
            "unknown_source",
            "Unknown Source http://evil.example/x",
        ),
    ];
    for (name, request, status, error, description) in cases {
        let (relayed, bytes) = run(&relay, request.as_bytes(), 16 * 1024);
        let Ok(Relayed::Response(r)) = relayed else {
            panic!("{name}: relayed instead of refused");
        };
        let (st, err, desc, _, _) = parse_error(&bytes);
        assert_eq!(
            (r.status, st, err.as_str()),
            (status, status, error),
            "{name}"
        );
        assert!(desc.unwrap_or_default().contains(description), "{name}");
        assert!(
            r.keep_alive,
            "{name}: a validation refusal keeps the connection"
        );
    }
    // Loopback absolute-form targets are this machine: relayed.
    for host in [
        "localhost",
        "LOCALHOST:50342",
        "127.0.0.1:50342",
        "[::1]:50342",
        "[::1]",
    ] {
        let request = get(&format!("http://{host}{TARGET}"), MD);
        let (relayed, _) = run(&relay, request.as_bytes(), 1024);
        assert!(relayed.is_err(), "{host}: expected a relayed request");
    }
    // In the IMDS flavor the info path is not relayed, and X-Forwarded-For is refused as ever.
    let imds = Relay::new(Config::new(Flavor::Imds));
    let info = get("/metadata/identity/info?api-version=2018-02-01", MD);
    let (relayed, bytes) = run(&imds, info.as_bytes(), 1024);
    assert!(matches!(
        relayed,
        Ok(Relayed::Response(Response { status: 404, .. }))
    ));
    assert_eq!(parse_error(&bytes).1, "Not found");
}

fn relayed_fields(relay: &Relay<'_>, request: &[u8]) -> (String, String, bool, usize, bool) {
    let mut conn = relay.connection();
    let mut input = request.to_vec();
    let (mut work, mut out) = (vec![0u8; 16 * 1024], vec![0u8; 1024]);
    let Relayed::Relay(r) = relay
        .handle(&mut conn, &mut input, &mut work, &mut out)
        .unwrap()
    else {
        panic!("not relayed: {}", String::from_utf8_lossy(request));
    };
    let selector = match r.selector {
        Selector::Default => "default".to_owned(),
        Selector::ClientId(s) => format!("client_id={s}"),
        Selector::ObjectId(s) => format!("object_id={s}"),
        Selector::ResourceId(s) => format!("res_id={s}"),
        _ => "?".to_owned(),
    };
    (
        r.resource.to_owned(),
        selector,
        r.bypass_cache,
        r.reply.consumed(),
        r.reply.keep_alive(),
    )
}

#[test]
fn valid_requests_are_relayed_with_their_selector() {
    let relay = relay();
    let res = UA_RES[1].replace('/', "%2F");
    let form_body =
        format!("resource=https%3A%2F%2Fvault.azure.net&mi_res_id={res}&bypass_cache=true");
    let post = format!(
        "POST /oauth2/token HTTP/1.0\r\nMetadata: True\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\nContent-Length: {}\r\n\r\n{form_body}",
        form_body.len()
    );
    let cases = [
        (get(TARGET, MD), "default", false, true),
        (
            get(&format!("{TARGET}&client_id={}", UA_CLIENT[0]), MD),
            &*format!("client_id={}", UA_CLIENT[0]),
            false,
            true,
        ),
        (
            get(
                &format!("{TARGET}&object_id=not-a-guid&api-version=2018-02-01"),
                "Metadata: true\r\nConnection: close\r\n",
            ),
            "object_id=not-a-guid",
            false,
            false,
        ),
        (post.clone(), &*format!("res_id={}", UA_RES[1]), true, false),
    ];
    for (request, selector, bypass, keep_alive) in cases {
        let got = relayed_fields(&relay, request.as_bytes());
        assert_eq!(
            got,
            (
                RESOURCE.to_owned(),
                selector.to_owned(),
                bypass,
                request.len(),
                keep_alive
            )
        );
    }
}

fn token_json(resource: &str) -> TokenJson<'_> {
    TokenJson {
        access_token: Secret::new(TOKEN),
        client_id: UA_CLIENT[0],
        expires_in: 3599,
        expires_on: NOW + 3599,
        ext_expires_in: 86_399,
        not_before: NOW - 300,
        resource,
    }
}

/// The relay's whole job on one request: `request` in, split at `cut`; a token (or an upstream
/// error) out.
fn relay_split(
    relay: &Relay<'_>,
    request: &[u8],
    cut: usize,
    upstream: Option<&Fault<'_>>,
) -> (Response<'static>, Vec<u8>) {
    let mut conn = relay.connection();
    let (mut work, mut out) = (vec![0u8; 16 * 1024], vec![0u8; 4096]);
    let mut input = request[..cut].to_vec();
    if cut < request.len() {
        let h = relay
            .handle(&mut conn, &mut input, &mut work, &mut out)
            .unwrap();
        assert_eq!(h, Relayed::Partial, "prefix of {cut} bytes");
        input.extend_from_slice(&request[cut..]);
    }
    let Relayed::Relay(r) = relay
        .handle(&mut conn, &mut input, &mut work, &mut out)
        .unwrap()
    else {
        panic!("complete request after cut {cut}");
    };
    let RelayRequest {
        resource,
        selector,
        reply,
        ..
    } = r;
    assert_eq!(resource, RESOURCE);
    assert_eq!(selector, Selector::ClientId(UA_CLIENT[0]));
    let response = match upstream {
        None => relay
            .write_token(&reply, &token_json(resource), &mut out)
            .unwrap(),
        Some(fault) => relay.write_upstream_error(&reply, fault, &mut out).unwrap(),
    };
    assert_eq!(response.consumed, request.len());
    out.truncate(response.len);
    (response, out)
}

#[test]
#[allow(clippy::many_single_char_names)]
fn legacy_round_trip_split_at_every_byte() {
    let relay = relay();
    // What msrestazure sent: a form POST, here with a chunked body for good measure.
    let form = format!(
        "resource=https%3A%2F%2Fvault.azure.net&client_id={}",
        UA_CLIENT[0]
    );
    let (a, b) = form.split_at(17);
    let post = format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: localhost:50342\r\nMetadata: true\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    // The core's own client writing the legacy GET.
    let mut req = TokenRequest::new(RESOURCE);
    req.selector = Some(ClientSelector::ClientId(UA_CLIENT[0]));
    req.connection = Connection::KeepAlive;
    let mut get = vec![0u8; 1024];
    let n = req.write(&Endpoint::Extension, &mut get).unwrap();
    get.truncate(n);

    let expected = format!(
        "{{\"access_token\":\"{TOKEN}\",\"refresh_token\":\"\",\"expires_in\":\"3599\",\"expires_on\":\"{}\",\"not_before\":\"{}\",\"resource\":\"{RESOURCE}\",\"token_type\":\"Bearer\"}}",
        NOW + 3599,
        NOW - 300
    );
    for request in [post.into_bytes(), get] {
        let mut first: Option<Vec<u8>> = None;
        for cut in 0..=request.len() {
            let (r, out) = relay_split(&relay, &request, cut, None);
            assert_eq!((r.status, r.outcome), (200, Outcome::Relayed));
            match &first {
                Some(f) => assert_eq!(f, &out, "same answer whatever the split"),
                None => first = Some(out),
            }
        }
        let response = first.unwrap();
        for cut in 0..=response.len() {
            let (head, body) = read_split(&response, cut);
            assert_eq!(head.status, 200);
            assert_eq!(
                std::str::from_utf8(&body).unwrap(),
                expected,
                "the legacy shape, §2.3"
            );
            let mut scratch = [0u8; 64];
            let token = Token::parse(&body, &mut scratch).unwrap();
            assert_eq!(token.access_token.expose(), TOKEN);
            assert_eq!(token.client_id, None);
            assert_eq!(token.expires_on, Some(NOW + 3599));
        }
    }
}

#[test]
fn upstream_errors_keep_status_and_text() {
    let relay = relay();
    let request = get(&format!("{TARGET}&client_id={}", UA_CLIENT[0]), MD).into_bytes();
    let cases = [
        (
            Fault {
                status: 400,
                error: "invalid_request",
                description: Some("Identity not found"),
                retry_after: None,
            },
            None,
        ),
        (
            Fault {
                status: 429,
                error: "too_many_requests",
                description: Some("slow \"down\""),
                retry_after: Some(7),
            },
            Some(7),
        ),
        (
            Fault {
                status: 503,
                error: "service_unavailable",
                description: Some("IMDS unreachable"),
                retry_after: None,
            },
            Some(1),
        ),
        (
            Fault {
                status: 500,
                error: "server_error",
                description: None,
                retry_after: None,
            },
            None,
        ),
        (
            Fault {
                status: 1000,
                error: "weird",
                description: Some("out of range"),
                retry_after: None,
            },
            None,
        ),
    ];
    for (fault, retry_after) in cases {
        for cut in [0, request.len() / 2, request.len()] {
            let (r, out) = relay_split(&relay, &request, cut, Some(&fault));
            let want_status = if fault.status > 999 {
                500
            } else {
                fault.status
            };
            assert_eq!(
                (r.status, r.outcome, r.keep_alive),
                (want_status, Outcome::Upstream, true)
            );
            let (status, error, description, ra, _) = parse_error(&out);
            assert_eq!(status, want_status);
            assert_eq!(error, fault.error);
            assert_eq!(description.as_deref(), fault.description);
            assert_eq!(ra, retry_after.map(RetryAfter::Seconds));
        }
    }
}

#[test]
fn pipelined_requests_and_small_buffers() {
    let relay = relay();
    let one = get(TARGET, MD);
    let two = get(
        &format!("{TARGET}&object_id=x"),
        "Metadata: true\r\nConnection: close\r\n",
    );
    let mut input = format!("{one}{two}").into_bytes();
    let mut conn = relay.connection();
    let mut work = vec![0u8; 1024];
    let mut out = vec![0u8; 64];
    // First: relayed; a too-small output buffer is reported, then the answer fits.
    let reply = match relay
        .handle(&mut conn, &mut input, &mut work, &mut out)
        .unwrap()
    {
        Relayed::Relay(r) => r.reply,
        other => panic!("{other:?}"),
    };
    let token = token_json(RESOURCE);
    let Err(HandleError::OutputTooSmall { required }) = relay.write_token(&reply, &token, &mut out)
    else {
        panic!("64 bytes cannot hold the answer");
    };
    let mut out = vec![0u8; required];
    let first = relay.write_token(&reply, &token, &mut out).unwrap();
    assert!(first.keep_alive);
    input.drain(..reply.consumed());
    // Second: the next request in the same buffer.
    let mut work = vec![0u8; 1024];
    let Relayed::Relay(second) = relay
        .handle(&mut conn, &mut input, &mut work, &mut out)
        .unwrap()
    else {
        panic!("second request");
    };
    assert_eq!(second.selector, Selector::ObjectId("x"));
    assert_eq!(second.reply.consumed(), input.len());
    assert!(!second.reply.keep_alive());
    // A work buffer too small for the parameters: the server's 400, not a panic.
    let (relayed, bytes) = run(&relay, one.as_bytes(), 8);
    assert!(relayed.is_ok());
    assert_eq!(
        parse_error(&bytes).2.as_deref(),
        Some("Query parameters are too long")
    );
}

#[test]
fn resource_id_spellings_and_request_writer_agree() {
    // The core client's `msi_res_id` / `mi_res_id` both arrive as `Selector::ResourceId`.
    let relay = relay();
    for param in [ResIdParam::MsiResId, ResIdParam::MiResId] {
        let mut req = TokenRequest::new(RESOURCE);
        req.selector = Some(ClientSelector::ResourceId {
            id: UA_RES[2],
            param,
        });
        let mut bytes = vec![0u8; 1024];
        let n = req.write(&Endpoint::Extension, &mut bytes).unwrap();
        let (resource, selector, ..) = relayed_fields(&relay, &bytes[..n]);
        assert_eq!(
            (resource.as_str(), selector),
            (RESOURCE, format!("res_id={}", UA_RES[2]))
        );
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    let relay = relay();
    let seeds: [&[u8]; 5] = [
        b"GET /oauth2/token?resource=r HTTP/1.1\r\nMetadata: true\r\n\r\n",
        b"POST /oauth2/token HTTP/1.1\r\nMetadata: true\r\nContent-Length: 10\r\n\r\nresource=r",
        b"GET http://[::1/oauth2/token HTTP/1.1\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET http://a@b/oauth2/token HTTP/1.1\r\n\r\n",
    ];
    for seed in seeds {
        for i in 0..seed.len() {
            for byte in [0u8, b'\r', b'\n', b' ', b'%', b':', b'[', b']', 0xff] {
                let mut bytes = seed.to_vec();
                bytes[i] = byte;
                for cut in [1, bytes.len() / 2, bytes.len()] {
                    let mut conn = relay.connection();
                    let mut input = bytes[..cut].to_vec();
                    let (mut work, mut out) = (vec![0u8; 64], vec![0u8; 1024]);
                    let _ = relay.handle(&mut conn, &mut input, &mut work, &mut out);
                }
            }
        }
    }
}
