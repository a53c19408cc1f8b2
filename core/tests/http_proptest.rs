//! Property tests: arbitrary bytes and arbitrary splits never panic, and the result never
//! depends on how the input was split.

mod http_support;

use http_support::*;
use mitoken_core::http::{BodyDecoder, Framing, Limits};
use proptest::prelude::*;

fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        Just(Limits::default()),
        (1usize..64, 0usize..6, 0usize..128).prop_map(|(l, h, b)| Limits::default()
            .with_max_line_len(l)
            .with_max_headers(h)
            .with_max_body(b)),
    ]
}

fn cuts(max: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..=max, 0..8).prop_map(|mut v| {
        v.sort_unstable();
        v
    })
}

/// A fixture with a few bytes overwritten or inserted: mostly-valid input reaches deep states.
fn mutated_fixture() -> impl Strategy<Value = Vec<u8>> {
    let edits = prop::collection::vec(
        (any::<prop::sample::Index>(), any::<u8>(), any::<bool>()),
        0..6,
    );
    (0..FIXTURES.len(), edits).prop_map(|(i, edits)| {
        let mut v = FIXTURES[i].1.to_vec();
        for (at, byte, insert) in edits {
            let at = at.index(v.len());
            if insert {
                v.insert(at, byte);
            } else {
                v[at] = byte;
            }
        }
        v
    })
}

/// Bytes drawn mostly from HTTP's alphabet.
fn http_ish() -> impl Strategy<Value = Vec<u8>> {
    let atom = prop_oneof![
        Just(b"\r\n".to_vec()),
        Just(b"HTTP/1.1 200 OK\r\n".to_vec()),
        Just(b"GET / HTTP/1.1\r\n".to_vec()),
        Just(b"Content-Length: 3\r\n".to_vec()),
        Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
        Just(b"3\r\nabc\r\n".to_vec()),
        Just(b"0\r\n\r\n".to_vec()),
        Just(b": ".to_vec()),
        prop::collection::vec(any::<u8>(), 1..4),
    ];
    prop::collection::vec(atom, 0..16).prop_map(|v| v.concat())
}

fn check(input: &[u8], cuts: &[usize], limits: Limits) {
    let whole = read_whole(input, limits);
    assert_eq!(read_cuts(input, cuts, limits), whole);
    let whole = requests_whole(input, limits);
    assert_eq!(requests_cuts(input, cuts, limits), whole);
    for framing in [Framing::Chunked, Framing::UntilClose, Framing::Length(7)] {
        let mut buf = input.to_vec();
        let mut dec = BodyDecoder::new(framing, limits);
        for &c in cuts {
            let end = c.min(buf.len()).max(dec.consumed());
            let _ = dec.decode(&mut buf[..end]);
        }
        let _ = dec.finish_eof(&mut buf);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        // PROPTEST_CASES scales the run up (e.g. in a nightly job); 512 by default.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes(input in prop::collection::vec(any::<u8>(), 0..300), c in cuts(300), l in limits()) {
        check(&input, &c, l);
    }

    #[test]
    fn http_like_bytes(input in http_ish(), c in cuts(400), l in limits()) {
        check(&input, &c, l);
    }

    #[test]
    fn mutated_fixtures(input in mutated_fixture(), c in cuts(2800)) {
        check(&input, &c, Limits::default());
    }
}
