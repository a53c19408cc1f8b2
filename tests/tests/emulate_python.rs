//! A real client nobody here wrote: Python `azure-identity`'s `ManagedIdentityCredential`,
//! pointed at `mitoken emulate` with `AZURE_POD_IDENTITY_AUTHORITY_HOST`, and `PyJWT` validating
//! its tokens against the emulator's JWKS (found through the OpenID configuration document).
//!
//! The interpreter comes from `mitoken_tests::python_with_azure_identity()` (a venv under
//! `target/py-venv`, created from PyPI on first use; `MITOKEN_PYTHON` overrides it).
//!
//! Retries: azure-identity's IMDS pipeline (1.27) retries 404, 410, 429 and 500–599, five times,
//! honouring `Retry-After`; 410 with a longer backoff (~70 s in all). Other statuses (400, 403)
//! are not retried: 400 means "no such identity" (`CredentialUnavailableError`).

use std::process::{Command, Output};

use mitoken_tests::builtin::{SAMI, UA1, UA2, UA2_RES};
use mitoken_tests::{EmulatorProcess, python_with_azure_identity};

/// Gets a token for each `(name, kind, value)` credential and validates it with `PyJWT` against
/// the JWKS the OpenID configuration names; prints `{name: {oid, appid, aud}}` or
/// `{name: {"error": …}}`.
const SCRIPT: &str = r#"
import importlib.util, json, os, sys, urllib.request
import jwt
from azure.identity import ManagedIdentityCredential

base = os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"]
resource = "https://vault.azure.net"
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
config = json.load(opener.open(base + "/.well-known/openid-configuration"))
jwks = jwt.PyJWKClient(config["jwks_uri"])
# Before the MSAL-based IMDS client, identity_config went straight into the query.
msal_based = importlib.util.find_spec("azure.identity._internal.msal_managed_identity_client")
res_key = "resource_id" if msal_based else "msi_res_id"

out = {}
for name, kind, value in json.loads(sys.argv[1]):
    if kind == "system":
        cred = ManagedIdentityCredential()
    elif kind == "client_id":
        cred = ManagedIdentityCredential(client_id=value)
    else:
        cred = ManagedIdentityCredential(identity_config={res_key: value})
    try:
        token = cred.get_token(resource + "/.default")
    except Exception as e:
        out[name] = {"error": type(e).__name__, "message": str(e)}
        continue
    key = jwks.get_signing_key_from_jwt(token.token)
    claims = jwt.decode(token.token, key.key, algorithms=["RS256"], audience=resource,
                        issuer=config["issuer"])
    out[name] = {"oid": claims["oid"], "appid": claims["appid"], "aud": claims["aud"],
                 "kid": key.key_id, "expires_on": token.expires_on}
print(json.dumps(out))
"#;

fn run_python(emu: &EmulatorProcess, credentials: &serde_json::Value) -> serde_json::Value {
    let mut cmd = Command::new(python_with_azure_identity());
    cmd.args(["-c", SCRIPT, &credentials.to_string()])
        .env("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.base_url())
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    for var in [
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
        "IDENTITY_SERVER_THUMBPRINT",
        "IMDS_ENDPOINT",
        "MSI_ENDPOINT",
        "MSI_SECRET",
        "AZURE_FEDERATED_TOKEN_FILE",
        "AZURE_CLIENT_ID",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
    ] {
        cmd.env_remove(var);
    }
    let out: Output = cmd.output().expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}\n{}\nemulator log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        emu.logs()
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "python printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn assert_identity(result: &serde_json::Value, (client, object): (&str, &str)) {
    assert_eq!(result["oid"], object, "{result}");
    assert_eq!(result["appid"], client, "{result}");
    assert_eq!(result["aud"], "https://vault.azure.net", "{result}");
}

#[test]
fn azure_identity_gets_tokens_that_validate_against_the_jwks() {
    let emu = EmulatorProcess::spawn(&[]);
    let got = run_python(
        &emu,
        &serde_json::json!([
            ["system", "system", ""],
            ["by_client_id", "client_id", UA1.0],
            ["by_resource_id", "resource_id", UA2_RES],
        ]),
    );
    assert_identity(&got["system"], SAMI);
    assert_identity(&got["by_client_id"], UA1);
    assert_identity(&got["by_resource_id"], UA2);
    let kid = got["system"]["kid"].as_str().unwrap();
    assert!(emu.banner.iter().any(|l| l.contains(kid)));
    // One request per credential: what the client really sent.
    let c = emu.admin("GET", "counters", "");
    assert_eq!(c["total"], 3, "{c}");
    for client in [SAMI.0, UA1.0, UA2.0] {
        assert_eq!(c["by_identity"][client]["by_status"]["200"], 1, "{c}");
    }
}

#[test]
fn azure_identity_retries_injected_faults_and_counters_match() {
    let emu = EmulatorProcess::spawn(&[]);
    // For UA1 only: a 410, then a 429 (Retry-After 1), then a 500, then the token.
    let rules = format!(
        r#"{{"rules":[
            {{"identity":"{id}","status":410,"count":1}},
            {{"identity":"{id}","status":429,"retry_after":1,"count":1}},
            {{"identity":"{id}","status":500,"count":1}}]}}"#,
        id = UA1.0
    );
    emu.admin("PUT", "faults", &rules);
    let got = run_python(&emu, &serde_json::json!([["retried", "client_id", UA1.0]]));
    assert_identity(&got["retried"], UA1);
    let c = emu.admin("GET", "counters", "");
    let ua1 = &c["by_identity"][UA1.0];
    assert_eq!(ua1["total"], 4, "{c}");
    for status in ["410", "429", "500", "200"] {
        assert_eq!(ua1["by_status"][status], 1, "{status}: {c}");
    }
    assert_eq!(c["total"], 4);
    assert_eq!(c["by_origin"]["fault"], 3);
    assert!(
        emu.admin("GET", "faults", "")["rules"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A 400 is not retried: azure-identity reports the identity as unavailable after one try.
    emu.admin("DELETE", "counters", "");
    emu.admin("POST", "faults", r#"{"status":400,"count":1}"#);
    let got = run_python(&emu, &serde_json::json!([["refused", "system", ""]]));
    assert_eq!(
        got["refused"]["error"], "CredentialUnavailableError",
        "{got}"
    );
    assert_eq!(emu.admin("GET", "counters", "")["total"], 1);
}

#[test]
fn azure_identity_sees_imds_identity_errors() {
    let emu = EmulatorProcess::spawn(&[]);
    let got = run_python(
        &emu,
        &serde_json::json!([[
            "unknown",
            "client_id",
            "99999999-0000-4000-8000-000000000000"
        ]]),
    );
    let message = got["unknown"]["message"].as_str().unwrap_or_default();
    assert_eq!(
        got["unknown"]["error"], "CredentialUnavailableError",
        "{got}"
    );
    assert!(message.contains("Identity not found"), "{message}");
    assert_eq!(emu.admin("GET", "counters", "")["by_status"]["400"], 1);
}
