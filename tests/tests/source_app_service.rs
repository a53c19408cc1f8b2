//! Real SDKs against `mitoken emulate --source app-service` (api-version 2019-08-01), configured
//! only by its `--env-file`: Python azure-identity 1.27.0 (`ManagedIdentityCredential`,
//! `DefaultAzureCredential`), MSAL Python 1.39.0 (`ManagedIdentityClient`) and JavaScript
//! @azure/identity 4.13.1. Every token is checked against the emulator's JWKS (signature, `aud`,
//! `appid`). Rows: `target/source-results/app-service.{json,md}`.

use mitoken_tests::sources::{
    Expect, SYSTEM, USER1, USER2, check_common, judge_and_record, run_session,
};

/// App Service's answer for an identity it does not have (400, its `message`).
const NOT_FOUND: Expect = Expect::Error(&["Unable to find the requested managed identity"]);

fn expect(client: &str, api: &str, case: &str) -> Option<Expect> {
    let _ = (client, api);
    Some(match case {
        "system-assigned" => SYSTEM,
        "user-assigned by client id" => USER1,
        "user-assigned by resource id" | "user-assigned by object id" => USER2,
        "identity that does not exist" => NOT_FOUND,
        _ => return None,
    })
}

#[test]
#[ignore = "installs the SDKs (network to the registries) and needs root for unshare: run by cargo xtask ci"]
fn sdks_against_the_app_service_emulator() {
    let session = run_session("app-service", "https://vault.azure.net");
    check_common("app-service", &session, Some("IDENTITY_HEADER"));
    assert!(
        session.log.contains("path=\"/MSI/token\"") && session.log.contains("status=200"),
        "{}",
        session.log
    );
    let failures = judge_and_record("app-service", &session, expect);
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
    assert!(
        session.rows.len() >= 15,
        "only {} cases",
        session.rows.len()
    );
}
