//! Token and error body writers: exact shapes, escaping, sizes, round trips.

#[path = "token_fixture.rs"]
mod fixture;

use fixture::{IMDS_ERROR_400_BODY, IMDS_TOKEN_BODY};
use mitoken_core::token::{
    IMDS_EXT_EXPIRES_IN, Secret, ServiceError, Shape, Token, TokenJson, write_error_json,
    write_json_string, write_token_json,
};
use mitoken_core::write::{BufferTooSmall, SliceWriter};
use proptest::prelude::*;

fn write(t: &TokenJson<'_>, shape: Shape) -> String {
    let mut buf = vec![0u8; 64 * 1024];
    let n = write_token_json(t, shape, &mut buf).unwrap();
    buf.truncate(n);
    String::from_utf8(buf).unwrap()
}

fn fixture_values() -> TokenJson<'static> {
    let t = Token::parse(IMDS_TOKEN_BODY.as_bytes(), &mut []).unwrap();
    TokenJson {
        access_token: t.access_token,
        client_id: t.client_id.unwrap(),
        expires_in: t.expires_in.unwrap(),
        expires_on: t.expires_on.unwrap(),
        ext_expires_in: IMDS_EXT_EXPIRES_IN,
        not_before: t.not_before.unwrap(),
        resource: t.resource,
    }
}

#[test]
fn imds_shape_reproduces_the_captured_body_byte_for_byte() {
    assert_eq!(write(&fixture_values(), Shape::Imds), IMDS_TOKEN_BODY);
}

#[test]
fn exact_shapes() {
    let t = TokenJson {
        access_token: Secret::new("eyJ.x.y"),
        client_id: "cid",
        expires_in: 86400,
        expires_on: 1_757_774_022,
        ext_expires_in: 86399,
        not_before: 1_757_687_322,
        resource: "https://storage.azure.com/",
    };
    assert_eq!(
        write(&t, Shape::Imds),
        r#"{"access_token":"eyJ.x.y","client_id":"cid","expires_in":"86400","expires_on":"1757774022","ext_expires_in":"86399","not_before":"1757687322","resource":"https://storage.azure.com/","token_type":"Bearer"}"#
    );
    assert_eq!(
        write(&t, Shape::Extension),
        r#"{"access_token":"eyJ.x.y","refresh_token":"","expires_in":"86400","expires_on":"1757774022","not_before":"1757687322","resource":"https://storage.azure.com/","token_type":"Bearer"}"#
    );
    let t = TokenJson {
        expires_in: 0,
        expires_on: u64::MAX,
        not_before: 0,
        ..t
    };
    assert!(
        write(&t, Shape::Imds).contains(r#""expires_in":"0","expires_on":"18446744073709551615""#)
    );
}

#[test]
fn round_trip_both_shapes() {
    let t = fixture_values();
    let imds = write(&t, Shape::Imds);
    let p = Token::parse(imds.as_bytes(), &mut []).unwrap();
    assert_eq!(p.access_token, t.access_token);
    assert_eq!(p.client_id, Some(t.client_id));
    assert_eq!(
        (p.expires_in, p.expires_on, p.ext_expires_in, p.not_before),
        (
            Some(t.expires_in),
            Some(t.expires_on),
            Some(t.ext_expires_in),
            Some(t.not_before)
        )
    );
    assert_eq!(
        (p.resource, p.token_type, p.refresh_token),
        (t.resource, "Bearer", None)
    );

    let ext = write(&t, Shape::Extension);
    let p = Token::parse(ext.as_bytes(), &mut []).unwrap();
    assert_eq!(p.access_token, t.access_token);
    assert_eq!(p.refresh_token, Some(Secret::new("")));
    assert_eq!((p.client_id, p.ext_expires_in), (None, None));
    assert_eq!(
        (p.expires_in, p.expires_on, p.not_before),
        (Some(t.expires_in), Some(t.expires_on), Some(t.not_before))
    );
    assert_eq!((p.resource, p.token_type), (t.resource, "Bearer"));
}

#[test]
fn buffer_too_small_at_every_size() {
    let t = fixture_values();
    for shape in [Shape::Imds, Shape::Extension] {
        let n = write(&t, shape).len();
        for size in 0..n {
            let mut buf = vec![0u8; size];
            assert_eq!(
                write_token_json(&t, shape, &mut buf),
                Err(BufferTooSmall { required: n })
            );
        }
    }
    let n = IMDS_ERROR_400_BODY.len();
    for size in 0..n {
        let mut buf = vec![0u8; size];
        assert_eq!(
            write_error_json("invalid_request", "Identity not found", &mut buf),
            Err(BufferTooSmall { required: n })
        );
    }
}

#[test]
fn error_json_exact_and_round_trip() {
    let mut buf = [0u8; 256];
    let n = write_error_json("invalid_request", "Identity not found", &mut buf).unwrap();
    assert_eq!(&buf[..n], IMDS_ERROR_400_BODY.as_bytes());
    let desc = "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request";
    let n = write_error_json("invalid_request", desc, &mut buf).unwrap();
    // The captured response had `Content-Length: 168`.
    assert_eq!(n, 168);
    let mut scratch = [0u8; 0];
    let e = ServiceError::parse(400, None, &buf[..n], &mut scratch).unwrap();
    assert_eq!((e.error, e.description), ("invalid_request", Some(desc)));
}

#[test]
fn json_string_escaping() {
    let cases = [
        ("", r#""""#),
        ("plain", r#""plain""#),
        ("https://x/", r#""https://x/""#),
        ("q\"b\\s", r#""q\"b\\s""#),
        ("\n\r\t\u{8}\u{c}", r#""\n\r\t\b\f""#),
        ("\u{0}\u{1f}\u{1}", r#""\u0000\u001f\u0001""#),
        ("\u{7f}é例😀", "\"\u{7f}é例😀\""),
        ("\u{2028}", "\"\u{2028}\""),
    ];
    for (raw, want) in cases {
        let mut buf = [0u8; 64];
        let mut w = SliceWriter::new(&mut buf);
        write_json_string(raw, &mut w);
        let n = w.finish().unwrap();
        assert_eq!(core::str::from_utf8(&buf[..n]).unwrap(), want, "{raw:?}");
        assert_eq!(serde_json::from_str::<String>(want).unwrap(), raw);
    }
}

#[test]
fn writer_debug_redacts() {
    let t = fixture_values();
    let dbg = format!("{t:?}");
    assert!(!dbg.contains("eyJ0"), "{dbg}");
    assert!(dbg.contains("b9c48cb0"));
}

proptest! {
    #[test]
    fn arbitrary_strings_round_trip(
        resource in any::<String>(),
        client_id in any::<String>(),
        token in "[A-Za-z0-9._~+/=-]{0,300}",
        expires_in in any::<u64>(), expires_on in any::<u64>(), not_before in any::<u64>(),
    ) {
        let t = TokenJson {
            access_token: Secret::new(&token),
            client_id: &client_id,
            expires_in,
            expires_on,
            ext_expires_in: IMDS_EXT_EXPIRES_IN,
            not_before,
            resource: &resource,
        };
        for shape in [Shape::Imds, Shape::Extension] {
            let body = write(&t, shape);
            // serde_json reads what we wrote…
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            prop_assert_eq!(v["resource"].as_str(), Some(resource.as_str()));
            let on = expires_on.to_string();
            prop_assert_eq!(v["expires_on"].as_str(), Some(on.as_str()));
            // …and so do we.
            let mut scratch = vec![0u8; body.len()];
            let p = Token::parse(body.as_bytes(), &mut scratch).unwrap();
            prop_assert_eq!(p.resource, resource.as_str());
            prop_assert_eq!(p.access_token.expose(), token.as_str());
            prop_assert_eq!((p.expires_in, p.expires_on, p.not_before), (Some(expires_in), Some(expires_on), Some(not_before)));
            if shape == Shape::Imds {
                prop_assert_eq!(p.client_id, Some(client_id.as_str()));
            }
        }
    }

    #[test]
    fn error_round_trip(error in any::<String>(), description in any::<String>()) {
        let mut buf = vec![0u8; 16 + 6 * (error.len() + description.len()) + 64];
        let n = write_error_json(&error, &description, &mut buf).unwrap();
        let body = buf[..n].to_vec();
        let mut scratch = vec![0u8; n];
        let e = ServiceError::parse(500, None, &body, &mut scratch).unwrap();
        prop_assert_eq!(e.error, error.as_str());
        prop_assert_eq!(e.description, Some(description.as_str()));
    }
}

proptest::proptest! {
    /// Strings mixing clean runs of every length with bytes to escape, so escapes fall at every
    /// position of the 8- and 32-byte words the fast path checks: the output is JSON that
    /// `serde_json` reads back as the same string.
    #[test]
    fn any_string_round_trips_through_serde_json(
        parts in proptest::collection::vec(
            proptest::prop_oneof![
                "[A-Za-z0-9_.-]{0,70}",
                proptest::char::range('\u{0}', '\u{7f}').prop_map(String::from),
                proptest::char::any().prop_map(String::from),
            ],
            0..12,
        )
    ) {
        let raw: String = parts.concat();
        let mut buf = vec![0u8; raw.len() * 6 + 2];
        let mut w = SliceWriter::new(&mut buf);
        write_json_string(&raw, &mut w);
        let n = w.finish().unwrap();
        let text = core::str::from_utf8(&buf[..n]).unwrap();
        proptest::prop_assert_eq!(serde_json::from_str::<String>(text).unwrap(), raw);
    }
}
