//! `mitoken token --source …`: which managed-identity source to ask, where, with which secret,
//! and the `--explain` account of that choice.
//!
//! `auto` (the default) runs the core's detection ([`mitoken_core::source::detect`]) over the
//! process environment and the presence of the Arc agent ([`ARC_HIMDS_PATH_LINUX`]). On a VM
//! with none of the variables that is IMDS, at `AZURE_POD_IDENTITY_AUTHORITY_HOST` when set —
//! exactly what `mitoken token` did before sources existed. An explicit `--endpoint` with
//! `auto` means IMDS at that endpoint, as before. A named source reads its endpoint and secret
//! from the variables that source's platform sets; `--endpoint` then overrides the URL.

use std::fmt::Write as _;
use std::path::Path;

use mitoken_core::request::Style;
use mitoken_core::source::{
    ARC_DEFAULT_ENDPOINT, ARC_HIMDS_PATH_LINUX, ENV_DEFAULT_IDENTITY_CLIENT_ID,
    ENV_IDENTITY_ENDPOINT, ENV_IDENTITY_HEADER, ENV_IDENTITY_SERVER_THUMBPRINT, ENV_MSI_ENDPOINT,
    ENV_MSI_SECRET, ENV_POD_IDENTITY_AUTHORITY_HOST, Source, detect,
};

use crate::cli::SourceArg;

/// The source chosen for one `mitoken token`, with what it needs.
#[derive(Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The source.
    pub source: Source,
    /// The protocol style for the engine.
    pub style: Style,
    /// `imds`, `extension` or a URL (for IMDS); the token URL for the others.
    pub endpoint: String,
    /// The secret header's value, if the source has one.
    pub secret: Option<String>,
    /// Azure ML's default `clientid`.
    pub default_client_id: Option<String>,
    /// Service Fabric: the thumbprint its certificate is pinned by
    /// (`IDENTITY_SERVER_THUMBPRINT`).
    pub thumbprint: Option<String>,
    /// The `--explain` lines (no secret values).
    pub explain: Vec<String>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("source", &self.source)
            .field("endpoint", &self.endpoint)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("default_client_id", &self.default_client_id)
            .finish_non_exhaustive()
    }
}

/// Why no source could be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// Detection found the environment half-configured.
    #[error("{0}")]
    Detect(mitoken_core::source::DetectError),
    /// The named source's endpoint variable is not set and no `--endpoint` was given.
    #[error("--source {which}: {var} is not set (pass --endpoint URL to name the endpoint)")]
    MissingEndpoint {
        /// The source.
        which: Source,
        /// The variable it reads.
        var: &'static str,
    },
    /// The named source's secret variable is not set.
    #[error("--source {which}: {var} is not set; the {which} endpoint needs its secret")]
    MissingSecret {
        /// The source.
        which: Source,
        /// The variable it reads.
        var: &'static str,
    },
    /// Workload identity is an Entra token exchange, not something `mitoken token` speaks.
    #[error(
        "the environment names workload identity (AZURE_AUTHORITY_HOST, AZURE_TENANT_ID, \
         AZURE_FEDERATED_TOKEN_FILE): that is an Entra token exchange, which `mitoken token` \
         does not perform; pass --source to ask a managed-identity endpoint instead"
    )]
    WorkloadIdentity,
}

/// How a variable is shown by `--explain`: endpoints and ids in full, secrets by length only.
fn shown(var: &str, value: &str) -> String {
    if matches!(var, ENV_IDENTITY_HEADER | ENV_MSI_SECRET) {
        format!("{var}=<set, {} bytes>", value.len())
    } else {
        format!("{var}={value}")
    }
}

/// The environment as the resolution sees it (empty values count as unset).
pub trait Env {
    /// The variable's value, if set and non-empty.
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

/// Chooses the source for `arg` (and an explicit `--endpoint`, if any).
pub fn resolve(
    arg: SourceArg,
    endpoint: Option<&str>,
    env: &dyn Env,
) -> Result<Resolved, ResolveError> {
    match arg.source() {
        None => resolve_auto(endpoint, env),
        Some(source) => resolve_named(source, endpoint, env),
    }
}

fn imds(endpoint: String, explain: Vec<String>) -> Resolved {
    Resolved {
        source: Source::Imds,
        style: Style::Imds,
        endpoint,
        secret: None,
        default_client_id: None,
        thumbprint: None,
        explain,
    }
}

fn resolve_auto(endpoint: Option<&str>, env: &dyn Env) -> Result<Resolved, ResolveError> {
    if let Some(spec) = endpoint {
        return Ok(imds(
            spec.to_owned(),
            vec![format!(
                "source: imds (auto: --endpoint {spec} given, so the environment is not consulted)"
            )],
        ));
    }
    let agent = Path::new(ARC_HIMDS_PATH_LINUX).exists();
    // Owned copies the lookup closure can lend out for the detection's lifetime.
    let names = [
        ENV_IDENTITY_ENDPOINT,
        ENV_IDENTITY_HEADER,
        ENV_IDENTITY_SERVER_THUMBPRINT,
        mitoken_core::source::ENV_IMDS_ENDPOINT,
        ENV_MSI_ENDPOINT,
        ENV_MSI_SECRET,
        ENV_DEFAULT_IDENTITY_CLIENT_ID,
        mitoken_core::source::ENV_AZURE_AUTHORITY_HOST,
        mitoken_core::source::ENV_AZURE_TENANT_ID,
        mitoken_core::source::ENV_AZURE_FEDERATED_TOKEN_FILE,
        ENV_POD_IDENTITY_AUTHORITY_HOST,
    ];
    let values: Vec<(&str, String)> = names
        .iter()
        .filter_map(|n| env.get(n).map(|v| (*n, v)))
        .collect();
    let lookup = |name: &str| {
        values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    };
    let d = detect(lookup, agent).map_err(ResolveError::Detect)?;
    let mut explain = vec![format!("source: {} (auto)", d.source)];
    let mut why = String::new();
    for var in d.deciding_vars() {
        if !why.is_empty() {
            why.push_str(", ");
        }
        let _ = write!(why, "{}", shown(var, lookup(var).unwrap_or_default()));
    }
    if d.by_arc_agent {
        why = format!("{ARC_HIMDS_PATH_LINUX} exists (the Azure Arc agent is installed)");
    }
    if why.is_empty() {
        "no managed-identity variable is set".clone_into(&mut why);
    }
    explain.push(format!("decided by: {why}"));
    let style = match d.source {
        Source::WorkloadIdentity => return Err(ResolveError::WorkloadIdentity),
        s => Style::for_source(s).unwrap_or(Style::Imds),
    };
    let endpoint = d.endpoint.unwrap_or("imds").to_owned();
    explain.push(format!("endpoint: {endpoint}"));
    if let Some(var) = d.secret_var {
        explain.push(format!("secret: from {var}"));
    }
    if let Some(id) = d.default_client_id {
        explain.push(format!(
            "default identity: {ENV_DEFAULT_IDENTITY_CLIENT_ID}={id} (sent as clientid when no \
             identity is named)"
        ));
    }
    Ok(Resolved {
        source: d.source,
        style,
        endpoint,
        secret: d.secret.map(|s| s.expose().to_owned()),
        default_client_id: d.default_client_id.map(str::to_owned),
        thumbprint: thumbprint_of(d.source, env, &mut explain),
        explain,
    })
}

/// Service Fabric's pinned thumbprint from the environment (explained); `None` for the other
/// sources. A missing one is reported when the request is made (nothing is sent).
fn thumbprint_of(source: Source, env: &dyn Env, explain: &mut Vec<String>) -> Option<String> {
    if source != Source::ServiceFabric {
        return None;
    }
    let v = env.get(ENV_IDENTITY_SERVER_THUMBPRINT);
    explain.push(match &v {
        Some(t) => format!("certificate pinned by {ENV_IDENTITY_SERVER_THUMBPRINT}={t}"),
        None => format!("{ENV_IDENTITY_SERVER_THUMBPRINT} is not set: nothing will be sent"),
    });
    v
}

fn resolve_named(
    source: Source,
    endpoint: Option<&str>,
    env: &dyn Env,
) -> Result<Resolved, ResolveError> {
    let style = Style::for_source(source).ok_or(ResolveError::WorkloadIdentity)?;
    if source == Source::Imds {
        let (spec, why) = match (endpoint, env.get(ENV_POD_IDENTITY_AUTHORITY_HOST)) {
            (Some(e), _) => (e.to_owned(), format!("--endpoint {e}")),
            (None, Some(h)) => (h.clone(), shown(ENV_POD_IDENTITY_AUTHORITY_HOST, &h)),
            (None, None) => ("imds".to_owned(), "169.254.169.254".to_owned()),
        };
        return Ok(imds(
            spec,
            vec![
                "source: imds (--source)".to_owned(),
                format!("endpoint: {why}"),
            ],
        ));
    }
    let (endpoint_var, secret_var) = match source {
        Source::AppService | Source::ServiceFabric => {
            (ENV_IDENTITY_ENDPOINT, Some(ENV_IDENTITY_HEADER))
        }
        Source::Arc => (ENV_IDENTITY_ENDPOINT, None),
        Source::AppService2017 | Source::AzureMl => (ENV_MSI_ENDPOINT, Some(ENV_MSI_SECRET)),
        _ => (ENV_MSI_ENDPOINT, None),
    };
    let mut explain = vec![format!("source: {source} (--source)")];
    let url = match (endpoint, env.get(endpoint_var)) {
        (Some(e), _) => {
            explain.push(format!("endpoint: {e} (--endpoint)"));
            e.to_owned()
        }
        (None, Some(v)) => {
            explain.push(format!("endpoint: {}", shown(endpoint_var, &v)));
            v
        }
        (None, None) if source == Source::Arc => {
            explain.push(format!(
                "endpoint: {ARC_DEFAULT_ENDPOINT} (the agent's default)"
            ));
            ARC_DEFAULT_ENDPOINT.to_owned()
        }
        (None, None) => {
            return Err(ResolveError::MissingEndpoint {
                which: source,
                var: endpoint_var,
            });
        }
    };
    let secret = match secret_var {
        Some(var) => {
            let v = env
                .get(var)
                .ok_or(ResolveError::MissingSecret { which: source, var })?;
            explain.push(format!("secret: {}", shown(var, &v)));
            Some(v)
        }
        None => None,
    };
    let thumbprint = thumbprint_of(source, env, &mut explain);
    let default_client_id = (source == Source::AzureMl)
        .then(|| env.get(ENV_DEFAULT_IDENTITY_CLIENT_ID))
        .flatten();
    if let Some(id) = &default_client_id {
        explain.push(format!(
            "default identity: {ENV_DEFAULT_IDENTITY_CLIENT_ID}={id} (sent as clientid when no \
             identity is named)"
        ));
    }
    Ok(Resolved {
        source,
        style,
        endpoint: url,
        secret,
        default_client_id,
        thumbprint,
        explain,
    })
}
