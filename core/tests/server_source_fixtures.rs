//! The emulated sources' bodies have the shape of the recorded ones (`fixtures/sources/`): every
//! member of a recorded body is in ours, with the same JSON type (a numeric string stays a
//! string, an integer an integer, a nested error object nested).

mod server_common;

use mitoken_core::server::Config;
use mitoken_core::source::Source;
use serde_json::Value;
use server_common::{Mode, SAMI, TestIssuer, run_with};

const SECRET: &[u8] = b"0c5a8a34-1e3f-4a7b-9c2d-5e6f7a8b9c0d";

fn fixture(path: &str) -> Value {
    let file = format!("{}/../fixtures/sources/{path}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&file).expect("fixture")).expect("JSON")
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every member of `recorded` is in `ours` with the same type, objects compared recursively.
fn same_shape(recorded: &Value, ours: &Value, at: &str) {
    let (Value::Object(r), Value::Object(o)) = (recorded, ours) else {
        assert_eq!(kind(recorded), kind(ours), "{at}: {ours}");
        return;
    };
    for (key, value) in r {
        let Some(mine) = o.get(key) else {
            panic!("{at}.{key} missing from ours: {ours}");
        };
        assert_eq!(kind(value), kind(mine), "{at}.{key}: ours {ours}");
        same_shape(value, mine, &format!("{at}.{key}"));
    }
}

fn answer(source: Source, mode: Mode, request: &str) -> Value {
    let config = Config::for_source(source)
        .with_secret(SECRET)
        .with_realm("/var/opt/azcmagent/tokens/k.key")
        .with_correlation_id("11111111-2222-4333-8444-555555555555");
    let mut issuer = TestIssuer::new(mode);
    run_with(config, SAMI, &mut issuer, request).body
}

fn get(target: &str, headers: &str) -> String {
    let secret = String::from_utf8(SECRET.to_vec()).unwrap();
    let headers = headers.replace("SECRET", &secret);
    format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n")
}

#[test]
fn app_service() {
    let ok = get(
        "/MSI/token?api-version=2019-08-01&resource=https://vault.azure.net",
        "X-IDENTITY-HEADER: SECRET\r\n",
    );
    let body = answer(Source::AppService, Mode::Ok, &ok);
    same_shape(&fixture("app-service/token.json"), &body, "token");
    assert!(body.get("expires_in").is_none());
    same_shape(
        &fixture("app-service/error-500.json"),
        &answer(Source::AppService, Mode::Failed, &ok),
        "500",
    );
    let recorded = fixture("app-service/error-500.json");
    let ours = answer(Source::AppService, Mode::Failed, &ok);
    assert_eq!(ours["message"], recorded["message"]);
    let bad_version = get(
        "/MSI/token?api-version=2019-08-02&resource=r",
        "X-IDENTITY-HEADER: SECRET\r\n",
    );
    same_shape(
        &fixture("app-service/error-unsupported-api-version.json"),
        &answer(Source::AppService, Mode::Ok, &bad_version),
        "api-version",
    );
}

#[test]
fn app_service_2017() {
    let req = get(
        "/MSI/token?api-version=2017-09-01&resource=r",
        "secret: SECRET\r\n",
    );
    let recorded = fixture("app-service-2017/error-503.json");
    let ours = answer(Source::AppService2017, Mode::Unavailable(Some(3)), &req);
    same_shape(&recorded, &ours, "503");
    assert_eq!(ours["ErrorCode"], recorded["ErrorCode"]);
    assert_eq!(ours["StatusCode"], recorded["StatusCode"]);
}

#[test]
fn azure_ml() {
    let req = get(
        &format!(
            "/MSI/token?api-version=2017-09-01&resource=r&clientid={}",
            server_common::SAMI_CLIENT
        ),
        "secret: SECRET\r\n",
    );
    let body = answer(Source::AzureMl, Mode::Ok, &req);
    same_shape(&fixture("azure-ml/token.json"), &body, "token");
    assert!(body.get("client_id").is_none());
}

#[test]
fn cloud_shell() {
    let form = "resource=https%3A%2F%2Fexample.com";
    let req = format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: localhost\r\nMetadata: true\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    let recorded = fixture("cloud-shell/error-audience.json");
    let ours = answer(Source::CloudShell, Mode::Ok, &req);
    same_shape(&recorded, &ours, "audience");
    // The documented text up to the ellipsis.
    let message = ours["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Audience https://example.com isn't a supported MSI token audience"),
        "{message}"
    );
}

#[test]
fn arc() {
    let req = get(
        "/metadata/identity/oauth2/token?api-version=2020-06-01&resource=https://management.azure.com",
        "Metadata: true\r\nAuthorization: Basic SECRET\r\n",
    );
    same_shape(
        &fixture("arc/token.json"),
        &answer(Source::Arc, Mode::Ok, &req),
        "token",
    );
}
