//! `mitoken token` against `mitoken emulate`, two real processes over loopback: every selector,
//! and IMDS's errors (exit code 3 with the service's texts).

use std::fmt::Write as _;
use std::process::Output;

use mitoken_tests::builtin::{SAMI, UA1, UA2, UA2_RES};
use mitoken_tests::{EmulatorProcess, mitoken_bin};

const ARM: &str = "https://management.azure.com/";

fn token(emu: &EmulatorProcess, args: &[&str]) -> Output {
    std::process::Command::new(mitoken_bin())
        .args(["token", "--endpoint", &emu.base_url(), "--resource", ARM])
        .args(args)
        .env_remove("AZURE_POD_IDENTITY_AUTHORITY_HOST")
        .output()
        .expect("run mitoken token")
}

fn client_id(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON token");
    assert_eq!(v["resource"], ARM);
    assert_eq!(v["token_type"], "Bearer");
    v["client_id"].as_str().expect("client_id").to_owned()
}

fn service_error(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(3), "exit code 3: service error");
    assert!(out.stdout.is_empty());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn every_selector_gets_its_identity() {
    let emu = EmulatorProcess::spawn(&[]);
    assert_eq!(
        client_id(&token(&emu, &[])),
        SAMI.0,
        "default = system-assigned"
    );
    assert_eq!(client_id(&token(&emu, &["--client-id", UA1.0])), UA1.0);
    assert_eq!(client_id(&token(&emu, &["--object-id", UA2.1])), UA2.0);
    assert_eq!(client_id(&token(&emu, &["--resource-id", UA2_RES])), UA2.0);
    // ARM ids compare ignoring case; GUIDs by value.
    let upper = UA2_RES.to_uppercase();
    assert_eq!(client_id(&token(&emu, &["--resource-id", &upper])), UA2.0);
    let upper = UA1.0.to_uppercase();
    assert_eq!(client_id(&token(&emu, &["--client-id", &upper])), UA1.0);
    // Through AZURE_POD_IDENTITY_AUTHORITY_HOST, like the Azure SDKs.
    let raw = std::process::Command::new(mitoken_bin())
        .args(["token", "--resource", ARM, "-o", "raw"])
        .env("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.base_url())
        .output()
        .unwrap();
    assert_eq!(raw.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&raw.stdout).matches('.').count(),
        2,
        "a JWT"
    );
    let counters = emu.admin("GET", "counters", "");
    assert_eq!(counters["by_status"]["200"], 7, "{counters}");
    assert_eq!(counters["by_identity"][SAMI.0]["total"], 2);
    assert_eq!(counters["by_identity"][UA2.0]["total"], 3);
}

#[test]
fn imds_errors_exit_3_with_the_service_text() {
    let emu = EmulatorProcess::spawn(&[]);
    let err = service_error(&token(
        &emu,
        &["--client-id", "99999999-0000-4000-8000-000000000000"],
    ));
    assert!(
        err.contains("HTTP 400 invalid_request: Identity not found"),
        "{err}"
    );

    emu.admin("POST", "faults", r#"{"status":500,"count":1}"#);
    let err = service_error(&token(&emu, &["--no-retry"]));
    assert!(err.contains("HTTP 500 server_error"), "{err}");

    emu.admin(
        "POST",
        "faults",
        r#"{"status":429,"retry_after":7,"count":1}"#,
    );
    let err = service_error(&token(&emu, &["--no-retry"]));
    assert!(err.contains("HTTP 429 too_many_requests"), "{err}");
    assert!(err.contains("retry after 7 s"), "{err}");
    // With `--no-retry`: exactly one request each.
    assert_eq!(emu.admin("GET", "counters", "")["total"], 3);
}

#[test]
fn retryable_errors_are_retried_until_a_token_comes() {
    let emu = EmulatorProcess::spawn(&[]);
    // 410 then 500: IMDS's rules retry both (410 after ~10 s, 5xx after >= 1 s), so use a
    // 404 + 500 pair, retried at once and after ~1 s.
    emu.admin("POST", "faults", r#"{"status":404,"count":1}"#);
    emu.admin("POST", "faults", r#"{"status":500,"count":1}"#);
    let started = std::time::Instant::now();
    let out = token(&emu, &[]);
    assert_eq!(client_id(&out), SAMI.0);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "5xx waits >= 1 s"
    );
    let counters = emu.admin("GET", "counters", "");
    assert_eq!(counters["total"], 3, "{counters}");
    assert_eq!(counters["by_status"]["404"], 1, "{counters}");
    assert_eq!(counters["by_status"]["500"], 1, "{counters}");
    assert_eq!(counters["by_status"]["200"], 1, "{counters}");

    // A 400 is never retried.
    let err = service_error(&token(
        &emu,
        &["--client-id", "99999999-0000-4000-8000-000000000000"],
    ));
    assert!(err.contains("Identity not found"), "{err}");
    assert_eq!(emu.admin("GET", "counters", "")["total"], 4);
}

#[test]
fn vm_with_two_user_assigned_and_no_system_assigned_needs_a_selector() {
    let path = std::env::temp_dir().join(format!("mitoken-ua2-{}.toml", std::process::id()));
    let mut text = String::new();
    for (n, (client, object)) in [UA1, UA2].iter().enumerate() {
        let _ = write!(
            text,
            "[[user_assigned]]\nclient_id = \"{client}\"\nobject_id = \"{object}\"\nresource_id = \"/subscriptions/40000000-0000-4000-8000-000000000000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-{n}\"\n"
        );
    }
    std::fs::write(&path, text).unwrap();
    let emu = EmulatorProcess::spawn(&["--config", path.to_str().unwrap()]);
    std::fs::remove_file(&path).ok();
    let err = service_error(&token(&emu, &[]));
    assert!(
        err.contains(
            "HTTP 400 invalid_request: Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request"
        ),
        "{err}"
    );
    assert_eq!(client_id(&token(&emu, &["--client-id", UA2.0])), UA2.0);
    let err = service_error(&token(&emu, &["--client-id", SAMI.0]));
    assert!(err.contains("Identity not found"), "{err}");
}
