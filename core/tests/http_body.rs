//! Body decoding: in-place chunked decoding, resumption, limits, EOF handling.

mod http_support;

use http_support::*;
use mitoken_core::http::{BodyDecoder, Framing, HttpError, Limits, ResponseParser, Status};

/// The bytes after the head of the chunked fixture.
fn chunked_body_region() -> &'static [u8] {
    let mut p = ResponseParser::default();
    let Ok(Status::Complete { len, .. }) = p.parse(TOKEN_CHUNKED) else {
        panic!()
    };
    &TOKEN_CHUNKED[len..]
}

/// Feeds `raw` in pieces ending at `cuts`, checking after every partial step that the decoded
/// prefix is right and that no unconsumed byte was touched.
fn decode_cuts(
    framing: Framing,
    raw: &[u8],
    expected: &[u8],
    cuts: &[usize],
) -> Result<(Vec<u8>, usize), HttpError> {
    let mut dec = BodyDecoder::new(framing, Limits::default());
    let mut buf = vec![0u8; raw.len()];
    let mut filled = 0;
    let mut last_consumed = 0;
    for &cut in cuts.iter().chain([raw.len()].iter()) {
        let cut = cut.clamp(filled, raw.len());
        buf[filled..cut].copy_from_slice(&raw[filled..cut]);
        filled = cut;
        let status = dec.decode(&mut buf[..filled])?;
        assert!(dec.consumed() >= last_consumed, "consumed went backwards");
        last_consumed = dec.consumed();
        let d = dec.decoded_len();
        assert_eq!(
            &buf[..d],
            &expected[..d],
            "decoded prefix wrong at {filled}"
        );
        assert_eq!(
            &buf[dec.consumed()..filled],
            &raw[dec.consumed()..filled],
            "unconsumed bytes altered at {filled}"
        );
        if let Status::Complete { value, len } = status {
            assert_eq!(&buf[len..filled], &raw[len..filled]);
            return Ok((buf[..value].to_vec(), len));
        }
    }
    dec.finish_eof(&mut buf[..filled])
        .map(|(value, len)| (buf[..value].to_vec(), len))
}

#[test]
fn chunked_fixture_whole_bytewise_and_every_split() {
    let raw = chunked_body_region();
    let whole = decode_cuts(Framing::Chunked, raw, TOKEN_BODY, &[]);
    assert_eq!(whole, Ok((TOKEN_BODY.to_vec(), raw.len())));
    let every: Vec<usize> = (0..=raw.len()).collect();
    assert_eq!(
        decode_cuts(Framing::Chunked, raw, TOKEN_BODY, &every),
        whole
    );
    for k in 0..=raw.len() {
        assert_eq!(
            decode_cuts(Framing::Chunked, raw, TOKEN_BODY, &[k]),
            whole,
            "split {k}"
        );
    }
}

#[test]
fn chunked_keeps_pipelined_tail() {
    let mut raw = chunked_body_region().to_vec();
    raw.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    let every: Vec<usize> = (0..=raw.len()).collect();
    let (body, len) = decode_cuts(Framing::Chunked, &raw, TOKEN_BODY, &every).unwrap();
    assert_eq!(body, TOKEN_BODY);
    assert_eq!(&raw[len..], b"GET / HTTP/1.1\r\n\r\n");
}

#[test]
fn length_body() {
    let raw = b"hello, worldGET";
    assert_eq!(
        decode_cuts(Framing::Length(12), raw, b"hello, world", &[0, 3, 11]),
        Ok((b"hello, world".to_vec(), 12))
    );
    assert_eq!(
        decode_cuts(Framing::Length(20), raw, raw, &[]),
        Err(HttpError::TruncatedBody)
    );
}

#[test]
fn none_and_until_close() {
    let mut dec = BodyDecoder::new(Framing::None, Limits::default());
    assert_eq!(
        dec.decode(&mut []),
        Ok(Status::Complete { value: 0, len: 0 })
    );
    assert_eq!(
        decode_cuts(Framing::UntilClose, b"abc", b"abc", &[1, 2]),
        Ok((b"abc".to_vec(), 3))
    );
    let mut dec = BodyDecoder::new(Framing::UntilClose, Limits::default());
    assert_eq!(dec.decode(&mut [0u8; 3]), Ok(Status::Partial));
    assert!(!dec.is_complete());
}

#[test]
fn zero_length_chunked_and_extensions() {
    assert_eq!(
        decode_cuts(Framing::Chunked, b"0\r\n\r\n", b"", &[1, 2, 3, 4]),
        Ok((Vec::new(), 5))
    );
    assert_eq!(
        decode_cuts(Framing::Chunked, b"000;a=b\r\nT: v\r\n\r\n", b"", &[]),
        Ok((Vec::new(), 17))
    );
}

#[test]
fn chunked_errors() {
    let cases: [(&[u8], HttpError); 9] = [
        (b"x\r\n", HttpError::InvalidChunkSize),
        (b"\r\n", HttpError::InvalidChunkSize),
        (b"2\r\nab\n0\r\n\r\n", HttpError::MissingChunkCrlf),
        (b"2\r\nabc", HttpError::MissingChunkCrlf),
        (
            b"2\r\nab\r\n0\r\nX : y\r\n\r\n",
            HttpError::WhitespaceBeforeColon,
        ),
        (b"2\r\nab\r\n0\r\n\r\r\n", HttpError::BareCr),
        (b"2\r\nab\r\n0\r\n\n", HttpError::BareLf),
        (b"fffffffffffffffff\r\n", HttpError::ChunkSizeTooLarge),
        (b"ffffffffffffffff\r\n", HttpError::BodyTooLarge),
    ];
    for (raw, err) in cases {
        let every: Vec<usize> = (0..=raw.len()).collect();
        assert_eq!(
            decode_cuts(Framing::Chunked, raw, b"ab", &[]),
            Err(err),
            "{raw:?}"
        );
        assert_eq!(
            decode_cuts(Framing::Chunked, raw, b"ab", &every),
            Err(err),
            "{raw:?}"
        );
    }
}

#[test]
fn chunk_extension_bounded_by_line_limit() {
    let limits = Limits::default().with_max_line_len(32);
    let mut raw = b"1;".to_vec();
    raw.extend_from_slice(&[b'x'; 40]);
    let mut dec = BodyDecoder::new(Framing::Chunked, limits);
    assert_eq!(dec.decode(&mut raw), Err(HttpError::LineTooLong));
}

#[test]
fn shrunk_buffer_is_refused() {
    let mut dec = BodyDecoder::new(Framing::Chunked, Limits::default());
    let mut raw = b"3\r\nab".to_vec();
    assert_eq!(dec.decode(&mut raw), Ok(Status::Partial));
    assert_eq!(dec.decode(&mut raw[..2]), Err(HttpError::BufferMismatch));
}
