#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

extern crate std;
use std::format;
use std::string::String;
use std::vec::Vec;

use super::*;

const FORM: &[u8] = b"client_assertion=h.p.s&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_id=app&grant_type=client_credentials&scope=api%3A%2F%2Fr%2F.default&claims=%7B%7D";

fn cred() -> FederatedCredential<'static> {
    FederatedCredential {
        issuer: "https://oidc.example/cluster",
        subject: "system:serviceaccount:default:workload",
        audience: TOKEN_EXCHANGE_AUDIENCE,
    }
}

#[test]
fn form_decodes_and_checks() {
    let mut scratch = [0u8; 512];
    let form = ExchangeForm::parse(FORM, &mut scratch).unwrap();
    let req = form.check().unwrap();
    assert_eq!(req.client_id, "app");
    assert_eq!(req.resource, "api://r");
    assert_eq!(req.assertion, "h.p.s");
    assert!(!format!("{form:?}").contains("h.p.s"));
    assert!(!format!("{req:?}").contains("h.p.s"));
}

#[test]
fn form_faults_get_their_aadsts() {
    let cases: [(&[u8], u32); 7] = [
        (b"client_id=a&scope=r/.default", 900_144),
        (b"grant_type=password&client_id=a", 70_003),
        (b"grant_type=client_credentials&scope=r/.default", 900_144),
        (b"grant_type=client_credentials&client_id=a&scope=r", 1_002_012),
        (b"grant_type=client_credentials&client_id=a&scope=r/.default", 7_000_218),
        (b"grant_type=client_credentials&client_id=a&scope=r/.default&client_secret=x", 7_000_215),
        (b"grant_type=client_credentials&client_id=a&scope=r/.default&client_assertion=x&client_assertion_type=t", 700_025),
    ];
    for (body, code) in cases {
        let mut scratch = [0u8; 512];
        let form = ExchangeForm::parse(body, &mut scratch).unwrap();
        assert_eq!(
            form.check().unwrap_err().code(),
            code,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn form_refuses_duplicates_bad_escapes_and_overflow() {
    let mut scratch = [0u8; 512];
    assert_eq!(
        ExchangeForm::parse(b"client_id=a&client_id=b", &mut scratch),
        Err(FormError::Duplicate("client_id"))
    );
    assert_eq!(
        ExchangeForm::parse(b"scope=%zz", &mut scratch),
        Err(FormError::Malformed("scope"))
    );
    let mut tiny = [0u8; 8];
    assert_eq!(
        ExchangeForm::parse(FORM, &mut tiny),
        Err(FormError::ScratchTooSmall)
    );
}

#[test]
fn jws_splits_into_three_base64url_parts() {
    assert_eq!(split_jws("a.b.c"), Ok(("a", "b", "c")));
    for bad in ["a.b", "a.b.c.d", "a..c", "a.b+.c", ""] {
        assert_eq!(split_jws(bad), Err(Aadsts::MalformedAssertion), "{bad}");
    }
}

fn claims_json(iss: &str, sub: &str, aud: &str, nbf: u64, exp: u64) -> String {
    format!(
        r#"{{"aud":{aud},"exp":{exp},"iat":{nbf},"iss":"{iss}","kubernetes.io":{{"namespace":"default"}},"nbf":{nbf},"sub":"{sub}"}}"#
    )
}

#[test]
fn claims_parse_with_array_or_string_audience() {
    let json = claims_json("i", "s", r#"["api://AzureADTokenExchange","x"]"#, 10, 20);
    let mut scratch = [0u8; 64];
    let c = AssertionClaims::parse(json.as_bytes(), &mut scratch).unwrap();
    assert_eq!(
        (c.iss, c.sub, c.nbf, c.exp),
        (Some("i"), Some("s"), Some(10), Some(20))
    );
    assert_eq!(
        c.audiences().collect::<Vec<_>>(),
        ["api://AzureADTokenExchange", "x"]
    );
    let json = claims_json("i\\/x", "s", r#""a""#, 10, 20);
    let c = AssertionClaims::parse(json.as_bytes(), &mut scratch).unwrap();
    assert_eq!((c.iss, c.aud[0]), (Some("i/x"), Some("a")));
}

#[test]
fn claims_errors_are_typed() {
    let mut scratch = [0u8; 64];
    let five = claims_json("i", "s", r#"["a","b","c","d","e"]"#, 1, 2);
    assert_eq!(
        AssertionClaims::parse(five.as_bytes(), &mut scratch),
        Err(ClaimsError::TooManyAudiences)
    );
    assert_eq!(
        AssertionClaims::parse(br#"{"exp":"1"}"#, &mut scratch),
        Err(ClaimsError::InvalidType("exp"))
    );
    assert_eq!(
        AssertionClaims::parse(br#"{"exp":-1}"#, &mut scratch),
        Err(ClaimsError::InvalidType("exp"))
    );
    assert_eq!(
        AssertionClaims::parse(br#"{"sub":"a","sub":"b"}"#, &mut scratch),
        Err(ClaimsError::Duplicate("sub"))
    );
    assert_eq!(
        AssertionClaims::parse(br#"{"aud":[1]}"#, &mut scratch),
        Err(ClaimsError::InvalidType("aud"))
    );
    assert!(matches!(
        AssertionClaims::parse(b"[1]", &mut scratch),
        Err(ClaimsError::Json(_))
    ));
    let mut none = [0u8; 0];
    assert_eq!(
        AssertionClaims::parse(br#"{"iss":"\u0041"}"#, &mut none),
        Err(ClaimsError::ScratchTooSmall)
    );
}

fn check(iss: &str, sub: &str, aud: &str, now: u64) -> Result<(), u32> {
    let json = claims_json(iss, sub, &format!("[\"{aud}\"]"), 1000, 4600);
    let mut scratch = [0u8; 64];
    let c = AssertionClaims::parse(json.as_bytes(), &mut scratch).unwrap();
    check_assertion(&c, &cred(), now).map_err(|e| e.code())
}

#[test]
fn assertion_checks_follow_entra() {
    let (i, s, a) = (cred().issuer, cred().subject, cred().audience);
    assert_eq!(check(i, s, a, 2000), Ok(()));
    assert_eq!(check(i, s, a, 4600 + 300), Err(700_024));
    assert_eq!(check(i, s, a, 4600 + 299), Ok(()));
    assert_eq!(check(i, s, a, 1000 - 301), Err(700_024));
    assert_eq!(check("https://other", s, a, 2000), Err(70_021));
    assert_eq!(check(i, s, "api://other", 2000), Err(700_212));
    assert_eq!(
        check(i, "system:serviceaccount:default:other", a, 2000),
        Err(700_213)
    );
    assert_eq!(
        check(i, "system:serviceaccount:default:Workload", a, 2000),
        Err(7_002_138)
    );
    let mut scratch = [0u8; 8];
    let c = AssertionClaims::parse(br#"{"iss":"x"}"#, &mut scratch).unwrap();
    assert_eq!(
        check_assertion(&c, &cred(), 1),
        Err(Aadsts::MalformedAssertion)
    );
}

#[test]
fn error_body_has_every_member() {
    let ctx = ErrorContext {
        now: 1_687_188_472,
        trace_id: "t",
        correlation_id: "c",
        authority: "https://127.0.0.1:1/",
    };
    let e = Aadsts::SubjectMismatch {
        sub: "system:serviceaccount:a:b",
    };
    let mut out = [0u8; 2048];
    let n = write_error_body(&e, &ctx, &mut out).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out[..n]).unwrap();
    assert_eq!(v["error"], "invalid_client");
    assert_eq!(v["error_codes"], serde_json::json!([700_213]));
    assert_eq!(v["timestamp"], "2023-06-19 15:27:52Z");
    assert_eq!(v["trace_id"], "t");
    assert_eq!(v["correlation_id"], "c");
    assert_eq!(v["error_uri"], "https://127.0.0.1:1/error?code=700213");
    let d = v["error_description"].as_str().unwrap();
    assert!(d.starts_with("AADSTS700213: No matching federated identity record found for presented assertion subject 'system:serviceaccount:a:b'."), "{d}");
    assert!(
        d.ends_with("Trace ID: t Correlation ID: c Timestamp: 2023-06-19 15:27:52Z"),
        "{d}"
    );
    assert_eq!(e.status(), 401);
    let mut small = [0u8; 16];
    assert!(write_error_body(&e, &ctx, &mut small).is_err());
}

#[test]
fn time_window_message_uses_iso_dates() {
    let e = Aadsts::AssertionNotInValidTime {
        now: 0,
        nbf: 951_782_400,
        exp: 4_102_444_799,
    };
    let text = format!("{e}");
    assert!(text.contains("Current time: 1970-01-01T00:00:00.0000000Z, assertion valid from 2000-02-29T00:00:00.0000000Z, expiry time of assertion 2099-12-31T23:59:59.0000000Z."), "{text}");
}

#[test]
fn token_body_has_integer_lifetimes() {
    let mut out = [0u8; 128];
    let n = write_token_body("a.b.c", 86_399, &mut out).unwrap();
    assert_eq!(
        &out[..n],
        br#"{"token_type":"Bearer","expires_in":86399,"ext_expires_in":86399,"access_token":"a.b.c"}"#
    );
}

#[test]
fn token_body_matches_the_recorded_shape() {
    let recorded = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/sources/workload-identity/token-body.json"
    ));
    let token =
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL3ZhdWx0LmF6dXJlLm5ldCJ9.c2ln";
    let mut out = [0u8; 512];
    let n = write_token_body(token, 86_399, &mut out).unwrap();
    assert_eq!(core::str::from_utf8(&out[..n]).unwrap(), recorded);
}
