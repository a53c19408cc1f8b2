//! Runs `azure_identity`'s `ManagedIdentityCredential`, unmodified, for each matrix case and
//! prints one JSON row per case on stdout (the format of `tests/compat/python/driver.py`).
//!
//! The crate has no endpoint override for IMDS: it always requests
//! `http://169.254.169.254/metadata/identity/oauth2/token` (`IDENTITY_ENDPOINT` selects App
//! Service / Arc / Service Fabric, `MSI_ENDPOINT` Cloud Shell / Azure ML). The caller reaches
//! the emulator through `HTTP_PROXY`, which reqwest honours: the emulator then receives
//! absolute-form requests (`GET http://169.254.169.254/metadata/...`). The caller runs this in a
//! private network namespace, so nothing can reach a real 169.254.169.254.

use azure_core::credentials::TokenCredential;
use azure_identity::{ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};

const RESOURCE: &str = "https://vault.azure.net";

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

async fn run(case: &str, expect: &str, id: Option<UserAssignedId>) -> serde_json::Value {
    let options = ManagedIdentityCredentialOptions {
        user_assigned_id: id,
        ..Default::default()
    };
    let scope = format!("{RESOURCE}/.default");
    let result = match ManagedIdentityCredential::new(Some(options)) {
        Ok(credential) => credential.get_token(&[scope.as_str()], None).await,
        Err(e) => Err(e),
    };
    let (token, error) = match result {
        Ok(t) => (Some(t.token.secret().to_owned()), None),
        Err(e) => (
            None,
            Some(format!("{:?}: {}", e.kind(), one_line(&e.to_string()))),
        ),
    };
    serde_json::json!({
        "client": "Rust azure_identity",
        "api": "ManagedIdentityCredential",
        "version": var("COMPAT_VERSION"),
        "case": case,
        "route": "HTTP_PROXY (absolute-form)",
        "resource": RESOURCE,
        "expect": expect,
        "token": token,
        "error": error,
    })
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let ua1 = var("COMPAT_UA1_CLIENT");
    let ua2_res = var("COMPAT_UA2_RESOURCE_ID");
    let ua2_object = var("COMPAT_UA2_OBJECT");
    let unknown = var("COMPAT_UNKNOWN_CLIENT");
    let rows = vec![
        run("system-assigned", "system", None).await,
        run(
            "user-assigned by client id",
            "ua1",
            Some(UserAssignedId::ClientId(ua1)),
        )
        .await,
        run(
            "user-assigned by resource id",
            "ua2",
            Some(UserAssignedId::ResourceId(ua2_res)),
        )
        .await,
        run(
            "user-assigned by object id",
            "ua2",
            Some(UserAssignedId::ObjectId(ua2_object)),
        )
        .await,
        run(
            "identity the VM lacks",
            "unknown",
            Some(UserAssignedId::ClientId(unknown)),
        )
        .await,
    ];
    println!("{}", serde_json::Value::Array(rows));
}
