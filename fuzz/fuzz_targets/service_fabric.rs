//! Service Fabric's request checks and bodies: `check_request` on an arbitrary query and
//! secret header, then the answer it leads to.
//! Properties: no panics; a request is accepted only with the expected secret, the exact
//! api-version and a non-empty resource, and the accepted resource is the query's `resource`
//! percent-decoded; every answer body (token or nested error) is JSON that serde_json reads
//! back with the same values; the thumbprint parser accepts exactly 40 hex digits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mitoken_core::service_fabric::{
    check_request, parse_thumbprint, write_error_body, write_token_body,
};

fuzz_target!(|input: (&str, Option<&str>, &str)| {
    let (query, secret, thumb) = input;
    let mut scratch = [0u8; 512];
    match check_request(query, secret, "k", &mut scratch) {
        Ok(resource) => {
            assert_eq!(secret, Some("k"));
            assert!(query.contains("api-version=2019-07-01-preview"));
            assert!(!resource.is_empty());
            let mut out = vec![0u8; 2048];
            let n = write_token_body("a.b.c", 1_800_000_000, resource, &mut out).expect("fits");
            let v: serde_json::Value = serde_json::from_slice(&out[..n]).expect("JSON");
            assert_eq!(v["resource"].as_str(), Some(resource));
            assert_eq!(v["expires_on"].as_u64(), Some(1_800_000_000));
        }
        Err(rejection) => {
            let mut out = vec![0u8; 2048];
            let n = write_error_body(&rejection, "cid", &mut out).expect("fits");
            let v: serde_json::Value = serde_json::from_slice(&out[..n]).expect("JSON");
            assert_eq!(v["error"]["code"].as_str(), Some(rejection.code().as_str()));
            assert!((400..=500).contains(&rejection.status()));
        }
    }
    let digits = thumb.bytes().filter(|b| !matches!(b, b' ' | b':')).count();
    let all_hex = thumb.bytes().all(|b| b.is_ascii_hexdigit() || matches!(b, b' ' | b':'));
    assert_eq!(parse_thumbprint(thumb).is_ok(), all_hex && digits == 40);
});
