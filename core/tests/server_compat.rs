//! The request forms real Azure SDKs send to IMDS, each answered as IMDS answers it.
//!
//! Every request head here is one an SDK sends (docs/compatibility.md names the SDK file each
//! form comes from): MSAL Node's canonicalized endpoint with a trailing `/`, the absolute-form
//! target a client behind `HTTP_PROXY` sends (the Rust `azure_identity` crate has no endpoint
//! override), `Metadata` header name and value case variants, and the `DefaultAzureCredential`
//! probes, which IMDS answers at once with `400 Required metadata header not specified`.

mod server_common;

use mitoken_core::identity::Flavor;
use mitoken_core::server::{Endpoint, Outcome, Rejection, endpoint, serves_path};
use server_common::{
    Mode, Reply, SAMI_CLIENT, SAMI_UA2, TENANT, TestIssuer, UA_CLIENT, UA_RES, run,
};

const TOKEN: &str = "/metadata/identity/oauth2/token";
const VAULT: &str = "https%3A%2F%2Fvault.azure.net";

fn imds(request: &str) -> Reply {
    let mut issuer = TestIssuer::new(Mode::Ok);
    run(Flavor::Imds, SAMI_UA2, &mut issuer, request)
}

fn assert_token_for(reply: &Reply, client_id: &str) {
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        matches!(reply.outcome, Outcome::Token { .. }),
        "{:?}",
        reply.outcome
    );
    assert_eq!(reply.field("client_id"), Some(client_id), "{}", reply.body);
    assert_eq!(reply.field("resource"), Some("https://vault.azure.net"));
}

fn assert_rejected(reply: &Reply, rejection: Rejection) {
    assert_eq!(
        reply.outcome,
        Outcome::Rejected {
            rejection,
            resolved: None
        },
        "{}",
        reply.body
    );
    assert_eq!(reply.status, rejection.status(Flavor::Imds));
}

/// `@azure/identity` 4.x through MSAL Node with `AZURE_POD_IDENTITY_AUTHORITY_HOST`: MSAL's
/// `UrlString` lower-cases the endpoint and appends `/`, so the query follows `token/`.
#[test]
fn msal_node_trailing_slash_is_the_token_endpoint() {
    // As captured from @azure/identity 4.13.1 / msal-node 5.6.0 (a form content type on a GET).
    let system = format!(
        "GET {TOKEN}/?api-version=2018-02-01&resource={VAULT} HTTP/1.1\r\n\
         Metadata: true\r\nx-client-SKU: msal.js.node\r\nx-client-VER: 5.6.0\r\n\
         x-ms-client-request-id: 72023397-967c-4982-8325-d584fe5f8470\r\n\
         Content-Type: application/x-www-form-urlencoded;charset=utf-8\r\n\
         Accept-Encoding: gzip,deflate\r\n\
         User-Agent: azsdk-js-identity/4.13.1 core-rest-pipeline/1.24.0 Node/20.20.2\r\n\
         Host: 127.0.0.1:8080\r\nConnection: keep-alive\r\n\r\n"
    );
    assert_token_for(&imds(&system), SAMI_CLIENT);
    let by_client = format!(
        "GET {TOKEN}/?api-version=2018-02-01&resource={VAULT}&client_id={} HTTP/1.1\r\n\
         metadata: true\r\n\r\n",
        UA_CLIENT[0]
    );
    assert_token_for(&imds(&by_client), UA_CLIENT[0]);
    let by_resource = format!(
        "GET {TOKEN}/?api-version=2018-02-01&resource={VAULT}&msi_res_id={} HTTP/1.1\r\n\
         metadata: true\r\n\r\n",
        UA_RES[1].replace('/', "%2F")
    );
    assert_token_for(&imds(&by_resource), UA_CLIENT[1]);
}

/// azure-identity 1.27 sends MSAL Python's request through azure-core, which leaves `:` and `/`
/// unescaped in the query: `resource=https://vault.azure.net`, `msi_res_id=/subscriptions/…`.
#[test]
fn azure_identity_python_unescaped_query_is_served() {
    let head = "HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
                User-Agent: azsdk-python-identity/1.27.0 Python/3.11.7\r\n\
                Accept-Encoding: gzip, deflate\r\nAccept: */*\r\nConnection: keep-alive\r\n\
                Metadata: true\r\nx-client-SKU: MSAL.Python\r\nx-client-Ver: 1.39.0\r\n\r\n";
    let system =
        format!("GET {TOKEN}?api-version=2018-02-01&resource=https://vault.azure.net {head}");
    assert_token_for(&imds(&system), SAMI_CLIENT);
    let by_resource = format!(
        "GET {TOKEN}?api-version=2018-02-01&resource=https://vault.azure.net&msi_res_id={} {head}",
        UA_RES[1]
    );
    assert_token_for(&imds(&by_resource), UA_CLIENT[1]);
}

#[test]
fn info_endpoint_takes_a_trailing_slash_too() {
    let reply = imds(
        "GET /metadata/identity/info/?api-version=2018-02-01 HTTP/1.1\r\nMetadata: true\r\n\r\n",
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.field("tenantId"), Some(TENANT));
}

/// One trailing `/` is the token endpoint; anything else beside it is not.
#[test]
fn only_one_trailing_slash_is_tolerated() {
    for path in [
        "/metadata/identity/oauth2/token//",
        "/metadata/identity/oauth2/tokens",
        "/metadata/identity/oauth2/token/x",
        "/metadata/identity/oauth2/token/.",
        "/metadata/identity/oauth2",
        "/metadata/identity/oauth2/",
        "//metadata/identity/oauth2/token",
    ] {
        let reply = imds(&format!(
            "GET {path}?api-version=2018-02-01&resource={VAULT} HTTP/1.1\r\nMetadata: true\r\n\r\n"
        ));
        assert_rejected(&reply, Rejection::NotFound);
        assert_eq!(endpoint(Flavor::Imds, path), None, "{path}");
    }
    assert_eq!(endpoint(Flavor::Imds, TOKEN), Some(Endpoint::Token));
    assert_eq!(
        endpoint(Flavor::Imds, "/metadata/identity/oauth2/token/"),
        Some(Endpoint::Token)
    );
    assert_eq!(
        endpoint(Flavor::Imds, "/metadata/identity/info/"),
        Some(Endpoint::Info)
    );
    assert!(serves_path(
        Flavor::Imds,
        "/metadata/identity/oauth2/token/"
    ));
    // The extension's path is matched exactly (no SDK sends it with a slash).
    assert!(!serves_path(Flavor::Extension, "/oauth2/token/"));
    let mut issuer = TestIssuer::new(Mode::Ok);
    let reply = run(
        Flavor::Extension,
        SAMI_UA2,
        &mut issuer,
        &format!("GET /oauth2/token/?resource={VAULT} HTTP/1.1\r\nMetadata: true\r\n\r\n"),
    );
    assert_eq!(reply.status, 401, "{}", reply.body);
}

/// What a client behind `HTTP_PROXY=http://127.0.0.1:PORT` sends for
/// `http://169.254.169.254/...`: the Rust `azure_identity` crate (api-version 2019-08-01,
/// `msi_res_id`, lower-case `metadata`), with and without an explicit port or a trailing `/`.
#[test]
fn absolute_form_targets_are_served() {
    let targets = [
        format!("http://169.254.169.254{TOKEN}?api-version=2019-08-01&resource={VAULT}"),
        format!("http://169.254.169.254:80{TOKEN}?api-version=2019-08-01&resource={VAULT}"),
        format!("http://169.254.169.254{TOKEN}/?api-version=2018-02-01&resource={VAULT}"),
        format!("HTTP://169.254.169.254{TOKEN}?api-version=2018-02-01&resource={VAULT}"),
    ];
    for target in targets {
        let reply = imds(&format!(
            "GET {target} HTTP/1.1\r\nmetadata: true\r\naccept: */*\r\nhost: 169.254.169.254\r\n\r\n"
        ));
        assert_token_for(&reply, SAMI_CLIENT);
    }
    let by_resource = format!(
        "GET http://169.254.169.254{TOKEN}?api-version=2019-08-01&resource={VAULT}&msi_res_id={} HTTP/1.1\r\n\
         metadata: true\r\nhost: 169.254.169.254\r\n\r\n",
        UA_RES[1].replace('/', "%2F")
    );
    assert_token_for(&imds(&by_resource), UA_CLIENT[1]);
    let unknown = format!(
        "GET http://169.254.169.254{TOKEN}?api-version=2019-08-01&resource={VAULT}&client_id=99999999-0000-4000-8000-000000000000 HTTP/1.1\r\n\
         metadata: true\r\n\r\n"
    );
    let reply = imds(&unknown);
    assert_eq!(reply.status, 400);
    assert_eq!(reply.field("error_description"), Some("Identity not found"));
    // The probe through a proxy is answered like the direct one.
    let probe =
        format!("GET http://169.254.169.254{TOKEN} HTTP/1.1\r\nAccept: application/json\r\n\r\n");
    assert_rejected(&imds(&probe), Rejection::MetadataHeaderMissing);
}

/// Header name and value case: `Metadata: true` (docs), `Metadata: True` (Microsoft samples),
/// `metadata: true` (MSAL Node, the Rust crate), and every other casing.
#[test]
fn metadata_header_case_variants_are_accepted() {
    for header in [
        "Metadata: true",
        "Metadata: True",
        "Metadata: TRUE",
        "metadata: true",
        "METADATA: true",
        "Metadata:true",
        "Metadata:   true  ",
    ] {
        let reply = imds(&format!(
            "GET {TOKEN}?api-version=2018-02-01&resource={VAULT} HTTP/1.1\r\n{header}\r\n\r\n"
        ));
        assert_token_for(&reply, SAMI_CLIENT);
    }
    for header in [
        "Metadata: false",
        "Metadata: yes",
        "Metadata: 1",
        "Metadata:",
    ] {
        let reply = imds(&format!(
            "GET {TOKEN}?api-version=2018-02-01&resource={VAULT} HTTP/1.1\r\n{header}\r\n\r\n"
        ));
        assert_rejected(&reply, Rejection::MetadataHeaderMissing);
    }
}

/// `DefaultAzureCredential`'s probes get IMDS's answer to a request without `Metadata`:
/// 400 `invalid_request`, `Required metadata header not specified`, keep-alive, at once (the
/// issuer is never called). Go and JS send a bare GET (no query); Python the full token query.
#[test]
fn default_azure_credential_probes_get_the_missing_header_answer() {
    let probes = [
        // @azure/identity imdsMsi.ts and Go azidentity: no query, no Metadata.
        format!(
            "GET {TOKEN} HTTP/1.1\r\nHost: 169.254.169.254\r\nAccept: application/json\r\n\r\n"
        ),
        format!("GET {TOKEN} HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n"),
        // azure-identity (Python) imds.py: the whole token query, no Metadata.
        format!(
            "GET {TOKEN}?api-version=2018-02-01&resource={VAULT} HTTP/1.1\r\n\
             Host: 169.254.169.254\r\nAccept: application/json\r\n\r\n"
        ),
        format!(
            "GET {TOKEN}?api-version=2018-02-01&resource={VAULT}&client_id={} HTTP/1.1\r\n\r\n",
            UA_CLIENT[0]
        ),
    ];
    for probe in probes {
        let mut issuer = TestIssuer::new(Mode::Ok);
        let reply = run(Flavor::Imds, SAMI_UA2, &mut issuer, &probe);
        assert_rejected(&reply, Rejection::MetadataHeaderMissing);
        assert_eq!(reply.field("error"), Some("invalid_request"));
        assert_eq!(
            reply.field("error_description"),
            Some("Required metadata header not specified")
        );
        assert!(reply.keep_alive);
        assert!(issuer.calls.is_empty());
    }
}

/// The error every SDK turns into its "identity not assigned" message: 400 `invalid_request`,
/// `Identity not found`, for an identity the VM lacks, in every path form.
#[test]
fn unknown_identity_is_identity_not_found_in_every_form() {
    for path in [TOKEN, "/metadata/identity/oauth2/token/"] {
        for selector in [
            "client_id=99999999-0000-4000-8000-000000000000",
            "object_id=99999999-0000-4000-8000-000000000000",
            "msi_res_id=%2Fsubscriptions%2Fx%2FresourceGroups%2Fy%2Fproviders%2FMicrosoft.ManagedIdentity%2FuserAssignedIdentities%2Fnope",
        ] {
            let reply = imds(&format!(
                "GET {path}?api-version=2018-02-01&resource={VAULT}&{selector} HTTP/1.1\r\nMetadata: true\r\n\r\n"
            ));
            assert_rejected(&reply, Rejection::IdentityNotFound);
            assert_eq!(reply.field("error"), Some("invalid_request"));
            assert_eq!(reply.field("error_description"), Some("Identity not found"));
        }
    }
}
