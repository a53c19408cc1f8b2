//! Service Fabric end to end: `mitoken emulate --source service-fabric` over HTTPS with its
//! generated self-signed certificate, and real clients configured only by the environment the
//! emulator wrote (`--env-file`): Python azure-identity 1.27.0 (its sync path pins
//! `IDENTITY_SERVER_THUMBPRINT`), MSAL Python 1.39.0 `ManagedIdentityClient`, JavaScript
//! @azure/identity 4.13.1, and `mitoken token --source service-fabric` (thumbprint-pinned).
//! Runs in a private network namespace (needs root, python3, node/npm, registry access).
//! The rows are written to docs/sources-tls.md.

use mitoken_tests::tls_sources::{Emulator, RESOURCE, quote, record, run, table};

const PY_MI: &str = "python azure-identity ManagedIdentityCredential";
const PY_MSAL: &str = "python msal ManagedIdentityClient";
const JS_MI: &str = "js @azure/identity ManagedIdentityCredential";
const SYSTEM_CLIENT_ID: &str = "20000000-0000-4000-8000-000000000001";

#[test]
#[ignore = "installs the SDKs (network to the registries) and needs root for unshare -n: run by cargo xtask ci"]
fn real_sdks_get_service_fabric_tokens_and_its_errors() {
    let extra = format!(
        "run_env sf \"$M\" token --source service-fabric -r {res} --output json >\"$D/mitoken.json\" 2>\"$D/mitoken.err\"; echo $? >\"$D/mitoken.rc\"\n\
         run_env sf env IDENTITY_SERVER_THUMBPRINT=0000000000000000000000000000000000000000 \"$M\" token --source service-fabric -r {res} >/dev/null 2>\"$D/pin.err\"; echo $? >\"$D/pin.rc\"\n\
         (set -a; . \"$D/sf.env\"; \"$M\" env service-fabric --endpoint \"$IDENTITY_ENDPOINT\" --thumbprint \"$IDENTITY_SERVER_THUMBPRINT\" --secret \"$IDENTITY_HEADER\" --cert \"$NODE_EXTRA_CA_CERTS\" >\"$D/mitoken-env.sh\")\n\
         run_env sf env IDENTITY_HEADER=nope \"$M\" token --source service-fabric -r {res} >/dev/null 2>\"$D/secret.err\"; echo $? >\"$D/secret.rc\"\n",
        res = quote(RESOURCE)
    );
    let s = run(
        "source-service-fabric",
        "service-fabric",
        &[Emulator {
            name: "sf",
            args: "",
        }],
        &extra,
    );
    let banner = s.read("sf.out");
    let env = s.read("sf.env");
    let thumb = banner
        .lines()
        .find_map(|l| l.strip_prefix("certificate SHA-1 thumbprint "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the banner prints the thumbprint");
    assert_eq!(thumb.len(), 40, "{banner}");
    assert!(
        env.contains(&format!("IDENTITY_SERVER_THUMBPRINT={thumb}\n")),
        "{env}"
    );
    assert!(
        env.contains("IDENTITY_API_VERSION=2019-07-01-preview\n"),
        "{env}"
    );

    // Tokens for the application's identity, signed by the emulator's key (the Python driver
    // checked the signature; the node driver decodes).
    for client in [PY_MI, PY_MSAL, JS_MI] {
        let row = s.row("sf", client, "token");
        assert_eq!(row["ok"], true, "{client}: {row}");
        assert_eq!(row["claims"]["aud"], RESOURCE, "{client}");
        assert_eq!(row["claims"]["appid"], SYSTEM_CLIENT_ID, "{client}");
    }
    // An unknown secret is an application the cluster does not know: 404 ManagedIdentityNotFound.
    for client in [PY_MI, PY_MSAL, JS_MI] {
        let row = s.row("sf", client, "unknown secret");
        assert_eq!(row["ok"], false, "{client}: {row}");
        let error = row["error"].as_str().unwrap_or("");
        assert!(
            error.contains("ManagedIdentityNotFound")
                || error.contains("Managed Identity not found"),
            "{client}: {error}"
        );
    }
    // Python pins the thumbprint: a different one fails before any request is answered.
    for client in [PY_MI, PY_MSAL] {
        let row = s.row("sf", client, "wrong thumbprint");
        assert_eq!(row["ok"], false, "{client}: {row}");
        assert!(
            row["error"].as_str().unwrap_or("").contains("thumbprint"),
            "{client}: {row}"
        );
    }
    // User-assigned selectors: the SDKs refuse them for Service Fabric.
    for client in [PY_MI, JS_MI] {
        let row = s.row("sf", client, "user-assigned");
        assert_eq!(row["ok"], false, "{client}: {row}");
    }

    // mitoken's own client, pinned.
    assert_eq!(
        s.read("mitoken.rc").trim(),
        "0",
        "{}",
        s.read("mitoken.err")
    );
    let token: serde_json::Value =
        serde_json::from_str(&s.read("mitoken.json")).expect("token JSON");
    assert_eq!(token["resource"], RESOURCE);
    assert!(
        token["expires_on"].as_str().is_some_and(|e| e.len() == 10),
        "{token}"
    );
    assert_eq!(s.read("pin.rc").trim(), "5", "{}", s.read("pin.err"));
    assert!(
        s.read("pin.err").contains("invalid peer certificate"),
        "{}",
        s.read("pin.err")
    );
    assert_eq!(s.read("secret.rc").trim(), "3", "{}", s.read("secret.err"));
    assert!(
        s.read("secret.err").contains("404 ManagedIdentityNotFound"),
        "{}",
        s.read("secret.err")
    );

    // `mitoken env` prints the same environment for the running emulator.
    let exports: Vec<String> = s
        .read("mitoken-env.sh")
        .lines()
        .map(|l| l.trim_start_matches("export ").replace('\'', ""))
        .collect();
    let written: Vec<&str> = env.lines().collect();
    assert_eq!(exports, written, "mitoken env vs --env-file");

    let block = table("service-fabric", &s.rows);
    println!("\n{block}");
    assert!(
        record("sources-tls-service-fabric", &block),
        "docs/sources-tls.md lacks its markers"
    );
}
