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

use mitoken_core::identity::{Identity, IdentityTable, TableError};
use mitoken_core::server::{
    Answer, Config, Fault, Issue, IssueError, Minted, Outcome, Received, Request, Response, Server,
    ServerConnection, Verdict,
};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::admin::{ADMIN_PREFIX, EmulatorControls};
use super::cache::TokenCache;
use super::config::{EmulatorConfig, Flavor, Guid};
use super::counters::{self, Origin};
use super::faults::{
    FaultAction, FaultDecision, FaultPlan, FaultRequest, FaultResponse, FaultRule,
};
use super::jwks::{JWKS_PATH, Jwks, OPENID_CONFIGURATION_PATH, OpenIdConfiguration};
use super::jwt::TokenMinter;
use super::signing::{KeyError, SigningKey};
use super::sources::{ArcKey, ArcKeyError, ArcKeys, SecretValue};
use super::throttle::{ThrottleLimits, ThrottlePermit};
use super::{NonLoopbackAddress, check_listen_addr};
use crate::client::unix_now;
use crate::serve_loop::connection::{Answerer, Exchange, Step};
use crate::serve_loop::{self, AcceptPolicy, write_growing};
use mitoken_core::source::Source;
use std::path::PathBuf;

/// Capacity of the identity table: IMDS's limit of user-assigned identities.
pub const TABLE_CAPACITY: usize = mitoken_core::identity::IMDS_MAX_USER_ASSIGNED;

/// The core's identity table as the emulator holds it: owning its strings, so it lives exactly
/// as long as the emulator that built it.
type Table = IdentityTable<Box<str>, TABLE_CAPACITY>;

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
    /// The source imitated: [`Source::Imds`] (the default) serves `flavor`; the others are
    /// [`super::sources::SERVED`].
    pub source: Source,
    /// The secret App Service, App Service 2017 and Azure ML check; `None` generates one
    /// (see [`RunningEmulator::secret`]).
    pub secret: Option<SecretValue>,
    /// Arc: the directory of the challenge key files (default `/var/opt/azcmagent/tokens`).
    pub arc_tokens_dir: PathBuf,
    /// Arc: how long one key stays current before a new key file replaces it.
    pub arc_key_lifetime: Duration,
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
            source: Source::Imds,
            secret: None,
            arc_tokens_dir: PathBuf::from(mitoken_core::source::ARC_TOKENS_DIR_LINUX),
            arc_key_lifetime: DEFAULT_ARC_KEY_LIFETIME,
        }
    }
}

/// How long an Arc key stays current by default.
pub const DEFAULT_ARC_KEY_LIFETIME: Duration = Duration::from_mins(5);

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
    /// The source is not served by this emulator.
    #[error("--source {0} is not served by this emulator")]
    UnsupportedSource(Source),
    /// Arc's key directory cannot be written.
    #[error(transparent)]
    ArcKeys(#[from] ArcKeyError),
}

/// Entry point: see [`Emulator::start`].
#[derive(Debug)]
pub struct Emulator;

/// State shared by every connection, read-only except for the controls' interior locks.
struct Shared {
    table: Box<Table>,
    flavor: Flavor,
    /// The tenant, as the server's configuration names it.
    tenant: String,
    http_limits: mitoken_core::http::Limits,
    /// The configuration the table was built from: the identity of each core `Slot`.
    config: EmulatorConfig,
    minter: TokenMinter,
    controls: Arc<EmulatorControls>,
    openid_json: String,
    jwks_json: String,
    limits: ConnectionLimits,
    /// The complete 503 answer for a connection over the limit.
    refusal: Vec<u8>,
    /// The source imitated.
    source: Source,
    /// The secret of App Service, App Service 2017 and Azure ML.
    secret: Option<SecretValue>,
    /// Arc's challenge keys.
    arc: Option<ArcKeys>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("flavor", &self.flavor)
            .field("identities", &self.config.identities().count())
            .finish_non_exhaustive()
    }
}

/// A running emulator. Dropping it shuts it down (without waiting); prefer
/// [`RunningEmulator::shutdown`].
#[derive(Debug)]
pub struct RunningEmulator {
    local_addr: SocketAddr,
    flavor: Flavor,
    source: Source,
    secret: Option<SecretValue>,
    arc_key_dir: Option<PathBuf>,
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

    /// The source imitated.
    pub fn source(&self) -> Source {
        self.source
    }

    /// The secret clients must send (App Service, App Service 2017, Azure ML).
    pub fn secret(&self) -> Option<&SecretValue> {
        self.secret.as_ref()
    }

    /// Arc: the directory the key files are written to.
    pub fn arc_key_dir(&self) -> Option<&std::path::Path> {
        self.arc_key_dir.as_deref()
    }

    /// The token URL clients use.
    pub fn token_url(&self) -> String {
        let path = if self.source == Source::Imds && self.flavor == Flavor::Extension {
            mitoken_core::server::EXTENSION_TOKEN_PATH
        } else {
            super::sources::token_path(self.source)
        };
        format!("{}{path}", self.base_url())
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

/// Values a source's answer carries that change per request: App Service's correlation id,
/// Arc's current key.
#[derive(Default)]
struct PerRequest {
    correlation_id: Option<String>,
    arc_key: Option<Arc<ArcKey>>,
}

impl Shared {
    /// The per-request values of the source (none for IMDS: no allocation, no randomness).
    fn per_request(&self) -> PerRequest {
        let correlation_id = matches!(
            self.source,
            Source::AppService | Source::AppService2017 | Source::AzureMl
        )
        .then(super::sources::random_guid);
        let arc_key = self.arc.as_ref().and_then(|keys| match keys.current() {
            Ok(key) => Some(key),
            Err(e) => {
                tracing::error!("{e}");
                None
            }
        });
        PerRequest {
            correlation_id,
            arc_key,
        }
    }

    /// The core server's configuration, borrowing the tenant and the per-request values.
    fn server_config<'s>(&'s self, per: &'s PerRequest) -> Config<'s> {
        let mut config = if self.source == Source::Imds {
            Config::new(self.flavor)
        } else {
            Config::for_source(self.source)
        };
        config = config
            .with_tenant_id(&self.tenant)
            .with_limits(self.http_limits);
        if let Some(secret) = &self.secret {
            config = config.with_secret(secret.expose().as_bytes());
        }
        if let Some(key) = &per.arc_key {
            config = config
                .with_secret(key.key.expose().as_bytes())
                .with_realm(&key.path);
        }
        if let Some(id) = &per.correlation_id {
            config = config.with_correlation_id(id);
        }
        config
    }
}

/// Builds the core identity table from the configuration: the system-assigned identity, then
/// the user-assigned ones in order (so a core `Slot` is [`EmulatorConfig::get`]'s).
fn build_table(flavor: Flavor, config: &EmulatorConfig) -> Result<Box<Table>, StartError> {
    let mut table = Box::new(Table::new(flavor));
    for (index, id) in config.identities().enumerate() {
        let client = id.client_id.to_string();
        let object = id.object_id.to_string();
        let identity = match id.resource_id() {
            None => Identity::system_assigned(&client, &object),
            Some(r) => Identity::user_assigned(&client, &object, r.as_str()),
        };
        table
            .insert(identity)
            .map_err(|source| StartError::Table { index, source })?;
    }
    Ok(table)
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
        let source = options.source;
        if !super::sources::is_served(source) {
            return Err(StartError::UnsupportedSource(source));
        }
        // Every source but the extension keeps IMDS's table (up to 1000 user-assigned).
        let flavor = if source == Source::Imds {
            options.flavor
        } else {
            Flavor::Imds
        };
        let secret = super::sources::has_secret(source)
            .then(|| options.secret.unwrap_or_else(SecretValue::generate));
        let arc = if source == Source::Arc {
            Some(ArcKeys::new(
                &options.arc_tokens_dir,
                options.arc_key_lifetime,
            )?)
        } else {
            None
        };
        let arc_key_dir = arc.as_ref().map(|k| k.dir().to_owned());
        let table = build_table(flavor, &options.config)?;
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
        let mut shared = Shared {
            table,
            flavor,
            tenant: options.config.tenant_id.to_string(),
            http_limits: options.limits.http,
            config: options.config,
            minter,
            controls: Arc::clone(&controls),
            openid_json,
            jwks_json,
            limits: options.limits,
            refusal: Vec::new(),
            source,
            secret: secret.clone(),
            arc,
        };
        shared.refusal = refusal_bytes(&shared.table, shared.server_config(&PerRequest::default()));
        let shared = Arc::new(shared);
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, shared, rx));
        tracing::info!(%local_addr, %flavor, %source, "emulator listening");
        Ok(RunningEmulator {
            local_addr,
            flavor,
            source,
            secret,
            arc_key_dir,
            key,
            controls,
            shutdown,
            task,
        })
    }
}

/// The 503 written to a connection over the limit.
fn refusal_bytes(table: &Table, config: Config<'_>) -> Vec<u8> {
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
/// server answering with values, and the emulator's decisions (documents, throttle, fault
/// rules, the token) made once per request, in this order, and handed back to the core.
struct EmulatorAnswerer {
    shared: Arc<Shared>,
    conn: ServerConnection,
}

impl EmulatorAnswerer {
    fn new(shared: Arc<Shared>) -> Self {
        let conn = ServerConnection::new(shared.http_limits);
        Self { shared, conn }
    }
}

/// What the emulator decided about a request before the core validates it.
#[derive(Default)]
struct Admitted {
    /// An answer chosen without validation: a document, the admin API, a throttle or fault
    /// response.
    verdict: Option<Chosen>,
    /// A `close` fault: drop the answer and close.
    close: bool,
    delay: Duration,
    /// Clock skew decided by fault rules (seconds added to the minting clock).
    skew_secs: i64,
    origin: Option<Origin>,
    /// Held until the answer is written.
    permit: Option<ThrottlePermit>,
}

/// An answer the emulator chose for a request (owned, so the core's [`Verdict`] can borrow it).
enum Chosen {
    Json(u16, Vec<u8>),
    Fault(FaultResponse),
}

impl Chosen {
    fn verdict(&self) -> Verdict<'_> {
        match self {
            Chosen::Json(status, body) => Verdict::Json {
                status: *status,
                body,
            },
            Chosen::Fault(f) => Verdict::Fault(as_fault(f)),
        }
    }
}

impl Answerer for EmulatorAnswerer {
    async fn answer(&mut self, ex: Exchange<'_>) -> Step {
        let shared = Arc::clone(&self.shared);
        let per = shared.per_request();
        let server = Server::new(&shared.table, shared.server_config(&per), &mut []);
        let request = match server.receive(&mut self.conn, ex.input, ex.out) {
            Ok(Received::Partial) => return Step::Partial,
            Ok(Received::Request(request)) => request,
            Ok(Received::Response(response)) => {
                let line = RequestLine::default();
                let mut done = Done::default();
                return done
                    .send(&shared, ex.reply, ex.out, &response, &line, ex.started)
                    .await;
            }
            Err(e) => return Step::Grow(e),
        };
        let line = RequestLine {
            method: request.method().to_owned(),
            path: request.path().to_owned(),
        };
        let now = unix_now();
        let Admitted {
            verdict: chosen,
            close,
            delay,
            skew_secs,
            origin,
            permit,
        } = shared.admit(&request);
        let verdict = chosen.as_ref().map_or(Verdict::Proceed, Chosen::verdict);
        let mut done = Done {
            close,
            delay,
            origin,
            permit,
            cached: None,
        };
        // The core's answer is pure: after growing a buffer the same call decides the same, and
        // asks the emulator nothing; a token request is asked of the emulator once.
        let mut attempt = server.answer(&request, &verdict, now, ex.work, ex.out);
        let response = loop {
            match attempt {
                Ok(Answer::Response(response)) => break Some(response),
                Ok(Answer::Issue(mut issue)) => {
                    break shared.issue(&mut issue, &line.path, skew_secs, &mut done, ex.out);
                }
                Err(e) => {
                    if !serve_loop::grow_for(e, ex.out, ex.work) {
                        tracing::error!("cannot answer: {e}");
                        break None;
                    }
                    attempt = server.answer(&request, &verdict, now, ex.work, ex.out);
                }
            }
        };
        let Some(response) = response else {
            return Step::Close;
        };
        done.send(&shared, ex.reply, ex.out, &response, &line, ex.started)
            .await
    }
}

/// The request line, for logs.
#[derive(Default)]
struct RequestLine {
    method: String,
    path: String,
}

/// What is left to do once the core has written the answer.
#[derive(Default)]
struct Done {
    close: bool,
    delay: Duration,
    origin: Option<Origin>,
    permit: Option<ThrottlePermit>,
    /// Whether the token came from the cache.
    cached: Option<bool>,
}

impl Done {
    /// Sleeps the fault delay, counts and logs the answer, writes it (or closes), and releases
    /// the throttle permit.
    async fn send(
        &mut self,
        shared: &Shared,
        mut reply: crate::serve_loop::connection::Reply<'_>,
        out: &[u8],
        response: &Response<'_>,
        line: &RequestLine,
        started: Instant,
    ) -> Step {
        // In flight until its answer is written (delays included); admin and document
        // requests are not counted.
        let in_flight =
            (!matches!(response.outcome, Outcome::Other)).then(|| shared.controls.counters.begin());
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let close_now = self.close || response.len == 0;
        // Counted before it is written, so a client that has read the answer finds it in
        // the counters; the throttle permit is held until the answer is written.
        shared.record(response, close_now, self, line, started);
        let written = close_now
            || reply
                .send(out.get(..response.len).unwrap_or_default())
                .await;
        drop(self.permit.take());
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

fn random_u32() -> u32 {
    getrandom::u32().unwrap_or(0)
}

fn as_fault(f: &FaultResponse) -> Fault<'_> {
    Fault {
        status: f.status,
        error: &f.error,
        description: Some(&f.error_description),
        retry_after: f.retry_after,
    }
}

impl Shared {
    /// The emulator's decisions before validation: its documents and admin API on the paths
    /// the core does not own; throttle and path-level fault rules on the identity endpoints
    /// (an unknown path gets its 404 / 401 without using up a rule).
    fn admit(&self, request: &Request<'_>) -> Admitted {
        let mut admitted = Admitted::default();
        if !request.is_own_path() {
            admitted.verdict = self.document(request).map(|(s, b)| Chosen::Json(s, b));
            return admitted;
        }
        if let Some(throttle) = self.controls.throttle() {
            match throttle.try_acquire(Instant::now()) {
                Ok(permit) => admitted.permit = Some(permit),
                Err(refused) => {
                    admitted.origin = Some(Origin::Throttle);
                    admitted.verdict = Some(Chosen::Fault(refused.response()));
                    return admitted;
                }
            }
        }
        let decision = self.faults_for(request.path(), None);
        admitted.delay = decision.delay;
        admitted.skew_secs = decision.skew_secs;
        match decision.action {
            FaultAction::Respond(r) => {
                admitted.origin = Some(Origin::Fault);
                admitted.verdict = Some(Chosen::Fault(r));
            }
            FaultAction::Close => {
                admitted.origin = Some(Origin::Fault);
                admitted.close = true;
                // The core needs an answer; the connection loop drops it and closes.
                admitted.verdict = Some(Chosen::Fault(FaultResponse::for_status(500)));
            }
            FaultAction::Pass => {}
        }
        admitted
    }

    /// The fault rules' decision for a request on `path`: the path-level rules (no
    /// `identity`) at admission, the identity-level ones once the identity is resolved.
    /// Without rules (the usual case) it passes without drawing a random number: no
    /// `getrandom` system call per request.
    fn faults_for(&self, path: &str, identity: Option<Guid>) -> FaultDecision {
        let mut plan = self
            .controls
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if plan.is_empty() {
            return FaultDecision::PASS;
        }
        plan.decide_among(&FaultRequest { path, identity }, random_u32(), |rule| {
            rule.identity.is_some() == identity.is_some()
        })
    }

    /// The OpenID configuration, the JWKS or the admin API's answer, for a path the core does
    /// not own; `None` for any other path.
    fn document(&self, request: &Request<'_>) -> Option<(u16, Vec<u8>)> {
        let get = matches!(request.method(), "GET" | "HEAD");
        let document = match request.path() {
            OPENID_CONFIGURATION_PATH => Some(&self.openid_json),
            JWKS_PATH => Some(&self.jwks_json),
            _ => None,
        };
        if let Some(doc) = document {
            return Some(if get {
                (200, doc.clone().into_bytes())
            } else {
                let body = r#"{"error":"method_not_allowed","error_description":"Not allowed"}"#;
                (405, body.as_bytes().to_vec())
            });
        }
        if request.path().starts_with(ADMIN_PREFIX) {
            return self
                .controls
                .handle(request.method(), request.path(), request.body())
                .map(|r| (r.status, r.body.into_bytes()));
        }
        None
    }

    /// Resolved identity X needs a token for resource R: identity-level fault rules, then the
    /// token from the cache or minted; the core writes the answer. `None` when it cannot be
    /// written at all.
    fn issue<'a>(
        &self,
        issue: &mut Issue<'a, '_>,
        path: &str,
        skew_secs: i64,
        done: &mut Done,
        out: &mut Vec<u8>,
    ) -> Option<Response<'a>> {
        let request = issue.request;
        let Some(identity) = self.config.get(request.resolved.slot) else {
            return write_growing(out, |o| issue.write_error(&IssueError::Failed, o));
        };
        let decision = self.faults_for(path, Some(identity.client_id));
        done.delay += decision.delay;
        let skew = skew_secs.saturating_add(decision.skew_secs);
        let error = match decision.action {
            FaultAction::Respond(r) => {
                done.origin = Some(Origin::Fault);
                return write_growing(out, |o| {
                    issue.write_error(&IssueError::Fault(as_fault(&r)), o)
                });
            }
            FaultAction::Close => {
                done.origin = Some(Origin::Fault);
                IssueError::Close
            }
            FaultAction::Pass => {
                let served = self.controls.cache.get_or_mint(
                    &self.minter,
                    identity,
                    request.resource,
                    request.now.saturating_add_signed(skew),
                    request.bypass_cache || skew != 0,
                );
                match served {
                    Ok(served) => {
                        done.cached = Some(served.from_cache);
                        let minted = Minted {
                            token: served.token.jwt(),
                            not_before: served.token.not_before,
                            expires_on: served.token.expires_on,
                        };
                        return write_growing(out, |o| issue.write_token(&minted, o));
                    }
                    Err(e) => {
                        tracing::error!("cannot sign a token: {e}");
                        IssueError::Failed
                    }
                }
            }
        };
        write_growing(out, |o| issue.write_error(&error, o))
    }

    /// Counts and logs the request whose answer is about to be written (or dropped).
    fn record(
        &self,
        response: &Response<'_>,
        closed: bool,
        done: &Done,
        line: &RequestLine,
        started: Instant,
    ) {
        let latency = started.elapsed();
        let resolved = match response.outcome {
            Outcome::Token { resolved, .. } | Outcome::Closed { resolved } => Some(resolved),
            Outcome::Rejected { resolved, .. } | Outcome::Fault { resolved } => resolved,
            _ => None,
        };
        let identity = resolved
            .and_then(|r| self.config.get(r.slot))
            .map(|i| i.client_id);
        let method = if line.method.is_empty() {
            "?"
        } else {
            &line.method
        };
        let path = if line.path.is_empty() {
            "?"
        } else {
            &line.path
        };
        if matches!(response.outcome, Outcome::Other) {
            tracing::debug!(method, path, status = response.status, ?latency, "served");
            return;
        }
        let origin = done.origin.unwrap_or(Origin::Emulator);
        let outcome = if closed {
            counters::Outcome::Closed
        } else {
            counters::Outcome::Answered(response.status)
        };
        self.controls.counters.record(identity, outcome, origin);
        // The request's log line, formatted only when `info` is on (`--log warn`: no GUID
        // formatting or allocation per request).
        if !tracing::enabled!(tracing::Level::INFO) {
            return;
        }
        let shown_identity = identity.map_or_else(|| "-".to_owned(), |g| g.to_string());
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
                cached = done.cached,
                ?latency,
                "answered"
            );
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
