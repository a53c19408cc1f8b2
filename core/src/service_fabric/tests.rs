#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

extern crate std;
use std::string::String;

use super::*;

fn body(rej: &SfRejection<'_>) -> String {
    let mut out = [0u8; 512];
    let n = write_error_body(rej, "cid", &mut out).unwrap();
    String::from_utf8(out[..n].to_vec()).unwrap()
}

#[test]
fn good_request_decodes_resource() {
    let mut s = [0u8; 128];
    let q = "api-version=2019-07-01-preview&resource=https%3A%2F%2Fmanagement.azure.com%2F&token_sha256_to_refresh=ab&xms_cc=cp1";
    assert_eq!(
        check_request(q, Some("k"), "k", &mut s),
        Ok("https://management.azure.com/")
    );
}

#[test]
fn each_fault_has_its_status_and_code() {
    let mut s = [0u8; 128];
    let cases: [(&str, Option<&str>, u16, &str); 7] = [
        (
            "api-version=2019-07-01-preview&resource=r",
            None,
            401,
            "SecretHeaderNotFound",
        ),
        (
            "api-version=2019-07-01-preview&resource=r",
            Some("x"),
            404,
            "ManagedIdentityNotFound",
        ),
        (
            "api-version=2017-09-01&resource=r",
            Some("k"),
            400,
            "InvalidApiVersion",
        ),
        ("resource=r", Some("k"), 400, "InvalidApiVersion"),
        (
            "api-version=2019-07-01-preview",
            Some("k"),
            400,
            "ArgumentNullOrEmpty",
        ),
        (
            "api-version=2019-07-01-preview&resource=",
            Some("k"),
            400,
            "ArgumentNullOrEmpty",
        ),
        (
            "api-version=2019-07-01-preview&resource=r&client_id=c",
            Some("k"),
            404,
            "ManagedIdentityNotFound",
        ),
    ];
    for (q, secret, status, code) in cases {
        let e = check_request(q, secret, "k", &mut s).unwrap_err();
        assert_eq!((e.status(), e.code().as_str()), (status, code), "{q}");
    }
}

#[test]
fn invalid_api_version_body_is_the_real_one() {
    let mut s = [0u8; 128];
    let e = check_request("api-version=2017-09-01&resource=r", Some("k"), "k", &mut s).unwrap_err();
    assert_eq!(
        body(&e),
        r#"{"error":{"correlationId":"cid","code":"InvalidApiVersion","message":"The api-version '2017-09-01' is not supported. Supported version is '2019-07-01-preview'."}}"#
    );
}

#[test]
fn duplicate_and_bad_escapes_are_refused() {
    let mut s = [0u8; 128];
    let q = "api-version=2019-07-01-preview&resource=a&resource=b";
    assert_eq!(
        check_request(q, Some("k"), "k", &mut s),
        Err(SfRejection::MalformedParameter { name: "resource" })
    );
    let q = "api-version=2019-07-01-preview&resource=%zz";
    assert!(check_request(q, Some("k"), "k", &mut s).is_err());
    let mut tiny = [0u8; 70];
    let q = "api-version=2019-07-01-preview&resource=https%3A%2F%2Fmanagement.azure.com%2F";
    assert!(matches!(
        check_request(q, Some("k"), "k", &mut tiny),
        Err(SfRejection::ScratchTooSmall { .. })
    ));
}

#[test]
fn token_body_has_a_numeric_expires_on() {
    let mut out = [0u8; 256];
    let n = write_token_body(
        "eyJ.a.b",
        1_565_244_611,
        "https://vault.azure.net",
        &mut out,
    )
    .unwrap();
    assert_eq!(
        &out[..n],
        br#"{"token_type":"Bearer","access_token":"eyJ.a.b","expires_on":1565244611,"resource":"https://vault.azure.net"}"#
    );
    let mut small = [0u8; 10];
    assert!(write_token_body("t", 1, "r", &mut small).is_err());
}

#[test]
fn thumbprints_normalise() {
    let t = parse_thumbprint("ab:CD 01 23456789abcdef0123456789abcdef0123").unwrap();
    assert_eq!(t[0], 0xAB);
    assert_eq!(t[19], 0x23);
    assert_eq!(
        parse_thumbprint("abc"),
        Err(ThumbprintError::WrongLength { digits: 3 })
    );
    assert_eq!(
        parse_thumbprint("000000000000000000000000000000000000000000"),
        Err(ThumbprintError::WrongLength { digits: 42 })
    );
    assert_eq!(parse_thumbprint("g"), Err(ThumbprintError::NotHex));
    let mut out = [0u8; 40];
    assert_eq!(
        write_thumbprint(&t, &mut out),
        "ABCD0123456789ABCDEF0123456789ABCDEF0123"
    );
}

#[test]
fn invalid_api_version_body_matches_the_recorded_one() {
    let recorded = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/sources/service-fabric/error-invalid-api-version.json"
    ));
    let mut s = [0u8; 128];
    let e = check_request("api-version=2017-09-01&resource=r", Some("k"), "k", &mut s).unwrap_err();
    let mut out = [0u8; 512];
    let n = write_error_body(&e, "7f8a6f3e-2b0c-4d5e-9a1b-3c4d5e6f7a8b", &mut out).unwrap();
    assert_eq!(core::str::from_utf8(&out[..n]).unwrap(), recorded);
}
