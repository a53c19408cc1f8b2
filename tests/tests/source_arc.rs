//! Real SDKs against `mitoken emulate --source arc` (HIMDS: a 401 challenge naming a key file,
//! then `Authorization: Basic <key>`; user-assigned selectors `client_id` / `object_id` /
//! `msi_res_id` echoed in the body; 404 for an identity the machine lacks), configured only by
//! its `--env-file` (`IDENTITY_ENDPOINT`, `IMDS_ENDPOINT`). The clients and the emulator run in
//! a private mount and network namespace with a temporary directory bind-mounted on
//! `/var/opt/azcmagent/tokens`: the real path, the machine untouched.
//! Rows: `target/source-results/arc.{json,md}`.

use mitoken_tests::sources::{
    Expect, SYSTEM, USER1, USER2, check_common, judge_and_record, run_session,
};

/// Arc's 404 for an identity not assigned to the machine.
const NOT_ASSIGNED: Expect = Expect::Error(&["not been assigned", "404"]);

fn expect(_client: &str, _api: &str, case: &str) -> Option<Expect> {
    Some(match case {
        "system-assigned" => SYSTEM,
        "user-assigned by client id" => USER1,
        "user-assigned by resource id" | "user-assigned by object id" => USER2,
        "identity that does not exist" => NOT_ASSIGNED,
        _ => return None,
    })
}

#[test]
#[ignore = "installs the SDKs (network to the registries) and needs root for unshare: run by cargo xtask ci"]
fn sdks_against_the_arc_emulator() {
    let session = run_session("arc", "https://management.azure.com");
    check_common("arc", &session, None);
    // One key file, readable by its owner only, while the emulator ran.
    let keys: Vec<&str> = session
        .key_listing
        .lines()
        .filter(|l| {
            std::path::Path::new(l)
                .extension()
                .is_some_and(|e| e == "key")
        })
        .collect();
    assert_eq!(keys.len(), 1, "{}", session.key_listing);
    assert!(keys[0].starts_with("-rw-------"), "{}", session.key_listing);
    assert!(
        session.log.contains("status=401"),
        "no challenge: {}",
        session.log
    );
    let failures = judge_and_record("arc", &session, expect);
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
