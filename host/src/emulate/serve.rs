//! The emulator's listener: a thin tokio shell around the core's sans-I/O server.
//!
//! [`Emulator::start`] binds a TCP listener and serves every connection in its own task: bytes
//! read from the socket go to [`mitoken_core::server::Server::handle`] (HTTP parsing, IMDS
//! validation, identity resolution, the response bytes); the shell only supplies the
//! [`Issuer`]: the token cache and minter, fault rules, the throttle, and the documents on the
//! paths the core does not own (`/.well-known/openid-configuration`, the JWKS, the admin path,
//! answered through [`Issuer::serve_other`]). There is no second HTTP parser.
//!
//! Per connection: pipelined keep-alive requests, an idle timeout, head and body limits from the
//! core's [`Limits`]; malformed requests get the core's 400 / 431 / 413 and the connection is
//! closed. The connections are capped (at the cap the oldest one that never completed a request
//! gives way; with none, the new one is answered `503 service_unavailable` and closed:
//! [`crate::serve_loop::slots`]). Delays chosen by fault rules are slept before the answer
//! is written; a throttle permit is held until then.
//!
//! Logs (`tracing`, target `mitoken_host::emulate::serve`): one `info` line per request with
//! method, path (no query), status, identity (client id), who decided the answer and the
//! latency. Tokens and keys are never logged.

use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use mitoken_core::identity::{Identity, IdentityTable, Slot, TableError};
use mitoken_core::server::{
    Admission, Config, Fault, Handled, IssueError, IssueRequest, Issued, Issuer, OtherAnswer,
    OtherRequest, Outcome, Response, Server, ServerConnection,
};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::admin::{ADMIN_PREFIX, EmulatorControls};
use super::cache::{ServedToken, TokenCache};
use super::config::{EmulatorConfig, Flavor, IdentityConfig};
use super::counters::{self, Origin};
use super::faults::{
    FaultAction, FaultDecision, FaultPlan, FaultRequest, FaultResponse, FaultRule,
};
use super::jwks::{JWKS_PATH, Jwks, OPENID_CONFIGURATION_PATH, OpenIdConfiguration};
use super::jwt::TokenMinter;
use super::signing::{KeyError, SigningKey};
use super::throttle::{ThrottleLimits, ThrottlePermit};
use super::{NonLoopbackAddress, check_listen_addr};
use crate::client::unix_now;
use crate::serve_loop::connection::{Answerer, Exchange, Step};
use crate::serve_loop::{self, AcceptPolicy};

/// Capacity of the identity table: IMDS's limit of user-assigned identities.
pub const TABLE_CAPACITY: usize = mitoken_core::identity::IMDS_MAX_USER_ASSIGNED;

/// Default listen address of the `imds` flavor.
pub const DEFAULT_IMDS_LISTEN: &str = "127.0.0.1:8080";
/// Default listen address of the `extension` flavor (where the VM extension listened).
pub const DEFAULT_EXTENSION_LISTEN: &str = "127.0.0.1:50342";

/// The default listen address for `flavor`: `127.0.0.1:8080` (IMDS) or `127.0.0.1:50342`
/// (extension).
pub fn default_listen(flavor: Flavor) -> SocketAddr {
    let text = match flavor {
        Flavor::Extension => DEFAULT_EXTENSION_LISTEN,
        _ => DEFAULT_IMDS_LISTEN,
    };
    text.parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8080)))
}

pub use crate::serve_loop::ConnectionLimits;

/// Everything [`Emulator::start`] needs.
#[derive(Debug)]
pub struct EmulatorOptions {
    /// Where to listen; port 0 picks a free port ([`RunningEmulator::local_addr`] tells which).
    pub listen: SocketAddr,
    /// Allow a non-loopback `listen` address (the emulator hands out tokens to anyone).
    pub allow_non_loopback: bool,
    /// IMDS or the legacy extension.
    pub flavor: Flavor,
    /// The VM's identities.
    pub config: EmulatorConfig,
    /// The signing key; `None` generates one.
    pub signing_key: Option<Arc<SigningKey>>,
    /// Fault rules in force at start.
    pub faults: Vec<FaultRule>,
    /// Throttle at start (`Some(ThrottleLimits::IMDS_IDENTITY)` for `--throttle`).
    pub throttle: Option<ThrottleLimits>,
    /// Connection bounds.
    pub limits: ConnectionLimits,
}

impl EmulatorOptions {
    /// Options for `flavor` over `config` on an ephemeral loopback port (`127.0.0.1:0`), with a
    /// generated key, no faults, no throttle.
    pub fn new(flavor: Flavor, config: EmulatorConfig) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            allow_non_loopback: false,
            flavor,
            config,
            signing_key: None,
            faults: Vec::new(),
            throttle: None,
            limits: ConnectionLimits::default(),
        }
    }
}

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A non-loopback address without the opt-in.
    #[error(transparent)]
    NonLoopback(#[from] NonLoopbackAddress),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The signing key could not be generated.
    #[error("signing key: {0}")]
    Key(#[from] KeyError),
    /// The key-generation task failed.
    #[error("signing key generation failed: {0}")]
    KeyTask(String),
    /// The identities do not make a valid core identity table (the configuration loader checks
    /// the same rules, so this means a configuration built in code is inconsistent).
    #[error("identity {index}: {source}")]
    Table {
        /// Position among the identities (system-assigned first).
        index: usize,
        /// What is wrong.
        source: TableError,
    },
    /// The initial fault rules are invalid.
    #[error("fault rules: {0}")]
    Faults(#[from] super::faults::FaultDocumentError),
}

/// Entry point: see [`Emulator::start`].
#[derive(Debug)]
pub struct Emulator;

/// State shared by every connection, read-only except for the controls' interior locks.
struct Shared {
    table: &'static IdentityTable<'static, TABLE_CAPACITY>,
    server_config: Config<'static>,
    /// The configured identity of each slot, at [`Slot::index`].
    by_slot: Vec<Option<IdentityConfig>>,
    minter: TokenMinter,
    controls: Arc<EmulatorControls>,
    openid_json: String,
    jwks_json: String,
    limits: ConnectionLimits,
    /// The complete 503 answer for a connection over the limit.
    refusal: Vec<u8>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("flavor", &self.server_config.flavor)
            .field("identities", &self.by_slot.iter().flatten().count())
            .finish_non_exhaustive()
    }
}

/// A running emulator. Dropping it shuts it down (without waiting); prefer
/// [`RunningEmulator::shutdown`].
#[derive(Debug)]
pub struct RunningEmulator {
    local_addr: SocketAddr,
    flavor: Flavor,
    key: Arc<SigningKey>,
    controls: Arc<EmulatorControls>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Asks a running emulator to stop; cheap to clone.
#[derive(Clone, Debug)]
pub struct ShutdownHandle(watch::Sender<bool>);

impl ShutdownHandle {
    /// Stops accepting connections; answers in progress are finished, idle connections closed.
    pub fn shutdown(&self) {
        self.0.send_replace(true);
    }
}

impl RunningEmulator {
    /// The address it listens on (with the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://<local_addr>`: the value for `AZURE_POD_IDENTITY_AUTHORITY_HOST` or
    /// `mitoken token --endpoint`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// The flavor served.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// The signing key (its public half is the JWKS).
    pub fn signing_key(&self) -> &Arc<SigningKey> {
        &self.key
    }

    /// Fault rules, counters, throttle and cache: what the admin path changes.
    pub fn controls(&self) -> &Arc<EmulatorControls> {
        &self.controls
    }

    /// A handle that stops the emulator from elsewhere (a signal handler).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.shutdown.clone())
    }

    /// Stops the emulator and waits until every connection is closed (at most the shutdown
    /// grace period for answers in progress).
    pub async fn shutdown(self) {
        self.shutdown.send_replace(true);
        let _ = self.task.await;
    }

    /// Waits until the emulator has stopped (after a [`ShutdownHandle::shutdown`]).
    pub async fn stopped(self) {
        let Self { shutdown, task, .. } = self;
        // Keep the sender alive: dropping it would itself mean "shut down".
        let _ = task.await;
        drop(shutdown);
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Builds the core identity table from the configuration. The strings and the table live for
/// the rest of the process (a few KB of strings and ~100 KB of table per started emulator).
fn build_table(
    flavor: Flavor,
    config: &EmulatorConfig,
) -> Result<
    (
        &'static IdentityTable<'static, TABLE_CAPACITY>,
        Vec<Option<IdentityConfig>>,
    ),
    StartError,
> {
    let mut table = Box::new(IdentityTable::<'static, TABLE_CAPACITY>::new(flavor));
    let mut by_slot = vec![None; config.user_assigned.len() + 1];
    for (index, id) in config.identities().enumerate() {
        let client = leak(id.client_id.to_string());
        let object = leak(id.object_id.to_string());
        let identity = match id.resource_id() {
            None => Identity::system_assigned(client, object),
            Some(r) => Identity::user_assigned(client, object, leak(r.as_str().to_owned())),
        };
        let slot = table
            .insert(identity)
            .map_err(|source| StartError::Table { index, source })?;
        if let Some(entry) = by_slot.get_mut(slot.index()) {
            *entry = Some(id.clone());
        }
    }
    Ok((Box::leak(table), by_slot))
}

impl Emulator {
    /// Binds `options.listen` and starts serving in the background on the current tokio
    /// runtime. Generates the signing key (on a blocking thread) when none is given.
    pub async fn start(options: EmulatorOptions) -> Result<RunningEmulator, StartError> {
        check_listen_addr(options.listen, options.allow_non_loopback)?;
        let key = match options.signing_key {
            Some(key) => key,
            None => Arc::new(
                tokio::task::spawn_blocking(SigningKey::generate)
                    .await
                    .map_err(|e| StartError::KeyTask(e.to_string()))??,
            ),
        };
        let flavor = options.flavor;
        let (table, by_slot) = build_table(flavor, &options.config)?;
        let plan = FaultPlan::new(options.faults)?;
        let listener = serve_loop::bind(options.listen).map_err(|source| StartError::Bind {
            addr: options.listen,
            source,
        })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: options.listen,
            source,
        })?;
        let base_url = format!("http://{local_addr}");
        let minter = TokenMinter::new(Arc::clone(&key), options.config.tenant_id);
        let openid = OpenIdConfiguration::new(minter.issuer(), &base_url);
        let openid_json = serde_json::to_string(&openid).unwrap_or_default();
        let jwks_json = serde_json::to_string(&Jwks::for_key(&key)).unwrap_or_default();
        let controls = Arc::new(EmulatorControls::new(
            plan,
            options.throttle,
            Arc::new(TokenCache::default()),
        ));
        let tenant = leak(options.config.tenant_id.to_string());
        let server_config = Config::new(flavor)
            .with_tenant_id(tenant)
            .with_limits(options.limits.http);
        let refusal = refusal_bytes(table, server_config);
        let shared = Arc::new(Shared {
            table,
            server_config,
            by_slot,
            minter,
            controls: Arc::clone(&controls),
            openid_json,
            jwks_json,
            limits: options.limits,
            refusal,
        });
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, shared, rx));
        tracing::info!(%local_addr, %flavor, "emulator listening");
        Ok(RunningEmulator {
            local_addr,
            flavor,
            key,
            controls,
            shutdown,
            task,
        })
    }
}

/// The 503 written to a connection over the limit.
fn refusal_bytes(
    table: &'static IdentityTable<'static, TABLE_CAPACITY>,
    config: Config<'static>,
) -> Vec<u8> {
    let mut work = [0u8; 64];
    let mut server = Server::new(table, config, &mut work);
    let fault = Fault {
        status: 503,
        error: "service_unavailable",
        description: Some("Too many connections; retry later"),
        retry_after: Some(1),
    };
    let mut out = vec![0u8; 1024];
    let len = server.write_fault(&fault, false, &mut out).unwrap_or(0);
    out.truncate(len);
    out
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, rx: watch::Receiver<bool>) {
    let policy = AcceptPolicy {
        limits: shared.limits,
        refusal: Arc::from(shared.refusal.as_slice()),
        // The listen address was checked at start: a non-loopback one needs the opt-in, and
        // then any peer is served.
        allow_non_loopback: true,
        name: "emulator",
    };
    serve_loop::accept_loop(listener, policy, rx, move |_peer, _local| {
        EmulatorAnswerer::new(Arc::clone(&shared))
    })
    .await;
}

/// The emulator's side of the [one connection loop](crate::serve_loop::connection): the core's
/// server with this connection's [`Issuer`], fault delays, counters and throttle permits.
struct EmulatorAnswerer {
    issuer: HostIssuer,
    conn: ServerConnection,
}

impl EmulatorAnswerer {
    fn new(shared: Arc<Shared>) -> Self {
        let conn = ServerConnection::new(shared.server_config.limits);
        Self {
            issuer: HostIssuer::new(shared),
            conn,
        }
    }
}

impl Answerer for EmulatorAnswerer {
    async fn answer(&mut self, mut ex: Exchange<'_>) -> Step {
        let shared = Arc::clone(&self.issuer.shared);
        let handled = Server::new(shared.table, shared.server_config, ex.work).handle(
            &mut self.conn,
            ex.input,
            unix_now(),
            &mut self.issuer,
            ex.out,
        );
        let response = match handled {
            Ok(Handled::Partial) => return Step::Partial,
            Ok(Handled::Response(r)) => r,
            Err(e) => return Step::Grow(e),
        };
        // In flight until its answer is written (delays included); admin and document
        // requests are not counted.
        let in_flight =
            (!matches!(response.outcome, Outcome::Other)).then(|| shared.controls.counters.begin());
        let delay = self.issuer.state.delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let close_now = self.issuer.state.close || response.len == 0;
        // Counted before it is written, so a client that has read the answer finds it in
        // the counters; the throttle permit is held until the answer is written.
        let permit = self.issuer.finish(&response, close_now, ex.started);
        let written = close_now
            || ex
                .reply
                .send(ex.out.get(..response.len).unwrap_or_default())
                .await;
        drop(permit);
        drop(in_flight);
        if !written {
            return Step::Close;
        }
        Step::Done {
            consumed: response.consumed,
            keep_alive: response.keep_alive && !close_now,
        }
    }
}

/// Per-request decisions, kept until the answer is written so that a repeated
/// [`Server::handle`] call (after growing a buffer) decides nothing twice.
#[derive(Default)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent per-request flags, reset together"
)]
struct RequestState {
    method: String,
    path: String,
    admitted: bool,
    admit_fault: Option<FaultResponse>,
    issued: bool,
    identity_fault: Option<FaultResponse>,
    identity_close: bool,
    token: Option<ServedToken>,
    other: Option<(u16, Vec<u8>)>,
    delay: Duration,
    /// Clock skew decided by fault rules (seconds added to the minting clock).
    skew_secs: i64,
    origin: Option<Origin>,
    /// A `close` fault decided at admission: drop the answer and close.
    close: bool,
    permit: Option<ThrottlePermit>,
}

/// The shell's [`Issuer`] for one connection.
struct HostIssuer {
    shared: Arc<Shared>,
    state: RequestState,
}

fn random_u32() -> u32 {
    getrandom::u32().unwrap_or(0)
}

/// The plan's decision for `request` over the rules `select` picks. Without rules (the usual
/// case) it passes without drawing a random number: no `getrandom` system call per request.
fn decide(
    plan: &std::sync::Mutex<FaultPlan>,
    request: &FaultRequest<'_>,
    select: impl Fn(&FaultRule) -> bool,
) -> FaultDecision {
    let mut plan = plan.lock().unwrap_or_else(PoisonError::into_inner);
    if plan.is_empty() {
        return FaultDecision::PASS;
    }
    plan.decide_among(request, random_u32(), select)
}

fn as_fault(f: &FaultResponse) -> Fault<'_> {
    Fault {
        status: f.status,
        error: &f.error,
        description: Some(&f.error_description),
        retry_after: f.retry_after,
    }
}

/// True for the paths that are throttled and faulted: IMDS's identity endpoints, or the
/// extension's token path.
fn imds_path(flavor: Flavor, path: &str) -> bool {
    mitoken_core::server::serves_path(flavor, path)
}

impl HostIssuer {
    fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            state: RequestState::default(),
        }
    }

    fn identity(&self, slot: Slot) -> Option<&IdentityConfig> {
        self.shared
            .by_slot
            .get(slot.index())
            .and_then(Option::as_ref)
    }

    /// Records, logs and forgets the request whose answer is about to be written (or dropped);
    /// returns its throttle permit, to be dropped once the answer is written.
    fn finish(
        &mut self,
        response: &Response<'_>,
        closed: bool,
        started: Instant,
    ) -> Option<ThrottlePermit> {
        let mut state = core::mem::take(&mut self.state);
        let permit = state.permit.take();
        self.log_and_count(&state, response, closed, started);
        // The next request's method and path reuse these strings' room (no allocation).
        let (mut method, mut path) = (state.method, state.path);
        method.clear();
        path.clear();
        self.state.method = method;
        self.state.path = path;
        permit
    }

    /// Counts the request (identity endpoints) and writes its log line.
    fn log_and_count(
        &self,
        state: &RequestState,
        response: &Response<'_>,
        closed: bool,
        started: Instant,
    ) {
        let latency = started.elapsed();
        let resolved = match response.outcome {
            Outcome::Token { resolved, .. } | Outcome::Closed { resolved } => Some(resolved),
            Outcome::Rejected { resolved, .. } | Outcome::Fault { resolved } => resolved,
            _ => None,
        };
        let identity = resolved
            .and_then(|r| self.identity(r.slot))
            .map(|i| i.client_id);
        let method = if state.method.is_empty() {
            "?"
        } else {
            &state.method
        };
        let path = if state.path.is_empty() {
            "?"
        } else {
            &state.path
        };
        if matches!(response.outcome, Outcome::Other) {
            tracing::debug!(method, path, status = response.status, ?latency, "served");
            return;
        }
        let origin = state.origin.unwrap_or(Origin::Emulator);
        let outcome = if closed {
            counters::Outcome::Closed
        } else {
            counters::Outcome::Answered(response.status)
        };
        self.shared
            .controls
            .counters
            .record(identity, outcome, origin);
        // The request's log line, formatted only when `info` is on (`--log warn` in
        // production: no GUID formatting or allocation per request).
        if tracing::enabled!(tracing::Level::INFO) {
            let shown_identity = identity.map_or_else(|| "-".to_owned(), |g| g.to_string());
            let cached = state.token.as_ref().map(|t| t.from_cache);
            let origin_name = match origin {
                Origin::Emulator => "emulator",
                Origin::Fault => "fault",
                Origin::Throttle => "throttle",
            };
            if closed {
                tracing::info!(method, path, identity = %shown_identity, origin = origin_name, ?latency, "closed without answer");
            } else {
                tracing::info!(
                    method,
                    path,
                    status = response.status,
                    identity = %shown_identity,
                    origin = origin_name,
                    cached,
                    ?latency,
                    "answered"
                );
            }
        }
    }
}

impl Issuer for HostIssuer {
    fn issue(
        &mut self,
        request: &IssueRequest<'_, '_>,
        out: &mut [u8],
    ) -> Result<Issued, IssueError<'_>> {
        let Some(identity) = self.identity(request.resolved.slot).cloned() else {
            return Err(IssueError::Failed);
        };
        if !self.state.issued {
            self.state.issued = true;
            let decision = decide(
                &self.shared.controls.faults,
                &FaultRequest {
                    path: &self.state.path,
                    identity: Some(identity.client_id),
                },
                |rule| rule.identity.is_some(),
            );
            self.state.delay += decision.delay;
            let skew = self.state.skew_secs.saturating_add(decision.skew_secs);
            match decision.action {
                FaultAction::Respond(r) => {
                    self.state.origin = Some(Origin::Fault);
                    self.state.identity_fault = Some(r);
                }
                FaultAction::Close => {
                    self.state.origin = Some(Origin::Fault);
                    self.state.identity_close = true;
                }
                FaultAction::Pass => {
                    let served = self.shared.controls.cache.get_or_mint(
                        &self.shared.minter,
                        &identity,
                        request.resource,
                        request.now.saturating_add_signed(skew),
                        request.bypass_cache || skew != 0,
                    );
                    match served {
                        Ok(t) => self.state.token = Some(t),
                        Err(e) => tracing::error!("cannot sign a token: {e}"),
                    }
                }
            }
        }
        if self.state.identity_close {
            return Err(IssueError::Close);
        }
        if let Some(f) = &self.state.identity_fault {
            return Err(IssueError::Fault(as_fault(f)));
        }
        let Some(served) = &self.state.token else {
            return Err(IssueError::Failed);
        };
        let jwt = served.token.jwt().as_bytes();
        let Some(dst) = out.get_mut(..jwt.len()) else {
            return Err(IssueError::BufferTooSmall {
                required: jwt.len(),
            });
        };
        dst.copy_from_slice(jwt);
        Ok(Issued {
            token_len: jwt.len(),
            not_before: served.token.not_before,
            expires_on: served.token.expires_on,
        })
    }

    fn admit(&mut self, request: &Admission<'_>) -> Option<Fault<'_>> {
        if !self.state.admitted {
            self.state.admitted = true;
            request.method.clone_into(&mut self.state.method);
            request.path.clone_into(&mut self.state.path);
            let controls = &self.shared.controls;
            // Throttle and path-level faults apply to the identity endpoints only; an unknown
            // path gets its 404 / 401 without using up a rule.
            let imds_path = imds_path(self.shared.server_config.flavor, request.path);
            let throttle = controls.throttle().filter(|_| imds_path);
            if let Some(throttle) = throttle {
                match throttle.try_acquire(Instant::now()) {
                    Ok(permit) => self.state.permit = Some(permit),
                    Err(refused) => {
                        self.state.origin = Some(Origin::Throttle);
                        self.state.admit_fault = Some(refused.response());
                    }
                }
            }
            if self.state.admit_fault.is_none() && imds_path {
                let decision = decide(
                    &controls.faults,
                    &FaultRequest {
                        path: request.path,
                        identity: None,
                    },
                    |rule| rule.identity.is_none(),
                );
                self.state.delay += decision.delay;
                self.state.skew_secs = decision.skew_secs;
                match decision.action {
                    FaultAction::Respond(r) => {
                        self.state.origin = Some(Origin::Fault);
                        self.state.admit_fault = Some(r);
                    }
                    FaultAction::Close => {
                        self.state.origin = Some(Origin::Fault);
                        self.state.close = true;
                        // The core needs an answer; the connection loop drops it and closes.
                        self.state.admit_fault = Some(FaultResponse::for_status(500));
                    }
                    FaultAction::Pass => {}
                }
            }
        }
        self.state.admit_fault.as_ref().map(as_fault)
    }

    fn serve_other(&mut self, request: &OtherRequest<'_>, out: &mut [u8]) -> OtherAnswer {
        if self.state.other.is_none() {
            let get = matches!(request.method, "GET" | "HEAD");
            let document = match request.path {
                OPENID_CONFIGURATION_PATH => Some(&self.shared.openid_json),
                JWKS_PATH => Some(&self.shared.jwks_json),
                _ => None,
            };
            let answer = if let Some(doc) = document {
                if get {
                    (200, doc.clone().into_bytes())
                } else {
                    let body =
                        r#"{"error":"method_not_allowed","error_description":"Not allowed"}"#;
                    (405, body.as_bytes().to_vec())
                }
            } else if request.path.starts_with(ADMIN_PREFIX) {
                match self
                    .shared
                    .controls
                    .handle(request.method, request.path, request.body)
                {
                    Some(r) => (r.status, r.body.into_bytes()),
                    None => return OtherAnswer::Pass,
                }
            } else {
                return OtherAnswer::Pass;
            };
            request.method.clone_into(&mut self.state.method);
            request.path.clone_into(&mut self.state.path);
            self.state.other = Some(answer);
        }
        let Some((status, body)) = &self.state.other else {
            return OtherAnswer::Pass;
        };
        match out.get_mut(..body.len()) {
            Some(dst) => {
                dst.copy_from_slice(body);
                OtherAnswer::Json {
                    status: *status,
                    body_len: body.len(),
                }
            }
            None => OtherAnswer::TooSmall {
                required: body.len(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;

    use super::*;
    use crate::emulate::signing::tests::test_key;

    async fn start(limits: ConnectionLimits) -> RunningEmulator {
        let options = EmulatorOptions {
            signing_key: Some(test_key()),
            limits,
            ..EmulatorOptions::new(Flavor::Imds, EmulatorConfig::builtin())
        };
        Emulator::start(options).await.unwrap()
    }

    async fn read_all(stream: &mut TcpStream) -> String {
        let mut text = Vec::new();
        let read = stream.read_to_end(&mut text);
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("closed in time")
            .unwrap();
        String::from_utf8_lossy(&text).into_owned()
    }

    const DOCUMENT: &[u8] = b"GET /.well-known/jwks.json HTTP/1.1\r\n\r\n";
    const LAST_DOCUMENT: &[u8] =
        b"GET /.well-known/openid-configuration HTTP/1.1\r\nConnection: close\r\n\r\n";

    /// Sends `request` on a new connection and reads the status line.
    async fn answered(addr: SocketAddr, request: &[u8]) -> TcpStream {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
        s
    }

    #[tokio::test]
    async fn at_the_cap_a_connection_without_a_request_gives_way() {
        let emu = start(ConnectionLimits {
            max_connections: 2,
            ..ConnectionLimits::default()
        })
        .await;
        let addr = emu.local_addr();
        // One keep-alive connection with an answered request, one with half a request head.
        let mut kept = answered(addr, DOCUMENT).await;
        let mut half = TcpStream::connect(addr).await.unwrap();
        half.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // A third: the half-sent one is evicted (closed unanswered), the newcomer served.
        let _third = answered(addr, DOCUMENT).await;
        assert_eq!(read_all(&mut half).await, "");
        // The keep-alive connection was not the victim: it is still served.
        kept.write_all(LAST_DOCUMENT).await.unwrap();
        assert!(read_all(&mut kept).await.contains("200 OK"));
        emu.shutdown().await;
    }

    #[tokio::test]
    async fn at_a_cap_of_answered_connections_newcomers_get_503_until_one_idles_out() {
        let emu = start(ConnectionLimits {
            max_connections: 1,
            idle_timeout: Duration::from_millis(300),
            ..ConnectionLimits::default()
        })
        .await;
        let addr = emu.local_addr();
        // The only slot holds a connection that completed a request: nobody gives way.
        let mut first = answered(addr, DOCUMENT).await;
        let mut second = TcpStream::connect(addr).await.unwrap();
        let refused = read_all(&mut second).await;
        assert!(refused.starts_with("HTTP/1.1 503 "), "{refused}");
        assert!(refused.contains("Connection: close\r\n"), "{refused}");
        assert!(refused.contains("Retry-After: 1\r\n"), "{refused}");
        // The idle first connection is closed after the idle timeout, freeing the slot.
        let started = Instant::now();
        let _rest = read_all(&mut first).await;
        assert!(started.elapsed() < Duration::from_secs(3));
        let mut third = answered(addr, LAST_DOCUMENT).await;
        let _rest = read_all(&mut third).await;
        emu.shutdown().await;
    }

    #[tokio::test]
    async fn a_half_sent_request_has_the_request_timeout() {
        let emu = start(ConnectionLimits {
            request_timeout: Duration::from_millis(300),
            ..ConnectionLimits::default()
        })
        .await;
        let mut half = TcpStream::connect(emu.local_addr()).await.unwrap();
        half.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
        let started = Instant::now();
        assert_eq!(read_all(&mut half).await, "");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(250), "{waited:?}");
        emu.shutdown().await;
    }

    #[tokio::test]
    async fn delays_hold_throttle_permits_and_shutdown_finishes_answers() {
        let options = EmulatorOptions {
            signing_key: Some(test_key()),
            faults: vec!["delay=300ms".parse().unwrap()],
            throttle: Some(ThrottleLimits {
                max_concurrent: 1,
                ..ThrottleLimits::IMDS_IDENTITY
            }),
            ..EmulatorOptions::new(Flavor::Imds, EmulatorConfig::builtin())
        };
        let emu = Emulator::start(options).await.unwrap();
        let addr = emu.local_addr();
        let request = b"GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=r HTTP/1.1\r\nMetadata: true\r\nConnection: close\r\n\r\n";
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(request).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut second = TcpStream::connect(addr).await.unwrap();
        second.write_all(request).await.unwrap();
        let refused = read_all(&mut second).await;
        assert!(refused.starts_with("HTTP/1.1 429 "), "{refused}");
        // Shut down while the first answer is being delayed: it still arrives.
        let controls = Arc::clone(emu.controls());
        emu.shutdown().await;
        let answered = read_all(&mut slow).await;
        assert!(answered.starts_with("HTTP/1.1 200 "), "{answered}");
        let counts = controls.counters.snapshot();
        assert_eq!((counts.status(200), counts.status(429)), (1, 1));
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "no longer listening"
        );
    }
}
