//! `mitoken env service-fabric|workload-identity`: the environment that points SDKs at a
//! running HTTPS emulator, as `export` lines for a shell.

use std::fmt::Write as _;

use mitoken_core::source::Source;

use super::workload::TOKEN_FILE_NAME;
use crate::cli::TlsEnvArgs;
use crate::emulate::config::EmulatorConfig;

/// The CA bundle's file name inside an emulator's state directory.
pub const CA_FILE_NAME: &str = "ca.pem";
/// Service Fabric's certificate file name inside its state directory.
pub const CERT_FILE_NAME: &str = "server.pem";

/// Why the environment cannot be printed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    /// A required option is missing for this source.
    #[error("{which} needs --{option}")]
    Missing {
        /// The source.
        which: &'static str,
        /// The option's name.
        option: &'static str,
    },
    /// `--thumbprint` is not 40 hex digits.
    #[error("--thumbprint: {0}")]
    Thumbprint(mitoken_core::service_fabric::ThumbprintError),
    /// The endpoint is not an `https://` URL.
    #[error("--endpoint must be an https:// URL for {0}")]
    NotHttps(&'static str),
    /// Not one of the HTTPS sources.
    #[error("{0} is not served over HTTPS by mitoken (see `mitoken env --help`)")]
    NotTls(&'static str),
}

/// The variables for `source` at `endpoint`.
pub fn vars_for(
    source: Source,
    endpoint: &str,
    args: &TlsEnvArgs,
) -> Result<Vec<(&'static str, String)>, EnvError> {
    if !endpoint.starts_with("https://") {
        return Err(EnvError::NotHttps(source.name()));
    }
    match source {
        Source::ServiceFabric => {
            let missing = |option| EnvError::Missing {
                which: source.name(),
                option,
            };
            let thumbprint = args
                .thumbprint
                .as_deref()
                .ok_or_else(|| missing("thumbprint"))?;
            mitoken_core::service_fabric::parse_thumbprint(thumbprint)
                .map_err(EnvError::Thumbprint)?;
            let secret = args.secret.as_deref().ok_or_else(|| missing("secret"))?;
            let endpoint = if endpoint.trim_end_matches('/').ends_with("/oauth2/token") {
                endpoint.to_owned()
            } else {
                format!(
                    "{}{}",
                    endpoint.trim_end_matches('/'),
                    mitoken_core::service_fabric::TOKEN_PATH
                )
            };
            let cert = args.cert.as_ref().map(|c| c.to_string_lossy().into_owned());
            Ok(super::service_fabric::env_vars(
                &endpoint,
                secret,
                thumbprint,
                cert.as_deref(),
            ))
        }
        Source::WorkloadIdentity => {
            let dir = args.state_dir.as_ref().ok_or(EnvError::Missing {
                which: source.name(),
                option: "state-dir",
            })?;
            let config = EmulatorConfig::builtin();
            let tenant = args
                .tenant_id
                .clone()
                .unwrap_or_else(|| config.tenant_id.to_string());
            let client = args
                .client_id
                .clone()
                .unwrap_or_else(|| default_client_id(&config));
            let token_file = dir.join(TOKEN_FILE_NAME);
            let ca = dir.join(CA_FILE_NAME);
            Ok(super::workload::env_vars(
                endpoint.trim_end_matches('/'),
                &tenant,
                &client,
                &token_file.to_string_lossy(),
                Some(&ca.to_string_lossy()),
            ))
        }
        other => Err(EnvError::NotTls(other.name())),
    }
}

/// The application a workload-identity pod uses by default: the first user-assigned identity
/// (else the system-assigned one).
pub fn default_client_id(config: &EmulatorConfig) -> String {
    config
        .identities()
        .find(|i| !i.is_system_assigned())
        .or_else(|| config.identities().next())
        .map(|i| i.client_id.to_string())
        .unwrap_or_default()
}

/// `export KEY='VALUE'` lines (single-quoted for a POSIX shell).
pub fn exports(vars: &[(&str, String)]) -> String {
    vars.iter().fold(String::new(), |mut out, (k, v)| {
        let _ = writeln!(out, "export {k}='{}'", v.replace('\'', r"'\''"));
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_fabric_env_has_the_four_variables() {
        let args = TlsEnvArgs {
            thumbprint: Some("ab".repeat(20)),
            secret: Some("s'1".to_owned()),
            ..TlsEnvArgs::default()
        };
        let vars = vars_for(Source::ServiceFabric, "https://127.0.0.1:2377", &args).unwrap();
        let text = exports(&vars);
        assert!(text.contains(
            "export IDENTITY_ENDPOINT='https://127.0.0.1:2377/metadata/identity/oauth2/token'\n"
        ));
        assert!(text.contains("export IDENTITY_HEADER='s'\\''1'\n"));
        assert!(text.contains("IDENTITY_SERVER_THUMBPRINT"));
        assert!(text.contains("export IDENTITY_API_VERSION='2019-07-01-preview'\n"));
        let bad = TlsEnvArgs {
            thumbprint: Some("xyz".to_owned()),
            ..args.clone()
        };
        assert!(matches!(
            vars_for(Source::ServiceFabric, "https://h", &bad),
            Err(EnvError::Thumbprint(_))
        ));
        assert_eq!(
            vars_for(Source::ServiceFabric, "http://h", &args),
            Err(EnvError::NotHttps("service-fabric"))
        );
    }

    #[test]
    fn workload_identity_env_points_at_the_state_dir() {
        let args = TlsEnvArgs {
            state_dir: Some("/tmp/wi".into()),
            ..TlsEnvArgs::default()
        };
        let vars = vars_for(Source::WorkloadIdentity, "https://127.0.0.1:8443/", &args).unwrap();
        let get = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("AZURE_AUTHORITY_HOST"), Some("https://127.0.0.1:8443"));
        assert_eq!(
            get("AZURE_FEDERATED_TOKEN_FILE"),
            Some("/tmp/wi/azure-identity-token")
        );
        assert_eq!(get("SSL_CERT_FILE"), Some("/tmp/wi/ca.pem"));
        assert_eq!(get("REQUESTS_CA_BUNDLE"), Some("/tmp/wi/ca.pem"));
        assert_eq!(get("NODE_EXTRA_CA_CERTS"), Some("/tmp/wi/ca.pem"));
        assert!(get("AZURE_CLIENT_ID").is_some_and(|c| c.len() == 36));
    }
}
