//! Response head + body (`ResponseParser`, `BodyDecoder`, `ResponseReader`).
//!
//! Input: a split byte, then the bytes a server sends. Properties:
//! - `ResponseReader` gives the same answer (response, length, body, or error) whether the
//!   bytes arrive whole or in the reads the split byte chooses, and likewise at EOF;
//! - a complete response never claims more bytes than were fed, and its body range lies inside
//!   them;
//! - the in-place chunked decoder never touches bytes it has not consumed;
//! - `ResponseParser` gives the same head whole and split; an HTTP/1.0 or 1.1 head it accepts,
//!   httparse (a more lenient peer) accepts too, with the same length, status and header fields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mitoken_core::http::{
    BodyDecoder, Framing, HttpError, Limits, Response, ResponseParser, ResponseReader, Status,
};
use mitoken_fuzz::{cuts, split_byte};

/// Small limits so the fuzzer reaches them.
const LIMITS: Limits = Limits::DEFAULT
    .with_max_line_len(256)
    .with_max_headers(16)
    .with_max_body(2048);

#[derive(Debug, PartialEq, Eq)]
enum Read {
    Complete(Response, usize, Vec<u8>),
    /// Completed only by `finish_eof`.
    AtEof(Response, usize, Vec<u8>),
    Failed(HttpError),
    EofFailed(HttpError),
}

fn read(wire: &[u8], cuts: &[usize]) -> Read {
    let mut buf = vec![0u8; wire.len()];
    let mut reader = ResponseReader::new(LIMITS);
    let mut filled = 0;
    for &cut in cuts {
        buf[filled..cut].copy_from_slice(&wire[filled..cut]);
        filled = cut;
        match reader.feed(&mut buf, filled) {
            Ok(Status::Partial) => {}
            Ok(Status::Complete { value, len }) => {
                assert!(len <= filled, "claims {len} of {filled} bytes");
                let range = value.body_range();
                assert!(value.head_start < range.start);
                assert!(range.end <= len, "body {range:?} past the response ({len})");
                // Bytes after the response are untouched (pipelining).
                assert_eq!(&buf[len..filled], &wire[len..filled]);
                assert!(reader.is_complete());
                assert!(reader.head(&buf).is_some());
                return Read::Complete(value, len, value.body(&buf).to_vec());
            }
            Err(e) => return Read::Failed(e),
        }
    }
    match reader.finish_eof(&mut buf, filled) {
        Ok((value, len)) => {
            assert!(len <= filled);
            assert!(value.body_range().end <= len);
            assert_eq!(
                value.framing,
                Framing::UntilClose,
                "only until-close ends at EOF"
            );
            Read::AtEof(value, len, value.body(&buf).to_vec())
        }
        Err(e) => Read::EofFailed(e),
    }
}

type Fields = Vec<(String, Vec<u8>)>;
/// Status, minor version, framing, header fields and length of a completed head.
type Head = (u16, u8, Framing, Fields, usize);

fn head(wire: &[u8], cuts: &[usize]) -> Option<Result<Head, HttpError>> {
    let mut parser = ResponseParser::new(LIMITS);
    for &cut in cuts {
        match parser.parse(&wire[..cut]) {
            Ok(Status::Partial) => {}
            Ok(Status::Complete { value, len }) => {
                assert!(len <= cut);
                let fields = value
                    .headers
                    .iter()
                    .map(|h| (h.name.to_owned(), h.value.to_vec()))
                    .collect();
                return Some(Ok((
                    value.status,
                    value.minor_version,
                    value.framing,
                    fields,
                    len,
                )));
            }
            Err(e) => return Some(Err(e)),
        }
    }
    None
}

/// Decodes a body after a complete head, checking that unconsumed bytes stay untouched.
fn body_untouched(framing: Framing, wire: &[u8], cuts: &[usize]) {
    let mut buf = wire.to_vec();
    let mut dec = BodyDecoder::new(framing, LIMITS);
    for &cut in cuts {
        match dec.decode(&mut buf[..cut]) {
            Ok(Status::Partial) => {
                let at = dec.consumed();
                assert!(at <= cut && dec.decoded_len() <= at);
                assert_eq!(
                    &buf[at..],
                    &wire[at..],
                    "decoder wrote past what it consumed"
                );
            }
            Ok(Status::Complete { value, len }) => {
                assert!(value <= len && len <= cut);
                assert_eq!(&buf[len..], &wire[len..]);
                return;
            }
            Err(_) => return,
        }
    }
}

fn httparse_agrees(wire: &[u8], status: u16, fields: &Fields, len: usize) {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(&wire[..len]) {
        Ok(httparse::Status::Complete(n)) => {
            assert_eq!(n, len, "head length differs from httparse");
            assert_eq!(resp.code, Some(status));
            let theirs: Fields = resp
                .headers
                .iter()
                .map(|h| (h.name.to_owned(), h.value.to_vec()))
                .collect();
            assert_eq!(&theirs, fields, "header fields differ from httparse");
        }
        other => panic!("we accepted a head httparse refuses: {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((seed, wire)) = split_byte(data) else {
        return;
    };
    let split = cuts(seed, wire.len());
    let whole = [wire.len()];

    let a = read(wire, &whole);
    let b = read(wire, &split);
    assert_eq!(a, b, "whole vs split reads differ");

    let ha = head(wire, &whole);
    let hb = head(wire, &split);
    assert_eq!(ha, hb, "whole vs split heads differ");
    if let Some(Ok((status, minor, framing, fields, len))) = ha {
        // HTTP/1.2+ is read as 1.1 (RFC 9112 §2.3); httparse refuses it.
        if minor <= 1 {
            httparse_agrees(wire, status, &fields, len);
        }
        let rest = &wire[len..];
        body_untouched(framing, rest, &cuts(seed.rotate_left(3), rest.len()));
    }
});
