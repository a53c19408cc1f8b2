//! `mitoken bridge`: the retired managed-identity VM extension's endpoint
//! (`http://127.0.0.1:50342/oauth2/token`, legacy GET query or form POST, `Metadata: true`)
//! answered from IMDS, so applications hard-wired to the extension keep working after it is
//! removed.
//!
//! A thin tokio shell: the HTTP, the request checks and the legacy answers are the core's
//! [`Relay`] (the same front and checks as the emulator's server, without identity resolution:
//! IMDS resolves identities); tokens come from one shared [`TokenClient`] — IMDS's retry rules,
//! a token cache with refresh-ahead, one upstream request per (selector, resource) at a time,
//! and at most 20 upstream requests per second and 5 at once for the whole process.
//!
//! Security (issue #7.4): only loopback listen addresses and loopback peers unless
//! [`BridgeOptions::allow_non_loopback`]; requests with `X-Forwarded-For` or `Forwarded` are
//! refused; nothing from the request's headers is forwarded (upstream requests are written from
//! scratch by the core: resource, selector, `bypass_cache`, api-version); the upstream is fixed
//! at start, and an absolute-form target naming another host is refused (401
//! `unknown_source`); a token is only ever answered for the request whose selector and resource
//! fetched it (the cache key), and a token naming another `client_id` than the one asked for is
//! withheld.
//!
//! - [`answer`]: what is asked upstream, and the answers (legacy token shape, error mapping).
//! - [`report`]: the migration report (who still calls the legacy endpoint) and its status
//!   socket.
//! - `serve`: its answers for the shared connection loop (`serve_loop::connection`).

pub mod answer;
pub mod report;
mod serve;

use core::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use mitoken_core::identity::Flavor;
use mitoken_core::request::{EXTENSION_TOKEN_PATH, Endpoint};
use mitoken_core::server::{Config, Fault, Relay};
use tokio::sync::watch;

use crate::serve_loop::{self, AcceptPolicy, ConnectionLimits};
use crate::token_client::{ClientConfig, GetTokenError, TokenClient};

/// Default listen address: where the VM extension listened.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50342";
/// Default upstream: IMDS.
pub const DEFAULT_UPSTREAM: &str = "http://169.254.169.254";
/// Most runtime worker threads `mitoken bridge` starts (fewer on smaller machines).
pub const MAX_WORKER_THREADS: usize = 4;
/// Most blocking threads (name resolution of a named upstream) `mitoken bridge` starts.
pub const MAX_BLOCKING_THREADS: usize = 8;

/// Everything [`Bridge::start`] needs.
#[derive(Debug, Clone)]
pub struct BridgeOptions {
    /// Where to listen; port 0 picks a free port ([`RunningBridge::local_addr`] tells which).
    pub listen: SocketAddr,
    /// Allow a non-loopback `listen` address and serve non-loopback peers (whoever reaches the
    /// bridge gets this VM's tokens).
    pub allow_non_loopback: bool,
    /// The token client: upstream (`endpoint`), api-version, retries, cache, upstream limits.
    pub client: ClientConfig,
    /// Connection bounds.
    pub limits: ConnectionLimits,
    /// Where to serve the migration report ([`report::default_status_socket`] from the
    /// command line); `None`: not served.
    pub status_socket: Option<PathBuf>,
}

impl BridgeOptions {
    /// Options for `upstream` (a base URL such as `http://169.254.169.254`, or `imds`) with
    /// the client's defaults, listening on [`DEFAULT_LISTEN`].
    pub fn new(upstream: impl Into<String>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50342)),
            allow_non_loopback: false,
            client: ClientConfig::new(upstream),
            limits: ConnectionLimits::default(),
            status_socket: None,
        }
    }
}

/// Why the bridge could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A non-loopback listen address without the opt-in.
    #[error(
        "{0} is not a loopback address; the bridge hands this VM's tokens to anyone who can reach it, so binding it needs --allow-non-loopback"
    )]
    NonLoopback(SocketAddr),
    /// The upstream is not a usable URL.
    #[error("--upstream: {0}")]
    Upstream(#[from] GetTokenError),
    /// The upstream is the bridge itself (or the extension's address the bridge replaces).
    #[error("--upstream `{0}` is the bridge's own address; point it at IMDS")]
    UpstreamIsSelf(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Entry point: see [`Bridge::start`].
#[derive(Debug)]
pub struct Bridge;

/// A running bridge. Dropping it shuts it down (without waiting); prefer
/// [`RunningBridge::shutdown`].
#[derive(Debug)]
pub struct RunningBridge {
    local_addr: SocketAddr,
    client: TokenClient,
    report: Arc<report::Tracker>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    status_task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningBridge {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The token client every connection shares.
    pub fn client(&self) -> &TokenClient {
        &self.client
    }

    /// The migration report so far.
    pub fn report(&self) -> report::MigrationReport {
        self.report.report()
    }

    /// A sender that stops the bridge when `true` is sent (from a signal handler).
    pub fn shutdown_sender(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }

    /// Stops accepting connections and waits until every connection is closed (answers in
    /// progress get the shutdown grace period, 5 s by default).
    pub async fn shutdown(self) {
        self.shutdown.send_replace(true);
        let _ = self.task.await;
        if let Some(task) = self.status_task {
            let _ = task.await;
        }
    }
}

/// The upstream's token URL, for the banner and logs.
pub fn upstream_url(endpoint: &Endpoint<'_>) -> String {
    let (host, port) = endpoint.connect_addr();
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    format!("http://{host}:{port}{}", endpoint.path())
}

/// True when the upstream would be the bridge itself.
fn upstream_is_self(endpoint: &Endpoint<'_>, listen: SocketAddr) -> bool {
    if matches!(endpoint, Endpoint::Extension) {
        return true;
    }
    let (host, port) = endpoint.connect_addr();
    let same_ip = host
        .parse::<core::net::IpAddr>()
        .is_ok_and(|ip| ip == listen.ip() || (ip.is_unspecified() && port == listen.port()))
        || (host.eq_ignore_ascii_case("localhost") && listen.ip().is_loopback());
    same_ip && port == listen.port()
}

/// The 503 written to a connection over the limit.
fn refusal_bytes(relay: &Relay<'_>) -> Arc<[u8]> {
    let fault = Fault {
        status: 503,
        error: "service_unavailable",
        description: Some("Too many connections; retry later"),
        retry_after: Some(1),
    };
    let mut out = vec![0u8; 1024];
    let len = relay.write_fault(&fault, false, &mut out).unwrap_or(0);
    out.truncate(len);
    Arc::from(out)
}

impl Bridge {
    /// Checks the options, binds `options.listen` and serves in the background on the current
    /// tokio runtime.
    #[expect(
        clippy::unused_async,
        reason = "async like `Emulator::start`: it must run on a runtime (it spawns the server)"
    )]
    pub async fn start(options: BridgeOptions) -> Result<RunningBridge, StartError> {
        if !options.allow_non_loopback && !options.listen.ip().is_loopback() {
            return Err(StartError::NonLoopback(options.listen));
        }
        let client = TokenClient::new(options.client.clone())?;
        let endpoint_text = client.config().endpoint.clone();
        let endpoint =
            Endpoint::parse_spec(&endpoint_text).map_err(|error| GetTokenError::Endpoint {
                spec: endpoint_text.clone(),
                error,
            })?;
        if upstream_is_self(&endpoint, options.listen) {
            return Err(StartError::UpstreamIsSelf(endpoint_text));
        }
        let listener =
            crate::serve_loop::bind(options.listen).map_err(|source| StartError::Bind {
                addr: options.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: options.listen,
            source,
        })?;
        if upstream_is_self(&endpoint, local_addr) {
            return Err(StartError::UpstreamIsSelf(endpoint_text));
        }
        let relay = Relay::new(Config::new(Flavor::Extension).with_limits(options.limits.http));
        let policy = AcceptPolicy {
            limits: options.limits,
            refusal: refusal_bytes(&relay),
            allow_non_loopback: options.allow_non_loopback,
            name: "bridge",
        };
        let tracker = Arc::new(report::Tracker::new());
        let shared = Arc::new(serve::Shared {
            relay,
            client: client.clone(),
            report: Arc::clone(&tracker),
        });
        let (shutdown, rx) = watch::channel(false);
        let status_task = options.status_socket.as_ref().and_then(|path| {
            match report::bind_status_socket(path) {
                Ok(listener) => {
                    tracing::info!(socket = %path.display(), "migration report: mitoken bridge status");
                    Some(tokio::spawn(report::serve_status(
                        listener,
                        path.clone(),
                        Arc::clone(&tracker),
                        rx.clone(),
                    )))
                }
                Err(e) => {
                    tracing::warn!("migration report not served: {e}");
                    None
                }
            }
        });
        let task = tokio::spawn(serve_loop::accept_loop(
            listener,
            policy,
            rx,
            move |peer, local| serve::BridgeAnswerer::new(Arc::clone(&shared), peer, local),
        ));
        tracing::info!(%local_addr, upstream = %upstream_url(&endpoint), "bridge listening");
        Ok(RunningBridge {
            local_addr,
            client,
            report: tracker,
            shutdown,
            task,
            status_task,
        })
    }
}

/// The start-up text; the first line is always `listening on http://<addr>`.
pub fn startup_banner(listen: SocketAddr, client: &ClientConfig) -> String {
    let upstream = Endpoint::parse_spec(&client.endpoint)
        .map_or_else(|_| client.endpoint.clone(), |e| upstream_url(&e));
    format!(
        "listening on http://{listen}\n\
         mitoken bridge: legacy extension endpoint http://{listen}{EXTENSION_TOKEN_PATH} \
         served from {upstream} (api-version {})\n",
        client.api_version
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_loops_are_refused() {
        let listen: SocketAddr = "127.0.0.1:50342".parse().unwrap();
        let parse = |s| Endpoint::parse_spec(s).unwrap();
        assert!(upstream_is_self(&parse("extension"), listen));
        assert!(upstream_is_self(&parse("http://127.0.0.1:50342"), listen));
        assert!(upstream_is_self(&parse("http://localhost:50342"), listen));
        assert!(!upstream_is_self(&parse("http://127.0.0.1:8080"), listen));
        assert!(!upstream_is_self(&parse("http://169.254.169.254"), listen));
        assert!(!upstream_is_self(&parse("imds"), listen));
    }

    #[test]
    fn banner_first_line() {
        let text = startup_banner(
            "127.0.0.1:50342".parse().unwrap(),
            &ClientConfig::new(DEFAULT_UPSTREAM),
        );
        assert_eq!(
            text.lines().next(),
            Some("listening on http://127.0.0.1:50342")
        );
        assert!(
            text.contains("served from http://169.254.169.254:80/metadata/identity/oauth2/token"),
            "{text}"
        );
    }
}
