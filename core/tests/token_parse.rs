//! Token and error body parsing.

#[path = "token_fixture.rs"]
mod fixture;

use fixture::{IMDS_ERROR_400_BODY, IMDS_ERROR_429_BODY, IMDS_TOKEN_BODY};
use mitoken_core::token::{Field, JsonError, MAX_DEPTH, Secret, ServiceError, Token};
use proptest::prelude::*;

fn parse(body: &str) -> Result<Token<'_>, JsonError> {
    Token::parse(body.as_bytes(), &mut [])
}

/// Minimal valid token members, to splice other members into.
const MIN: &str =
    r#""access_token":"tok","expires_on":"1796086799","resource":"r","token_type":"Bearer""#;

fn with(extra: &str) -> String {
    format!("{{{MIN},{extra}}}")
}

#[test]
fn fixture_all_fields_match_serde_json() {
    let t = parse(IMDS_TOKEN_BODY).unwrap();
    let v: serde_json::Value = serde_json::from_str(IMDS_TOKEN_BODY).unwrap();
    let s = |k: &str| v[k].as_str().unwrap();
    let n = |k: &str| s(k).parse::<u64>().unwrap();
    assert_eq!(t.access_token.expose(), s("access_token"));
    assert!(t.access_token.expose().starts_with("eyJ0eXAiOiJKV1Qi"));
    assert!(t.access_token.len() > 2000);
    assert_eq!(t.client_id, Some("b9c48cb0-1720-400e-8ca8-2984fcb042d9"));
    assert_eq!(t.expires_in, Some(n("expires_in")));
    assert_eq!(t.expires_in, Some(86399));
    assert_eq!(t.expires_on, Some(1_796_086_799));
    assert_eq!(t.ext_expires_in, Some(86399));
    assert_eq!(t.not_before, Some(1_796_000_100));
    assert_eq!(t.resource, "https://management.azure.com/");
    assert_eq!(t.token_type, "Bearer");
    assert_eq!(t.refresh_token, None);
    assert_eq!(t.object_id, None);
    assert_eq!(t.msi_res_id, None);
    assert_eq!(t.expires_at(0), 1_796_086_799);
}

#[test]
fn numbers_as_strings_or_numbers() {
    for (expires_in, want) in [
        ("\"86399\"", 86399),
        ("86399", 86399),
        ("0", 0),
        ("\"0\"", 0),
        ("\"007\"", 7),
        ("18446744073709551615", u64::MAX),
        ("\"18446744073709551615\"", u64::MAX),
        (r#""\u0031\u0032""#, 12),
    ] {
        let body = with(&format!(r#""expires_in":{expires_in}"#));
        assert_eq!(parse(&body).unwrap().expires_in, Some(want), "{expires_in}");
    }
    let body = r#"{"access_token":"t","expires_on":1796086799,"not_before":1796000100,"ext_expires_in":86399,"resource":"r","token_type":"Bearer"}"#;
    let t = parse(body).unwrap();
    assert_eq!(
        (t.expires_on, t.not_before, t.ext_expires_in),
        (Some(1_796_086_799), Some(1_796_000_100), Some(86399))
    );
}

#[test]
fn bad_numbers() {
    let f = Field::NotBefore;
    for (value, err) in [
        ("\"\"", JsonError::InvalidNumber { field: f }),
        ("\"-1\"", JsonError::InvalidNumber { field: f }),
        ("\"+1\"", JsonError::InvalidNumber { field: f }),
        ("\"1.5\"", JsonError::InvalidNumber { field: f }),
        ("\" 1\"", JsonError::InvalidNumber { field: f }),
        ("\"12a\"", JsonError::InvalidNumber { field: f }),
        ("\"1e3\"", JsonError::InvalidNumber { field: f }),
        ("-1", JsonError::InvalidNumber { field: f }),
        ("1.0", JsonError::InvalidNumber { field: f }),
        ("1e3", JsonError::InvalidNumber { field: f }),
        (
            "18446744073709551616",
            JsonError::NumberOverflow { field: f },
        ),
        (
            "\"99999999999999999999999\"",
            JsonError::NumberOverflow { field: f },
        ),
        ("true", JsonError::InvalidType { field: f }),
        ("{}", JsonError::InvalidType { field: f }),
        ("[1]", JsonError::InvalidType { field: f }),
    ] {
        let body = with(&format!(r#""not_before":{value}"#));
        assert_eq!(parse(&body), Err(err), "{value}");
    }
    // App Service 2017's date-time `expires_on` is read (as noon: see token::parse_expires_on)
    // when the core has its `sources`; an IMDS-only core takes numbers only. A date-like text
    // that is no date is an invalid number either way.
    let body = r#"{"access_token":"t","expires_on":"09/14/2017 00:00:00 PM +00:00","resource":"r","token_type":"Bearer"}"#;
    let want = if cfg!(feature = "sources") {
        Ok(Some(1_505_390_400))
    } else {
        Err(JsonError::InvalidNumber {
            field: Field::ExpiresOn,
        })
    };
    assert_eq!(parse(body).map(|t| t.expires_on), want);
    let body = r#"{"access_token":"t","expires_on":"09/31/2017 00:00:00 PM +00:00","resource":"r","token_type":"Bearer"}"#;
    assert_eq!(
        parse(body),
        Err(JsonError::InvalidNumber {
            field: Field::ExpiresOn
        })
    );
}

#[test]
fn optional_fields_absent_or_null() {
    let min = format!("{{{MIN}}}");
    let t = parse(&min).unwrap();
    assert_eq!(t.access_token.expose(), "tok");
    assert_eq!(
        (t.client_id, t.expires_in, t.ext_expires_in, t.not_before),
        (None, None, None, None)
    );
    assert_eq!((t.object_id, t.msi_res_id), (None, None));
    assert!(t.refresh_token.is_none());
    let body = with(r#""client_id":null,"expires_in":null,"refresh_token":null,"object_id":null"#);
    let t = parse(&body).unwrap();
    assert_eq!((t.client_id, t.expires_in, t.object_id), (None, None, None));
    // All optional members present (legacy + swagger-only ones).
    let body = with(
        r#""refresh_token":"","object_id":"oid","msi_res_id":"/subscriptions/x","client_id":"cid""#,
    );
    let t = parse(&body).unwrap();
    assert_eq!(t.refresh_token, Some(Secret::new("")));
    assert_eq!(t.object_id, Some("oid"));
    assert_eq!(t.msi_res_id, Some("/subscriptions/x"));
    assert_eq!(t.client_id, Some("cid"));
}

#[test]
fn required_fields() {
    let cases = [
        (
            r#"{"expires_on":"1","resource":"r","token_type":"Bearer"}"#,
            JsonError::MissingField {
                field: Field::AccessToken,
            },
        ),
        (
            r#"{"access_token":null,"expires_on":"1","resource":"r","token_type":"Bearer"}"#,
            JsonError::MissingField {
                field: Field::AccessToken,
            },
        ),
        (
            r#"{"access_token":"t","expires_on":"1","token_type":"Bearer"}"#,
            JsonError::MissingField {
                field: Field::Resource,
            },
        ),
        (
            r#"{"access_token":"t","expires_on":"1","resource":"r"}"#,
            JsonError::MissingField {
                field: Field::TokenType,
            },
        ),
        (
            r#"{"access_token":"t","resource":"r","token_type":"Bearer"}"#,
            JsonError::MissingExpiry,
        ),
        (
            r#"{"access_token":1,"expires_on":"1","resource":"r","token_type":"Bearer"}"#,
            JsonError::InvalidType {
                field: Field::AccessToken,
            },
        ),
        (
            r#"{"access_token":"t","expires_on":"1","resource":["r"],"token_type":"Bearer"}"#,
            JsonError::InvalidType {
                field: Field::Resource,
            },
        ),
    ];
    for (body, err) in cases {
        assert_eq!(parse(body), Err(err), "{body}");
    }
}

#[test]
fn expiry_prefers_expires_on() {
    let only_in =
        r#"{"access_token":"t","expires_in":"3599","resource":"r","token_type":"Bearer"}"#;
    let t = parse(only_in).unwrap();
    assert_eq!(t.expires_at(1_000), 4_599);
    assert_eq!(t.expires_at(u64::MAX), u64::MAX);
    let both = with(r#""expires_in":"3599""#);
    assert_eq!(parse(&both).unwrap().expires_at(1_000), 1_796_086_799);
}

#[test]
fn unknown_members_of_every_shape_are_skipped() {
    let unknown = [
        r#""x":1"#,
        r#""x":-1.5e-3"#,
        r#""x":0"#,
        r#""x":true,"y":false,"z":null"#,
        r#""x":"str with \" and \\ and \u00e9 and \ud83d\ude00""#,
        r#""x":{}"#,
        r#""x":[]"#,
        r#""x":{"a":[1,{"b":[[],{}]},"s",null],"c":{"d":{"e":"}"}}}"#,
        r#""x":[{"access_token":"nested","resource":1}]"#,
        r#""access_tokens":"nope","Access_token":"nope","":"""#,
        r#""refresh":{"expires_on":"nested"}"#,
    ];
    for u in unknown {
        let body = with(u);
        let t = parse(&body).unwrap_or_else(|e| panic!("{u}: {e}"));
        assert_eq!(t.access_token.expose(), "tok", "{u}");
        assert_eq!(t.resource, "r");
        let body = format!("{{{u},{MIN}}}");
        let t = parse(&body).unwrap();
        assert_eq!(t.expires_on, Some(1_796_086_799));
    }
}

#[test]
fn nesting_limit() {
    let deep = |n: usize| with(&format!(r#""x":{}{}"#, "[".repeat(n), "]".repeat(n)));
    assert!(parse(&deep(MAX_DEPTH as usize)).is_ok());
    assert!(matches!(
        parse(&deep(MAX_DEPTH as usize + 1)),
        Err(JsonError::TooDeep { .. })
    ));
    let objs = |n: usize| {
        with(&format!(
            r#""x":{}1{}"#,
            r#"{"a":"#.repeat(n),
            "}".repeat(n)
        ))
    };
    assert!(parse(&objs(MAX_DEPTH as usize)).is_ok());
    assert!(matches!(
        parse(&objs(MAX_DEPTH as usize + 1)),
        Err(JsonError::TooDeep { .. })
    ));
    // Far deeper than the limit: still an error, no stack overflow.
    let very = with(&format!(r#""x":{}"#, "[".repeat(100_000)));
    assert!(matches!(parse(&very), Err(JsonError::TooDeep { .. })));
}

#[test]
fn whitespace_and_key_order() {
    let v: serde_json::Value = serde_json::from_str(IMDS_TOKEN_BODY).unwrap();
    let pretty = serde_json::to_string_pretty(&v).unwrap();
    let base = parse(IMDS_TOKEN_BODY).unwrap();
    assert_eq!(parse(&pretty).unwrap(), base);
    let spaced = format!(
        " \t\r\n{}\n\r\t ",
        IMDS_TOKEN_BODY
            .replace(':', " \t: \n")
            .replace(',', "\r\n ,\t")
    );
    // The replace above also hits ':' inside strings; rebuild from members instead.
    let _ = spaced;
    let obj = v.as_object().unwrap();
    let members: Vec<String> = obj
        .iter()
        .map(|(k, v)| format!("{}\t :\r\n {}", serde_json::to_string(k).unwrap(), v))
        .collect();
    for rotate in 0..members.len() {
        let mut m = members.clone();
        m.rotate_left(rotate);
        if rotate % 2 == 1 {
            m.reverse();
        }
        let body = format!(" \n{{ \r\n{} \t}}\n\n", m.join(" ,\n\t"));
        assert_eq!(parse(&body).unwrap(), base, "{body}");
    }
}

#[test]
fn duplicate_members_are_rejected() {
    assert_eq!(
        parse(&with(r#""resource":"other""#)),
        Err(JsonError::DuplicateField {
            field: Field::Resource
        })
    );
    assert_eq!(
        parse(&with(r#""client_id":"a","client_id":null"#)),
        Err(JsonError::DuplicateField {
            field: Field::ClientId
        })
    );
    // Unknown duplicates are fine.
    assert!(parse(&with(r#""x":1,"x":2"#)).is_ok());
}

#[test]
fn escapes_decode_into_scratch() {
    let body = r#"{"access_token":"tok","expires_on":"1","resource":"https:\/\/management.azure.com\/","token_type":"Bearer"}"#;
    let want = "https://management.azure.com/";
    // No scratch: the exact size is reported, never the escaped text.
    assert_eq!(
        Token::parse(body.as_bytes(), &mut []),
        Err(JsonError::ScratchTooSmall {
            required: want.len()
        })
    );
    for size in 0..want.len() {
        let mut scratch = vec![0u8; size];
        assert_eq!(
            Token::parse(body.as_bytes(), &mut scratch),
            Err(JsonError::ScratchTooSmall {
                required: want.len()
            })
        );
    }
    let mut scratch = vec![0u8; want.len()];
    assert_eq!(
        Token::parse(body.as_bytes(), &mut scratch)
            .unwrap()
            .resource,
        want
    );
    let mut scratch = vec![0u8; body.len()];
    let t = Token::parse(body.as_bytes(), &mut scratch).unwrap();
    assert_eq!(t.resource, want);
    assert_eq!(t.access_token.expose(), "tok");
}

#[test]
fn several_escaped_strings_share_scratch() {
    let body = r#"{"access_token":"a\/b","client_id":"\u00e9\u4f8b\ud83d\ude00","expires_on":"1","resource":"q\"\\\/\b\f\n\r\tz","token_type":"Bear\u0065r","object_id":"plain"}"#;
    let (tok, cid, res) = ("a/b", "é例😀", "q\"\\/\u{8}\u{c}\n\r\tz");
    let need = tok.len() + cid.len() + res.len() + "Bearer".len();
    assert_eq!(
        Token::parse(body.as_bytes(), &mut [0u8; 5]),
        Err(JsonError::ScratchTooSmall { required: need })
    );
    let mut scratch = vec![0u8; need];
    let t = Token::parse(body.as_bytes(), &mut scratch).unwrap();
    assert_eq!(t.access_token.expose(), tok);
    assert_eq!(t.client_id, Some(cid));
    assert_eq!(t.resource, res);
    assert_eq!(t.token_type, "Bearer");
    assert_eq!(t.object_id, Some("plain"));
    // serde_json agrees on every decoded string.
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["client_id"], cid);
    assert_eq!(v["resource"], res);
}

#[test]
fn escaped_keys_are_recognised() {
    let body = r#"{"access\u005ftoken":"tok","expires_\u006fn":"1","resource":"r","\u0074oken_type":"Bearer"}"#;
    let t = parse(body).unwrap();
    assert_eq!(t.access_token.expose(), "tok");
    assert_eq!(t.expires_on, Some(1));
    assert_eq!(
        parse(&with(r#""resourc\u0065":"dup""#)),
        Err(JsonError::DuplicateField {
            field: Field::Resource
        })
    );
}

#[test]
fn bad_escapes_and_strings() {
    let cases: &[(&[u8], JsonError)] = &[
        (
            br#"{"access_token":"a\x"}"#,
            JsonError::InvalidEscape { offset: 18 },
        ),
        (
            br#"{"access_token":"a\u12G4"}"#,
            JsonError::InvalidEscape { offset: 18 },
        ),
        (
            br#"{"access_token":"a\'"}"#,
            JsonError::InvalidEscape { offset: 18 },
        ),
        (
            b"{\"access_token\":\"a\nb\"}",
            JsonError::ControlCharacter { offset: 18 },
        ),
        (
            b"{\"access_token\":\"a\x00b\"}",
            JsonError::ControlCharacter { offset: 18 },
        ),
        (
            b"{\"access_token\":\"\xff\"}",
            JsonError::InvalidUtf8 { offset: 17 },
        ),
        (
            b"{\"x\":\"\xc3\x28\"}",
            JsonError::InvalidUtf8 { offset: 6 },
        ),
    ];
    for &(body, err) in cases {
        assert_eq!(
            Token::parse(body, &mut [0u8; 64]),
            Err(err),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    // Lone surrogates cannot become UTF-8.
    for s in [r"\ud83d", r"\ude00", r"\ud83dx", r"\ud83d\u0041"] {
        let body = with(&format!(r#""client_id":"{s}""#));
        assert!(
            matches!(
                Token::parse(body.as_bytes(), &mut [0u8; 64]),
                Err(JsonError::InvalidEscape { .. })
            ),
            "{s}"
        );
    }
}

#[test]
fn escaped_control_characters_never_reach_a_header() {
    let body = r#"{"access_token":"tok\r\nX-Evil: 1","expires_on":"1","resource":"r","token_type":"Bearer"}"#;
    assert_eq!(
        Token::parse(body.as_bytes(), &mut [0u8; 64]),
        Err(JsonError::ControlInHeaderValue {
            field: Field::AccessToken
        })
    );
    let body =
        r#"{"access_token":"tok","expires_on":"1","resource":"r","token_type":"Bearer\u0000"}"#;
    assert_eq!(
        Token::parse(body.as_bytes(), &mut [0u8; 64]),
        Err(JsonError::ControlInHeaderValue {
            field: Field::TokenType
        })
    );
    // Elsewhere (a description, a resource) decoded controls are just text.
    let body = r#"{"access_token":"tok","expires_on":"1","resource":"r\n","token_type":"Bearer"}"#;
    assert_eq!(
        Token::parse(body.as_bytes(), &mut [0u8; 64])
            .unwrap()
            .resource,
        "r\n"
    );
}

#[test]
fn garbage_and_truncation() {
    let cases: &[(&str, JsonError)] = &[
        ("", JsonError::Truncated),
        ("  \n", JsonError::Truncated),
        ("{", JsonError::Truncated),
        (r#"{"a""#, JsonError::Truncated),
        (r#"{"a":"#, JsonError::Truncated),
        (r#"{"a":tr"#, JsonError::Truncated),
        (r#"{"a":-"#, JsonError::Truncated),
        (r#"{"a":[1,"#, JsonError::Truncated),
        (r#"{"a":"\u00"#, JsonError::Truncated),
        ("[]", JsonError::NotAnObject),
        ("null", JsonError::NotAnObject),
        ("\"s\"", JsonError::NotAnObject),
        ("<html>", JsonError::NotAnObject),
        (r#"{"a":}"#, JsonError::Syntax { offset: 5 }),
        ("{,}", JsonError::Syntax { offset: 1 }),
        (r#"{"a":1,}"#, JsonError::Syntax { offset: 7 }),
        (r#"{"a" 1}"#, JsonError::Syntax { offset: 5 }),
        ("{a:1}", JsonError::Syntax { offset: 1 }),
        (r#"{"a":01}"#, JsonError::Syntax { offset: 6 }),
        (r#"{"a":1.}"#, JsonError::Syntax { offset: 7 }),
        (r#"{"a":1e}"#, JsonError::Syntax { offset: 7 }),
        (r#"{"a":.5}"#, JsonError::Syntax { offset: 5 }),
        (r#"{"a":+1}"#, JsonError::Syntax { offset: 5 }),
        (r#"{"a":tru}"#, JsonError::Syntax { offset: 5 }),
        (r#"{"a":nul1}"#, JsonError::Syntax { offset: 5 }),
        (r#"{"a":[1,2}"#, JsonError::Syntax { offset: 9 }),
        (r#"{"a":[1,]}"#, JsonError::Syntax { offset: 8 }),
        (r#"{"a":{"b"}}"#, JsonError::Syntax { offset: 9 }),
        (r#"{"a":{1:2}}"#, JsonError::Syntax { offset: 6 }),
        (r#"{"a":{"b":1,}}"#, JsonError::Syntax { offset: 12 }),
        (r#"{"a":'x'}"#, JsonError::Syntax { offset: 5 }),
        (r#"{"a":1}x"#, JsonError::TrailingData { offset: 7 }),
        (r#"{"a":1}{}"#, JsonError::TrailingData { offset: 7 }),
        (r#"{"a":1} ,"#, JsonError::TrailingData { offset: 8 }),
    ];
    for &(body, err) in cases {
        assert_eq!(parse(body), Err(err), "{body:?}");
    }
}

#[test]
fn every_prefix_of_the_fixture_is_truncated() {
    for len in 0..IMDS_TOKEN_BODY.len() {
        assert_eq!(
            parse(&IMDS_TOKEN_BODY[..len]),
            Err(JsonError::Truncated),
            "prefix of {len} bytes"
        );
    }
}

fn big_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    (0..len)
        .map(|i| ALPHABET[(i * 7 + i / 3) % ALPHABET.len()] as char)
        .collect()
}

#[test]
fn large_tokens() {
    for len in [16 * 1024, 32 * 1024, 32 * 1024 + 7, 256 * 1024] {
        let tok = big_token(len);
        let body = format!(
            r#"{{"access_token":"{tok}","client_id":"c","expires_in":"86399","expires_on":"1796086799","resource":"https://vault.azure.net","token_type":"Bearer"}}"#
        );
        let t = parse(&body).unwrap();
        assert_eq!(t.access_token.len(), len);
        assert_eq!(t.access_token.expose(), tok);
        assert_eq!(t.resource, "https://vault.azure.net");
        // A quote early in a long run is still found.
        let cut = format!(r#"{{"access_token":"{}"#, &tok[..len / 2]);
        assert_eq!(parse(&cut), Err(JsonError::Truncated));
    }
}

#[test]
fn debug_and_display_never_show_secrets() {
    let t = parse(IMDS_TOKEN_BODY).unwrap();
    let secret = t.access_token.expose();
    for text in [
        format!("{t:?}"),
        format!("{t:#?}"),
        format!("{:?}", t.access_token),
        format!("{}", t.access_token),
    ] {
        assert!(!text.contains(&secret[..12]), "{text}");
        assert!(!text.contains(&secret[secret.len() - 12..]), "{text}");
        assert!(!text.contains("eyJ0"), "{text}");
    }
    let dbg = format!("{t:?}");
    assert!(dbg.contains("redacted"));
    assert!(
        dbg.contains("https://management.azure.com/"),
        "other fields stay visible"
    );
    assert_eq!(t.access_token.to_string(), "<redacted>");
    let body = with(r#""refresh_token":"r3fr3sh-s3cr3t""#);
    let legacy = parse(&body).unwrap();
    assert!(!format!("{legacy:?}").contains("r3fr3sh"));
}

#[test]
fn service_errors() {
    let mut scratch = [0u8; 0];
    let e = ServiceError::parse(400, None, IMDS_ERROR_400_BODY.as_bytes(), &mut scratch).unwrap();
    assert_eq!(
        (e.status, e.error, e.description, e.retry_after),
        (400, "invalid_request", Some("Identity not found"), None)
    );
    assert_eq!(
        e.to_string(),
        "HTTP 400 invalid_request: Identity not found"
    );
    let e = ServiceError::parse(429, Some(5), IMDS_ERROR_429_BODY.as_bytes(), &mut []).unwrap();
    assert_eq!((e.error, e.retry_after), ("too_many_requests", Some(5)));
    assert_eq!(
        e.to_string(),
        "HTTP 429 too_many_requests: Too many requests (retry after 5 s)"
    );
    let e = ServiceError::parse(404, None, br#"{"error":"Not found"}"#, &mut []).unwrap();
    assert_eq!((e.error, e.description), ("Not found", None));
    // App Service's nested error object: read with the core's `sources`, a wrong type without.
    let body = br#"{"error":{"correlationId":"c","code":"SecretHeaderNotFound","message":"Secret is not found in the request headers."}}"#;
    let e = ServiceError::parse(401, None, body, &mut []);
    if cfg!(feature = "sources") {
        let e = e.unwrap();
        assert_eq!(
            (e.error, e.description),
            (
                "SecretHeaderNotFound",
                Some("Secret is not found in the request headers.")
            )
        );
    } else {
        assert_eq!(
            e,
            Err(JsonError::InvalidType {
                field: Field::Error
            })
        );
    }
    // AADSTS descriptions carry escaped CR/LF.
    let body = br#"{"error":"invalid_resource","error_description":"AADSTS500011: not found.\r\nTrace ID: 1\r\nCorrelation ID: 2","x":[{}]}"#;
    let mut scratch = [0u8; 128];
    let e = ServiceError::parse(400, None, body, &mut scratch).unwrap();
    let want = "AADSTS500011: not found.\r\nTrace ID: 1\r\nCorrelation ID: 2";
    assert_eq!(e.description, Some(want));
    assert_eq!(
        ServiceError::parse(400, None, body, &mut []),
        Err(JsonError::ScratchTooSmall {
            required: want.len()
        })
    );
    for (body, err) in [
        (
            &br#"{"error_description":"d"}"#[..],
            JsonError::MissingField {
                field: Field::Error,
            },
        ),
        (
            br#"{"error":1}"#,
            JsonError::InvalidType {
                field: Field::Error,
            },
        ),
        (
            br#"{"error":"a","error":"b"}"#,
            JsonError::DuplicateField {
                field: Field::Error,
            },
        ),
        (
            br#"{"error":{"message":"m"}}"#,
            // An object without `code` with the core's `sources`; any object without them.
            if cfg!(feature = "sources") {
                JsonError::MissingField {
                    field: Field::Error,
                }
            } else {
                JsonError::InvalidType {
                    field: Field::Error,
                }
            },
        ),
        (
            b"HTTP/1.0 403 connecting to 169.254.169.254:80: unreachable network",
            JsonError::NotAnObject,
        ),
    ] {
        assert_eq!(ServiceError::parse(400, None, body, &mut []), Err(err));
    }
}

#[test]
fn errors_are_small_copy_and_displayable() {
    fn check<E: core::error::Error + Copy + Send + Sync + 'static>(e: E) -> String {
        e.to_string()
    }
    assert!(core::mem::size_of::<JsonError>() <= 16);
    assert_eq!(
        check(JsonError::MissingField {
            field: Field::ExpiresOn
        }),
        "JSON member \"expires_on\" is missing"
    );
    assert!(check(JsonError::ScratchTooSmall { required: 77 }).contains("77"));
}

/// A `serde_json::Value` strategy for unknown members.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| serde_json::json!(f)),
        any::<String>().prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map(any::<String>(), inner, 0..8)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512), size in 0usize..64) {
        let mut scratch = vec![0u8; size];
        let _ = Token::parse(&body, &mut scratch);
        let _ = ServiceError::parse(500, None, &body, &mut scratch);
    }

    #[test]
    fn mutated_fixture_never_panics_and_is_rejected_when_serde_json_rejects(
        pos in 0usize..2529, byte in any::<u8>(), op in 0u8..3
    ) {
        let mut body = IMDS_TOKEN_BODY.as_bytes().to_vec();
        let pos = pos % body.len();
        match op {
            0 => body[pos] = byte,
            1 => { body.remove(pos); }
            _ => body.insert(pos, byte),
        }
        let mut scratch = vec![0u8; body.len()];
        let ours = Token::parse(&body, &mut scratch);
        if serde_json::from_slice::<serde_json::Value>(&body).is_err() {
            prop_assert!(ours.is_err(), "serde_json rejects but we accept: {:?}", String::from_utf8_lossy(&body));
        }
    }

    #[test]
    fn unknown_members_of_any_shape_are_skipped(value in json_value(), key in "[a-z_]{1,12}") {
        prop_assume!(!matches!(key.as_str(),
            "access_token" | "client_id" | "expires_in" | "expires_on" | "ext_expires_in"
            | "not_before" | "resource" | "token_type" | "refresh_token" | "object_id" | "msi_res_id"));
        let member = format!("{}:{}", serde_json::to_string(&key).unwrap(), serde_json::to_string(&value).unwrap());
        let body = format!("{{{member},{}", &IMDS_TOKEN_BODY[1..]);
        let base = parse(IMDS_TOKEN_BODY).unwrap();
        prop_assert_eq!(parse(&body), Ok(base));
    }

    #[test]
    fn strings_decode_like_serde_json(s in any::<String>()) {
        let encoded = serde_json::to_string(&s).unwrap();
        let body = format!(r#"{{"access_token":"t","expires_on":"1","resource":{encoded},"token_type":"Bearer"}}"#);
        let mut scratch = vec![0u8; body.len()];
        let t = Token::parse(body.as_bytes(), &mut scratch).unwrap();
        prop_assert_eq!(t.resource, s.as_str());
    }
}
