//! Real SDKs against `mitoken emulate --source azure-ml` (api-version 2017-09-01, `secret`,
//! `clientid` required even for the system-assigned identity, JSON-integer `expires_in` /
//! `expires_on`), configured only by its `--env-file` (`MSI_ENDPOINT`, `MSI_SECRET`,
//! `DEFAULT_IDENTITY_CLIENT_ID`). Rows: `target/source-results/azure-ml.{json,md}`.

use mitoken_tests::sources::{Expect, SYSTEM, USER1, check_common, judge_and_record, run_session};

/// Azure ML's 400 for a request without `clientid`.
const CLIENTID_REQUIRED: Expect = Expect::Error(&["clientid"]);
/// Azure ML's 400 for a client id it does not have.
const NOT_FOUND: Expect = Expect::Error(&["Unable to find the requested managed identity"]);

fn expect(client: &str, _api: &str, case: &str) -> Option<Expect> {
    let js = client.starts_with("JavaScript");
    Some(match case {
        // msal-node sends DEFAULT_IDENTITY_CLIENT_ID as `clientid`; the Python clients send
        // nothing for the system-assigned identity, and Azure ML refuses that.
        "system-assigned" if js => SYSTEM,
        "system-assigned" => CLIENTID_REQUIRED,
        "DEFAULT_IDENTITY_CLIENT_ID passed as client id" => SYSTEM,
        "user-assigned by client id" => USER1,
        "identity that does not exist" => NOT_FOUND,
        _ => return None,
    })
}

#[test]
#[ignore = "installs the SDKs (network to the registries) and needs root for unshare: run by cargo xtask ci"]
fn sdks_against_the_azure_ml_emulator() {
    let session = run_session("azure-ml", "https://vault.azure.net");
    check_common("azure-ml", &session, Some("MSI_SECRET"));
    assert!(session.env_file.contains("DEFAULT_IDENTITY_CLIENT_ID="));
    let failures = judge_and_record("azure-ml", &session, expect);
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
