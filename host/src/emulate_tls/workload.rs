//! AKS workload identity: an Entra-like token endpoint for the federated-credential exchange
//! over HTTPS (a generated CA), the discovery documents MSAL-based clients fetch first, and the
//! projected service-account token written to a file and rotated, signed by an emulated
//! cluster key.
//!
//! Every identity of the emulator's configuration is an application (its client id) with one
//! federated identity credential: the emulated cluster's issuer, `--federated-subject`, and
//! `api://AzureADTokenExchange`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mitoken_core::workload::{
    Aadsts, AssertionClaims, ErrorContext, ExchangeForm, FederatedCredential,
    TOKEN_EXCHANGE_AUDIENCE, TOKEN_LIFETIME_SECS, check_assertion, split_jws, write_error_body,
    write_token_body,
};
use serde_json::json;

use super::{Gate, Gated, random_guid};
use crate::client::unix_now;
use crate::emulate::config::{EmulatorConfig, Guid, IdentityConfig};
use crate::emulate::jwks::Jwks;
use crate::emulate::jwt::TokenMinter;
use crate::emulate::signing::{KeyError, SigningKey};
use crate::tls::server::{Answer, Handler, Request};

/// Path of the emulated cluster's OIDC issuer on the emulator.
pub const CLUSTER_ISSUER_PATH: &str = "/oidc/mitoken-cluster/";
/// The file name of the projected token inside the state directory.
pub const TOKEN_FILE_NAME: &str = "azure-identity-token";

/// The emulated cluster: its issuer and signing key, and the pod's service account.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// `iss` of projected tokens.
    pub issuer: String,
    /// The service-account token signing key.
    pub key: Arc<SigningKey>,
    /// `system:serviceaccount:<ns>:<sa>`.
    pub subject: String,
    /// The namespace.
    pub namespace: String,
    /// The service account's name.
    pub service_account: String,
}

impl Cluster {
    /// A cluster whose issuer lives under `base_url`, with a fresh key, for `ns:sa`.
    pub fn new(base_url: &str, service_account: &str) -> Result<Self, KeyError> {
        let (namespace, name) = service_account
            .split_once(':')
            .unwrap_or(("default", service_account));
        Ok(Self {
            issuer: format!("{}{CLUSTER_ISSUER_PATH}", base_url.trim_end_matches('/')),
            key: Arc::new(SigningKey::generate()?),
            subject: format!("system:serviceaccount:{namespace}:{name}"),
            namespace: namespace.to_owned(),
            service_account: name.to_owned(),
        })
    }

    /// A projected service-account token valid from `now` for `lifetime` seconds.
    pub fn projected_token(&self, now: u64, lifetime: u64) -> Result<String, KeyError> {
        let header = json!({"alg": "RS256", "kid": self.key.kid()});
        let claims = json!({
            "aud": [TOKEN_EXCHANGE_AUDIENCE],
            "exp": now + lifetime,
            "iat": now,
            "iss": self.issuer,
            "kubernetes.io": {
                "namespace": self.namespace,
                "serviceaccount": {"name": self.service_account, "uid": random_guid()},
            },
            "nbf": now,
            "sub": self.subject,
        });
        let mut jwt = URL_SAFE_NO_PAD.encode(header.to_string());
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = self.key.sign_rs256(jwt.as_bytes())?;
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(jwt)
    }
}

/// Writes the projected token to `path` (via a temporary file and a rename, as the kubelet's
/// atomic writer does, so a reader never sees half a token).
pub fn write_projected_token(path: &Path, token: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, token)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, path)
}

/// Rewrites the projected token at 80% of each token's life (the first one is written by the
/// caller at start), until the task is aborted.
pub fn spawn_rotation(
    cluster: Cluster,
    path: PathBuf,
    lifetime: u64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs((lifetime * 4 / 5).max(1))).await;
            match cluster.projected_token(unix_now(), lifetime) {
                Ok(token) => {
                    if let Err(e) = write_projected_token(&path, &token) {
                        tracing::error!("cannot write {}: {e}", path.display());
                    } else {
                        tracing::info!(path = %path.display(), lifetime, "projected token rewritten");
                    }
                }
                Err(e) => tracing::error!("cannot sign the projected token: {e}"),
            }
        }
    })
}

/// Answers Entra's endpoints for one tenant.
#[derive(Debug)]
pub struct WorkloadHandler {
    base_url: String,
    tenant: Guid,
    apps: HashMap<String, IdentityConfig>,
    federated_subject: String,
    cluster: Cluster,
    minter: TokenMinter,
    gate: Gate,
}

impl WorkloadHandler {
    pub(crate) fn new(
        base_url: String,
        config: &EmulatorConfig,
        federated_subject: String,
        cluster: Cluster,
        minter: TokenMinter,
        gate: Gate,
    ) -> Self {
        let apps = config
            .identities()
            .map(|i| (i.client_id.to_string(), i.clone()))
            .collect();
        Self {
            base_url,
            tenant: config.tenant_id,
            apps,
            federated_subject,
            cluster,
            minter,
            gate,
        }
    }

    fn tenant_ok(&self, tenant: &str) -> bool {
        tenant.eq_ignore_ascii_case(&self.tenant.to_string())
    }

    fn error(&self, error: &Aadsts<'_>, correlation: Option<&str>) -> Answer {
        let trace = random_guid();
        let correlation = correlation.map_or_else(random_guid, str::to_owned);
        let ctx = ErrorContext {
            now: unix_now(),
            trace_id: &trace,
            correlation_id: &correlation,
            authority: &self.base_url,
        };
        let mut out = vec![0u8; 4096];
        let n = write_error_body(error, &ctx, &mut out).unwrap_or(0);
        out.truncate(n);
        tracing::info!(
            status = error.status(),
            code = error.code(),
            "workload-identity exchange refused"
        );
        Answer::json(error.status(), out)
            .with_header("x-ms-request-id", trace)
            .with_header("client-request-id", correlation)
    }

    fn openid_configuration(&self, tenant: &str) -> Answer {
        let base = &self.base_url;
        let doc = json!({
            "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": format!("{base}/{tenant}/v2.0"),
            "request_uri_parameter_supported": false,
            "userinfo_endpoint": format!("{base}/oidc/userinfo"),
            "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
            "device_authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/devicecode"),
            "http_logout_supported": true,
            "frontchannel_logout_supported": true,
            "end_session_endpoint": format!("{base}/{tenant}/oauth2/v2.0/logout"),
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid"],
            "tenant_region_scope": "WW",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
        });
        Answer::json(200, doc.to_string().into_bytes())
    }

    fn instance_discovery(&self, query: &str) -> Answer {
        // The tenant of the `authorization_endpoint` the client asked about.
        let tenant = mitoken_core::query::Pairs::new(query)
            .find(|(k, _)| *k == b"authorization_endpoint")
            .and_then(|(_, v)| {
                let mut buf = vec![0u8; v.len()];
                let text =
                    mitoken_core::query::decode_into(v, &mut buf, mitoken_core::query::Plus::Space)
                        .ok()?;
                let path = text.split_once("://").map_or(text, |(_, rest)| rest);
                path.split('/').nth(1).map(str::to_owned)
            })
            .unwrap_or_else(|| "common".to_owned());
        let host = self.base_url.trim_start_matches("https://");
        let doc = json!({
            "tenant_discovery_endpoint": format!("{}/{tenant}/v2.0/.well-known/openid-configuration", self.base_url),
            "api-version": "1.1",
            "metadata": [{
                "preferred_network": host,
                "preferred_cache": host,
                "aliases": [host],
            }],
        });
        Answer::json(200, doc.to_string().into_bytes())
    }

    fn exchange(&self, tenant: &str, request: &Request<'_>) -> Answer {
        let correlation = request.headers.get_str("client-request-id");
        if !self.tenant_ok(tenant) {
            return self.error(&Aadsts::TenantNotFound(tenant), correlation);
        }
        let mut scratch = vec![0u8; request.body.len()];
        let form = match ExchangeForm::parse(request.body, &mut scratch) {
            Ok(f) => f,
            Err(e) => {
                tracing::info!("workload-identity form refused: {e}");
                return self.error(&Aadsts::from(e), correlation);
            }
        };
        let exchange = match form.check() {
            Ok(x) => x,
            Err(e) => return self.error(&e, correlation),
        };
        let Some(identity) = self.apps.get(exchange.client_id) else {
            return self.error(
                &Aadsts::ApplicationNotFound(exchange.client_id),
                correlation,
            );
        };
        let (header, payload_b64, signature) = match split_jws(exchange.assertion) {
            Ok(parts) => parts,
            Err(e) => return self.error(&e, correlation),
        };
        let (Ok(payload), Ok(signature)) = (
            URL_SAFE_NO_PAD.decode(payload_b64),
            URL_SAFE_NO_PAD.decode(signature),
        ) else {
            return self.error(&Aadsts::MalformedAssertion, correlation);
        };
        let signed = exchange
            .assertion
            .get(..header.len() + 1 + payload_b64.len())
            .unwrap_or_default();
        let verified = self
            .cluster
            .key
            .public_key()
            .pkcs1v15_verify::<rsa::sha2::Sha256>(signed.as_bytes(), &signature)
            .is_ok();
        let mut claim_scratch = vec![0u8; payload.len()];
        let claims = match AssertionClaims::parse(&payload, &mut claim_scratch) {
            Ok(c) => c,
            Err(e) => {
                tracing::info!("assertion claims refused: {e}");
                return self.error(&Aadsts::MalformedAssertion, correlation);
            }
        };
        let credential = FederatedCredential {
            issuer: &self.cluster.issuer,
            subject: &self.federated_subject,
            audience: TOKEN_EXCHANGE_AUDIENCE,
        };
        // Entra matches the credential first (the issuer names the keys to check with).
        if let Err(e) = check_assertion(&claims, &credential, unix_now()) {
            return self.error(&e, correlation);
        }
        if !verified {
            return self.error(&Aadsts::InvalidSignature, correlation);
        }
        let minted = match self.minter.mint(identity, exchange.resource, unix_now()) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!("cannot sign a token: {e}");
                return Answer::json(500, Vec::new());
            }
        };
        let mut body = vec![0u8; minted.jwt().len() + 256];
        let Ok(n) = write_token_body(minted.jwt(), TOKEN_LIFETIME_SECS, &mut body) else {
            return Answer::json(500, Vec::new());
        };
        body.truncate(n);
        tracing::info!(
            client_id = exchange.client_id,
            resource = exchange.resource,
            "workload-identity token issued"
        );
        Answer::json(200, body)
    }
}

impl Handler for WorkloadHandler {
    fn handle(&self, request: &Request<'_>) -> Answer {
        let segments: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
        let (base, fault) = match self.gate.check(request.path, None) {
            Gated::Pass(a) => (a, None),
            Gated::Close(a) => return a,
            Gated::Fault(a, f) => (a, Some(f)),
        };
        let mut answer = if let Some(f) = fault {
            let mut out = vec![0u8; 1024];
            let n = mitoken_core::token::write_error_json(&f.error, &f.error_description, &mut out)
                .unwrap_or(0);
            out.truncate(n);
            let a = Answer::json(f.status, out);
            match f.retry_after {
                Some(s) => a.with_header("Retry-After", s.to_string()),
                None => a,
            }
        } else {
            match (request.method, segments.as_slice()) {
                ("GET", ["common" | "organizations", "discovery", "instance"]) => {
                    self.instance_discovery(request.query)
                }
                ("GET", [tenant, "v2.0", ".well-known", "openid-configuration"]) => {
                    if self.tenant_ok(tenant) || *tenant == "common" || *tenant == "organizations" {
                        self.openid_configuration(tenant)
                    } else {
                        self.error(&Aadsts::TenantNotFound(tenant), None)
                    }
                }
                ("GET", [_, "discovery", "v2.0", "keys"]) => Answer::json(
                    200,
                    serde_json::to_vec(&Jwks::for_key(self.minter.signing_key()))
                        .unwrap_or_default(),
                ),
                (
                    "GET",
                    [
                        "oidc",
                        "mitoken-cluster",
                        ".well-known",
                        "openid-configuration",
                    ],
                ) => {
                    let doc = json!({
                        "issuer": self.cluster.issuer,
                        "jwks_uri": format!("{}openid/v1/jwks", self.cluster.issuer),
                        "response_types_supported": ["id_token"],
                        "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["RS256"],
                    });
                    Answer::json(200, doc.to_string().into_bytes())
                }
                ("GET", ["oidc", "mitoken-cluster", "openid", "v1", "jwks"]) => Answer::json(
                    200,
                    serde_json::to_vec(&Jwks::for_key(&self.cluster.key)).unwrap_or_default(),
                ),
                ("POST", [tenant, "oauth2", "v2.0", "token"]) => self.exchange(tenant, request),
                (_, [_, "oauth2", "v2.0", "token"]) => {
                    Answer::json(405, Vec::new()).with_header("Allow", "POST")
                }
                _ => Answer::json(404, br#"{"error":"not_found"}"#.to_vec()),
            }
        };
        answer.delay = base.delay;
        answer.hold = base.hold;
        answer
    }
}

/// The variables that point SDKs at a workload-identity emulator.
pub fn env_vars(
    authority: &str,
    tenant: &str,
    client_id: &str,
    token_file: &str,
    ca_file: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        (
            mitoken_core::source::ENV_AZURE_AUTHORITY_HOST,
            authority.to_owned(),
        ),
        (mitoken_core::source::ENV_AZURE_TENANT_ID, tenant.to_owned()),
        (
            mitoken_core::source::ENV_AZURE_CLIENT_ID,
            client_id.to_owned(),
        ),
        (
            mitoken_core::source::ENV_AZURE_FEDERATED_TOKEN_FILE,
            token_file.to_owned(),
        ),
    ];
    if let Some(ca) = ca_file {
        // Python's ssl/aiohttp (OpenSSL) read SSL_CERT_FILE, requests reads
        // REQUESTS_CA_BUNDLE (it ignores SSL_CERT_FILE), Node adds NODE_EXTRA_CA_CERTS to its
        // bundled roots; curl honours CURL_CA_BUNDLE.
        for name in [
            "SSL_CERT_FILE",
            "REQUESTS_CA_BUNDLE",
            "NODE_EXTRA_CA_CERTS",
            "CURL_CA_BUNDLE",
        ] {
            vars.push((name, ca.to_owned()));
        }
    }
    vars
}
