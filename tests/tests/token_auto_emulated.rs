//! `mitoken token --source auto` against `mitoken emulate --source S`, for every source the
//! emulator imitates over plain HTTP: the client's environment is exactly the emulator's
//! `--env-file` (nothing else but `PATH`), so the token only arrives if detection, the
//! source's request (secret header, selector names, Cloud Shell's form POST, Arc's key-file
//! challenge, Service Fabric's thumbprint-pinned HTTPS) and its answer shape (`expires_on` as a string, a number or a 2017 date) all agree
//! between the two halves of mitoken. Each token's claims name the identity asked for.

use std::path::Path;
use std::process::{Command, Output};

use mitoken_tests::{EmulatorProcess, jwt_claims, mitoken_bin};

const RESOURCE: &str = "https://vault.azure.net";
/// The built-in configuration's identities (see `mitoken emulate`'s banner).
const SYSTEM_OID: &str = "30000000-0000-4000-8000-000000000001";
const USER1_CLIENT: &str = "20000000-0000-4000-8000-000000000002";
const USER1_OID: &str = "30000000-0000-4000-8000-000000000002";

/// The `KEY=VALUE` lines of an env file.
fn read_env(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).expect("env file written at start");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=VALUE");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// Runs `mitoken token --source auto --explain --resource RESOURCE <extra>` with only `env`
/// (and `PATH`).
fn token(env: &[(String, String)], extra: &[&str]) -> Output {
    let mut cmd = Command::new(mitoken_bin());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .args([
            "token",
            "--source",
            "auto",
            "--explain",
            "--output",
            "json",
            "--resource",
            RESOURCE,
            "--timeout",
            "20",
        ])
        .args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run mitoken token")
}

/// The `oid` of the token printed by a successful run.
fn oid_of(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what}: exit {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status.code()
    );
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json output");
    let jwt = json["access_token"].as_str().expect("access_token");
    let claims = jwt_claims(jwt);
    assert_eq!(claims["aud"], RESOURCE, "{what}: aud");
    claims["oid"].as_str().expect("oid").to_owned()
}

/// Starts the emulator for `source`, then asks for the system-assigned identity and, when
/// `user_assigned`, the first user-assigned one by client id.
fn round_trip(source: &str, detected_as: &str, user_assigned: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let env_file = dir.path().join("env");
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).expect("key dir");
    let env_arg = env_file.to_str().expect("utf-8 path");
    let keys_arg = keys.to_str().expect("utf-8 path");
    let mut args = vec!["--source", source, "--env-file", env_arg];
    if source == "arc" {
        args.extend(["--arc-tokens-dir", keys_arg]);
    }
    let emulator = EmulatorProcess::spawn(&args);
    let env = read_env(&env_file);
    let extra: &[&str] = if source == "arc" {
        &["--arc-tokens-dir", keys_arg]
    } else {
        &[]
    };

    let out = token(&env, extra);
    let explain = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        explain.contains(detected_as),
        "{source}: --explain does not name {detected_as}:\n{explain}"
    );
    for (k, v) in &env {
        if k.contains("SECRET") || k.contains("HEADER") {
            assert!(
                !explain.contains(v.as_str()),
                "{source}: --explain printed {k}"
            );
        }
    }
    assert_eq!(
        oid_of(&out, source),
        SYSTEM_OID,
        "{source}: system-assigned"
    );

    if user_assigned {
        let mut extra = extra.to_vec();
        extra.extend(["--client-id", USER1_CLIENT]);
        let out = token(&env, &extra);
        assert_eq!(
            oid_of(&out, source),
            USER1_OID,
            "{source}: user-assigned by client id"
        );
    }
    let _ = emulator.terminate();
}

#[test]
fn app_service() {
    round_trip("app-service", "app-service", true);
}

#[test]
fn app_service_2017_is_detected_as_such_without_a_default_client_id() {
    round_trip("app-service-2017", "app-service-2017", true);
}

#[test]
fn azure_ml() {
    round_trip("azure-ml", "azure-ml", true);
}

#[test]
fn cloud_shell() {
    round_trip("cloud-shell", "cloud-shell", false);
}

#[test]
fn service_fabric_over_pinned_https() {
    round_trip("service-fabric", "service-fabric", false);
}

/// A thumbprint that is not the server's: the handshake is refused, nothing is printed, exit 5
/// (an answer that cannot be trusted), at once (not retried).
#[test]
fn service_fabric_with_another_thumbprint_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env_file = dir.path().join("env");
    let emulator = EmulatorProcess::spawn(&[
        "--source",
        "service-fabric",
        "--env-file",
        env_file.to_str().expect("utf-8 path"),
    ]);
    let mut env = read_env(&env_file);
    for (k, v) in &mut env {
        if k == "IDENTITY_SERVER_THUMBPRINT" {
            // Flip one hex digit.
            let flipped = if v.starts_with('0') { "1" } else { "0" };
            v.replace_range(..1, flipped);
        }
    }
    let started = std::time::Instant::now();
    let out = token(&env, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(stderr.contains("TLS"), "{stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "a refused certificate must not be retried: {:?}",
        started.elapsed()
    );
    let _ = emulator.terminate();
}

#[test]
fn arc() {
    round_trip("arc", "arc", true);
}
