//! A client assertion's claims: `AssertionClaims::parse` on arbitrary payloads, differential
//! against serde_json, then `check_assertion`.
//! Properties: no panics; whatever the core accepts is a JSON object for serde_json (lone
//! surrogate escapes in skipped members aside, as in the `token` target), with the
//! same `iss` / `sub` strings and the same whole-number `exp` / `nbf`; the audiences are
//! `aud` (a string, or the strings of an array, in order); `check_assertion` passes only
//! when issuer, subject and audience match the credential exactly and the time is in range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mitoken_core::workload::{
    AssertionClaims, CLOCK_SKEW_SECS, FederatedCredential, check_assertion,
};

const CRED: FederatedCredential<'static> = FederatedCredential {
    issuer: "https://i/",
    subject: "system:serviceaccount:a:b",
    audience: "api://AzureADTokenExchange",
};

fuzz_target!(|input: (u64, &[u8])| {
    let (now, payload) = input;
    let mut scratch = vec![0u8; payload.len()];
    let Ok(claims) = AssertionClaims::parse(payload, &mut scratch) else {
        return;
    };
    let v: serde_json::Value = match serde_json::from_slice(payload) {
        Ok(v) => v,
        // A lone surrogate escape fits the JSON grammar (RFC 8259 §7) and in a skipped member
        // the core never decodes it; serde_json refuses it anyway (as in the `token` target).
        Err(e)
            if ["surrogate", "end of hex escape"]
                .iter()
                .any(|m| e.to_string().contains(m)) =>
        {
            return;
        }
        Err(e) => panic!("the core accepted what serde_json refuses: {e}"),
    };
    let obj = v.as_object().expect("an object");
    assert_eq!(claims.iss, obj.get("iss").and_then(|x| x.as_str()));
    assert_eq!(claims.sub, obj.get("sub").and_then(|x| x.as_str()));
    assert_eq!(claims.exp, obj.get("exp").and_then(serde_json::Value::as_u64));
    assert_eq!(claims.nbf, obj.get("nbf").and_then(serde_json::Value::as_u64));
    let auds: Vec<&str> = claims.audiences().collect();
    match obj.get("aud") {
        Some(serde_json::Value::String(s)) => assert_eq!(auds, [s.as_str()]),
        Some(serde_json::Value::Array(a)) => {
            let want: Vec<&str> = a.iter().filter_map(|x| x.as_str()).collect();
            assert_eq!(auds, want);
        }
        _ => assert!(auds.is_empty()),
    }
    if check_assertion(&claims, &CRED, now).is_ok() {
        assert_eq!(claims.iss, Some(CRED.issuer));
        assert_eq!(claims.sub, Some(CRED.subject));
        assert!(auds.contains(&CRED.audience));
        let exp = claims.exp.expect("exp");
        assert!(now < exp.saturating_add(CLOCK_SKEW_SECS));
        assert!(now.saturating_add(CLOCK_SKEW_SECS) >= claims.nbf.unwrap_or(0));
    }
});
