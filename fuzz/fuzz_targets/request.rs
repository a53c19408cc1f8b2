//! Request head + body (`RequestParser`, `BodyDecoder`), pipelined, as a server reads them.
//!
//! Input: a split byte, then the bytes a client sends. Properties:
//! - the sequence of requests parsed (method, target, version, header fields, framing,
//!   keep-alive, decoded body), and the error that ends it, is the same whether the bytes
//!   arrive whole or in the reads the split byte chooses;
//! - no head or body claims more bytes than were fed;
//! - a request the client writer can reproduce round-trips: its `resource`, selector and
//!   `api-version`, re-written by `TokenRequest::write`, parse back to the same decoded values
//!   at the same path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mitoken_core::http::{BodyDecoder, Framing, HttpError, Limits, RequestParser, Status};
use mitoken_core::query::{Pairs, Plus, decode_into};
use mitoken_core::request::{Endpoint, ResIdParam, Selector, Style, TokenRequest};
use mitoken_fuzz::{cuts, split_byte};

const LIMITS: Limits = Limits::DEFAULT
    .with_max_line_len(512)
    .with_max_headers(16)
    .with_max_body(2048);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Req {
    method: String,
    authority: Option<String>,
    path: String,
    query: Option<String>,
    minor: u8,
    fields: Vec<(String, Vec<u8>)>,
    framing: Framing,
    keep_alive: bool,
    body: Vec<u8>,
}

/// Parses pipelined requests from `wire`, growing the visible bytes at `cuts`.
fn parse_all(wire: &[u8], cuts: &[usize]) -> (Vec<Req>, Option<HttpError>) {
    let mut buf = wire.to_vec();
    let mut start = 0usize;
    let mut parser = RequestParser::new(LIMITS);
    let mut body: Option<(Req, usize, BodyDecoder)> = None;
    let mut done = Vec::new();
    for &cut in cuts {
        loop {
            if body.is_none() {
                let region = &buf[start..cut];
                match parser.parse(region) {
                    Ok(Status::Partial) => break,
                    Ok(Status::Complete { value: h, len }) => {
                        assert!(len <= region.len(), "head claims {len} of {}", region.len());
                        let req = Req {
                            method: h.method.as_str().to_owned(),
                            authority: h.target.authority.map(str::to_owned),
                            path: h.target.path.to_owned(),
                            query: h.target.query.map(str::to_owned),
                            minor: h.minor_version,
                            fields: h
                                .headers
                                .iter()
                                .map(|f| (f.name.to_owned(), f.value.to_vec()))
                                .collect(),
                            framing: h.framing,
                            keep_alive: h.keep_alive,
                            body: Vec::new(),
                        };
                        assert!(matches!(
                            req.framing,
                            Framing::None | Framing::Length(_) | Framing::Chunked
                        ));
                        body = Some((req, start + len, BodyDecoder::new(h.framing, LIMITS)));
                    }
                    Err(e) => return (done, Some(e)),
                }
            }
            let Some((req, at, dec)) = body.as_mut() else {
                unreachable!()
            };
            let region = &mut buf[*at..cut];
            let avail = region.len();
            match dec.decode(region) {
                Ok(Status::Partial) => break,
                Ok(Status::Complete { value, len }) => {
                    assert!(value <= len && len <= avail);
                    req.body = buf[*at..*at + value].to_vec();
                    start = *at + len;
                    let (req, _, _) = body.take().expect("body in progress");
                    done.push(req);
                    parser.reset();
                }
                Err(e) => return (done, Some(e)),
            }
        }
    }
    (done, None)
}

fn decoded(raw: &[u8]) -> Option<String> {
    let mut out = vec![0u8; raw.len()];
    decode_into(raw, &mut out, Plus::Space)
        .ok()
        .map(str::to_owned)
}

/// The decoded `(name, value)` pairs of a query, or `None` if one does not decode.
fn params(query: &str) -> Option<Vec<(String, String)>> {
    Pairs::new(query)
        .map(|(k, v)| Some((decoded(k)?, decoded(v)?)))
        .collect()
}

fn get<'p>(params: &'p [(String, String)], name: &str) -> Option<&'p str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Re-writes a token request with the client writer and checks it parses back the same.
fn round_trip(req: &Req) {
    let Some(query) = &req.query else { return };
    let Some(ps) = params(query) else { return };
    let Some(resource) = get(&ps, "resource") else {
        return;
    };
    let selector = if let Some(v) = get(&ps, "client_id") {
        Some(Selector::ClientId(v))
    } else if let Some(v) = get(&ps, "object_id") {
        Some(Selector::ObjectId(v))
    } else {
        get(&ps, "msi_res_id").map(|id| Selector::ResourceId {
            id,
            param: ResIdParam::MsiResId,
        })
    };
    let mut tr = TokenRequest::new(resource);
    tr.selector = selector;
    if let Some(v) = get(&ps, "api-version") {
        tr.api_version = v;
    }
    let endpoint = Endpoint::Custom {
        host: "fuzz.example",
        port: 8080,
        path: &req.path,
        style: Style::Imds,
    };
    let mut out = vec![0u8; 4096];
    let Ok(n) = tr.write(&endpoint, &mut out) else {
        return;
    };
    let mut parser = RequestParser::default();
    let Ok(Status::Complete { value: h, len }) = parser.parse(&out[..n]) else {
        panic!(
            "client wrote a request our parser refuses: {:?}",
            String::from_utf8_lossy(&out[..n])
        );
    };
    assert_eq!(len, n);
    assert_eq!(h.method.as_str(), "GET");
    assert_eq!(h.target.path, req.path);
    assert_eq!(h.framing, Framing::None);
    assert_eq!(h.headers.get("Host"), Some(&b"fuzz.example:8080"[..]));
    let back = params(h.target.query.expect("a query")).expect("written query decodes");
    assert_eq!(get(&back, "resource"), Some(resource));
    assert_eq!(get(&back, "api-version"), Some(tr.api_version));
    if let Some(sel) = selector {
        assert_eq!(get(&back, sel.param()), Some(sel.value()));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((seed, wire)) = split_byte(data) else {
        return;
    };
    let whole = parse_all(wire, &[wire.len()]);
    let split = parse_all(wire, &cuts(seed, wire.len()));
    assert_eq!(whole, split, "whole vs split parses differ");
    for req in &whole.0 {
        round_trip(req);
    }
});
