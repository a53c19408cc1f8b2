//! `expires_on` text (`token::parse_expires_on`): digits, App Service 2017's localized dates,
//! ISO 8601.
//!
//! Input: the text (any bytes; non-UTF-8 is skipped). Properties:
//! - it never panics;
//! - a date it accepts is in years 1970–9999 (plus a day for the offset);
//! - that instant written by chrono in each form we read (2017 Windows, 2017 Linux, ISO with
//!   seven fraction digits, ISO `Z`) parses back to the same instant;
//! - the same text inside a token body gives the same `expires_on`.
#![no_main]

use chrono::DateTime;
use libfuzzer_sys::fuzz_target;
use mitoken_core::token::{Token, parse_expires_on};

const MAX_SECS: u64 = 253_402_300_799 + 86_400;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(secs) = parse_expires_on(text) else {
        return;
    };
    let digits = text.bytes().all(|b| b.is_ascii_digit());
    if !digits {
        assert!(secs <= MAX_SECS, "{text:?} → {secs}");
        let dt = DateTime::from_timestamp(i64::try_from(secs).expect("small"), 0)
            .expect("in chrono's range");
        for form in [
            dt.format("%-m/%-d/%Y %-I:%M:%S %p +00:00").to_string(),
            dt.format("%m/%d/%Y %H:%M:%S +00:00").to_string(),
            format!("{}.0000000+00:00", dt.format("%Y-%m-%dT%H:%M:%S")),
            dt.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        ] {
            assert_eq!(parse_expires_on(&form), Some(secs), "{text:?} → {form:?}");
        }
    }
    if text.bytes().all(|b| b != b'"' && b != b'\\' && b >= 0x20) {
        let body = format!(
            r#"{{"access_token":"t","expires_on":"{text}","resource":"r","token_type":"Bearer"}}"#
        );
        let token = Token::parse(body.as_bytes(), &mut []).expect("a token");
        assert_eq!(token.expires_on, Some(secs));
    }
});
