//! Real SDKs against `mitoken emulate --source cloud-shell` (form POST `resource=`, `Metadata:
//! true`, audience allowlist), configured only by its `--env-file` (`MSI_ENDPOINT`,
//! `AZUREPS_HOST_ENVIRONMENT=cloud-shell/1.0`). The token is the "signed-in user"'s: the
//! emulator's system-assigned identity stands for that user. Cloud Shell has no user-assigned
//! identities: the SDKs refuse a client id. Rows: `target/source-results/cloud-shell.{json,md}`.

use mitoken_tests::sources::{Expect, SYSTEM, check_common, judge_and_record, run_session};

fn expect(client: &str, _api: &str, case: &str) -> Option<Expect> {
    let msal = client.starts_with("Python msal");
    Some(match case {
        // MSAL Python's ManagedIdentityClient detects Cloud Shell but gets its tokens through
        // PublicClientApplication: it asks IMDS, unreachable in the private network namespace.
        _ if msal => Expect::Error(&["connect", "connection", "refused", "unreachable"]),
        "system-assigned" => SYSTEM,
        "audience not on the allowlist" => Expect::Error(&["AudienceNotSupported", "audience"]),
        "user-assigned by client id" | "identity that does not exist" => Expect::Error(&[
            "not supported",
            "cloud shell",
            "user-assigned",
            "user assigned",
        ]),
        _ => return None,
    })
}

#[test]
#[ignore = "installs the SDKs (network to the registries) and needs root for unshare: run by cargo xtask ci"]
fn sdks_against_the_cloud_shell_emulator() {
    let session = run_session("cloud-shell", "https://management.azure.com");
    check_common("cloud-shell", &session, None);
    assert!(
        session.log.contains("method=\"POST\""),
        "no form POST: {}",
        session.log
    );
    let failures = judge_and_record("cloud-shell", &session, expect);
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
