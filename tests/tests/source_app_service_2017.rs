//! Real SDKs against `mitoken emulate --source app-service-2017` (api-version 2017-09-01,
//! `MSI_ENDPOINT` + `MSI_SECRET`), configured only by its `--env-file`. No pinned SDK speaks App
//! Service 2017 any more: with `MSI_ENDPOINT` + `MSI_SECRET` they all take the Azure ML path
//! (same api-version, header and `clientid`): the Python clients then fail on the 2017
//! date-string `expires_on` (as against the real service), MSAL Node takes the token. An unknown `clientid` falls back to the system-assigned identity,
//! as App Service 2017 does. Rows: `target/source-results/app-service-2017.{json,md}`.

use mitoken_tests::sources::{Expect, SYSTEM, USER1, check_common, judge_and_record, run_session};

fn expect(client: &str, _api: &str, case: &str) -> Option<Expect> {
    // The Python clients (MSAL Python underneath azure-identity) take `MSI_ENDPOINT` +
    // `MSI_SECRET` for Azure ML and `int()` its `expires_on`: App Service 2017's date string
    // fails there, as it does against the real service.
    if client.starts_with("Python") {
        return Some(Expect::Error(&[
            "invalid literal for int()",
            "DefaultAzureCredential failed",
        ]));
    }
    // MSAL Node (Azure ML path too) does not parse `expires_on` as a number: it gets the token.
    Some(match case {
        // 2017 falls back to the system-assigned identity for a client id it does not know.
        "system-assigned" | "identity that does not exist" => SYSTEM,
        "user-assigned by client id" => USER1,
        _ => return None,
    })
}

#[test]
#[ignore = "installs the SDKs (network to the registries) and needs root for unshare: run by cargo xtask ci"]
fn sdks_against_the_app_service_2017_emulator() {
    let session = run_session("app-service-2017", "https://vault.azure.net");
    check_common("app-service-2017", &session, Some("MSI_SECRET"));
    let failures = judge_and_record("app-service-2017", &session, expect);
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
    assert!(
        session.rows.len() >= 10,
        "only {} cases",
        session.rows.len()
    );
}
