//! Query / form decoding (`query::decode_into`, `query::Pairs`) and encoding.
//!
//! Input: one byte choosing an output-buffer size, then a query string. Properties:
//! - `decode_into` equals a naive reference decoder (both `+` modes), and its output is never
//!   longer than its input;
//! - a too-small buffer gives `BufferTooSmall { required }` with the exact decoded length, or
//!   the same malformed-escape error the full decode gives (malformed input is reported first);
//! - `decode(encode(x)) == x` for any UTF-8 `x`, `encoded_len` is exact, and the encoding uses
//!   only unreserved bytes and upper-case `%XX`;
//! - `Pairs` yields exactly the non-empty `&`-segments, split at their first `=`, as slices of
//!   the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mitoken_core::query::{Pairs, Plus, QueryError, decode_into, encode_into, encoded_len};
use mitoken_fuzz::split_byte;

/// A deliberately simple percent-decoder to compare against.
fn reference(src: &[u8], plus: Plus) -> Result<Vec<u8>, usize> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::new();
    let mut i = 0;
    while i < src.len() {
        match src[i] {
            b'%' => {
                let hi = src.get(i + 1).and_then(|&b| hex(b)).ok_or(i)?;
                let lo = src.get(i + 2).and_then(|&b| hex(b)).ok_or(i)?;
                out.push(u8::try_from(hi * 16 + lo).expect("two hex digits"));
                i += 3;
            }
            b'+' if plus == Plus::Space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn check_decode(src: &[u8], plus: Plus, small: usize) {
    let mut out = vec![0u8; src.len()];
    let got = decode_into(src, &mut out, plus).map(str::to_owned);
    let expected = reference(src, plus);
    match (&got, &expected) {
        (Ok(s), Ok(bytes)) => assert_eq!(s.as_bytes(), bytes.as_slice()),
        (Err(QueryError::MalformedEscape { offset }), Err(at)) => assert_eq!(offset, at),
        (Err(QueryError::InvalidUtf8), Ok(bytes)) => {
            assert!(core::str::from_utf8(bytes).is_err());
        }
        _ => panic!("decode {got:?} vs reference {expected:?}"),
    }
    if let Ok(bytes) = &expected {
        assert!(bytes.len() <= src.len());
    }
    let mut tiny = vec![0u8; small];
    let short = decode_into(src, &mut tiny, plus).map(str::to_owned);
    match (&expected, &short) {
        (Ok(bytes), Err(QueryError::BufferTooSmall { required })) => {
            assert!(bytes.len() > small);
            assert_eq!(*required, bytes.len(), "`required` must be exact");
        }
        (Ok(bytes), _) if bytes.len() <= small => assert_eq!(short, got),
        (Err(_), _) => assert_eq!(short, got, "malformed input is reported first"),
        _ => panic!("{small}-byte buffer: {short:?} for {expected:?}"),
    }
}

fn check_encode(text: &str) {
    let n = encoded_len(text.as_bytes());
    let mut enc = vec![0u8; n];
    assert_eq!(
        encode_into(text.as_bytes(), &mut enc),
        Ok(n),
        "encoded_len is exact"
    );
    if n > 0 {
        assert!(encode_into(text.as_bytes(), &mut enc[..n - 1]).is_err());
    }
    let mut i = 0;
    while i < enc.len() {
        if enc[i] == b'%' {
            assert!(
                enc[i + 1..i + 3]
                    .iter()
                    .all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'))
            );
            i += 3;
        } else {
            assert!(enc[i].is_ascii_alphanumeric() || b"-._~".contains(&enc[i]));
            i += 1;
        }
    }
    let mut dec = vec![0u8; n];
    for plus in [Plus::Literal, Plus::Space] {
        assert_eq!(
            decode_into(&enc, &mut dec, plus),
            Ok(text),
            "decode(encode(x)) == x"
        );
    }
}

fn check_pairs(src: &[u8]) {
    let expected: Vec<(&[u8], &[u8])> = src
        .split(|&b| b == b'&')
        .filter(|s| !s.is_empty())
        .map(|s| match s.iter().position(|&b| b == b'=') {
            Some(eq) => (&s[..eq], &s[eq + 1..]),
            None => (s, &[][..]),
        })
        .collect();
    let got: Vec<_> = Pairs::new(src).collect();
    assert_eq!(got, expected);
    let range = src.as_ptr_range();
    for (k, v) in got {
        for part in [k, v].into_iter().filter(|p| !p.is_empty()) {
            assert!(
                range.contains(&part.as_ptr()),
                "a pair borrows from the input"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((small, src)) = split_byte(data) else {
        return;
    };
    let small = usize::from(small);
    check_decode(src, Plus::Literal, small);
    check_decode(src, Plus::Space, small);
    check_encode(&String::from_utf8_lossy(src));
    check_pairs(src);
});
