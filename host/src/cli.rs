//! Command-line interface of the `mitoken` binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::emulate::config::Flavor;
use crate::emulate::faults::FaultRule;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mitoken_core::identity::{Guid, is_user_assigned_resource_id};
use mitoken_core::source::Source;

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
    /// Run an IMDS-compatible emulator (signed JWTs, JWKS, fault injection, throttling).
    Emulate(EmulateArgs),
    /// Show the main job end to end on this machine, with no Azure: an in-process emulator and
    /// the same client code as `mitoken token`.
    Demo(DemoArgs),
    /// Answer the retired VM extension's endpoint (legacy GET or form POST on
    /// 127.0.0.1:50342/oauth2/token) with tokens from IMDS.
    Bridge(BridgeArgs),
    /// Check why this machine can or cannot get managed-identity tokens: IMDS reachability,
    /// proxies, identities, clock, the legacy extension (exit 0 ok, 1 warnings, 2 failures).
    Doctor(crate::doctor::DoctorArgs),
    /// Print the `export` lines that point SDKs at a running `mitoken emulate --source S`.
    Env(EnvArgs),
}

/// A source name (`imds`, `app-service`, `app-service-2017`, `arc`, `cloud-shell`,
/// `service-fabric`, `azure-ml`, `workload-identity`).
pub fn parse_source(s: &str) -> Result<Source, String> {
    Source::from_name(s).map_err(|e| e.to_string())
}

/// Arguments of `mitoken env`.
#[derive(Debug, Args)]
pub struct EnvArgs {
    /// The source the emulator imitates.
    #[arg(value_name = "SOURCE", value_parser = parse_source)]
    pub source: Source,
    /// The running emulator's base URL, e.g. `http://127.0.0.1:41741` (its first printed line).
    #[arg(long, value_name = "URL")]
    pub endpoint: String,
    /// The emulator's secret (App Service, App Service 2017, Azure ML, Service Fabric): the
    /// `IDENTITY_HEADER` / `MSI_SECRET` line of its `--env-file`. Also read from `MITOKEN_SECRET`.
    #[arg(long, value_name = "SECRET")]
    pub secret: Option<String>,
    /// Azure ML: the `DEFAULT_IDENTITY_CLIENT_ID` to export (the client id the SDKs send when
    /// no identity is named). Workload identity: the application's client id (default: the
    /// built-in configuration's first user-assigned identity).
    #[arg(long, value_name = "GUID", value_parser = parse_guid)]
    pub client_id: Option<String>,
    /// Options of the HTTPS sources (`service-fabric`, `workload-identity`).
    #[command(flatten)]
    pub tls: TlsEnvArgs,
}

/// Arguments of `mitoken bridge`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BridgeArgs {
    /// Instead of serving, talk to the running bridge.
    #[command(subcommand)]
    pub action: Option<BridgeAction>,
    /// Address to listen on; port 0 picks a free port (the first line printed says which).
    #[arg(long, value_name = "ADDR", default_value = crate::bridge::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Where tokens come from: IMDS's base URL (`http://host[:port]`, IMDS's token path added)
    /// or a full token URL `http://host[:port]/path`. Never taken from the request.
    #[arg(long, value_name = "URL", default_value = crate::bridge::DEFAULT_UPSTREAM)]
    pub upstream: String,
    /// Allow a non-loopback `--listen` address and serve non-loopback peers: anyone who can
    /// reach the bridge gets this VM's tokens.
    #[arg(long)]
    pub allow_non_loopback: bool,
    /// Most connections served at once. At the cap the oldest connection that never completed
    /// a request is closed for the new one; when there is none, the new one is answered 503.
    #[arg(long, value_name = "N", default_value = "1024", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Close a connection that sends no complete request for this long.
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = parse_seconds)]
    pub idle_timeout: Duration,
    /// Serve the migration report on this Unix socket (its directory is created 0700 and
    /// must not be open to others). Default: `$RUNTIME_DIRECTORY/status.sock` under systemd
    /// (the shipped unit: /run/mitoken-bridge/status.sock), else not served.
    #[arg(long, value_name = "PATH")]
    pub status_socket: Option<PathBuf>,
    /// Close a connection whose request is not complete this long after its first bytes.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_seconds)]
    pub request_timeout: Duration,
}

/// What `mitoken bridge <action>` does.
#[derive(Debug, Subcommand)]
pub enum BridgeAction {
    /// Print the running bridge's migration report: which local processes still call the
    /// legacy endpoint, for which identities and resources, how often.
    Status(BridgeStatusArgs),
}

/// Arguments of `mitoken bridge status`.
#[derive(Debug, Args)]
pub struct BridgeStatusArgs {
    /// The bridge's status socket (default: /run/mitoken-bridge/status.sock, the service's).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Which service `mitoken emulate` imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FlavorArg {
    /// The Instance Metadata Service: `/metadata/identity/oauth2/token`, up to 1000
    /// user-assigned identities; default listen address 127.0.0.1:8080.
    Imds,
    /// The retired managed-identity VM extension: `/oauth2/token`, up to 32 user-assigned
    /// identities; default listen address 127.0.0.1:50342.
    Extension,
}

impl From<FlavorArg> for Flavor {
    fn from(f: FlavorArg) -> Self {
        match f {
            FlavorArg::Imds => Flavor::Imds,
            FlavorArg::Extension => Flavor::Extension,
        }
    }
}

/// Arguments of `mitoken emulate`.
#[derive(Debug, Args)]
pub struct EmulateArgs {
    /// Address to listen on; port 0 picks a free port (the first line printed says which).
    /// Default 127.0.0.1:8080 (imds) or 127.0.0.1:50342 (extension).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Allow a non-loopback `--listen` address: anyone who can reach it gets tokens.
    #[arg(long)]
    pub allow_non_loopback: bool,
    /// The VM's identities (TOML). Default: a built-in VM with a system-assigned and two
    /// user-assigned identities.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Which service to imitate.
    #[arg(long, value_enum, default_value_t = FlavorArg::Imds)]
    pub flavor: FlavorArg,
    /// RSA private key (PEM, PKCS#8 or PKCS#1, at least 2048 bits) to sign tokens with.
    /// Default: a new key generated at start.
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// Write the signing key (PKCS#8 PEM, mode 0600) to FILE, to reuse it with `--signing-key`.
    #[arg(long, value_name = "FILE")]
    pub export_signing_key: Option<PathBuf>,
    /// A fault rule (repeatable), e.g. `status=410,count=3`, `status=500,percent=10`,
    /// `delay=200ms`, `close,count=1`, `status=429,retry_after=2,identity=<client-id>`.
    #[arg(long = "fault", value_name = "RULE", value_parser = parse_fault)]
    pub faults: Vec<FaultRule>,
    /// Enforce IMDS's identity limits: 20 requests/s and 5 concurrent, else 429 with
    /// `Retry-After` (changeable at run time on the admin path).
    #[arg(long)]
    pub throttle: bool,
    /// Most connections served at once. At the cap the oldest connection that never completed
    /// a request is closed for the new one; when there is none, the new one is answered 503.
    #[arg(long, value_name = "N", default_value = "1024", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Close a connection that sends no complete request for this long.
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = parse_seconds)]
    pub idle_timeout: Duration,
    /// Close a connection whose request is not complete this long after its first bytes.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_seconds)]
    pub request_timeout: Duration,
    /// The managed-identity source to imitate: `imds` (default; `--flavor` applies),
    /// `app-service`, `app-service-2017`, `azure-ml`, `cloud-shell`, `arc`, and over HTTPS
    /// `service-fabric` or `workload-identity` (docs/sources-emulator.md, docs/sources-tls.md).
    #[arg(long, value_name = "SOURCE", default_value = "imds", value_parser = parse_source)]
    pub source: Source,
    /// Arc: where the challenge key files are written (mode 0600).
    #[arg(long, value_name = "DIR", default_value = mitoken_core::source::ARC_TOKENS_DIR_LINUX)]
    pub arc_tokens_dir: PathBuf,
    /// Arc: how long one key stays current before a new key file replaces it.
    #[arg(long, value_name = "SECONDS", default_value = "300", value_parser = parse_seconds)]
    pub arc_key_lifetime: Duration,
    /// Write the `KEY=VALUE` lines that point SDKs at this emulator to FILE (mode 0600: it
    /// holds the secret).
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// Options of the HTTPS sources (`service-fabric`, `workload-identity`).
    #[command(flatten)]
    pub tls: TlsEmulateArgs,
}

/// Arguments of `mitoken demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The resource to ask tokens for.
    #[arg(
        long,
        short = 'r',
        value_name = "URI",
        default_value = "https://management.azure.com/"
    )]
    pub resource: String,
}

fn parse_fault(s: &str) -> Result<FaultRule, String> {
    s.parse::<FaultRule>().map_err(|e| e.to_string())
}

/// Arguments of `mitoken token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The resource (App ID URI) the token is for, e.g. `https://management.azure.com/`.
    /// A scope ending in `/.default` is accepted and turned into its resource.
    #[arg(long, short = 'r', value_name = "URI")]
    pub resource: String,
    /// Select a user-assigned identity by its client (application) id.
    #[arg(long, value_name = "GUID", group = "selector", value_parser = parse_guid)]
    pub client_id: Option<String>,
    /// Select a user-assigned identity by its object (principal) id.
    #[arg(long, value_name = "GUID", group = "selector", value_parser = parse_guid)]
    pub object_id: Option<String>,
    /// Select a user-assigned identity by its ARM resource id (sent as `msi_res_id`):
    /// `/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>`.
    #[arg(long, value_name = "ARM_ID", group = "selector", value_parser = parse_resource_id)]
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
    /// Which managed-identity source to ask. `auto` picks it from the environment the way
    /// Azure SDKs do (IMDS when no source's variables are set); see docs/sources-client.md.
    #[arg(long, value_enum, default_value_t = SourceArg::Auto)]
    pub source: SourceArg,
    /// Print to stderr which source was chosen and which variables decided it (secret values
    /// are shown by length only).
    #[arg(long)]
    pub explain: bool,
    /// Directory Azure Arc key files must be directly inside (default
    /// /var/opt/azcmagent/tokens; other values are for tests).
    #[arg(long, value_name = "DIR")]
    pub arc_tokens_dir: Option<PathBuf>,
}

/// `--source` of `mitoken token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceArg {
    /// Detect from the environment (default).
    Auto,
    /// The VM's Instance Metadata Service.
    Imds,
    /// App Service / Functions / Container Apps (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`).
    AppService,
    /// App Service's legacy 2017-09-01 form (`MSI_ENDPOINT` + `MSI_SECRET`).
    #[value(name = "app-service-2017")]
    AppService2017,
    /// Azure Arc (`IDENTITY_ENDPOINT`, key-file challenge).
    Arc,
    /// Azure Cloud Shell (`MSI_ENDPOINT`).
    CloudShell,
    /// Service Fabric (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER` + thumbprint; HTTPS).
    ServiceFabric,
    /// Azure Machine Learning (`MSI_ENDPOINT` + `MSI_SECRET`, `DEFAULT_IDENTITY_CLIENT_ID`).
    AzureMl,
}

impl SourceArg {
    /// The named source; `None` for `auto`.
    pub fn source(self) -> Option<Source> {
        match self {
            Self::Auto => None,
            Self::Imds => Some(Source::Imds),
            Self::AppService => Some(Source::AppService),
            Self::AppService2017 => Some(Source::AppService2017),
            Self::Arc => Some(Source::Arc),
            Self::CloudShell => Some(Source::CloudShell),
            Self::ServiceFabric => Some(Source::ServiceFabric),
            Self::AzureMl => Some(Source::AzureMl),
        }
    }
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

/// A client or object id, checked with the core's GUID rule before anything is sent.
fn parse_guid(s: &str) -> Result<String, String> {
    match Guid::parse(s) {
        Some(_) => Ok(s.to_owned()),
        None => Err(format!(
            "`{s}` is not a GUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, hex digits); \
             nothing was sent"
        )),
    }
}

/// A user-assigned identity's ARM resource id, checked with the core's rule before anything is
/// sent.
fn parse_resource_id(s: &str) -> Result<String, String> {
    if is_user_assigned_resource_id(s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` is not a user-assigned identity's resource id (expected \
             /subscriptions/<subscription>/resourceGroups/<group>/providers/\
             Microsoft.ManagedIdentity/userAssignedIdentities/<name>); nothing was sent"
        ))
    }
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

/// Options of `mitoken emulate` that only the HTTPS sources use.
#[derive(Debug, Clone, Args, Default)]
pub struct TlsEmulateArgs {
    /// Directory for the generated files (certificate or CA bundle, workload identity's
    /// projected token). Default: a new directory under the system's temporary directory.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Service Fabric: the application's secret (`IDENTITY_HEADER`). Default: a random one.
    #[arg(long, value_name = "SECRET")]
    pub secret: Option<String>,
    /// Workload identity: the pod's service account as `NAMESPACE:NAME` (the projected token's
    /// subject is `system:serviceaccount:NAMESPACE:NAME`).
    #[arg(long, value_name = "NS:NAME", default_value = "default:workload")]
    pub service_account: String,
    /// Workload identity: the subject the applications' federated credential expects
    /// (default: the `--service-account`'s subject). A different one makes every exchange fail
    /// with AADSTS700213, as in Entra.
    #[arg(long, value_name = "SUBJECT")]
    pub federated_subject: Option<String>,
    /// Workload identity: lifetime of the projected service-account token, in seconds
    /// (Kubernetes: 3600–86400); it is rewritten at 80% of its life.
    #[arg(long, value_name = "SECONDS", default_value = "3600", value_parser = clap::value_parser!(u64).range(10..=86_400))]
    pub token_lifetime: u64,
}

/// Options of `mitoken env` for the HTTPS sources.
#[derive(Debug, Clone, Args, Default)]
pub struct TlsEnvArgs {
    /// Service Fabric: the server certificate's SHA-1 thumbprint (as the emulator printed it).
    #[arg(long, value_name = "HEX")]
    pub thumbprint: Option<String>,
    /// Service Fabric: the application's secret (`IDENTITY_HEADER`): `mitoken env --secret`.
    #[arg(skip)]
    pub secret: Option<String>,
    /// Service Fabric: the server certificate's PEM file, for clients that validate the chain
    /// instead of pinning (msal-node): sets `NODE_EXTRA_CA_CERTS`.
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// Workload identity: the emulator's `--state-dir` (holds the projected token and the CA).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Workload identity: the application's client id (default: the built-in configuration's
    /// first user-assigned identity): `mitoken env --client-id`.
    #[arg(skip)]
    pub client_id: Option<String>,
    /// Workload identity: the tenant (default: the built-in configuration's).
    #[arg(long, value_name = "GUID")]
    pub tenant_id: Option<String>,
}
