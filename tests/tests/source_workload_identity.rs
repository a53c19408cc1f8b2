//! Workload identity end to end: `mitoken emulate --source workload-identity` (an Entra-like
//! token endpoint over HTTPS with a generated CA, the discovery documents, the projected
//! service-account token written and rotated) and real clients configured only by the
//! environment the emulator wrote: Python azure-identity 1.27.0 (`WorkloadIdentityCredential`,
//! `DefaultAzureCredential`), MSAL Python 1.39.0 `ConfidentialClientApplication` with the
//! projected token as client assertion, and JavaScript @azure/identity 4.13.1. A second
//! emulator whose federated credential names another subject gives Entra's AADSTS700213.
//! Runs in a private network namespace (needs root, python3, node/npm, registry access).

use mitoken_tests::tls_sources::{Emulator, record, run, table};

const APP: &str = "20000000-0000-4000-8000-000000000002";

#[test]
#[ignore = "installs the SDKs (network to the registries) and needs root for unshare -n: run by cargo xtask ci"]
fn real_sdks_exchange_the_projected_token_and_get_entra_errors() {
    let s = run(
        "source-workload-identity",
        "workload-identity",
        &[
            Emulator {
                name: "wi",
                args: "",
            },
            Emulator {
                name: "wi-other-subject",
                args: "--federated-subject system:serviceaccount:default:other",
            },
        ],
        "(set -a; . \"$D/wi.env\"; \"$M\" env workload-identity --endpoint \"$AZURE_AUTHORITY_HOST\" --state-dir \"$D/wi-state\" >\"$D/mitoken-env.sh\")\n",
    );
    let env = s.read("wi.env");
    // `mitoken env` prints the same environment for the running emulator.
    let exports: Vec<String> = s
        .read("mitoken-env.sh")
        .lines()
        .map(|l| l.trim_start_matches("export ").replace('\'', ""))
        .collect();
    let written: Vec<&str> = env.lines().collect();
    assert_eq!(exports, written, "mitoken env vs --env-file");
    for var in [
        "AZURE_AUTHORITY_HOST=https://localhost:",
        "AZURE_TENANT_ID=",
        "AZURE_CLIENT_ID=",
        "AZURE_FEDERATED_TOKEN_FILE=",
        "SSL_CERT_FILE=",
        "REQUESTS_CA_BUNDLE=",
        "NODE_EXTRA_CA_CERTS=",
    ] {
        assert!(env.contains(var), "{var} missing: {env}");
    }
    for (client, case) in [
        ("python azure-identity WorkloadIdentityCredential", "token"),
        ("python azure-identity DefaultAzureCredential", "token"),
        ("python msal ConfidentialClientApplication", "token"),
        ("js @azure/identity DefaultAzureCredential", "token"),
        ("js @azure/identity ManagedIdentityCredential", "token"),
        (
            "js @azure/identity WorkloadIdentityCredential",
            "token (disableInstanceDiscovery)",
        ),
    ] {
        let row = s.row("wi", client, case);
        assert_eq!(row["ok"], true, "{client}: {row}");
        assert_eq!(row["claims"]["aud"], "https://vault.azure.net", "{client}");
        assert_eq!(row["claims"]["appid"], APP, "{client}");
    }
    // An application that does not exist in the tenant.
    for client in [
        "python azure-identity WorkloadIdentityCredential",
        "python msal ConfidentialClientApplication",
        "js @azure/identity WorkloadIdentityCredential",
    ] {
        let row = s.row("wi", client, "unknown client");
        assert_eq!(row["ok"], false, "{client}: {row}");
        assert!(
            row["error"].as_str().unwrap_or("").contains("AADSTS700016"),
            "{client}: {row}"
        );
    }
    // JS WorkloadIdentityCredential with default options asks login.microsoftonline.com for
    // instance discovery first: unreachable from the namespace, so it fails offline.
    let row = s.row(
        "wi",
        "js @azure/identity WorkloadIdentityCredential",
        "token (default options)",
    );
    assert_eq!(row["ok"], false, "{row}");
    // The federated credential names another subject: Entra's AADSTS700213 for every exchange.
    for client in [
        "python azure-identity WorkloadIdentityCredential",
        "python msal ConfidentialClientApplication",
        "js @azure/identity ManagedIdentityCredential",
    ] {
        let row = s.row("wi-other-subject", client, "token");
        assert_eq!(row["ok"], false, "{client}: {row}");
        assert!(
            row["error"].as_str().unwrap_or("").contains("AADSTS700213"),
            "{client}: {row}"
        );
    }
    let block = table("workload-identity", &s.rows);
    println!("\n{block}");
    assert!(
        record("sources-tls-workload-identity", &block),
        "docs/sources-tls.md lacks its markers"
    );
}
