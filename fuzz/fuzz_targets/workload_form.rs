//! The workload-identity token request form: `ExchangeForm::parse` then `check`, on arbitrary
//! bytes and arbitrary scratch sizes.
//! Properties: no panics; a parse needs no more scratch than the body's length; when the check
//! passes, `scope` is exactly the resource plus `/.default`, the assertion is non-empty and its
//! type is jwt-bearer; every refusal writes an error body that is a JSON object whose
//! `error_codes` holds the refusal's code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mitoken_core::workload::{ErrorContext, ExchangeForm, JWT_BEARER, write_error_body};

fuzz_target!(|input: (u16, &[u8])| {
    let (scratch_len, body) = input;
    let mut scratch = vec![0u8; usize::from(scratch_len) % 4096];
    let Ok(form) = ExchangeForm::parse(body, &mut scratch) else {
        let mut big = vec![0u8; body.len()];
        // With room for every decoded byte, only a malformed body may be refused.
        if let Err(e) = ExchangeForm::parse(body, &mut big) {
            assert_ne!(e, mitoken_core::workload::FormError::ScratchTooSmall);
        }
        return;
    };
    match form.check() {
        Ok(req) => {
            assert_eq!(form.scope, Some(format!("{}/.default", req.resource).as_str()));
            assert!(!req.assertion.is_empty());
            assert_eq!(form.client_assertion_type, Some(JWT_BEARER));
        }
        Err(e) => {
            let ctx = ErrorContext {
                now: 1_800_000_000,
                trace_id: "t",
                correlation_id: "c",
                authority: "https://localhost:1",
            };
            let mut out = vec![0u8; 8192];
            let n = write_error_body(&e, &ctx, &mut out).expect("an error body fits 8 KiB");
            let v: serde_json::Value = serde_json::from_slice(&out[..n]).expect("JSON");
            assert_eq!(v["error_codes"][0].as_u64(), Some(u64::from(e.code())));
        }
    }
});
