//! Command-line interface of the `mitoken` binary.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// mitoken: Azure managed-identity tokens from IMDS, an IMDS emulator, and a bridge for the
/// retired VM-extension endpoint.
#[derive(Debug, Parser)]
#[command(name = "mitoken", version, about, long_about = None)]
pub struct Cli {
    /// Log filter (also `MITOKEN_LOG` / `RUST_LOG`), e.g. `info`, `mitoken=debug`.
    #[arg(long, global = true, value_name = "FILTER")]
    pub log: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Get an access token from IMDS (or the legacy extension, or any compatible endpoint).
    Token(TokenArgs),
}

/// Arguments of `mitoken token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The resource (App ID URI) the token is for, e.g. `https://management.azure.com/`.
    /// A scope ending in `/.default` is accepted and turned into its resource.
    #[arg(long, short = 'r', value_name = "URI")]
    pub resource: String,
    /// Select a user-assigned identity by its client (application) id.
    #[arg(long, value_name = "GUID", group = "selector")]
    pub client_id: Option<String>,
    /// Select a user-assigned identity by its object (principal) id.
    #[arg(long, value_name = "GUID", group = "selector")]
    pub object_id: Option<String>,
    /// Select a user-assigned identity by its ARM resource id (sent as `msi_res_id`).
    #[arg(long, value_name = "ARM_ID", group = "selector")]
    pub resource_id: Option<String>,
    /// Where to ask: `imds` (169.254.169.254), `extension` (localhost:50342, the retired VM
    /// extension) or a base URL such as `http://127.0.0.1:8080` (IMDS-style paths). Defaults to
    /// `AZURE_POD_IDENTITY_AUTHORITY_HOST` when set, else `imds`.
    #[arg(long, value_name = "imds|extension|URL")]
    pub endpoint: Option<String>,
    /// IMDS api-version to send.
    #[arg(long, default_value = "2018-02-01", value_name = "VERSION")]
    pub api_version: String,
    /// Ask IMDS for a fresh token instead of its cached one (`bypass_cache=true`).
    #[arg(long)]
    pub bypass_cache: bool,
    /// Make one attempt only (by default 404, 410, 429, 5xx, timeouts and connection failures
    /// are retried with IMDS's back-off until `--timeout`).
    #[arg(long)]
    pub no_retry: bool,
    /// Overall time limit for getting the token, retries included.
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = parse_seconds)]
    pub timeout: Duration,
    /// Output format: `json` (IMDS's response), `raw` (the token only) or `az` (like
    /// `az account get-access-token`).
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Json)]
    pub output: OutputFormat,
}

/// How `mitoken token` prints the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// The token response as JSON, with the fields IMDS sent.
    Json,
    /// Only the access token, for `$(mitoken token -o raw …)`.
    Raw,
    /// The shape `az account get-access-token` prints: `accessToken`, `expiresOn` (local
    /// time), `expires_on`, `tokenType`, and `tenant` when the token names one.
    Az,
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if secs.is_finite() && secs > 0.0 && secs <= 86_400.0 {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(format!("`{s}`: expected a number of seconds in (0, 86400]"))
    }
}
