//! `mitoken emulate --source service-fabric|workload-identity`: the HTTPS sources. Each runs on
//! [`crate::tls::server`] with a generated certificate, answers from the same identity
//! configuration and signing key as the IMDS emulator, and honours `--fault` and `--throttle`.
//! The request checks and answer bytes are the core's (`mitoken_core::service_fabric`,
//! `mitoken_core::workload`).

pub mod env;
pub mod service_fabric;
pub mod workload;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use core::net::SocketAddr;

use mitoken_core::source::Source;

use crate::cli::EmulateArgs;
use crate::emulate::config::{EmulatorConfig, Guid};
use crate::emulate::faults::{FaultAction, FaultPlan, FaultRequest, FaultResponse, FaultRule};
use crate::emulate::jwt::TokenMinter;
use crate::emulate::signing::SigningKey;
use crate::emulate::throttle::{Throttle, ThrottleLimits};
use crate::exit::Failure;
use crate::process::{print_banner, wait_for_signal};
use crate::tls::certs::ServerIdentity;
use crate::tls::server::{Answer, TlsLimits, TlsServer};

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
    let hex = b.iter().fold(String::with_capacity(32), |mut h, x| {
        let _ = write!(h, "{x:02x}");
        h
    });
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
    let text = vars.iter().fold(String::new(), |mut t, (k, v)| {
        let _ = writeln!(t, "{k}={v}");
        t
    });
    std::fs::write(path, text)
}

/// The default listen addresses: Service Fabric's documented port, and 8443 for Entra.
pub fn default_listen(source: Source) -> SocketAddr {
    let port = if source == Source::ServiceFabric {
        2377
    } else {
        8443
    };
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// What starting a source gave: the listener, the banner, the environment, and a task that
/// must be aborted at shutdown (the projected token's rotation).
struct Started {
    server: TlsServer,
    banner: String,
    vars: Vec<(&'static str, String)>,
    rotation: Option<tokio::task::JoinHandle<()>>,
}

/// What every source's start needs.
struct Common<'a> {
    args: &'a EmulateArgs,
    config: EmulatorConfig,
    listen: SocketAddr,
    dir: PathBuf,
    limits: TlsLimits,
    minter: TokenMinter,
    gate: Gate,
}

fn fail(what: &str, e: &dyn std::fmt::Display, f: Failure) -> Failure {
    eprintln!("mitoken emulate: {what}{e}");
    f
}

/// Runs `mitoken emulate --source service-fabric|workload-identity` until a signal.
pub async fn run(args: &EmulateArgs, source: Source) -> Result<(), Failure> {
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
    let common = Common {
        args,
        config,
        listen,
        dir,
        limits,
        minter,
        gate,
    };
    let started = match source {
        Source::ServiceFabric => start_service_fabric(common)?,
        Source::WorkloadIdentity => start_workload_identity(common)?,
        other => {
            return Err(fail(
                "",
                &format_args!("--source {other} is not an HTTPS source"),
                Failure::Usage,
            ));
        }
    };
    if let Some(path) = &args.env_file {
        write_env_file(path, &started.vars)
            .map_err(|e| fail("--env-file: ", &e, Failure::Internal))?;
    }
    let mut banner = started.banner;
    banner.push_str("environment:\n");
    for (k, v) in &started.vars {
        if *k != mitoken_core::source::ENV_IDENTITY_HEADER {
            let _ = writeln!(banner, "  {k}={v}");
        }
    }
    if !args.faults.is_empty() {
        let _ = writeln!(banner, "{} fault rule(s) active", args.faults.len());
    }
    if args.throttle {
        banner.push_str("throttle: 20 requests/s, 5 concurrent\n");
    }
    banner.push_str("ready\n");
    print_banner(&banner)?;
    wait_for_signal().await;
    tracing::info!("signal received; shutting down");
    if let Some(r) = started.rotation {
        r.abort();
    }
    started.server.shutdown().await;
    println!("stopped");
    Ok(())
}

fn start_service_fabric(c: Common<'_>) -> Result<Started, Failure> {
    let identity = ServerIdentity::self_signed("mitoken Service Fabric emulator")
        .map_err(|e| fail("", &e, Failure::Internal))?;
    let cert_path = c.dir.join(env::CERT_FILE_NAME);
    identity
        .write_trust_pem(&cert_path)
        .map_err(|e| fail("", &e, Failure::Internal))?;
    let app = c
        .config
        .identities()
        .next()
        .cloned()
        .ok_or_else(|| fail("", &"the configuration has no identity", Failure::Usage))?;
    let secret = c.args.tls.secret.clone().unwrap_or_else(random_guid);
    let handler =
        service_fabric::ServiceFabricHandler::new(secret.clone(), app.clone(), c.minter, c.gate);
    let tls = identity
        .server_config()
        .map_err(|e| fail("", &e, Failure::Internal))?;
    let server = TlsServer::start(c.listen, tls, Arc::new(handler), c.limits).map_err(|e| {
        fail(
            &format!("cannot listen on {}: ", c.listen),
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
        c.config.tenant_id,
        app.client_id,
        app.object_id,
    );
    let vars = service_fabric::env_vars(
        &endpoint,
        &secret,
        &thumbprint,
        Some(&cert_path.to_string_lossy()),
    );
    Ok(Started {
        server,
        banner,
        vars,
        rotation: None,
    })
}

fn start_workload_identity(c: Common<'_>) -> Result<Started, Failure> {
    let identity = ServerIdentity::with_ca("mitoken workload-identity CA", "localhost")
        .map_err(|e| fail("", &e, Failure::Internal))?;
    let ca_path = c.dir.join(env::CA_FILE_NAME);
    identity
        .write_trust_pem(&ca_path)
        .map_err(|e| fail("", &e, Failure::Internal))?;
    let tls = identity
        .server_config()
        .map_err(|e| fail("", &e, Failure::Internal))?;
    // Bound first: the issuer URL and the documents name the port.
    let mut server = TlsServer::bind(c.listen).map_err(|e| {
        fail(
            &format!("cannot listen on {}: ", c.listen),
            &e,
            Failure::Network,
        )
    })?;
    let addr = server.local_addr();
    let base = format!("https://localhost:{}", addr.port());
    let lifetime = c.args.tls.token_lifetime;
    let cluster = workload::Cluster::new(&base, &c.args.tls.service_account)
        .map_err(|e| fail("", &e, Failure::Internal))?;
    let subject = c
        .args
        .tls
        .federated_subject
        .clone()
        .unwrap_or_else(|| cluster.subject.clone());
    let token_path = c.dir.join(workload::TOKEN_FILE_NAME);
    let first = cluster
        .projected_token(crate::client::unix_now(), lifetime)
        .map_err(|e| fail("", &e, Failure::Internal))?;
    workload::write_projected_token(&token_path, &first)
        .map_err(|e| fail("projected token: ", &e, Failure::Internal))?;
    let rotation = workload::spawn_rotation(cluster.clone(), token_path.clone(), lifetime);
    let handler = workload::WorkloadHandler::new(
        base.clone(),
        &c.config,
        subject.clone(),
        cluster.clone(),
        c.minter,
        c.gate,
    );
    server.serve(tls, Arc::new(handler), c.limits);
    let tenant = c.config.tenant_id;
    let apps = c
        .config
        .identities()
        .map(|i| i.client_id.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let banner = format!(
        "listening on https://{addr}\n\
         mitoken emulate: workload-identity, authority {base}, token endpoint {base}/{tenant}/oauth2/v2.0/token\n\
         CA certificate {}\n\
         cluster issuer {}; projected token {} (subject {}, rewritten every {} s)\n\
         federated credential: issuer {}, subject {subject}, audience {}\n\
         tenant {tenant}; applications: {apps}\n",
        ca_path.display(),
        cluster.issuer,
        token_path.display(),
        cluster.subject,
        lifetime * 4 / 5,
        cluster.issuer,
        mitoken_core::workload::TOKEN_EXCHANGE_AUDIENCE,
    );
    let vars = workload::env_vars(
        &base,
        &tenant.to_string(),
        &env::default_client_id(&c.config),
        &token_path.to_string_lossy(),
        Some(&ca_path.to_string_lossy()),
    );
    Ok(Started {
        server,
        banner,
        vars,
        rotation: Some(rotation),
    })
}
