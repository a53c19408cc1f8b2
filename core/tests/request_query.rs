//! Percent-encoding, decoding and query pairs.

use mitoken_core::query::{Pairs, Plus, QueryError, decode_into, encode_into, encoded_len};
use mitoken_core::write::BufferTooSmall;
use proptest::prelude::*;

fn enc(s: &str) -> String {
    let mut buf = vec![0u8; encoded_len(s.as_bytes())];
    let n = encode_into(s.as_bytes(), &mut buf).unwrap();
    assert_eq!(n, buf.len());
    String::from_utf8(buf).unwrap()
}

#[test]
fn encode_table() {
    let cases = [
        ("", ""),
        (
            "https://management.azure.com/",
            "https%3A%2F%2Fmanagement.azure.com%2F",
        ),
        (
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id",
            "%2Fsubscriptions%2Fs%2FresourceGroups%2Frg%2Fproviders%2FMicrosoft.ManagedIdentity%2FuserAssignedIdentities%2Fid",
        ),
        ("a b", "a%20b"),
        ("a+b", "a%2Bb"),
        ("100%", "100%25"),
        ("é", "%C3%A9"),
        ("例", "%E4%BE%8B"),
        ("\0\x7f", "%00%7F"),
        ("-._~AZaz09", "-._~AZaz09"),
    ];
    for (raw, want) in cases {
        assert_eq!(enc(raw), want, "{raw:?}");
    }
}

#[test]
fn encode_buffer_too_small_is_exact() {
    let value = "https://management.azure.com/";
    let need = encoded_len(value.as_bytes());
    for size in 0..need {
        let mut buf = vec![0u8; size];
        assert_eq!(
            encode_into(value.as_bytes(), &mut buf),
            Err(BufferTooSmall { required: need })
        );
    }
}

#[test]
fn decode_table() {
    let cases: &[(&str, Plus, &str)] = &[
        ("", Plus::Literal, ""),
        ("abc", Plus::Literal, "abc"),
        ("%41%62%2f%2F", Plus::Literal, "Ab//"),
        (
            "https%3A%2F%2Fmanagement.azure.com%2F",
            Plus::Literal,
            "https://management.azure.com/",
        ),
        (
            "https://management.azure.com/",
            Plus::Literal,
            "https://management.azure.com/",
        ),
        ("a+b", Plus::Literal, "a+b"),
        ("a+b", Plus::Space, "a b"),
        ("a%2Bb+c", Plus::Space, "a+b c"),
        ("%e4%be%8b", Plus::Literal, "例"),
        ("%25", Plus::Literal, "%"),
        ("%2525", Plus::Literal, "%25"),
        ("é", Plus::Literal, "é"),
    ];
    for &(src, plus, want) in cases {
        let mut out = [0u8; 64];
        assert_eq!(decode_into(src, &mut out, plus), Ok(want), "{src:?}");
    }
}

#[test]
fn decode_errors() {
    let cases: &[(&[u8], QueryError)] = &[
        (b"%", QueryError::MalformedEscape { offset: 0 }),
        (b"ab%4", QueryError::MalformedEscape { offset: 2 }),
        (b"%zz", QueryError::MalformedEscape { offset: 0 }),
        (b"%4g", QueryError::MalformedEscape { offset: 0 }),
        (b"a%%41", QueryError::MalformedEscape { offset: 1 }),
        (b"%+1", QueryError::MalformedEscape { offset: 0 }),
        (b"%FF", QueryError::InvalidUtf8),
        (b"%C3", QueryError::InvalidUtf8),
        (b"%C3%28", QueryError::InvalidUtf8),
        (b"\xff", QueryError::InvalidUtf8),
        (b"%ED%A0%80", QueryError::InvalidUtf8), // an encoded surrogate
    ];
    for &(src, err) in cases {
        let mut out = [0u8; 16];
        assert_eq!(
            decode_into(src, &mut out, Plus::Literal),
            Err(err),
            "{src:?}"
        );
    }
}

#[test]
fn decode_buffer_too_small_is_exact() {
    let src = "https%3A%2F%2Fmanagement.azure.com%2F";
    let need = "https://management.azure.com/".len();
    for size in 0..need {
        let mut out = vec![0u8; size];
        assert_eq!(
            decode_into(src, &mut out, Plus::Literal),
            Err(QueryError::BufferTooSmall { required: need })
        );
    }
    let mut out = vec![0u8; need];
    assert_eq!(
        decode_into(src, &mut out, Plus::Literal),
        Ok("https://management.azure.com/")
    );
}

fn pairs(q: &str) -> Vec<(&str, &str)> {
    Pairs::new(q)
        .map(|(k, v)| {
            (
                core::str::from_utf8(k).unwrap(),
                core::str::from_utf8(v).unwrap(),
            )
        })
        .collect()
}

#[test]
fn pairs_table() {
    assert_eq!(pairs(""), []);
    assert_eq!(pairs("a=b&c=d"), [("a", "b"), ("c", "d")]);
    assert_eq!(
        pairs("api-version=2018-02-01&resource=https%3A%2F%2Fx%2F&client_id=abc"),
        [
            ("api-version", "2018-02-01"),
            ("resource", "https%3A%2F%2Fx%2F"),
            ("client_id", "abc")
        ]
    );
    assert_eq!(pairs("&&a=1&&"), [("a", "1")]);
    assert_eq!(pairs("k"), [("k", "")]);
    assert_eq!(pairs("k="), [("k", "")]);
    assert_eq!(pairs("=v"), [("", "v")]);
    assert_eq!(pairs("a=b=c"), [("a", "b=c")]);
    assert_eq!(pairs("a=1&a=2"), [("a", "1"), ("a", "2")]);
    assert_eq!(pairs("?a=1"), [("?a", "1")]);
    assert_eq!(pairs("a+b=c+d"), [("a+b", "c+d")]);
}

proptest! {
    #[test]
    fn encode_decode_round_trip(s in any::<String>()) {
        let encoded = enc(&s);
        prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
        prop_assert_eq!(encoded.len(), encoded_len(s.as_bytes()));
        let mut out = vec![0u8; encoded.len()];
        prop_assert_eq!(decode_into(&encoded, &mut out, Plus::Literal), Ok(s.as_str()));
        prop_assert_eq!(decode_into(&encoded, &mut out, Plus::Space), Ok(s.as_str()));
    }

    #[test]
    fn decode_never_panics(src in proptest::collection::vec(any::<u8>(), 0..64), size in 0usize..80) {
        let mut out = vec![0u8; size];
        match decode_into(&src, &mut out, Plus::Space) {
            Ok(s) => prop_assert!(s.len() <= src.len()),
            Err(QueryError::BufferTooSmall { required }) => prop_assert!(required > size && required <= src.len()),
            Err(_) => {}
        }
    }

    #[test]
    fn pairs_cover_all_segments(q in "[a-z=&%+]{0,40}") {
        let n = Pairs::new(&q).count();
        let expected = q.split('&').filter(|s| !s.is_empty()).count();
        prop_assert_eq!(n, expected);
    }
}
