//! The server imitating App Service (2019, 2017), Azure ML, Cloud Shell and Arc
//! (docs/protocol.md §4, docs/sources-emulator.md): paths, secrets, api-versions, selectors,
//! identity rules, token and error bodies, headers.

mod server_common;

use mitoken_core::server::{Config, Outcome, Rejection};
use mitoken_core::source::Source;
use server_common::{
    Mode, Reply, SAMI, SAMI_CLIENT, SAMI_OBJECT, SAMI_UA2, TestIssuer, UA_CLIENT, UA_OBJECT,
    UA_RES, UA2, Vm, run_with,
};

const SECRET: &[u8] = b"5f1c2d0e-9a8b-4c7d-8e6f-0a1b2c3d4e5f";
const UNKNOWN: &str = "99999999-0000-4000-8000-000000000000";
const CORRELATION: &str = "0f0e0d0c-0b0a-4909-8807-060504030201";
const REALM: &str = "/var/opt/azcmagent/tokens/3b8e0b52-2a36-4e7c-9d0e-1c2b3a4d5e6f.key";

fn config(source: Source) -> Config<'static> {
    let c = Config::for_source(source)
        .with_secret(SECRET)
        .with_correlation_id(CORRELATION);
    if source == Source::Arc {
        c.with_realm(REALM)
    } else {
        c
    }
}

fn request(source: Source, vm: Vm, text: &str) -> Reply {
    let mut issuer = TestIssuer::new(Mode::Ok);
    run_with(config(source), vm, &mut issuer, text)
}

fn get(target: &str, headers: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n")
}

fn secret() -> String {
    String::from_utf8(SECRET.to_vec()).unwrap()
}

fn app(query: &str) -> Reply {
    let h = format!("X-IDENTITY-HEADER: {}\r\n", secret());
    request(
        Source::AppService,
        SAMI_UA2,
        &get(&format!("/MSI/token?{query}"), &h),
    )
}

fn rejected(r: &Reply) -> Rejection {
    match r.outcome {
        Outcome::Rejected { rejection, .. } => rejection,
        other => panic!("not rejected: {other:?}"),
    }
}

#[test]
fn app_service_system_assigned_body_and_headers() {
    let r = app("api-version=2019-08-01&resource=https%3A%2F%2Fvault.azure.net");
    assert_eq!(r.status, 200, "{:?}", r.body);
    let obj = r.body.as_object().unwrap();
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "access_token",
            "client_id",
            "expires_on",
            "not_before",
            "resource",
            "token_type"
        ]
    );
    assert_eq!(r.field("client_id"), Some(SAMI_CLIENT));
    let exp: u64 = r.field("expires_on").unwrap().parse().unwrap();
    assert_eq!(exp, server_common::NOW + 86_400);
    assert_eq!(r.field("resource"), Some("https://vault.azure.net"));
    assert_eq!(r.header("Server"), Some("Kestrel"));
    assert_eq!(r.header("X-CORRELATION-ID"), Some(CORRELATION));
    assert_eq!(
        r.header("Content-Type"),
        Some("application/json; charset=utf-8")
    );
}

#[test]
fn app_service_selectors() {
    let base = "api-version=2019-08-01&resource=r";
    for (sel, client) in [
        (format!("client_id={}", UA_CLIENT[1]), UA_CLIENT[1]),
        (format!("principal_id={}", UA_OBJECT[0]), UA_CLIENT[0]),
        (format!("object_id={}", UA_OBJECT[1]), UA_CLIENT[1]),
        (format!("mi_res_id={}", UA_RES[0]), UA_CLIENT[0]),
        // msi_res_id is ignored, as App Service ignores it: the system-assigned identity.
        (format!("msi_res_id={}", UA_RES[0]), SAMI_CLIENT),
    ] {
        let r = app(&format!("{base}&{sel}"));
        assert_eq!(r.status, 200, "{sel}: {:?}", r.body);
        assert_eq!(r.field("client_id"), Some(client), "{sel}");
    }
}

#[test]
fn app_service_errors() {
    let r = app(&format!(
        "api-version=2019-08-01&resource=r&client_id={UNKNOWN}"
    ));
    assert_eq!(r.status, 400);
    assert_eq!(r.body["statusCode"], 400);
    assert_eq!(r.body["correlationId"], CORRELATION);
    assert!(r.body["message"].is_string());

    let r = app("api-version=2017-09-01&resource=r");
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["code"], "UnsupportedApiVersion");
    assert_eq!(r.body["error"]["innerError"], serde_json::Value::Null);
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("'2017-09-01'"), "{message}");
    assert!(message.contains("/MSI/token"), "{message}");

    for headers in ["", "X-IDENTITY-HEADER: wrong\r\n", "secret: x\r\n"] {
        let req = get("/MSI/token?api-version=2019-08-01&resource=r", headers);
        let r = request(Source::AppService, SAMI, &req);
        assert_eq!(r.status, 403, "{headers:?}");
        assert_eq!(rejected(&r), Rejection::SecretMissing);
        assert_eq!(r.body["statusCode"], 403);
    }
    let r = app("api-version=2019-08-01");
    assert_eq!(r.status, 400);
    assert_eq!(rejected(&r), Rejection::ResourceMissing);
    let r = request(
        Source::AppService,
        SAMI,
        &get("/metadata/identity/oauth2/token", ""),
    );
    assert_eq!(r.status, 404);
}

fn legacy(source: Source, vm: Vm, query: &str) -> Reply {
    let h = format!("secret: {}\r\n", secret());
    request(source, vm, &get(&format!("/MSI/token?{query}"), &h))
}

#[test]
fn app_service_2017() {
    let r = legacy(
        Source::AppService2017,
        SAMI_UA2,
        "api-version=2017-09-01&resource=r",
    );
    assert_eq!(r.status, 200);
    // 1_757_687_322 + 86_400 = 2025-09-13 14:28:42 UTC.
    assert_eq!(r.field("expires_on"), Some("09/13/2025 14:28:42 +00:00"));
    assert!(r.body.get("client_id").is_none());
    assert!(r.body.get("expires_in").is_none());
    // An unknown clientid falls back to the system-assigned identity.
    let q = format!("api-version=2017-09-01&resource=r&clientid={UNKNOWN}");
    let r = legacy(Source::AppService2017, SAMI_UA2, &q);
    assert_eq!(r.status, 200);
    assert!(
        matches!(r.outcome, Outcome::Token { resolved, .. } if resolved.identity.client_id == SAMI_CLIENT)
    );
    let q = format!(
        "api-version=2017-09-01&resource=r&clientid={}",
        UA_CLIENT[1]
    );
    let r = legacy(Source::AppService2017, SAMI_UA2, &q);
    assert!(
        matches!(r.outcome, Outcome::Token { resolved, .. } if resolved.identity.client_id == UA_CLIENT[1])
    );
    // client_id is not 2017's selector: ignored.
    let q = format!(
        "api-version=2017-09-01&resource=r&client_id={}",
        UA_CLIENT[1]
    );
    let r = legacy(Source::AppService2017, SAMI_UA2, &q);
    assert!(
        matches!(r.outcome, Outcome::Token { resolved, .. } if resolved.identity.client_id == SAMI_CLIENT)
    );
    let r = request(
        Source::AppService2017,
        SAMI,
        &get(
            "/MSI/token?api-version=2017-09-01&resource=r",
            "secret: no\r\n",
        ),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.body["StatusCode"], 401);
    assert_eq!(r.body["CorrelationId"], CORRELATION);
}

#[test]
fn azure_ml() {
    let q = format!("api-version=2017-09-01&resource=r&clientid={SAMI_CLIENT}");
    let r = legacy(Source::AzureMl, SAMI_UA2, &q);
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["expires_in"], 86_400);
    assert_eq!(r.body["expires_on"], server_common::NOW + 86_400);
    assert!(r.body.get("client_id").is_none());
    let q = format!(
        "api-version=2017-09-01&resource=r&clientid={}",
        UA_CLIENT[0]
    );
    let r = legacy(Source::AzureMl, SAMI_UA2, &q);
    assert!(
        matches!(r.outcome, Outcome::Token { resolved, .. } if resolved.identity.client_id == UA_CLIENT[0])
    );
    let r = legacy(
        Source::AzureMl,
        SAMI_UA2,
        "api-version=2017-09-01&resource=r",
    );
    assert_eq!(rejected(&r), Rejection::ClientIdRequired);
    assert_eq!(r.status, 400);
    let q = format!("api-version=2017-09-01&resource=r&clientid={UNKNOWN}");
    let r = legacy(Source::AzureMl, SAMI_UA2, &q);
    assert_eq!(rejected(&r), Rejection::IdentityNotFound);
    assert_eq!(r.body["statusCode"], 400);
    assert_eq!(r.body["correlationId"], CORRELATION);
    let q = format!("api-version=2019-08-01&resource=r&clientid={SAMI_CLIENT}");
    assert_eq!(
        rejected(&legacy(Source::AzureMl, SAMI, &q)),
        Rejection::ApiVersion
    );
}

fn cloud_shell(vm: Vm, body: &str, headers: &str) -> Reply {
    let req = format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n{headers}\r\n{body}",
        body.len()
    );
    request(Source::CloudShell, vm, &req)
}

#[test]
fn cloud_shell_form_post() {
    let r = cloud_shell(
        SAMI,
        "resource=https%3A%2F%2Fmanagement.azure.com%2F",
        "Metadata: true\r\n",
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.field("expires_in").unwrap().parse::<u64>().is_ok());
    assert_eq!(r.field("token_type"), Some("Bearer"));
    let r = cloud_shell(
        SAMI,
        "resource=https%3A%2F%2Fexample.com",
        "Metadata: true\r\n",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["code"], "AudienceNotSupported");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("example.com")
    );
    let r = cloud_shell(SAMI, "resource=https%3A%2F%2Fvault.azure.net", "");
    assert_eq!(rejected(&r), Rejection::MetadataHeaderMissing);
    let r = request(
        Source::CloudShell,
        SAMI,
        &get(
            "/oauth2/token?resource=https://vault.azure.net",
            "Metadata: true\r\n",
        ),
    );
    assert_eq!(r.status, 405);
    let r = cloud_shell(
        UA2,
        "resource=https%3A%2F%2Fvault.azure.net",
        "Metadata: true\r\n",
    );
    assert_eq!(rejected(&r), Rejection::IdentityNotFound);
}

fn arc(vm: Vm, query: &str, auth: Option<&str>) -> Reply {
    let h = match auth {
        Some(a) => format!("Metadata: true\r\nAuthorization: {a}\r\n"),
        None => String::from("Metadata: true\r\n"),
    };
    request(
        Source::Arc,
        vm,
        &get(&format!("/metadata/identity/oauth2/token?{query}"), &h),
    )
}

#[test]
fn arc_challenge_then_token() {
    let q = "api-version=2020-06-01&resource=https%3A%2F%2Fmanagement.azure.com";
    let r = arc(SAMI_UA2, q, None);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("WWW-Authenticate").unwrap(),
        format!("Basic realm={REALM}")
    );
    assert_eq!(rejected(&r), Rejection::ArcChallenge);
    let r = arc(SAMI_UA2, q, Some("Basic wrong"));
    assert_eq!(rejected(&r), Rejection::ArcKeyInvalid);
    let key = format!("Basic {}", secret());
    let r = arc(SAMI_UA2, q, Some(&key));
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.field("expires_in").is_some());
    assert_eq!(r.field("client_id"), Some(SAMI_CLIENT));
    assert_eq!(r.field("object_id"), Some(SAMI_OBJECT));
    assert!(r.body.get("msi_res_id").is_none());
    for (sel, client) in [
        (format!("client_id={}", UA_CLIENT[0]), UA_CLIENT[0]),
        (format!("object_id={}", UA_OBJECT[1]), UA_CLIENT[1]),
        (format!("msi_res_id={}", UA_RES[1]), UA_CLIENT[1]),
        (format!("mi_res_id={}", UA_RES[1]), SAMI_CLIENT),
    ] {
        let r = arc(SAMI_UA2, &format!("{q}&{sel}"), Some(&key));
        assert_eq!(r.status, 200, "{sel}");
        assert_eq!(r.field("client_id"), Some(client), "{sel}");
    }
    let r = arc(
        SAMI_UA2,
        &format!("{q}&msi_res_id={}", UA_RES[0]),
        Some(&key),
    );
    assert_eq!(r.field("msi_res_id"), Some(UA_RES[0]));
    let r = arc(SAMI_UA2, &format!("{q}&client_id={UNKNOWN}"), Some(&key));
    assert_eq!(r.status, 404);
    assert_eq!(rejected(&r), Rejection::IdentityNotAssigned);
    let r = arc(SAMI_UA2, "resource=r", Some(&key));
    assert_eq!(rejected(&r), Rejection::ApiVersion);
}

#[test]
fn faults_take_the_source_shape() {
    let mut issuer = TestIssuer::new(Mode::Throttled(Some(7)));
    let h = format!("X-IDENTITY-HEADER: {}\r\n", secret());
    let req = get("/MSI/token?api-version=2019-08-01&resource=r", &h);
    let r = run_with(config(Source::AppService), SAMI, &mut issuer, &req);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("Retry-After"), Some("7"));
    assert_eq!(r.body["statusCode"], 429);
    let mut issuer = TestIssuer::new(Mode::Fault(500));
    let r = run_with(config(Source::AppService), SAMI, &mut issuer, &req);
    assert_eq!(r.status, 500);
    assert_eq!(r.body["message"], "fault injected by the test");
}

#[test]
fn no_secret_configured_refuses_everything() {
    let mut issuer = TestIssuer::new(Mode::Ok);
    let req = get(
        "/MSI/token?api-version=2019-08-01&resource=r",
        "X-IDENTITY-HEADER: \r\n",
    );
    let r = run_with(
        Config::for_source(Source::AppService),
        SAMI,
        &mut issuer,
        &req,
    );
    assert_eq!(r.status, 403);
}
