//! `mitoken emulate --source service-fabric|workload-identity`: the HTTPS sources. Each runs on
//! [`crate::tls::server`] with a generated certificate, answers from the same identity
//! configuration and signing key as the IMDS emulator, and honours `--fault` and `--throttle`.
//! The request checks and answer bytes are the core's (`mitoken_core::service_fabric`,
//! `mitoken_core::workload`).

pub mod env;
pub mod service_fabric;
pub mod workload;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use clap::Args;

use crate::emulate::config::{EmulatorConfig, Guid};
use crate::emulate::faults::{FaultAction, FaultPlan, FaultRequest, FaultResponse, FaultRule};
use crate::emulate::throttle::{Throttle, ThrottleLimits};
use crate::tls::server::Answer;

/// Options of `mitoken emulate` that only the HTTPS sources use.
#[derive(Debug, Clone, Args, Default)]
pub struct TlsEmulateArgs {
    /// Write the environment that points SDKs at the emulator (`KEY=VALUE` lines) to FILE.
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
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

/// The faults and throttle shared by a source's requests.
#[derive(Debug)]
pub(crate) struct Gate {
    faults: Mutex<FaultPlan>,
    throttle: Option<Throttle>,
}

/// What the gate decided for one request.
pub(crate) enum Gated {
    /// Serve it; hold the permit (if any) until the answer is written.
    Pass(Answer),
    /// Answer this fault (status, error, description, `Retry-After`) after the answer's delay.
    Fault(Answer, FaultResponse),
    /// Close without answering, after the answer's delay.
    Close(Answer),
}

impl Gate {
    pub(crate) fn new(
        rules: Vec<FaultRule>,
        throttle: bool,
    ) -> Result<Self, crate::emulate::faults::FaultDocumentError> {
        Ok(Self {
            faults: Mutex::new(FaultPlan::new(rules)?),
            throttle: throttle.then(|| Throttle::new(ThrottleLimits::IMDS_IDENTITY)),
        })
    }

    /// Applies throttling, then the fault rules, to a request for `path` (and `identity`).
    pub(crate) fn check(&self, path: &str, identity: Option<Guid>) -> Gated {
        let mut base = Answer::default();
        if let Some(throttle) = &self.throttle {
            match throttle.try_acquire(Instant::now()) {
                Ok(permit) => base.hold = Some(Box::new(permit)),
                Err(throttled) => {
                    let mut response = throttled.response();
                    response.retry_after = Some(throttled.retry_after_secs());
                    return Gated::Fault(base, response);
                }
            }
        }
        let decision = {
            let mut plan = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
            if plan.is_empty() {
                return Gated::Pass(base);
            }
            plan.decide(
                &FaultRequest { path, identity },
                getrandom::u32().unwrap_or(0),
            )
        };
        base.delay = decision.delay;
        match decision.action {
            FaultAction::Pass => Gated::Pass(base),
            FaultAction::Respond(r) => Gated::Fault(base, r),
            FaultAction::Close => {
                base.close = true;
                Gated::Close(base)
            }
        }
    }
}

/// A random GUID-shaped string (trace and correlation ids, secrets).
pub(crate) fn random_guid() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    b[6] = (b[6] & 0x0F) | 0x40;
    b[8] = (b[8] & 0x3F) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The state directory: `--state-dir`, created if needed, else a new private temporary one.
pub(crate) fn state_dir(arg: Option<&Path>, source: &str) -> std::io::Result<PathBuf> {
    let dir = match arg {
        Some(d) => d.to_owned(),
        None => std::env::temp_dir().join(format!(
            "mitoken-{source}-{}-{}",
            std::process::id(),
            &random_guid()[..8]
        )),
    };
    std::fs::create_dir_all(&dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if arg.is_none() {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(dir)
}

/// Writes `KEY=VALUE` lines to `path` (the `--env-file`).
pub(crate) fn write_env_file(path: &Path, vars: &[(&str, String)]) -> std::io::Result<()> {
    let text: String = vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(path, text)
}

/// The default listen addresses: Service Fabric's documented port, and 8443 for Entra.
pub fn default_listen(source: mitoken_core::source::Source) -> core::net::SocketAddr {
    let port = if source == mitoken_core::source::Source::ServiceFabric {
        2377
    } else {
        8443
    };
    core::net::SocketAddr::from(([127, 0, 0, 1], port))
}

/// Runs `mitoken emulate --source service-fabric|workload-identity` until a signal.
pub async fn run(
    args: &crate::cli::EmulateArgs,
    source: mitoken_core::source::Source,
) -> Result<(), crate::exit::Failure> {
    use mitoken_core::source::Source;

    use crate::emulate::jwt::TokenMinter;
    use crate::emulate::signing::SigningKey;
    use crate::emulate_cmd::{print_banner, wait_for_signal};
    use crate::exit::Failure;
    use crate::tls::certs::ServerIdentity;
    use crate::tls::server::{TlsLimits, TlsServer};

    let fail = |what: &str, e: &dyn std::fmt::Display, f: Failure| {
        eprintln!("mitoken emulate: {what}{e}");
        f
    };
    let config = match &args.config {
        Some(path) => EmulatorConfig::load(path, crate::emulate::config::Flavor::Imds)
            .map_err(|e| fail("", &e, Failure::Usage))?,
        None => EmulatorConfig::builtin(),
    };
    let listen = args.listen.unwrap_or_else(|| default_listen(source));
    if !listen.ip().is_loopback() && !args.allow_non_loopback {
        return Err(fail(
            "",
            &format_args!("{listen} is not a loopback address (pass --allow-non-loopback)"),
            Failure::Usage,
        ));
    }
    let key = match &args.signing_key {
        Some(path) => {
            SigningKey::load(path).map_err(|e| fail("--signing-key: ", &e, Failure::Usage))?
        }
        None => SigningKey::generate().map_err(|e| fail("", &e, Failure::Internal))?,
    };
    let key = Arc::new(key);
    if let Some(path) = &args.export_signing_key {
        key.export_pkcs8_pem(path)
            .map_err(|e| fail("--export-signing-key: ", &e, Failure::Internal))?;
    }
    let gate = Gate::new(args.faults.clone(), args.throttle)
        .map_err(|e| fail("--fault: ", &e, Failure::Usage))?;
    let dir = state_dir(args.tls.state_dir.as_deref(), source.name())
        .map_err(|e| fail("state directory: ", &e, Failure::Internal))?;
    let limits = TlsLimits {
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        idle_timeout: args.idle_timeout,
        handshake_timeout: args.request_timeout,
        ..TlsLimits::default()
    };
    let minter = TokenMinter::new(Arc::clone(&key), config.tenant_id);
    let mut rotation = None;
    let (server, banner, vars) = match source {
        Source::ServiceFabric => {
            let identity = ServerIdentity::self_signed("mitoken Service Fabric emulator")
                .map_err(|e| fail("", &e, Failure::Internal))?;
            let cert_path = dir.join(env::CERT_FILE_NAME);
            identity
                .write_trust_pem(&cert_path)
                .map_err(|e| fail("", &e, Failure::Internal))?;
            let app =
                config.identities().next().cloned().ok_or_else(|| {
                    fail("", &"the configuration has no identity", Failure::Usage)
                })?;
            let secret = args.tls.secret.clone().unwrap_or_else(random_guid);
            let handler = service_fabric::ServiceFabricHandler::new(
                secret.clone(),
                app.clone(),
                minter,
                gate,
            );
            let tls = identity
                .server_config()
                .map_err(|e| fail("", &e, Failure::Internal))?;
            let server = TlsServer::start(listen, tls, Arc::new(handler), limits).map_err(|e| {
                fail(
                    &format!("cannot listen on {listen}: "),
                    &e,
                    Failure::Network,
                )
            })?;
            let addr = server.local_addr();
            let endpoint = service_fabric::endpoint_url(addr);
            let thumbprint = identity.thumbprint();
            let banner = format!(
                "listening on https://{addr}\n\
                 mitoken emulate: service-fabric, token endpoint {endpoint}\n\
                 certificate SHA-1 thumbprint {thumbprint} ({})\n\
                 tenant {}\n\
                 application identity client_id={} object_id={}\n",
                cert_path.display(),
                config.tenant_id,
                app.client_id,
                app.object_id,
            );
            let vars = service_fabric::env_vars(
                &endpoint,
                &secret,
                &thumbprint,
                Some(&cert_path.to_string_lossy()),
            );
            (server, banner, vars)
        }
        Source::WorkloadIdentity => {
            let identity = ServerIdentity::with_ca("mitoken workload-identity CA", "localhost")
                .map_err(|e| fail("", &e, Failure::Internal))?;
            let ca_path = dir.join(env::CA_FILE_NAME);
            identity
                .write_trust_pem(&ca_path)
                .map_err(|e| fail("", &e, Failure::Internal))?;
            // Bind first: the issuer URL and the documents name the port.
            let std_listener = std::net::TcpListener::bind(listen).map_err(|e| {
                fail(
                    &format!("cannot listen on {listen}: "),
                    &e,
                    Failure::Network,
                )
            })?;
            let addr = std_listener
                .local_addr()
                .map_err(|e| fail("", &e, Failure::Network))?;
            drop(std_listener);
            let base = format!("https://localhost:{}", addr.port());
            let cluster = workload::Cluster::new(&base, &args.tls.service_account)
                .map_err(|e| fail("", &e, Failure::Internal))?;
            let subject = args
                .tls
                .federated_subject
                .clone()
                .unwrap_or_else(|| cluster.subject.clone());
            let token_path = dir.join(workload::TOKEN_FILE_NAME);
            let first = cluster
                .projected_token(crate::client::unix_now(), args.tls.token_lifetime)
                .map_err(|e| fail("", &e, Failure::Internal))?;
            workload::write_projected_token(&token_path, &first)
                .map_err(|e| fail("projected token: ", &e, Failure::Internal))?;
            rotation = Some(workload::spawn_rotation(
                cluster.clone(),
                token_path.clone(),
                args.tls.token_lifetime,
            ));
            let handler = workload::WorkloadHandler::new(
                base.clone(),
                &config,
                subject.clone(),
                cluster.clone(),
                minter,
                gate,
            );
            let tls = identity
                .server_config()
                .map_err(|e| fail("", &e, Failure::Internal))?;
            let server = TlsServer::start(addr, tls, Arc::new(handler), limits)
                .map_err(|e| fail(&format!("cannot listen on {addr}: "), &e, Failure::Network))?;
            let client_id = env::default_client_id(&config);
            let banner = format!(
                "listening on https://{addr}\n\
                 mitoken emulate: workload-identity, authority {base}, token endpoint {base}/{tenant}/oauth2/v2.0/token\n\
                 CA certificate {}\n\
                 cluster issuer {}; projected token {} (subject {}, rotated every {} s)\n\
                 federated credential: issuer {}, subject {subject}, audience {}\n\
                 tenant {tenant}; applications: {}\n",
                ca_path.display(),
                cluster.issuer,
                token_path.display(),
                cluster.subject,
                args.tls.token_lifetime * 4 / 5,
                cluster.issuer,
                mitoken_core::workload::TOKEN_EXCHANGE_AUDIENCE,
                config
                    .identities()
                    .map(|i| i.client_id.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                tenant = config.tenant_id,
            );
            let vars = workload::env_vars(
                &base,
                &config.tenant_id.to_string(),
                &client_id,
                &token_path.to_string_lossy(),
                Some(&ca_path.to_string_lossy()),
            );
            (server, banner, vars)
        }
        other => {
            return Err(fail(
                "",
                &format_args!("--source {other} is not an HTTPS source"),
                Failure::Usage,
            ));
        }
    };
    if let Some(path) = &args.tls.env_file {
        write_env_file(path, &vars).map_err(|e| fail("--env-file: ", &e, Failure::Internal))?;
    }
    let mut banner = banner;
    banner.push_str("environment:\n");
    for (k, v) in &vars {
        if *k != mitoken_core::source::ENV_IDENTITY_HEADER {
            banner.push_str(&format!("  {k}={v}\n"));
        }
    }
    if !args.faults.is_empty() {
        banner.push_str(&format!("{} fault rule(s) active\n", args.faults.len()));
    }
    if args.throttle {
        banner.push_str("throttle: 20 requests/s, 5 concurrent\n");
    }
    banner.push_str("ready\n");
    print_banner(&banner)?;
    wait_for_signal().await;
    tracing::info!("signal received; shutting down");
    if let Some(r) = rotation {
        r.abort();
    }
    server.shutdown().await;
    println!("stopped");
    Ok(())
}
