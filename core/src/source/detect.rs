//! Which source this process should ask, from its environment (`--source auto`).
//!
//! The order is Python azure-identity 1.27's `ManagedIdentityCredential` (first match wins):
//!
//! 1. `IDENTITY_ENDPOINT` + `IDENTITY_HEADER` + `IDENTITY_SERVER_THUMBPRINT` ⇒ Service Fabric
//! 2. `IDENTITY_ENDPOINT` + `IDENTITY_HEADER` ⇒ App Service (2019-08-01)
//! 3. `IDENTITY_ENDPOINT` + `IMDS_ENDPOINT` ⇒ Azure Arc
//!    — `IDENTITY_ENDPOINT` with neither partner ⇒ [`DetectError::IncompleteIdentityEndpoint`]
//!    (Python finds no credential; `MSI_ENDPOINT` is then not looked at)
//! 4. `MSI_ENDPOINT` + `MSI_SECRET` ⇒ Azure ML when `DEFAULT_IDENTITY_CLIENT_ID` is set (Azure
//!    ML always sets it), else App Service 2017-09-01 (the same wire form without the
//!    mandatory `clientid`)
//! 5. `MSI_ENDPOINT` alone ⇒ Cloud Shell
//! 6. the Arc agent installed (`/opt/azcmagent/bin/himds`, the shell's flag) ⇒ Azure Arc at
//!    [`ARC_DEFAULT_ENDPOINT`] (MSAL's rule; azure-identity itself does not look for the file)
//! 7. `AZURE_AUTHORITY_HOST` + `AZURE_TENANT_ID` + `AZURE_FEDERATED_TOKEN_FILE` ⇒ workload
//!    identity
//! 8. otherwise IMDS, at `AZURE_POD_IDENTITY_AUTHORITY_HOST` when that is set.
//!
//! A variable set to the empty string counts as **unset** everywhere (Python tests
//! truthiness, MSAL Go `Getenv != ""`): an empty `IDENTITY_HEADER` cannot authenticate
//! anything, and a container that blanks a variable means to turn it off.

use core::fmt;

use super::{
    ARC_DEFAULT_ENDPOINT, ENV_AZURE_AUTHORITY_HOST, ENV_AZURE_FEDERATED_TOKEN_FILE,
    ENV_AZURE_TENANT_ID, ENV_DEFAULT_IDENTITY_CLIENT_ID, ENV_IDENTITY_ENDPOINT,
    ENV_IDENTITY_HEADER, ENV_IDENTITY_SERVER_THUMBPRINT, ENV_IMDS_ENDPOINT, ENV_MSI_ENDPOINT,
    ENV_MSI_SECRET, ENV_POD_IDENTITY_AUTHORITY_HOST, Source,
};
use crate::token::Secret;

/// The most variables one decision names.
pub const MAX_DECIDING_VARS: usize = 3;

/// What [`detect`] found: the source, where it is, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Detection<'a> {
    /// The source to ask.
    pub source: Source,
    /// The token URL from the environment (or Arc's default); `None` for IMDS at
    /// 169.254.169.254 and for workload identity.
    pub endpoint: Option<&'a str>,
    /// The variable the secret came from, if the source has one.
    pub secret_var: Option<&'static str>,
    /// The secret (`IDENTITY_HEADER` or `MSI_SECRET`). Redacted in `Debug`.
    pub secret: Option<Secret<'a>>,
    /// Service Fabric's server-certificate thumbprint.
    pub thumbprint: Option<&'a str>,
    /// Azure ML's `DEFAULT_IDENTITY_CLIENT_ID`, sent as `clientid` when no identity is named.
    pub default_client_id: Option<&'a str>,
    /// The variables that decided, in the order they were tested.
    pub decided_by: [Option<&'static str>; MAX_DECIDING_VARS],
    /// Decided by the installed Arc agent (no variables).
    pub by_arc_agent: bool,
}

impl Detection<'_> {
    const fn new(source: Source) -> Self {
        Self {
            source,
            endpoint: None,
            secret_var: None,
            secret: None,
            thumbprint: None,
            default_client_id: None,
            decided_by: [None; MAX_DECIDING_VARS],
            by_arc_agent: false,
        }
    }

    const fn by(mut self, vars: [Option<&'static str>; MAX_DECIDING_VARS]) -> Self {
        self.decided_by = vars;
        self
    }

    /// The deciding variables' names.
    pub fn deciding_vars(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.decided_by.iter().flatten().copied()
    }
}

/// Why [`detect`] found no source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DetectError {
    /// `IDENTITY_ENDPOINT` is set but neither `IDENTITY_HEADER` (App Service, Service Fabric)
    /// nor `IMDS_ENDPOINT` (Arc) is: the environment is half-configured. Python
    /// azure-identity finds no credential here; falling back to IMDS could hand out the VM's
    /// identity where another was meant.
    IncompleteIdentityEndpoint,
}

impl fmt::Display for DetectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IncompleteIdentityEndpoint => f.write_str(
                "IDENTITY_ENDPOINT is set but neither IDENTITY_HEADER (App Service, Service \
                 Fabric) nor IMDS_ENDPOINT (Azure Arc) is: no managed-identity source can be \
                 chosen",
            ),
        }
    }
}

impl core::error::Error for DetectError {}

/// Picks the source from the environment (`env` looks a variable up; an empty value counts as
/// unset) and whether the Arc agent is installed. See the module docs of `source::detect` for the order.
///
/// ```
/// use mitoken_core::source::{Source, detect};
///
/// let env = |name: &str| match name {
///     "IDENTITY_ENDPOINT" => Some("http://127.0.0.1:41741/MSI/token/"),
///     "IDENTITY_HEADER" => Some("b0a1b2c3-d4e5-f6a7-b8c9-d0e1f2a3b4c5"),
///     _ => None,
/// };
/// let d = detect(env, false).unwrap();
/// assert_eq!(d.source, Source::AppService);
/// assert_eq!(d.endpoint, Some("http://127.0.0.1:41741/MSI/token/"));
/// assert_eq!(d.deciding_vars().collect::<Vec<_>>(), ["IDENTITY_ENDPOINT", "IDENTITY_HEADER"]);
/// ```
pub fn detect<'a, F>(env: F, arc_agent_installed: bool) -> Result<Detection<'a>, DetectError>
where
    F: Fn(&str) -> Option<&'a str>,
{
    let get = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(endpoint) = get(ENV_IDENTITY_ENDPOINT) {
        if let Some(header) = get(ENV_IDENTITY_HEADER) {
            let mut d = if let Some(thumb) = get(ENV_IDENTITY_SERVER_THUMBPRINT) {
                let mut d = Detection::new(Source::ServiceFabric).by([
                    Some(ENV_IDENTITY_ENDPOINT),
                    Some(ENV_IDENTITY_HEADER),
                    Some(ENV_IDENTITY_SERVER_THUMBPRINT),
                ]);
                d.thumbprint = Some(thumb);
                d
            } else {
                Detection::new(Source::AppService).by([
                    Some(ENV_IDENTITY_ENDPOINT),
                    Some(ENV_IDENTITY_HEADER),
                    None,
                ])
            };
            d.endpoint = Some(endpoint);
            d.secret_var = Some(ENV_IDENTITY_HEADER);
            d.secret = Some(Secret::new(header));
            return Ok(d);
        }
        if get(ENV_IMDS_ENDPOINT).is_some() {
            let mut d = Detection::new(Source::Arc).by([
                Some(ENV_IDENTITY_ENDPOINT),
                Some(ENV_IMDS_ENDPOINT),
                None,
            ]);
            d.endpoint = Some(endpoint);
            return Ok(d);
        }
        return Err(DetectError::IncompleteIdentityEndpoint);
    }
    if let Some(endpoint) = get(ENV_MSI_ENDPOINT) {
        let mut d = if let Some(secret) = get(ENV_MSI_SECRET) {
            let default_client_id = get(ENV_DEFAULT_IDENTITY_CLIENT_ID);
            let mut d = if default_client_id.is_some() {
                Detection::new(Source::AzureMl).by([
                    Some(ENV_MSI_ENDPOINT),
                    Some(ENV_MSI_SECRET),
                    Some(ENV_DEFAULT_IDENTITY_CLIENT_ID),
                ])
            } else {
                Detection::new(Source::AppService2017).by([
                    Some(ENV_MSI_ENDPOINT),
                    Some(ENV_MSI_SECRET),
                    None,
                ])
            };
            d.default_client_id = default_client_id;
            d.secret_var = Some(ENV_MSI_SECRET);
            d.secret = Some(Secret::new(secret));
            d
        } else {
            Detection::new(Source::CloudShell).by([Some(ENV_MSI_ENDPOINT), None, None])
        };
        d.endpoint = Some(endpoint);
        return Ok(d);
    }
    if arc_agent_installed {
        let mut d = Detection::new(Source::Arc);
        d.endpoint = Some(ARC_DEFAULT_ENDPOINT);
        d.by_arc_agent = true;
        return Ok(d);
    }
    if get(ENV_AZURE_AUTHORITY_HOST).is_some()
        && get(ENV_AZURE_TENANT_ID).is_some()
        && get(ENV_AZURE_FEDERATED_TOKEN_FILE).is_some()
    {
        return Ok(Detection::new(Source::WorkloadIdentity).by([
            Some(ENV_AZURE_AUTHORITY_HOST),
            Some(ENV_AZURE_TENANT_ID),
            Some(ENV_AZURE_FEDERATED_TOKEN_FILE),
        ]));
    }
    let mut d = Detection::new(Source::Imds);
    if let Some(host) = get(ENV_POD_IDENTITY_AUTHORITY_HOST) {
        d.endpoint = Some(host);
        d.decided_by = [Some(ENV_POD_IDENTITY_AUTHORITY_HOST), None, None];
    }
    Ok(d)
}
