//! Token JSON (`Token::parse`).
//!
//! Input: one byte choosing a small scratch size, then the body. Properties:
//! - a scratch as long as the body always suffices (never `ScratchTooSmall`);
//! - with a smaller scratch the answer is the same, or `ScratchTooSmall { required }`, and a
//!   scratch of exactly `required` bytes then gives the same answer;
//! - a body we accept is valid JSON to serde_json (lone surrogate escapes in skipped members
//!   aside: the grammar allows them, serde_json does not), and every field we return equals what
//!   serde_json decodes for it (strings unescaped, numbers as digits or digit strings);
//! - `access_token` and `token_type` hold no control characters (they go into a header);
//! - write (IMDS shape) then parse gives the same fields back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mitoken_core::token::{
    JsonError, Secret, Shape, Token, TokenJson, parse_expires_on, write_token_json,
};
use mitoken_fuzz::split_byte;
use serde_json::Value;

/// The fields as owned values, to compare parses backed by different scratch buffers.
#[derive(Debug, PartialEq, Eq)]
struct Fields {
    access_token: String,
    client_id: Option<String>,
    expires_in: Option<u64>,
    expires_on: Option<u64>,
    ext_expires_in: Option<u64>,
    not_before: Option<u64>,
    resource: String,
    token_type: String,
    refresh_token: Option<String>,
    object_id: Option<String>,
    msi_res_id: Option<String>,
}

fn fields(t: &Token<'_>) -> Fields {
    Fields {
        access_token: t.access_token.expose().to_owned(),
        client_id: t.client_id.map(str::to_owned),
        expires_in: t.expires_in,
        expires_on: t.expires_on,
        ext_expires_in: t.ext_expires_in,
        not_before: t.not_before,
        resource: t.resource.to_owned(),
        token_type: t.token_type.to_owned(),
        refresh_token: t.refresh_token.map(|s| s.expose().to_owned()),
        object_id: t.object_id.map(str::to_owned),
        msi_res_id: t.msi_res_id.map(str::to_owned),
    }
}

fn parse(body: &[u8], scratch_len: usize) -> Result<Fields, JsonError> {
    let mut scratch = vec![0u8; scratch_len];
    Token::parse(body, &mut scratch).map(|t| fields(&t))
}

fn json_str(obj: &serde_json::Map<String, Value>, key: &str) -> Option<String> {
    match obj.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => panic!("we accepted {key} = {other:?}"),
    }
}

fn json_num(obj: &serde_json::Map<String, Value>, key: &str) -> Option<u64> {
    match obj.get(key) {
        None | Some(Value::Null) => None,
        // `expires_on` may be a date (App Service 2017, ISO 8601): the `expires_on` target
        // checks that parser; here it must agree with the token parser.
        Some(Value::String(s)) if key == "expires_on" && !s.bytes().all(|b| b.is_ascii_digit()) => {
            Some(parse_expires_on(s).expect("a date we accepted"))
        }
        Some(Value::String(s)) => Some(s.parse().expect("digits")),
        Some(Value::Number(n)) => Some(n.as_u64().expect("a u64")),
        Some(other) => panic!("we accepted {key} = {other:?}"),
    }
}

fn serde_agrees(body: &[u8], ours: &Fields) {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        // A lone surrogate escape (`"\udc00"`, `"\ud800x"`) fits the JSON grammar (RFC 8259 §7), and in a
        // skipped member we never decode it; serde_json refuses it anyway.
        Err(e)
            if ["surrogate", "end of hex escape"]
                .iter()
                .any(|m| e.to_string().contains(m)) =>
        {
            return;
        }
        Err(e) => panic!("we accepted invalid JSON: {e}"),
    };
    let Value::Object(obj) = value else {
        panic!("we accepted a non-object");
    };
    let theirs = Fields {
        access_token: json_str(&obj, "access_token").expect("access_token"),
        client_id: json_str(&obj, "client_id"),
        expires_in: json_num(&obj, "expires_in"),
        expires_on: json_num(&obj, "expires_on"),
        ext_expires_in: json_num(&obj, "ext_expires_in"),
        not_before: json_num(&obj, "not_before"),
        resource: json_str(&obj, "resource").expect("resource"),
        token_type: json_str(&obj, "token_type").expect("token_type"),
        refresh_token: json_str(&obj, "refresh_token"),
        object_id: json_str(&obj, "object_id"),
        msi_res_id: json_str(&obj, "msi_res_id"),
    };
    assert_eq!(ours, &theirs, "fields differ from serde_json");
}

fn round_trip(f: &Fields) {
    let json = TokenJson {
        access_token: Secret::new(&f.access_token),
        client_id: f.client_id.as_deref().unwrap_or(""),
        expires_in: f.expires_in.unwrap_or(0),
        expires_on: f.expires_on.unwrap_or(0),
        ext_expires_in: f.ext_expires_in.unwrap_or(0),
        not_before: f.not_before.unwrap_or(0),
        resource: &f.resource,
    };
    let n = write_token_json(&json, Shape::Imds, &mut [])
        .expect_err("empty buffer")
        .required;
    let mut out = vec![0u8; n];
    assert_eq!(write_token_json(&json, Shape::Imds, &mut out), Ok(n));
    let back = parse(&out, n).expect("our own token JSON parses");
    assert_eq!(back.access_token, f.access_token);
    assert_eq!(back.client_id.as_deref(), Some(json.client_id));
    assert_eq!(back.expires_in, Some(json.expires_in));
    assert_eq!(back.expires_on, Some(json.expires_on));
    assert_eq!(back.resource, f.resource);
    assert_eq!(back.token_type, "Bearer");
}

fuzz_target!(|data: &[u8]| {
    let Some((small, body)) = split_byte(data) else {
        return;
    };
    let full = parse(body, body.len());
    assert!(
        !matches!(full, Err(JsonError::ScratchTooSmall { .. })),
        "a body-sized scratch must suffice"
    );
    let small = usize::from(small).min(body.len());
    match parse(body, small) {
        Err(JsonError::ScratchTooSmall { required }) => {
            assert!(required > small && required <= body.len());
            assert_eq!(parse(body, required), full, "exactly `required` bytes");
        }
        other => assert_eq!(other, full, "small scratch"),
    }
    if let Ok(f) = &full {
        assert!(!f.access_token.bytes().any(|b| b < 0x20 || b == 0x7f));
        assert!(!f.token_type.bytes().any(|b| b < 0x20 || b == 0x7f));
        serde_agrees(body, f);
        round_trip(f);
    }
});
