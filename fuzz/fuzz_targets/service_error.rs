//! Error JSON (`ServiceError::parse`).
//!
//! Input: one byte choosing a small scratch size, then the body. Properties:
//! - a scratch as long as the body always suffices; a smaller one gives the same answer or
//!   `ScratchTooSmall { required }`, and exactly `required` bytes then give the same answer;
//! - status and `Retry-After` pass through unchanged;
//! - a body we accept is valid JSON to serde_json (lone surrogate escapes in skipped members
//!   aside: the grammar allows them, serde_json does not), and `error` / `description` equal its
//!   `error` / `error_description` (or the nested `error.code` / `error.message`, or the App
//!   Service and 2017 shapes' `ErrorCode` / `message`, `Message`, `ExceptionMessage`);
//! - `write_error_json` then parse gives the same `error` and description back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mitoken_core::token::{JsonError, ServiceError, write_error_json};
use mitoken_fuzz::split_byte;
use serde_json::{Map, Value};

type Parsed = Result<(String, Option<String>), JsonError>;

fn parse(status: u16, retry: Option<u64>, body: &[u8], scratch_len: usize) -> Parsed {
    let mut scratch = vec![0u8; scratch_len];
    ServiceError::parse(status, retry, body, &mut scratch).map(|e| {
        assert_eq!((e.status, e.retry_after), (status, retry));
        (e.error.to_owned(), e.description.map(str::to_owned))
    })
}

fn string(v: Option<&Value>) -> Option<String> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => panic!("we accepted {other:?} as a string"),
    }
}

fn serde_agrees(body: &[u8], error: &str, description: Option<&str>) {
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
    let empty = Map::new();
    let (code, nested) = match obj.get("error") {
        Some(Value::Object(inner)) => (string(inner.get("code")), inner),
        other => (string(other), &empty),
    };
    // No code anywhere (App Service's `{"statusCode","message","correlationId"}`): "".
    let code = code
        .or_else(|| string(obj.get("ErrorCode")))
        .unwrap_or_default();
    assert_eq!(code, error, "error differs from serde_json");
    let non_empty = |v: Option<&Value>| string(v).filter(|s| !s.is_empty());
    let theirs = string(obj.get("error_description"))
        .or_else(|| string(nested.get("message")))
        .or_else(|| non_empty(obj.get("message")))
        .or_else(|| non_empty(obj.get("Message")))
        .or_else(|| non_empty(obj.get("ExceptionMessage")));
    assert_eq!(theirs.as_deref(), description, "description differs");
}

fuzz_target!(|data: &[u8]| {
    let Some((small, body)) = split_byte(data) else {
        return;
    };
    let status = 400 + u16::from(small);
    let retry = (small & 1 == 1).then_some(u64::from(small));
    let full = parse(status, retry, body, body.len());
    assert!(!matches!(full, Err(JsonError::ScratchTooSmall { .. })));
    let small = usize::from(small).min(body.len());
    match parse(status, retry, body, small) {
        Err(JsonError::ScratchTooSmall { required }) => {
            assert!(required > small && required <= body.len());
            assert_eq!(parse(status, retry, body, required), full);
        }
        other => assert_eq!(other, full, "small scratch"),
    }
    let Ok((error, description)) = full else {
        return;
    };
    serde_agrees(body, &error, description.as_deref());
    let desc = description.as_deref().unwrap_or("");
    let n = write_error_json(&error, desc, &mut [])
        .expect_err("empty buffer")
        .required;
    let mut out = vec![0u8; n];
    assert_eq!(write_error_json(&error, desc, &mut out), Ok(n));
    let back = parse(status, None, &out, n).expect("our own error JSON parses");
    assert_eq!(back, (error, Some(desc.to_owned())));
});
