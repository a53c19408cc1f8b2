//! `mitoken env SOURCE --endpoint URL` and `mitoken emulate --source`'s refusals, from the real
//! binary.

use std::process::Output;
use std::time::Duration;

use mitoken_tests::{mitoken_bin, output_within};

fn mitoken(args: &[&str]) -> Output {
    output_within(
        std::process::Command::new(mitoken_bin())
            .args(args)
            .env_remove("MITOKEN_SECRET"),
        Duration::from_secs(30),
    )
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn env_prints_each_sources_variables() {
    let base = "http://127.0.0.1:41741";
    let out = mitoken(&[
        "env",
        "app-service",
        "--endpoint",
        base,
        "--secret",
        "s3cr3t",
    ]);
    assert!(out.status.success());
    assert_eq!(
        stdout(&out),
        "export IDENTITY_ENDPOINT='http://127.0.0.1:41741/MSI/token'\nexport IDENTITY_HEADER='s3cr3t'\n"
    );
    let out = mitoken(&["env", "arc", "--endpoint", "http://127.0.0.1:40342/"]);
    assert_eq!(
        stdout(&out),
        "export IDENTITY_ENDPOINT='http://127.0.0.1:40342/metadata/identity/oauth2/token'\nexport IMDS_ENDPOINT='http://127.0.0.1:40342'\n"
    );
    let out = mitoken(&["env", "cloud-shell", "--endpoint", "http://127.0.0.1:50342"]);
    assert!(stdout(&out).contains("export AZUREPS_HOST_ENVIRONMENT='cloud-shell/1.0'"));
    let id = "20000000-0000-4000-8000-000000000001";
    let out = mitoken(&[
        "env",
        "azure-ml",
        "--endpoint",
        base,
        "--secret",
        "x",
        "--client-id",
        id,
    ]);
    assert!(stdout(&out).contains(&format!("export DEFAULT_IDENTITY_CLIENT_ID='{id}'")));
    let out = std::process::Command::new(mitoken_bin())
        .args(["env", "app-service-2017", "--endpoint", base])
        .env("MITOKEN_SECRET", "from-env")
        .output()
        .expect("run mitoken");
    assert!(stdout(&out).contains("export MSI_SECRET='from-env'"));
}

#[test]
fn env_refuses_what_it_cannot_print() {
    for (args, needle) in [
        (
            &["env", "app-service", "--endpoint", "http://127.0.0.1:1"][..],
            "needs the emulator's secret",
        ),
        (
            &["env", "arc", "--endpoint", "https://127.0.0.1:1"][..],
            "http:// base URL",
        ),
        (
            &["env", "arc", "--endpoint", "http://127.0.0.1:1/MSI/token"][..],
            "no path",
        ),
        (
            &["env", "service-fabric", "--endpoint", "http://127.0.0.1:1"][..],
            "https",
        ),
        (
            &["env", "nope", "--endpoint", "http://x"][..],
            "unknown source",
        ),
    ] {
        let out = mitoken(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn emulate_refuses_what_a_source_does_not_take() {
    for (args, needle) in [
        (
            &[
                "emulate",
                "--listen",
                "127.0.0.1:0",
                "--source",
                "arc",
                "--flavor",
                "extension",
            ][..],
            "--flavor applies to --source imds only",
        ),
        (
            &[
                "emulate",
                "--listen",
                "127.0.0.1:0",
                "--source",
                "arc",
                "--arc-tokens-dir",
                "/proc/version/tokens",
            ][..],
            "Arc key file",
        ),
    ] {
        let out = mitoken(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
