//! Table-driven conformance: one case per applicable row of docs/protocol.md §1.9 (error catalogue)
//! and §3 (default-identity rules), for both flavors: VM configuration × request → status,
//! `error`, `error_description` (or the identity whose token is returned).

mod server_common;

use mitoken_core::identity::Flavor::{self, Extension, Imds};
use server_common::*;

const MD_MISSING: &str = "Required metadata header not specified";
const NOT_FOUND: &str = "Identity not found";
const MULTI: &str = "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request";
const NO_RESOURCE: &str = "Required query variable 'resource' is missing";
const API_VERSION: &str = "Bad request. api-version is invalid or was not specified in the request. For more information refer to aka.ms/azureimds";

/// What a case expects.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// 200 with a token for the identity whose client id is this.
    Token(&'static str),
    /// An error answer: status, `error`, `error_description` (None = one-field shape).
    Error(u16, &'static str, Option<&'static str>),
}

struct Case {
    name: &'static str,
    flavor: Flavor,
    vm: Vm,
    mode: Mode,
    request: String,
    want: Want,
}

fn imds(q: &str) -> String {
    format!("/metadata/identity/oauth2/token?api-version=2018-02-01&resource={RES}{q}")
}

fn ext(q: &str) -> String {
    format!("/oauth2/token?resource={RES}{q}")
}

#[allow(clippy::too_many_lines)]
fn cases() -> Vec<Case> {
    use Want::{Error as E, Token as T};
    let c = |name, flavor, vm, mode, request: String, want| Case {
        name,
        flavor,
        vm,
        mode,
        request,
        want,
    };
    let ok = Mode::Ok;
    let mut v = vec![
        // ---- §1.9, IMDS ----
        c(
            "imds: Metadata header missing",
            Imds,
            SAMI,
            ok,
            get_bare(&imds(""), ""),
            E(400, "invalid_request", Some(MD_MISSING)),
        ),
        c(
            "imds: Metadata: false",
            Imds,
            SAMI,
            ok,
            get_bare(&imds(""), "Metadata: false\r\n"),
            E(400, "invalid_request", Some(MD_MISSING)),
        ),
        c(
            "imds: Metadata: True (case-insensitive)",
            Imds,
            SAMI,
            ok,
            get_bare(&imds(""), "Metadata: True\r\n"),
            T(SAMI_CLIENT),
        ),
        c(
            "imds: resource missing",
            Imds,
            SAMI,
            ok,
            get("/metadata/identity/oauth2/token?api-version=2018-02-01", ""),
            E(400, "invalid_request", Some(NO_RESOURCE)),
        ),
        c(
            "imds: resource empty",
            Imds,
            SAMI,
            ok,
            get(
                "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=",
                "",
            ),
            E(400, "invalid_request", Some(NO_RESOURCE)),
        ),
        c(
            "imds: no identity on the VM",
            Imds,
            NONE,
            ok,
            get(&imds(""), ""),
            E(400, "invalid_request", Some(NOT_FOUND)),
        ),
        c(
            "imds: selector not assigned",
            Imds,
            SAMI_UA2,
            ok,
            get(&imds(&format!("&client_id={}", UA_CLIENT[2])), ""),
            E(400, "invalid_request", Some(NOT_FOUND)),
        ),
        c(
            "imds: several UAMIs, no selector",
            Imds,
            UA2,
            ok,
            get(&imds(""), ""),
            E(400, "invalid_request", Some(MULTI)),
        ),
        c(
            "imds: resource unknown to Entra",
            Imds,
            SAMI,
            Mode::UnknownResource,
            get(&imds(""), ""),
            E(400, "invalid_resource", None),
        ),
        c(
            "imds: 404 while IMDS updates",
            Imds,
            SAMI,
            Mode::AdmitFault(404),
            get(&imds(""), ""),
            E(404, "not_found", Some("IMDS is updating")),
        ),
        c(
            "imds: POST not allowed",
            Imds,
            SAMI,
            ok,
            post(&imds(""), "application/x-www-form-urlencoded", ""),
            E(405, "method_not_allowed", Some("Not allowed")),
        ),
        c(
            "imds: DELETE not allowed",
            Imds,
            SAMI,
            ok,
            get(&imds(""), "").replacen("GET", "DELETE", 1),
            E(405, "method_not_allowed", Some("Not allowed")),
        ),
        c(
            "imds: 410 while IMDS updates",
            Imds,
            SAMI,
            Mode::AdmitFault(410),
            get(&imds(""), ""),
            E(410, "gone", Some("IMDS is updating")),
        ),
        c(
            "imds: throttled",
            Imds,
            SAMI,
            Mode::Throttled(Some(7)),
            get(&imds(""), ""),
            E(
                429,
                "too_many_requests",
                Some("Too many requests; retry after the Retry-After delay"),
            ),
        ),
        c(
            "imds: issuer failure",
            Imds,
            SAMI,
            Mode::Failed,
            get(&imds(""), ""),
            E(
                500,
                "server_error",
                Some("Failed to issue a token; retry later"),
            ),
        ),
        c(
            "imds: unavailable",
            Imds,
            SAMI,
            Mode::Unavailable(None),
            get(&imds(""), ""),
            E(
                503,
                "service_unavailable",
                Some("Service temporarily unavailable; retry after the Retry-After delay"),
            ),
        ),
        c(
            "imds: injected fault",
            Imds,
            SAMI,
            Mode::Fault(502),
            get(&imds(""), ""),
            E(502, "injected", Some("fault injected by the test")),
        ),
        // ---- §1.2–1.6, IMDS ----
        c(
            "imds: unknown path",
            Imds,
            SAMI,
            ok,
            get("/metadata/identity?api-version=2018-02-01", ""),
            E(404, "Not found", None),
        ),
        c(
            "imds: extension path on IMDS",
            Imds,
            SAMI,
            ok,
            get(&ext(""), ""),
            E(404, "Not found", None),
        ),
        c(
            "imds: X-Forwarded-For",
            Imds,
            SAMI,
            ok,
            get(&imds(""), "X-Forwarded-For: 10.0.0.1\r\n"),
            E(
                400,
                "invalid_request",
                Some("Requests with an X-Forwarded-For header are not allowed; do not use a proxy"),
            ),
        ),
        c(
            "imds: api-version missing",
            Imds,
            SAMI,
            ok,
            get(
                &format!("/metadata/identity/oauth2/token?resource={RES}"),
                "",
            ),
            E(400, "invalid_request", Some(API_VERSION)),
        ),
        c(
            "imds: api-version before the identity category",
            Imds,
            SAMI,
            ok,
            get(
                &format!("/metadata/identity/oauth2/token?api-version=2017-12-01&resource={RES}"),
                "",
            ),
            E(400, "invalid_request", Some(API_VERSION)),
        ),
        c(
            "imds: api-version unknown",
            Imds,
            SAMI,
            ok,
            get(
                &format!("/metadata/identity/oauth2/token?api-version=2099-01-01&resource={RES}"),
                "",
            ),
            E(400, "invalid_request", Some(API_VERSION)),
        ),
        c(
            "imds: api-version newest",
            Imds,
            SAMI,
            ok,
            get(
                &format!("/metadata/identity/oauth2/token?api-version=2025-04-07&resource={RES}"),
                "",
            ),
            T(SAMI_CLIENT),
        ),
        c(
            "imds: two selectors",
            Imds,
            SAMI_UA2,
            ok,
            get(
                &imds(&format!(
                    "&client_id={}&object_id={}",
                    UA_CLIENT[0], UA_OBJECT[0]
                )),
                "",
            ),
            E(
                400,
                "invalid_request",
                Some("Only one of client_id, object_id and msi_res_id may be specified"),
            ),
        ),
        c(
            "imds: msi_res_id and mi_res_id",
            Imds,
            SAMI_UA2,
            ok,
            get(
                &imds(&format!("&msi_res_id={0}&mi_res_id={0}", UA_RES[0])),
                "",
            ),
            E(
                400,
                "invalid_request",
                Some("Only one of client_id, object_id and msi_res_id may be specified"),
            ),
        ),
        c(
            "imds: duplicated parameter",
            Imds,
            SAMI,
            ok,
            get(&imds(&format!("&resource={RES}")), ""),
            E(
                400,
                "invalid_request",
                Some("Duplicate query parameters are not allowed"),
            ),
        ),
        c(
            "imds: duplicated after decoding",
            Imds,
            SAMI,
            ok,
            get(&imds("&api%2Dversion=2018-02-01"), ""),
            E(
                400,
                "invalid_request",
                Some("Duplicate query parameters are not allowed"),
            ),
        ),
        c(
            "imds: not UTF-8 after decoding",
            Imds,
            SAMI,
            ok,
            get(&imds("&x=%FF"), ""),
            E(
                400,
                "invalid_request",
                Some("Query parameters are not valid percent-encoded UTF-8"),
            ),
        ),
        c(
            "imds: raw resource URI accepted",
            Imds,
            SAMI,
            ok,
            get(
                "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/",
                "",
            ),
            T(SAMI_CLIENT),
        ),
        c(
            "imds: unknown parameters ignored",
            Imds,
            SAMI,
            ok,
            get(&imds("&authority=x&bypass_cache=true"), ""),
            T(SAMI_CLIENT),
        ),
        // ---- §3, IMDS ----
        c(
            "imds §3: SAMI, no selector",
            Imds,
            SAMI,
            ok,
            get(&imds(""), ""),
            T(SAMI_CLIENT),
        ),
        c(
            "imds §3: SAMI + UAMIs, no selector",
            Imds,
            SAMI_UA2,
            ok,
            get(&imds(""), ""),
            T(SAMI_CLIENT),
        ),
        c(
            "imds §3: one UAMI, no selector",
            Imds,
            UA1,
            ok,
            get(&imds(""), ""),
            T(UA_CLIENT[0]),
        ),
        c(
            "imds §3: by client_id",
            Imds,
            SAMI_UA2,
            ok,
            get(&imds(&format!("&client_id={}", UA_CLIENT[1])), ""),
            T(UA_CLIENT[1]),
        ),
        c(
            "imds §3: by client_id, upper case",
            Imds,
            SAMI_UA2,
            ok,
            get(
                &imds(&format!("&client_id={}", UA_CLIENT[1].to_uppercase())),
                "",
            ),
            T(UA_CLIENT[1]),
        ),
        c(
            "imds §3: by object_id",
            Imds,
            UA2,
            ok,
            get(&imds(&format!("&object_id={}", UA_OBJECT[0])), ""),
            T(UA_CLIENT[0]),
        ),
        c(
            "imds §3: by msi_res_id, encoded, other case",
            Imds,
            UA2,
            ok,
            get(
                &imds(&format!(
                    "&msi_res_id={}",
                    UA_RES[1].to_lowercase().replace('/', "%2F")
                )),
                "",
            ),
            T(UA_CLIENT[1]),
        ),
        c(
            "imds §3: by mi_res_id",
            Imds,
            UA2,
            ok,
            get(&imds(&format!("&mi_res_id={}", UA_RES[0])), ""),
            T(UA_CLIENT[0]),
        ),
        c(
            "imds §3: SAMI by its client_id",
            Imds,
            SAMI_UA2,
            ok,
            get(&imds(&format!("&client_id={SAMI_CLIENT}")), ""),
            T(SAMI_CLIENT),
        ),
        c(
            "imds §3: selector not a GUID",
            Imds,
            UA2,
            ok,
            get(&imds("&client_id=not-a-guid"), ""),
            E(400, "invalid_request", Some(NOT_FOUND)),
        ),
        c(
            "imds §3: unknown resource id",
            Imds,
            UA2,
            ok,
            get(&imds("&msi_res_id=%2Fsubscriptions%2Fx"), ""),
            E(400, "invalid_request", Some(NOT_FOUND)),
        ),
        c(
            "imds §3: UAMI selector, no identities",
            Imds,
            NONE,
            ok,
            get(&imds(&format!("&client_id={}", UA_CLIENT[0])), ""),
            E(400, "invalid_request", Some(NOT_FOUND)),
        ),
        // ---- §5.2 ----
        c(
            "imds: identity/info without SAMI",
            Imds,
            UA1,
            ok,
            get("/metadata/identity/info?api-version=2018-02-01", ""),
            E(400, "invalid_request", Some(NOT_FOUND)),
        ),
        c(
            "imds: identity/info without Metadata",
            Imds,
            SAMI,
            ok,
            get_bare("/metadata/identity/info?api-version=2018-02-01", ""),
            E(400, "invalid_request", Some(MD_MISSING)),
        ),
        // ---- §1.9 / §2, extension ----
        c(
            "ext: Metadata header missing",
            Extension,
            SAMI,
            ok,
            get_bare(&ext(""), ""),
            E(400, "bad_request_102", Some(MD_MISSING)),
        ),
        c(
            "ext: unknown source",
            Extension,
            SAMI,
            ok,
            get(&imds(""), ""),
            E(
                401,
                "unknown_source",
                Some("Unknown Source /metadata/identity/oauth2/token"),
            ),
        ),
        c(
            "ext: resource missing",
            Extension,
            SAMI,
            ok,
            get("/oauth2/token", ""),
            E(400, "invalid_request", Some(NO_RESOURCE)),
        ),
        c(
            "ext: no identity",
            Extension,
            NONE,
            ok,
            get(&ext(""), ""),
            E(400, "invalid_request", Some(NOT_FOUND)),
        ),
        c(
            "ext: several UAMIs",
            Extension,
            UA2,
            ok,
            get(&ext(""), ""),
            E(400, "invalid_request", Some(MULTI)),
        ),
        c(
            "ext: selector not assigned",
            Extension,
            UA1,
            ok,
            get(&ext(&format!("&object_id={}", UA_OBJECT[1])), ""),
            E(400, "invalid_request", Some(NOT_FOUND)),
        ),
        c(
            "ext: issuer failure",
            Extension,
            SAMI,
            Mode::Failed,
            get(&ext(""), ""),
            E(
                500,
                "unknown",
                Some(
                    "Failed to retrieve token from the Active directory. For details see logs in the server's log",
                ),
            ),
        ),
        c(
            "ext: resource unknown",
            Extension,
            SAMI,
            Mode::UnknownResource,
            get(&ext(""), ""),
            E(400, "invalid_resource", None),
        ),
        c(
            "ext: throttled",
            Extension,
            SAMI,
            Mode::Throttled(None),
            get(&ext(""), ""),
            E(
                429,
                "too_many_requests",
                Some("Too many requests; retry after the Retry-After delay"),
            ),
        ),
        c(
            "ext: PUT not allowed",
            Extension,
            SAMI,
            ok,
            get(&ext(""), "").replacen("GET", "PUT", 1),
            E(405, "method_not_allowed", Some("Not allowed")),
        ),
        c(
            "ext: POST JSON body",
            Extension,
            SAMI,
            ok,
            post("/oauth2/token", "application/json", "{}"),
            E(
                400,
                "invalid_request",
                Some("POST body must be application/x-www-form-urlencoded"),
            ),
        ),
        c(
            "ext: POST duplicate across query and form",
            Extension,
            SAMI,
            ok,
            post(
                &ext(""),
                "application/x-www-form-urlencoded",
                &format!("resource={RES}"),
            ),
            E(
                400,
                "invalid_request",
                Some("Duplicate query parameters are not allowed"),
            ),
        ),
        c(
            "ext: bad escape in form",
            Extension,
            SAMI,
            ok,
            post(
                "/oauth2/token",
                "application/x-www-form-urlencoded",
                &format!("resource={RES}&x=%zz"),
            ),
            E(
                400,
                "invalid_request",
                Some("Query parameters are not valid percent-encoded UTF-8"),
            ),
        ),
        c(
            "ext: two selectors",
            Extension,
            SAMI_UA2,
            ok,
            get(
                &ext(&format!(
                    "&client_id={}&msi_res_id={}",
                    UA_CLIENT[0], UA_RES[0]
                )),
                "",
            ),
            E(
                400,
                "invalid_request",
                Some("Only one of client_id, object_id and msi_res_id may be specified"),
            ),
        ),
        // ---- §3 / §2.2, extension ----
        c(
            "ext §3: SAMI, GET",
            Extension,
            SAMI,
            ok,
            get(&ext(""), ""),
            T(SAMI_CLIENT),
        ),
        c(
            "ext §3: SAMI + UAMIs, no selector",
            Extension,
            SAMI_UA2,
            ok,
            get(&ext(""), ""),
            T(SAMI_CLIENT),
        ),
        c(
            "ext §3: one UAMI, POST form",
            Extension,
            UA1,
            ok,
            post(
                "/oauth2/token",
                "application/x-www-form-urlencoded",
                &format!("resource={RES}"),
            ),
            T(UA_CLIENT[0]),
        ),
        c(
            "ext §3: POST form with client_id",
            Extension,
            UA2,
            ok,
            post(
                "/oauth2/token",
                "application/x-www-form-urlencoded; charset=utf-8",
                &format!("resource={RES}&client_id={}", UA_CLIENT[1]),
            ),
            T(UA_CLIENT[1]),
        ),
        c(
            "ext §3: by object_id",
            Extension,
            UA2,
            ok,
            get(&ext(&format!("&object_id={}", UA_OBJECT[0])), ""),
            T(UA_CLIENT[0]),
        ),
        c(
            "ext §3: by msi_res_id (legacy SDKs)",
            Extension,
            UA2,
            ok,
            get(&ext(&format!("&msi_res_id={}", UA_RES[1])), ""),
            T(UA_CLIENT[1]),
        ),
        c(
            "ext: api-version tolerated",
            Extension,
            SAMI,
            ok,
            get(&ext("&api-version=2018-02-01"), ""),
            T(SAMI_CLIENT),
        ),
        c(
            "ext: X-Forwarded-For not checked",
            Extension,
            SAMI,
            ok,
            get(&ext(""), "X-Forwarded-For: 10.0.0.1\r\n"),
            T(SAMI_CLIENT),
        ),
    ];
    v.shrink_to_fit();
    v
}

#[test]
#[allow(clippy::too_many_lines)]
fn every_row() {
    let mut failures = Vec::new();
    for case in cases() {
        let mut issuer = TestIssuer::new(case.mode);
        let reply = run(case.flavor, case.vm, &mut issuer, &case.request);
        let mut check = |ok: bool, what: String| {
            if !ok {
                failures.push(format!("{}: {what}\n  body: {}", case.name, reply.body));
            }
        };
        assert_eq!(
            reply.header("Content-Type"),
            Some("application/json; charset=utf-8"),
            "{}",
            case.name
        );
        match case.want {
            Want::Token(client_id) => {
                check(reply.status == 200, format!("status {}", reply.status));
                check(
                    reply
                        .field("access_token")
                        .is_some_and(|t| t.starts_with("eyJ")),
                    "access_token".into(),
                );
                check(
                    reply.field("resource") == Some(RES_DECODED),
                    "resource echo".into(),
                );
                check(
                    reply.field("token_type") == Some("Bearer"),
                    "token_type".into(),
                );
                check(
                    reply.field("expires_in") == Some("86400"),
                    "expires_in".into(),
                );
                check(
                    reply.field("expires_on") == Some(&(NOW + 86_400).to_string()),
                    "expires_on".into(),
                );
                check(
                    reply.field("not_before") == Some(&(NOW - 300).to_string()),
                    "not_before".into(),
                );
                let want_keys: &[&str] = match case.flavor {
                    Imds => &[
                        "access_token",
                        "client_id",
                        "expires_in",
                        "expires_on",
                        "ext_expires_in",
                        "not_before",
                        "resource",
                        "token_type",
                    ],
                    _ => &[
                        "access_token",
                        "expires_in",
                        "expires_on",
                        "not_before",
                        "refresh_token",
                        "resource",
                        "token_type",
                    ],
                };
                let obj = reply.body.as_object().unwrap();
                let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
                keys.sort_unstable();
                check(keys == want_keys, format!("keys {keys:?}"));
                check(
                    obj.values().all(serde_json::Value::is_string),
                    "all values are strings".into(),
                );
                // The identity actually used: IMDS names it; for the extension, the issuer saw it.
                let used = issuer.calls.last().map(|c| c.0);
                let table = table(case.flavor, case.vm);
                let used_client = used.and_then(|s| table.get(s)).map(|i| i.client_id);
                check(
                    used_client == Some(client_id),
                    format!("identity {used_client:?}"),
                );
                if case.flavor == Imds {
                    check(
                        reply.field("client_id") == Some(client_id),
                        "client_id".into(),
                    );
                    check(
                        reply.field("ext_expires_in") == Some("86399"),
                        "ext_expires_in".into(),
                    );
                } else {
                    check(
                        reply.field("refresh_token") == Some(""),
                        "refresh_token".into(),
                    );
                }
            }
            Want::Error(status, error, description) => {
                check(
                    reply.status == status,
                    format!("status {} != {status}", reply.status),
                );
                check(
                    reply.field("error") == Some(error),
                    format!("error {:?}", reply.field("error")),
                );
                let n = reply.body.as_object().map_or(0, serde_json::Map::len);
                match description {
                    Some(d) => check(reply.field("error_description") == Some(d) && n == 2, "error_description".into()),
                    None if error == "invalid_resource" => check(
                        reply.field("error_description").is_some_and(|d| {
                            d.starts_with(&format!("AADSTS500011: The resource principal named {RES_DECODED} was not found in the tenant named {TENANT}."))
                        }),
                        "AADSTS500011 text".into(),
                    ),
                    None => check(n == 1, "one-field body".into()),
                }
                let wants_retry = matches!(status, 429 | 503);
                check(
                    reply.header("Retry-After").is_some() == wants_retry,
                    "Retry-After presence".into(),
                );
                check(
                    reply.keep_alive,
                    "well-framed errors keep the connection".into(),
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn retry_after_values() {
    let r = run(
        Imds,
        SAMI,
        &mut TestIssuer::new(Mode::Throttled(Some(7))),
        &get(&imds(""), ""),
    );
    assert_eq!(r.header("Retry-After"), Some("7"));
    let r = run(
        Imds,
        SAMI,
        &mut TestIssuer::new(Mode::Unavailable(None)),
        &get(&imds(""), ""),
    );
    assert_eq!(r.header("Retry-After"), Some("1"));
}

#[test]
fn identity_info() {
    let r = run(
        Imds,
        SAMI,
        &mut TestIssuer::new(Mode::Ok),
        &get("/metadata/identity/info?api-version=2018-02-01", ""),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.raw_body,
        format!("{{\"tenantId\":\"{TENANT}\"}}").into_bytes()
    );
}

#[test]
fn not_found_body_is_exact() {
    let r = run(
        Imds,
        SAMI,
        &mut TestIssuer::new(Mode::Ok),
        &get("/metadata/instance?api-version=2021-02-01", ""),
    );
    assert_eq!(r.raw_body, br#"{"error":"Not found"}"#);
}

#[test]
fn bypass_cache_and_countdown() {
    let mut issuer = TestIssuer::new(Mode::Ok);
    issuer.age = 453;
    let r = run(
        Imds,
        UA1,
        &mut issuer,
        &get(&imds("&bypass_cache=true"), ""),
    );
    assert_eq!(r.field("expires_in"), Some("85947"));
    assert_eq!(
        issuer.calls,
        vec![(
            mitoken_core::identity::Slot::UserAssigned(0),
            RES_DECODED.to_string(),
            true
        )]
    );
}

#[test]
fn head_request_gets_no_body() {
    let table = table(Imds, SAMI);
    let mut work = vec![0u8; 8192];
    let mut server = mitoken_core::server::Server::new(
        &table,
        mitoken_core::server::Config::new(Imds),
        &mut work,
    );
    let mut conn = server.connection();
    let mut input = get(&imds(""), "").replacen("GET", "HEAD", 1).into_bytes();
    let mut out = vec![0u8; 4096];
    let mitoken_core::server::Handled::Response(r) = server
        .handle(
            &mut conn,
            &mut input,
            NOW,
            &mut TestIssuer::new(Mode::Ok),
            &mut out,
        )
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(r.status, 405);
    let text = core::str::from_utf8(&out[..r.len]).unwrap();
    assert!(text.ends_with("\r\n\r\n"), "{text}");
    assert!(text.contains("Content-Length: "), "{text}");
}
