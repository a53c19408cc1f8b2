//! `mitoken demo`: the main job on a machine with no Azure, exits 0 with readable output.

use mitoken_tests::mitoken_bin;

#[test]
fn demo_runs_the_main_job_and_exits_zero() {
    let out = std::process::Command::new(mitoken_bin())
        .arg("demo")
        .env_remove("AZURE_POD_IDENTITY_AUTHORITY_HOST")
        .output()
        .expect("run mitoken demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "1. system-assigned identity (no selector)",
        "oid=30000000-0000-4000-8000-000000000001 appid=20000000-0000-4000-8000-000000000001",
        "2. user-assigned identity by client_id=20000000-0000-4000-8000-000000000002",
        "oid=30000000-0000-4000-8000-000000000002 appid=20000000-0000-4000-8000-000000000002",
        "3. user-assigned identity by resource id (msi_res_id=/subscriptions/",
        "oid=30000000-0000-4000-8000-000000000003 appid=20000000-0000-4000-8000-000000000003",
        "HTTP 400 invalid_request: Identity not found",
        "5. VM with one user-assigned identity",
        "6. VM with two user-assigned identities",
        "HTTP 400 invalid_request: Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request",
        "lifetime 86700 s",
        "demo finished",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    assert_eq!(stdout.matches("signature verified").count(), 4, "{stdout}");
    // Step 5 picked the lone user-assigned identity.
    let step5 = stdout.split("5. VM").nth(1).unwrap_or_default();
    assert!(
        step5.contains("oid=30000000-0000-4000-8000-000000000002"),
        "{stdout}"
    );
}
