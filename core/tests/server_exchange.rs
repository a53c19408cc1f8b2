//! Deterministic in-process exchanges: the core's client pieces (request writer, response
//! reader, token / error parsers) and the core server talk through memory buffers — no sockets,
//! no sleeps, a fixed clock — with reads split at every byte on both sides.

mod server_common;

use mitoken_core::http::{Limits, ResponseReader, RetryAfter, Status};
use mitoken_core::identity::{Flavor, IdentityTable};
use mitoken_core::request::{Connection, Endpoint, Selector as ClientSelector, TokenRequest};
use mitoken_core::server::{Config, Handled, Outcome, Response, Server, ServerConnection};
use mitoken_core::token::{ServiceError, Token};
use server_common::{Mode, NOW, SAMI_UA2, TENANT, TestIssuer, UA_CLIENT, table};

const RESOURCE: &str = "https://vault.azure.net";

fn new_server<'s>(
    flavor: Flavor,
    t: &'s IdentityTable<&'static str, 8>,
    work: &'s mut Vec<u8>,
) -> Server<'s, 's, &'static str, 8> {
    work.resize(16 * 1024, 0);
    Server::new(t, Config::new(flavor).with_tenant_id(TENANT), work)
}

/// Feeds `bytes` to the server `k` bytes at a time growing (every prefix), expecting `Partial`
/// until the whole request is there.
fn serve_split<'s>(
    server: &mut Server<'_, 's, &'static str, 8>,
    bytes: &[u8],
    cut: usize,
    issuer: &mut TestIssuer,
) -> (Response<'s>, Vec<u8>) {
    let mut conn = server.connection();
    let mut out = vec![0u8; 8192];
    let mut buf = bytes[..cut].to_vec();
    if cut < bytes.len() {
        let h = server
            .handle(&mut conn, &mut buf, NOW, issuer, &mut out)
            .unwrap();
        assert_eq!(h, Handled::Partial, "prefix of {cut} bytes");
        buf.extend_from_slice(&bytes[cut..]);
    }
    let Handled::Response(r) = server
        .handle(&mut conn, &mut buf, NOW, issuer, &mut out)
        .unwrap()
    else {
        panic!("complete request after cut {cut}");
    };
    out.truncate(r.len);
    (r, out)
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

#[test]
fn imds_token_split_at_every_byte() {
    let t = table(Flavor::Imds, SAMI_UA2);
    let mut work = Vec::new();
    let mut server = new_server(Flavor::Imds, &t, &mut work);
    let mut req = TokenRequest::new(RESOURCE);
    req.selector = Some(ClientSelector::ClientId(UA_CLIENT[1]));
    req.connection = Connection::KeepAlive;
    let mut bytes = vec![0u8; 1024];
    let n = req.write(&Endpoint::Imds, &mut bytes).unwrap();
    bytes.truncate(n);

    let mut first: Option<Vec<u8>> = None;
    for cut in 0..=n {
        let mut issuer = TestIssuer::new(Mode::Ok);
        let (r, out) = serve_split(&mut server, &bytes, cut, &mut issuer);
        assert_eq!(r.consumed, n);
        assert!(r.keep_alive);
        assert!(matches!(r.outcome, Outcome::Token { .. }));
        assert_eq!(issuer.calls.len(), 1, "issuer called once per request");
        match &first {
            Some(f) => assert_eq!(f, &out, "same answer whatever the split"),
            None => first = Some(out),
        }
    }
    let response = first.unwrap();
    for cut in 0..=response.len() {
        let (head, body) = read_split(&response, cut);
        assert_eq!(head.status, 200);
        assert!(head.keep_alive);
        let mut scratch = [0u8; 64];
        let token = Token::parse(&body, &mut scratch).unwrap();
        assert_eq!(token.access_token.expose(), "eyJ0eXAiOiJKV1QifQ.tok-2.sig");
        assert_eq!(token.client_id, Some(UA_CLIENT[1]));
        assert_eq!(token.resource, RESOURCE);
        assert_eq!(token.token_type, "Bearer");
        assert_eq!(token.expires_in, Some(86_400));
        assert_eq!(token.expires_on, Some(NOW + 86_400));
        assert_eq!(token.not_before, Some(NOW - 300));
        assert_eq!(token.ext_expires_in, Some(86_399));
    }
}

#[test]
#[allow(clippy::many_single_char_names)]
fn extension_post_chunked_split_at_every_byte() {
    let t = table(Flavor::Extension, SAMI_UA2);
    let mut work = Vec::new();
    let mut server = new_server(Flavor::Extension, &t, &mut work);
    let form = format!(
        "resource=https%3A%2F%2Fvault.azure.net&client_id={}",
        UA_CLIENT[0]
    );
    let (a, b) = form.split_at(10);
    let bytes = format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: localhost:50342\r\nMetadata: true\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    )
    .into_bytes();
    let mut first: Option<Vec<u8>> = None;
    for cut in 0..=bytes.len() {
        let mut issuer = TestIssuer::new(Mode::Ok);
        let (r, out) = serve_split(&mut server, &bytes, cut, &mut issuer);
        assert_eq!(r.consumed, bytes.len());
        assert_eq!(issuer.calls.len(), 1);
        assert_eq!(issuer.calls[0].1, RESOURCE);
        match &first {
            Some(f) => assert_eq!(f, &out),
            None => first = Some(out),
        }
    }
    let (head, body) = read_split(&first.unwrap(), 0);
    assert_eq!(head.status, 200);
    let mut scratch = [0u8; 64];
    let token = Token::parse(&body, &mut scratch).unwrap();
    assert_eq!(
        token.client_id, None,
        "the extension shape has no client_id"
    );
    assert_eq!(token.refresh_token.map(|s| s.len()), Some(0));
    assert_eq!(token.ext_expires_in, None);
}

#[test]
fn pipelined_keep_alive_requests() {
    let t = table(Flavor::Imds, SAMI_UA2);
    let mut work = Vec::new();
    let mut server = new_server(Flavor::Imds, &t, &mut work);
    let mut stream = Vec::new();
    for (i, sel) in [
        None,
        Some(ClientSelector::ClientId(UA_CLIENT[0])),
        Some(ClientSelector::ClientId(
            "00000000-0000-0000-0000-000000000000",
        )),
    ]
    .into_iter()
    .enumerate()
    {
        let mut req = TokenRequest::new(RESOURCE);
        req.selector = sel;
        req.connection = if i == 2 {
            Connection::Close
        } else {
            Connection::KeepAlive
        };
        let mut b = vec![0u8; 1024];
        let n = req.write(&Endpoint::Imds, &mut b).unwrap();
        stream.extend_from_slice(&b[..n]);
    }
    let mut conn = ServerConnection::new(Limits::DEFAULT);
    let mut issuer = TestIssuer::new(Mode::Ok);
    let mut out = vec![0u8; 8192];
    let mut statuses = Vec::new();
    let mut rest = stream.clone();
    loop {
        let Handled::Response(r) = server
            .handle(&mut conn, &mut rest, NOW, &mut issuer, &mut out)
            .unwrap()
        else {
            panic!("pipelined request incomplete");
        };
        let (head, body) = read_split(&out[..r.len], r.len);
        statuses.push(head.status);
        if head.status != 200 {
            let mut scratch = [0u8; 64];
            let e = ServiceError::parse(head.status, None, &body, &mut scratch).unwrap();
            assert_eq!(e.error, "invalid_request");
            assert_eq!(e.description, Some("Identity not found"));
        }
        rest.drain(..r.consumed);
        if !r.keep_alive {
            break;
        }
    }
    assert_eq!(statuses, [200, 200, 400]);
    assert!(rest.is_empty());
    assert_eq!(issuer.calls.len(), 2);
}

#[test]
fn throttled_answer_reaches_the_client() {
    let t = table(Flavor::Imds, SAMI_UA2);
    let mut work = Vec::new();
    let mut server = new_server(Flavor::Imds, &t, &mut work);
    let mut bytes = vec![0u8; 1024];
    let n = TokenRequest::new(RESOURCE)
        .write(&Endpoint::Imds, &mut bytes)
        .unwrap();
    bytes.truncate(n);
    let (r, out) = serve_split(
        &mut server,
        &bytes,
        n,
        &mut TestIssuer::new(Mode::Throttled(Some(9))),
    );
    assert_eq!(r.status, 429);
    assert!(!r.keep_alive, "the client asked for Connection: close");
    let (head, body) = read_split(&out, out.len() / 2);
    assert_eq!(head.retry_after, Some(RetryAfter::Seconds(9)));
    let mut scratch = [0u8; 64];
    let e = ServiceError::parse(429, Some(9), &body, &mut scratch).unwrap();
    assert_eq!(e.error, "too_many_requests");
}

#[test]
fn small_buffers_report_what_they_need() {
    let t = table(Flavor::Imds, SAMI_UA2);
    let mut bytes = vec![0u8; 1024];
    let n = TokenRequest::new(RESOURCE)
        .write(&Endpoint::Imds, &mut bytes)
        .unwrap();
    bytes.truncate(n);
    // Output too small: nothing consumed, the exact size is reported, a retry succeeds.
    let mut work = vec![0u8; 16 * 1024];
    let mut server = Server::new(&t, Config::new(Flavor::Imds), &mut work);
    let mut conn = server.connection();
    let mut out = vec![0u8; 40];
    let err = server
        .handle(
            &mut conn,
            &mut bytes,
            NOW,
            &mut TestIssuer::new(Mode::Ok),
            &mut out,
        )
        .unwrap_err();
    let mitoken_core::server::HandleError::OutputTooSmall { required } = err else {
        panic!("{err:?}")
    };
    let mut out = vec![0u8; required];
    let Handled::Response(r) = server
        .handle(
            &mut conn,
            &mut bytes,
            NOW,
            &mut TestIssuer::new(Mode::Ok),
            &mut out,
        )
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(r.status, 200);
    assert!(r.len <= required);
    // Work buffer too small for the token.
    let mut work = vec![0u8; 60];
    let mut server = Server::new(&t, Config::new(Flavor::Imds), &mut work);
    let mut conn = server.connection();
    let mut out = vec![0u8; 8192];
    let err = server
        .handle(
            &mut conn,
            &mut bytes,
            NOW,
            &mut TestIssuer::new(Mode::Ok),
            &mut out,
        )
        .unwrap_err();
    assert!(
        matches!(err, mitoken_core::server::HandleError::WorkTooSmall { .. }),
        "{err:?}"
    );
}

#[test]
fn malformed_and_oversized_requests_close() {
    let t = table(Flavor::Imds, SAMI_UA2);
    let mut work = Vec::new();
    let mut server = new_server(Flavor::Imds, &t, &mut work);
    let cases: [(Vec<u8>, u16); 4] = [
        (b"GARBAGE\r\n\r\n".to_vec(), 400),
        (
            b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
            400,
        ),
        (
            format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000)).into_bytes(),
            431,
        ),
        (
            format!(
                "POST /oauth2/token HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
                1 << 20
            )
            .into_bytes(),
            413,
        ),
    ];
    for (bytes, status) in cases {
        let mut conn = server.connection();
        let mut out = vec![0u8; 4096];
        let mut buf = bytes.clone();
        let Handled::Response(r) = server
            .handle(
                &mut conn,
                &mut buf,
                NOW,
                &mut TestIssuer::new(Mode::Ok),
                &mut out,
            )
            .unwrap()
        else {
            panic!(
                "{:?}",
                String::from_utf8_lossy(&bytes[..40.min(bytes.len())])
            )
        };
        assert_eq!(r.status, status);
        assert!(!r.keep_alive);
        let (head, _) = read_split(&out[..r.len], r.len);
        assert!(!head.keep_alive, "Connection: close is sent");
    }
}

#[test]
fn issuer_can_close_without_answering() {
    let t = table(Flavor::Imds, SAMI_UA2);
    let mut work = Vec::new();
    let mut server = new_server(Flavor::Imds, &t, &mut work);
    let mut bytes = vec![0u8; 1024];
    let n = TokenRequest::new(RESOURCE)
        .write(&Endpoint::Imds, &mut bytes)
        .unwrap();
    bytes.truncate(n);
    let (r, out) = serve_split(&mut server, &bytes, n, &mut TestIssuer::new(Mode::Close));
    assert!(out.is_empty());
    assert_eq!(
        (r.len, r.status, r.keep_alive, r.consumed),
        (0, 0, false, n)
    );
    assert!(matches!(r.outcome, Outcome::Closed { .. }));
}
