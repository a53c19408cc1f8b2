//! Inputs the fuzz targets (`fuzz/`, run with `cargo xtask fuzz`) found, minimised, one test
//! each. Each names its target and the property that failed.

use mitoken_core::token::{Field, JsonError, Token};

/// `token` target, property "`access_token` holds no control character" (it goes into an
/// `Authorization` header): a raw DEL (0x7F) is valid JSON, and only escaped tokens were checked
/// for controls, so `"a\x7fb"` was accepted while `"a\u007fb"` was refused.
#[test]
fn token_raw_del_in_access_token() {
    let body = b"{\"access_token\":\"a\x7fb\",\"expires_on\":\"1\",\"resource\":\"r\",\"token_type\":\"Bearer\"}";
    assert_eq!(
        Token::parse(body, &mut []),
        Err(JsonError::ControlInHeaderValue {
            field: Field::AccessToken
        })
    );
    // The shape the fuzzer found: the real IMDS token body with one byte of the JWT turned DEL.
    let fixture = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/imds-token-body.json"
    ));
    let mut body = fixture.as_bytes().to_vec();
    let at = fixture.find("eyJ").expect("a JWT") + 100;
    body[at] = 0x7F;
    assert_eq!(
        Token::parse(&body, &mut [0u8; 64]),
        Err(JsonError::ControlInHeaderValue {
            field: Field::AccessToken
        })
    );
    // Elsewhere a raw DEL is just text.
    let body = b"{\"access_token\":\"ab\",\"expires_on\":\"1\",\"resource\":\"r\x7f\",\"token_type\":\"Bearer\"}";
    assert_eq!(Token::parse(body, &mut []).unwrap().resource, "r\x7f");
}
