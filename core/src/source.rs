//! Managed-identity sources: where a process gets its tokens, and each one's wire vocabulary.
//!
//! A VM asks IMDS; App Service, Functions and Container Apps run a local endpoint of their own
//! (api-version 2019-08-01, or the legacy 2017-09-01 form); Azure Arc machines run HIMDS, which
//! challenges with a key file; Cloud Shell answers a form POST for the signed-in user; Service
//! Fabric serves HTTPS pinned by a thumbprint; Azure Machine Learning speaks the 2017 form with a
//! mandatory `clientid`; AKS workload identity is not an MSI endpoint at all but a federated
//! token exchange with Entra. `docs/protocol.md` §4 is the reference for every literal here.
//!
//! This module names the sources and holds each one's constants (environment variables,
//! api-versions, header and selector names), so the client, the emulator and the detection
//! speak from one table.
//!
//! ```
//! use mitoken_core::source::Source;
//!
//! let s = Source::from_name("app-service").unwrap();
//! assert_eq!(s.name(), "app-service");
//! assert_eq!(s.api_version(), Some("2019-08-01"));
//! assert_eq!(s.secret_header(), Some("X-IDENTITY-HEADER"));
//! ```

use core::fmt;

mod detect;

pub use detect::{DetectError, Detection, MAX_DECIDING_VARS, detect};

/// `IDENTITY_ENDPOINT`: App Service (2019), Service Fabric and Arc token URL.
pub const ENV_IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
/// `IDENTITY_HEADER`: App Service (2019) and Service Fabric secret.
pub const ENV_IDENTITY_HEADER: &str = "IDENTITY_HEADER";
/// `IDENTITY_SERVER_THUMBPRINT`: SHA-1 thumbprint of Service Fabric's server certificate.
pub const ENV_IDENTITY_SERVER_THUMBPRINT: &str = "IDENTITY_SERVER_THUMBPRINT";
/// `IMDS_ENDPOINT`: set on Arc machines (with `IDENTITY_ENDPOINT`).
pub const ENV_IMDS_ENDPOINT: &str = "IMDS_ENDPOINT";
/// `MSI_ENDPOINT`: Azure ML and Cloud Shell (and App Service 2017) token URL.
pub const ENV_MSI_ENDPOINT: &str = "MSI_ENDPOINT";
/// `MSI_SECRET`: Azure ML (and App Service 2017) secret.
pub const ENV_MSI_SECRET: &str = "MSI_SECRET";
/// `DEFAULT_IDENTITY_CLIENT_ID`: Azure ML's default identity, sent as `clientid`.
pub const ENV_DEFAULT_IDENTITY_CLIENT_ID: &str = "DEFAULT_IDENTITY_CLIENT_ID";
/// `AZUREPS_HOST_ENVIRONMENT`: starts with `cloud-shell` in Cloud Shell.
pub const ENV_AZUREPS_HOST_ENVIRONMENT: &str = "AZUREPS_HOST_ENVIRONMENT";
/// `AZURE_POD_IDENTITY_AUTHORITY_HOST`: redirects IMDS (e.g. to an emulator).
pub const ENV_POD_IDENTITY_AUTHORITY_HOST: &str = "AZURE_POD_IDENTITY_AUTHORITY_HOST";
/// `AZURE_AUTHORITY_HOST`: Entra authority for workload identity.
pub const ENV_AZURE_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";
/// `AZURE_TENANT_ID`: the tenant for workload identity.
pub const ENV_AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";
/// `AZURE_CLIENT_ID`: the application (client) id for workload identity.
pub const ENV_AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";
/// `AZURE_FEDERATED_TOKEN_FILE`: the projected service-account token for workload identity.
pub const ENV_AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";

/// Where the Arc agent's executable is on Linux (its presence means Arc, as MSAL decides).
pub const ARC_HIMDS_PATH_LINUX: &str = "/opt/azcmagent/bin/himds";
/// The directory HIMDS writes its challenge key files into on Linux.
pub const ARC_TOKENS_DIR_LINUX: &str = "/var/opt/azcmagent/tokens";
/// The largest Arc key file a client reads (bytes).
pub const ARC_MAX_KEY_FILE_LEN: u64 = 4096;
/// The Arc agent's default token endpoint when only the agent is installed.
pub const ARC_DEFAULT_ENDPOINT: &str = "http://127.0.0.1:40342/metadata/identity/oauth2/token";

/// Where a token comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Source {
    /// The VM's Instance Metadata Service (or an override of it).
    Imds,
    /// App Service, Functions, Container Apps: api-version 2019-08-01.
    AppService,
    /// App Service's legacy api-version 2017-09-01 form (`MSI_ENDPOINT` + `MSI_SECRET`).
    AppService2017,
    /// Azure Arc-enabled servers (HIMDS, key-file challenge).
    Arc,
    /// Azure Cloud Shell (form POST, the signed-in user's token).
    CloudShell,
    /// Service Fabric (HTTPS pinned by thumbprint).
    ServiceFabric,
    /// Azure Machine Learning (2017 form, `clientid` always).
    AzureMl,
    /// AKS workload identity: a federated-credential exchange with Entra.
    WorkloadIdentity,
}

impl Source {
    /// Every source, in the order `--help` lists them.
    pub const ALL: [Self; 8] = [
        Self::Imds,
        Self::AppService,
        Self::AppService2017,
        Self::Arc,
        Self::CloudShell,
        Self::ServiceFabric,
        Self::AzureMl,
        Self::WorkloadIdentity,
    ];

    /// The name used on the command line (`--source app-service`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Imds => "imds",
            Self::AppService => "app-service",
            Self::AppService2017 => "app-service-2017",
            Self::Arc => "arc",
            Self::CloudShell => "cloud-shell",
            Self::ServiceFabric => "service-fabric",
            Self::AzureMl => "azure-ml",
            Self::WorkloadIdentity => "workload-identity",
        }
    }

    /// The source named `name` (as [`Source::name`] spells it).
    pub fn from_name(name: &str) -> Result<Self, UnknownSource> {
        Self::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or(UnknownSource)
    }

    /// The `api-version` sent, if the source has one.
    pub const fn api_version(self) -> Option<&'static str> {
        match self {
            Self::Imds => Some("2018-02-01"),
            Self::AppService => Some("2019-08-01"),
            Self::AppService2017 | Self::AzureMl => Some("2017-09-01"),
            Self::Arc => Some("2020-06-01"),
            Self::ServiceFabric => Some("2019-07-01-preview"),
            Self::CloudShell | Self::WorkloadIdentity => None,
        }
    }

    /// The header that carries the source's secret, if any (Arc's proof is the
    /// `Authorization` header of its second request).
    pub const fn secret_header(self) -> Option<&'static str> {
        match self {
            Self::AppService => Some("X-IDENTITY-HEADER"),
            Self::AppService2017 | Self::AzureMl => Some("secret"),
            Self::ServiceFabric => Some("Secret"),
            Self::Imds | Self::Arc | Self::CloudShell | Self::WorkloadIdentity => None,
        }
    }

    /// The query names of the user-assigned selectors the source accepts, as
    /// `(client id, object id, resource id)`; `None` where the source has no such selector.
    pub const fn selector_names(
        self,
    ) -> (
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
    ) {
        match self {
            Self::Imds | Self::Arc => (Some("client_id"), Some("object_id"), Some("msi_res_id")),
            Self::AppService => (Some("client_id"), Some("object_id"), Some("mi_res_id")),
            Self::AppService2017 | Self::AzureMl => (Some("clientid"), None, None),
            Self::WorkloadIdentity => (Some("client_id"), None, None),
            Self::CloudShell | Self::ServiceFabric => (None, None, None),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a [`Source`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownSource;

impl fmt::Display for UnknownSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown source; expected one of ")?;
        for (i, s) in Source::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(s.name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Source::ALL {
            assert_eq!(Source::from_name(s.name()), Ok(s));
        }
        assert_eq!(Source::from_name("App-Service"), Err(UnknownSource));
        assert_eq!(Source::from_name(""), Err(UnknownSource));
    }
}
