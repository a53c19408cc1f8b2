//! Shared helpers for the `http_*` integration tests: whole-buffer and incremental drivers
//! that reduce a parse to a comparable owned summary.
#![allow(dead_code)]

use mitoken_core::http::{
    BodyDecoder, Framing, HttpError, Limits, Method, RequestParser, ResponseReader, RetryAfter,
    Status,
};

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/", $name))
    };
}

pub const TOKEN: &[u8] = fixture!("imds-token-response.http");
pub const TOKEN_CHUNKED: &[u8] = fixture!("imds-token-response-chunked.http");
pub const ERROR_400: &[u8] = fixture!("imds-error-400.http");
pub const ERROR_400_NO_METADATA: &[u8] = fixture!("imds-error-400-no-metadata.http");
pub const ERROR_429: &[u8] = fixture!("imds-error-429.http");
pub const TOKEN_BODY: &[u8] = fixture!("imds-token-body.json");

pub const FIXTURES: [(&str, &[u8]); 5] = [
    ("imds-token-response.http", TOKEN),
    ("imds-token-response-chunked.http", TOKEN_CHUNKED),
    ("imds-error-400.http", ERROR_400),
    ("imds-error-400-no-metadata.http", ERROR_400_NO_METADATA),
    ("imds-error-429.http", ERROR_429),
];

/// Owned summary of a complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Res {
    pub status: u16,
    pub minor: u8,
    pub reason: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub framing: Framing,
    pub keep_alive: bool,
    pub retry_after: Option<RetryAfter>,
    pub body: Vec<u8>,
    /// Bytes the response took.
    pub len: usize,
}

fn summarize(
    reader: &ResponseReader,
    buf: &[u8],
    resp: mitoken_core::http::Response,
    len: usize,
) -> Res {
    let head = reader.head(buf).expect("head available once complete");
    Res {
        status: resp.status,
        minor: resp.minor_version,
        reason: head.reason.to_vec(),
        headers: head
            .headers
            .iter()
            .map(|h| (h.name.to_owned(), h.value.to_vec()))
            .collect(),
        framing: resp.framing,
        keep_alive: resp.keep_alive,
        retry_after: resp.retry_after,
        body: resp.body(buf).to_vec(),
        len,
    }
}

/// Reads a response with the bytes arriving in pieces ending at each of `cuts` (ascending),
/// then the whole input, then EOF. Checks on the way that a partial read never alters the
/// head bytes nor any byte it has not consumed yet.
pub fn read_cuts(input: &[u8], cuts: &[usize], limits: Limits) -> Result<Res, HttpError> {
    let mut buf = vec![0u8; input.len()];
    let mut reader = ResponseReader::new(limits);
    let mut filled = 0;
    for &cut in cuts.iter().chain(core::iter::once(&input.len())) {
        let cut = cut.min(input.len()).max(filled);
        buf[filled..cut].copy_from_slice(&input[filled..cut]);
        filled = cut;
        match reader.feed(&mut buf, filled)? {
            Status::Complete { value, len } => {
                assert!(len <= filled);
                assert_eq!(
                    &buf[len..filled],
                    &input[len..filled],
                    "bytes after the response altered"
                );
                return Ok(summarize(&reader, &buf, value, len));
            }
            Status::Partial => {
                // The head stays intact while the body is decoded in place.
                if let Some(head) = reader.head(&buf) {
                    let end = head.headers.as_bytes().as_ptr() as usize - buf.as_ptr() as usize;
                    assert_eq!(&buf[..end], &input[..end], "head bytes altered");
                }
            }
        }
    }
    let (value, len) = reader.finish_eof(&mut buf, filled)?;
    Ok(summarize(&reader, &buf, value, len))
}

pub fn read_whole(input: &[u8], limits: Limits) -> Result<Res, HttpError> {
    read_cuts(input, &[], limits)
}

pub fn read_bytewise(input: &[u8], limits: Limits) -> Result<Res, HttpError> {
    let cuts: Vec<usize> = (0..=input.len()).collect();
    read_cuts(input, &cuts, limits)
}

/// Asserts that byte-wise feeding and every two-piece split give the whole-buffer result.
pub fn assert_split_invariant(input: &[u8], limits: Limits) -> Result<Res, HttpError> {
    let whole = read_whole(input, limits);
    assert_eq!(
        read_bytewise(input, limits),
        whole,
        "byte-wise feeding differs"
    );
    for k in 0..=input.len() {
        assert_eq!(
            read_cuts(input, &[k], limits),
            whole,
            "split at {k} differs"
        );
    }
    whole
}

/// Owned summary of a request (head and body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Req {
    pub method: String,
    pub is_get: bool,
    pub authority: Option<String>,
    pub path: String,
    pub query: Option<String>,
    pub minor: u8,
    pub headers: Vec<(String, Vec<u8>)>,
    pub framing: Framing,
    pub keep_alive: bool,
    pub head_len: usize,
    pub body: Vec<u8>,
    /// Bytes head and body took.
    pub len: usize,
}

/// Parses every request in `input` (pipelined), the bytes arriving in pieces ending at `cuts`.
/// Stops at the first error or at an incomplete request at the end (`Ok(None)` last).
pub fn requests_cuts(
    input: &[u8],
    cuts: &[usize],
    limits: Limits,
) -> Vec<Result<Option<Req>, HttpError>> {
    let mut buf = vec![0u8; input.len()];
    let mut out = Vec::new();
    let mut filled = 0;
    let mut start = 0; // start of the current request
    let mut parser = RequestParser::new(limits);
    let mut body: Option<(BodyDecoder, Req)> = None;
    let mut cuts: Vec<usize> = cuts.iter().copied().filter(|&c| c <= input.len()).collect();
    cuts.push(input.len());
    for cut in cuts {
        let cut = cut.max(filled);
        buf[filled..cut].copy_from_slice(&input[filled..cut]);
        filled = cut;
        loop {
            if start == filled && body.is_none() {
                break;
            }
            if let Some((dec, mut req)) = body.take() {
                let mut dec = dec;
                let region = &mut buf[start + req.head_len..filled];
                match dec.decode(region) {
                    Err(e) => {
                        out.push(Err(e));
                        return out;
                    }
                    Ok(Status::Partial) => {
                        let c = dec.consumed();
                        assert_eq!(
                            &buf[start + req.head_len + c..filled],
                            &input[start + req.head_len + c..filled],
                            "unconsumed bytes altered"
                        );
                        body = Some((dec, req));
                        break;
                    }
                    Ok(Status::Complete { value, len }) => {
                        let b0 = start + req.head_len;
                        req.body = buf[b0..b0 + value].to_vec();
                        req.len = req.head_len + len;
                        assert_eq!(&buf[b0 + len..filled], &input[b0 + len..filled]);
                        start += req.len;
                        out.push(Ok(Some(req)));
                        parser.reset();
                        continue;
                    }
                }
            }
            match parser.parse(&buf[start..filled]) {
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
                Ok(Status::Partial) => break,
                Ok(Status::Complete { value: h, len }) => {
                    let req = Req {
                        method: h.method.as_str().to_owned(),
                        is_get: h.method == Method::Get,
                        authority: h.target.authority.map(str::to_owned),
                        path: h.target.path.to_owned(),
                        query: h.target.query.map(str::to_owned),
                        minor: h.minor_version,
                        headers: h
                            .headers
                            .iter()
                            .map(|f| (f.name.to_owned(), f.value.to_vec()))
                            .collect(),
                        framing: h.framing,
                        keep_alive: h.keep_alive,
                        head_len: len,
                        body: Vec::new(),
                        len: 0,
                    };
                    body = Some((BodyDecoder::new(h.framing, limits), req));
                }
            }
        }
    }
    if start < filled || body.is_some() {
        out.push(Ok(None));
    }
    out
}

pub fn requests_whole(input: &[u8], limits: Limits) -> Vec<Result<Option<Req>, HttpError>> {
    requests_cuts(input, &[], limits)
}

/// Asserts byte-wise and two-piece feeding agree with the whole-buffer parse.
pub fn assert_requests_split_invariant(
    input: &[u8],
    limits: Limits,
) -> Vec<Result<Option<Req>, HttpError>> {
    let whole = requests_whole(input, limits);
    let cuts: Vec<usize> = (0..=input.len()).collect();
    assert_eq!(
        requests_cuts(input, &cuts, limits),
        whole,
        "byte-wise feeding differs"
    );
    for k in 0..=input.len() {
        assert_eq!(
            requests_cuts(input, &[k], limits),
            whole,
            "split at {k} differs"
        );
    }
    whole
}
