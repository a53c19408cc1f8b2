//! The host's token client, shared by `mitoken token`, `mitoken demo` and `mitoken bridge`: a
//! tokio runner for the core's token [`Engine`](mitoken_core::engine::Engine).
//!
//! Every decision is the engine's — the cache and refresh-ahead, single-flight, the upstream
//! limiter (20 requests/s, 5 at once), the retry schedule, the stale-token fallback and
//! callers' deadlines. This module only holds what a shell holds:
//!
//! - **the clock**: Unix milliseconds passed to every engine call;
//! - **sockets**: each upstream request the engine asks for ([`Engine::poll_transmit`]) runs as
//!   a task doing one [`fetch_with`] (connect, send, read, parse, bounded by
//!   [`ClientConfig::attempt_timeout`]) and reports how it ended;
//! - **timers**: one driver task calls [`Engine::handle_timeout`] and sleeps until
//!   [`Engine::poll_at`] or until an event moves it (no polling);
//! - **waiting callers**: a oneshot channel per engine ticket, answered from
//!   [`Engine::poll_wake`]; a caller that goes away cancels its ticket.
//!
//! No proxy: connections go straight to the endpoint's address.
//!
//! [`Engine::poll_transmit`]: mitoken_core::engine::Engine::poll_transmit
//! [`Engine::handle_timeout`]: mitoken_core::engine::Engine::handle_timeout
//! [`Engine::poll_at`]: mitoken_core::engine::Engine::poll_at
//! [`Engine::poll_wake`]: mitoken_core::engine::Engine::poll_wake

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mitoken_core::cache::{CacheKey, CachedToken, Lookup};
use mitoken_core::client::ClientError;
use mitoken_core::engine::{
    Answer, Ask, Cause, EngineConfig, EngineError, Failure, FlightId, Limits, Reply, Ticket,
    Transmit,
};
use mitoken_core::request::{Endpoint, RequestError, ResIdParam, Selector, Style, TokenRequest};
use mitoken_core::retry::{RetryError, RetryPolicy};
use mitoken_core::token::ServiceError;
use tokio::sync::{Notify, oneshot};

use crate::client::{AccessToken, FetchFailure, ServiceFailure, TokenResponse};
use crate::source_fetch::{SourceAuth, fetch_source};

mod engine_size;

pub use engine_size::{
    CACHE_ENTRIES, CACHE_KEY_BYTES, CACHE_TOKEN_BYTES, EngineSize, MAX_FLIGHTS, MAX_WAITERS,
    ONE_SHOT_ENTRIES, ONE_SHOT_FLIGHTS, ONE_SHOT_WAITERS,
};
use engine_size::{TokenEngine, new_engine};

/// Which user-assigned identity a request names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdentitySelector {
    /// `client_id`.
    ClientId(String),
    /// `object_id`.
    ObjectId(String),
    /// `msi_res_id` (or `mi_res_id` when `mi_spelling`).
    ResourceId {
        /// The ARM resource id.
        id: String,
        /// Send it as `mi_res_id`.
        mi_spelling: bool,
    },
}

/// An owned token request: what to ask for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenSpec {
    /// The resource (audience).
    pub resource: String,
    /// The identity, or `None` for the VM's default.
    pub selector: Option<IdentitySelector>,
    /// Skip the caches (ours and IMDS's).
    pub bypass_cache: bool,
}

impl TokenSpec {
    /// A request for `resource` with the default identity.
    pub fn new(resource: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
            selector: None,
            bypass_cache: false,
        }
    }

    /// With a selector.
    #[must_use]
    pub fn with_selector(mut self, selector: Option<IdentitySelector>) -> Self {
        self.selector = selector;
        self
    }

    /// The core's view of this request.
    pub fn as_request<'a>(&'a self, api_version: &'a str) -> TokenRequest<'a> {
        let mut request = TokenRequest::new(&self.resource)
            .with_api_version(api_version)
            .with_bypass_cache(self.bypass_cache);
        if let Some(selector) = &self.selector {
            request = request.with_selector(match selector {
                IdentitySelector::ClientId(id) => Selector::ClientId(id),
                IdentitySelector::ObjectId(id) => Selector::ObjectId(id),
                IdentitySelector::ResourceId { id, mi_spelling } => Selector::ResourceId {
                    id,
                    param: if *mi_spelling {
                        ResIdParam::MiResId
                    } else {
                        ResIdParam::MsiResId
                    },
                },
            });
        }
        request
    }

    /// The owned request for an engine transmit.
    fn of_transmit(t: &Transmit<'_>) -> Self {
        Self {
            resource: t.key.resource.to_owned(),
            selector: t.key.selector.map(|s| match s {
                Selector::ClientId(id) => IdentitySelector::ClientId(id.to_owned()),
                Selector::ObjectId(id) => IdentitySelector::ObjectId(id.to_owned()),
                Selector::ResourceId { id, param } => IdentitySelector::ResourceId {
                    id: id.to_owned(),
                    mi_spelling: param == ResIdParam::MiResId,
                },
            }),
            bypass_cache: t.bypass_cache,
        }
    }
}

/// How the client behaves.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `imds`, `extension` or a base URL (see [`Endpoint::parse_spec`]) for [`Style::Imds`];
    /// the source's token URL for the other styles (see [`Endpoint::parse_url_for`]).
    pub endpoint: String,
    /// The protocol the endpoint speaks (which managed-identity source it is).
    pub style: Style,
    /// The source's secret and Arc's key directory.
    pub auth: SourceAuth,
    /// IMDS api-version.
    pub api_version: String,
    /// Time limit of one attempt (connect + request + response).
    pub attempt_timeout: Duration,
    /// The retry policy (the core's; `deadline_ms` bounds when a retry may start).
    pub retry: RetryPolicy,
    /// Upstream limits; `None` for none.
    pub upstream_limits: Option<Limits>,
    /// Serve [`TokenClient::with_cached`] lookups and refresh tokens ahead of expiry. Off, the
    /// engine still shares one request's token among the callers waiting for it.
    pub cache: bool,
    /// How many tokens, fetches and waiting callers the client holds: [`EngineSize::OneShot`]
    /// for a process that asks once and exits (it starts faster), else the default service size.
    pub engine_size: EngineSize,
}

impl ClientConfig {
    /// Defaults for `endpoint`: IMDS's retry policy, 20 req/s + 5 concurrent upstream, cache on.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            style: Style::Imds,
            auth: SourceAuth::default(),
            api_version: mitoken_core::request::DEFAULT_API_VERSION.to_owned(),
            attempt_timeout: Duration::from_secs(10),
            retry: RetryPolicy::IMDS,
            upstream_limits: Some(Limits::IMDS_IDENTITY),
            cache: true,
            engine_size: EngineSize::Service,
        }
    }

    fn engine_config(&self) -> EngineConfig {
        EngineConfig::DEFAULT
            .with_retry(self.retry)
            .with_limits(self.upstream_limits)
            .with_refresh_ahead(self.cache)
    }

    /// How long a caller waits at most: until the last retry may start, plus that attempt.
    fn wait_limit_ms(&self) -> u64 {
        let attempt = u64::try_from(self.attempt_timeout.as_millis()).unwrap_or(u64::MAX);
        self.retry
            .deadline_ms
            .saturating_add(attempt)
            .saturating_add(1_000)
    }
}

/// Why [`TokenClient::get_token`] failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GetTokenError {
    /// The endpoint in the configuration is invalid.
    #[error("invalid endpoint `{spec}`: {error}")]
    Endpoint {
        /// What was configured.
        spec: String,
        /// Why it is invalid.
        error: RequestError,
    },
    /// An attempt failed in a way that is not retried, or the retries ran out.
    #[error("{last}{}", retry_note(.retry.as_ref()))]
    Failed {
        /// The last attempt's failure.
        last: FetchFailure,
        /// Why retrying stopped (`None`: not retryable at all, e.g. an invalid request).
        retry: Option<RetryError>,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The caller's wait ended before a token came.
    #[error("no token within {0:?}")]
    DeadlinePassed(Duration),
    /// The engine cannot take the request now (too many callers or keys at once).
    #[error("{0}")]
    Busy(EngineError),
}

fn retry_note(retry: Option<&RetryError>) -> String {
    // `; `, not parentheses: both parts may hold parentheses of their own.
    retry.map_or_else(String::new, |r| format!("; {r}"))
}

impl GetTokenError {
    /// The last attempt's failure, when there was one.
    pub fn last_failure(&self) -> Option<&FetchFailure> {
        match self {
            Self::Failed { last, .. } => Some(last),
            Self::Endpoint { .. } | Self::DeadlinePassed(_) | Self::Busy(_) => None,
        }
    }

    /// The failure as one fetch's: the last attempt's, or what stands for it.
    pub fn into_fetch_failure(self) -> FetchFailure {
        match self {
            Self::Endpoint { error, .. } => FetchFailure::InvalidRequest(error),
            Self::Failed { last, .. } => last,
            Self::DeadlinePassed(after) => FetchFailure::Timeout {
                addr: String::new(),
                after,
            },
            Self::Busy(e) => FetchFailure::Io {
                addr: String::new(),
                source: Arc::new(std::io::Error::other(e.to_string())),
            },
        }
    }
}

type Shared = Result<Arc<TokenResponse>, GetTokenError>;

/// A waiting caller.
struct Waiting {
    spec: TokenSpec,
    tx: oneshot::Sender<Shared>,
}

/// Everything behind the lock: the engine and the shell's bookkeeping around it.
struct State {
    engine: Box<dyn TokenEngine>,
    waiting: HashMap<Ticket, Waiting>,
    /// The last attempt's failure per request, with the shell's detail (address, OS error).
    last_failure: HashMap<TokenSpec, FetchFailure>,
    /// The last token received per request while callers wait: what they get when the engine
    /// could not keep it ([`Cause::NotStored`]: already expired by our clock, or too large).
    received: HashMap<TokenSpec, Arc<TokenResponse>>,
    driver_started: bool,
}

struct Inner {
    config: ClientConfig,
    /// `config.endpoint`, parsed.
    endpoint: ParsedEndpoint,
    state: Mutex<State>,
    /// Wakes the driver when the engine's next deadline may have moved.
    timer: Arc<Notify>,
}

/// A cloneable handle to one client (engine and driver are shared).
#[derive(Clone)]
pub struct TokenClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenClient")
            .field("endpoint", &self.inner.config.endpoint)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Wall-clock milliseconds since the Unix epoch (the engine's clock).
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The configured endpoint, parsed once when the client is built: the core's [`Endpoint`]
/// borrows its strings, so this owns them and lends an [`Endpoint`] per lookup for free.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ParsedEndpoint {
    Imds,
    Extension,
    Custom {
        host: Box<str>,
        port: u16,
        path: Box<str>,
        style: Style,
    },
}

impl ParsedEndpoint {
    fn parse(config: &ClientConfig) -> Result<Self, GetTokenError> {
        let spec = &config.endpoint;
        let parsed = match config.style {
            Style::Imds => Endpoint::parse_spec(spec),
            style => Endpoint::parse_url_for(spec, style),
        };
        match parsed {
            Ok(Endpoint::Imds) => Ok(Self::Imds),
            Ok(Endpoint::Extension) => Ok(Self::Extension),
            Ok(Endpoint::Custom {
                host,
                port,
                path,
                style,
            }) => Ok(Self::Custom {
                host: host.into(),
                port,
                path: path.into(),
                style,
            }),
            Err(error) => Err(GetTokenError::Endpoint {
                spec: spec.clone(),
                error,
            }),
        }
    }

    fn get(&self) -> Endpoint<'_> {
        match self {
            Self::Imds => Endpoint::Imds,
            Self::Extension => Endpoint::Extension,
            Self::Custom {
                host,
                port,
                path,
                style,
            } => Endpoint::Custom {
                host,
                port: *port,
                path,
                style: *style,
            },
        }
    }
}

/// The owned answer for a token the engine handed out, at `now` (Unix ms).
fn response_of(cached: &CachedToken<'_>, now: u64) -> TokenResponse {
    TokenResponse {
        access_token: AccessToken::new(cached.access_token.expose()),
        client_id: cached.client_id.map(str::to_owned),
        expires_in: Some(cached.expires_in(now)),
        expires_on: cached.expires_on,
        ext_expires_in: None,
        not_before: cached.not_before,
        resource: cached.key.resource.to_owned(),
        token_type: cached.token_type.to_owned(),
        object_id: None,
        msi_res_id: None,
    }
}

/// The error for a failed request: the engine's verdict, with the shell's detail of the last
/// attempt when it has one.
fn failed(failure: &Failure<'_>, detail: Option<&FetchFailure>) -> GetTokenError {
    let last = match (failure.cause, detail) {
        (Cause::Service(s), detail) => FetchFailure::Service(ServiceFailure {
            status: s.status,
            error: s.error.to_owned(),
            description: s.description.map(str::to_owned),
            retry_after: s.retry_after,
            correlation_id: match detail {
                Some(FetchFailure::Service(d)) => d.correlation_id.clone(),
                _ => None,
            },
        }),
        (Cause::Unsendable(e), None) => FetchFailure::InvalidRequest(e),
        (_, Some(detail)) => detail.clone(),
        (Cause::InvalidResponse(error), None) => FetchFailure::Protocol {
            addr: String::new(),
            error,
        },
        (cause, None) => FetchFailure::Io {
            addr: String::new(),
            source: Arc::new(std::io::Error::other(cause.to_string())),
        },
    };
    GetTokenError::Failed {
        last,
        retry: failure.retry,
        attempts: failure.attempts,
    }
}

/// The engine's view of a failed attempt.
fn reply_of(f: &FetchFailure) -> Reply<'_> {
    match f {
        FetchFailure::InvalidRequest(e) => Reply::Unsendable(*e),
        FetchFailure::Connect { .. } => Reply::ConnectFailed,
        FetchFailure::Io { .. } => Reply::Io,
        FetchFailure::Timeout { .. } => Reply::Timeout,
        FetchFailure::Protocol { error, .. } => Reply::InvalidResponse(*error),
        FetchFailure::Service(s) => Reply::Service(ServiceError::new(
            s.status,
            &s.error,
            s.description.as_deref(),
            s.retry_after,
        )),
        // A challenge left unanswered is the 401 it came as.
        FetchFailure::ArcChallenge { .. } => Reply::Service(ServiceError::new(401, "", None, None)),
        // Nothing was sent with the key, and trying again will not change the file's rules.
        FetchFailure::ArcKey(_) => Reply::Unsendable(RequestError::MissingSecret {
            source: mitoken_core::source::Source::Arc,
        }),
        FetchFailure::NoTlsTransport => Reply::Unsendable(RequestError::HttpsNotSupported),
        FetchFailure::Tls(_) => Reply::InvalidResponse(ClientError::PeerRejected),
    }
}

/// Cancels a waiting caller's ticket if it goes away before its answer.
struct WaitGuard<'a> {
    inner: &'a Inner,
    ticket: Option<Ticket>,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            let mut st = lock(&self.inner.state);
            st.waiting.remove(&ticket);
            st.engine.cancel(ticket);
        }
    }
}

impl TokenClient {
    /// A client; fails if the endpoint does not parse.
    pub fn new(config: ClientConfig) -> Result<Self, GetTokenError> {
        let endpoint = ParsedEndpoint::parse(&config)?;
        let engine = new_engine(
            config.engine_size,
            config.engine_config(),
            getrandom::u32().unwrap_or(0x8000_0001),
        );
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                endpoint,
                state: Mutex::new(State {
                    engine,
                    waiting: HashMap::new(),
                    last_failure: HashMap::new(),
                    received: HashMap::new(),
                    driver_started: false,
                }),
                timer: Arc::new(Notify::new()),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// A token for `spec`: from the cache when valid, else from upstream (one request per key
    /// at a time, within the limits, retried by IMDS's rules). Dropping the future stops the
    /// wait, not a request other callers share.
    pub async fn get_token(&self, spec: &TokenSpec) -> Shared {
        let config = &self.inner.config;
        let request = spec.as_request(&config.api_version);
        let key = CacheKey::for_request(&request, self.inner.endpoint.get());
        let wait = config.wait_limit_ms();
        let now = unix_ms();
        let (ticket, rx) = {
            let mut st = lock(&self.inner.state);
            // A fresh cached token: the engine changes nothing, so there is nothing to drain.
            if !spec.bypass_cache
                && let Some(t) = st.engine.cached(&key, now)
            {
                return Ok(Arc::new(response_of(&t, now)));
            }
            match st
                .engine
                .request(&key, now, now.saturating_add(wait), spec.bypass_cache)
            {
                Ok(Ask::Ready(t)) => {
                    let response = response_of(&t, now);
                    self.pump(&mut st, now);
                    return Ok(Arc::new(response));
                }
                Ok(Ask::Wait(ticket)) => {
                    let (tx, rx) = oneshot::channel();
                    st.waiting.insert(
                        ticket,
                        Waiting {
                            spec: spec.clone(),
                            tx,
                        },
                    );
                    self.pump(&mut st, now);
                    (ticket, rx)
                }
                Err(e) => return Err(GetTokenError::Busy(e)),
            }
        };
        let mut guard = WaitGuard {
            inner: &self.inner,
            ticket: Some(ticket),
        };
        let result = rx.await;
        guard.ticket = None;
        result.unwrap_or(Err(GetTokenError::DeadlinePassed(Duration::from_millis(
            wait,
        ))))
    }

    /// Looks `request` up in the cache without waiting: `f` gets the cached token and the
    /// current Unix time in milliseconds **under the client's lock** (keep it short; it cannot
    /// await), and its result comes back; a token due for refresh is served and refreshed in
    /// the background by the engine (the lookup starts it). `None` when caching is off or no
    /// valid token is cached.
    /// The key is the request's selector and resource as written (see [`CacheKey`]).
    pub fn with_cached<R>(
        &self,
        request: &TokenRequest<'_>,
        f: impl FnOnce(&CachedToken<'_>, u64) -> R,
    ) -> Option<R> {
        if !self.inner.config.cache {
            return None;
        }
        let key = CacheKey::for_request(request, self.inner.endpoint.get());
        let now = unix_ms();
        let mut st = lock(&self.inner.state);
        // A fresh cached token: the engine changes nothing, so there is nothing to drain.
        if let Some(t) = st.engine.cached(&key, now) {
            return Some(f(&t, now));
        }
        let result = match st.engine.lookup(&key, now) {
            Lookup::Fresh(t) | Lookup::Stale(t) => f(&t, now),
            Lookup::Missing => return None,
        };
        // A refresh the lookup started goes out now.
        self.pump(&mut st, now);
        Some(result)
    }

    /// Drains the engine: starts the upstream requests it asks for, answers the callers whose
    /// answer is ready, and wakes the driver (the next deadline may have moved).
    fn pump(&self, st: &mut State, now: u64) {
        pump(&self.inner, st, now);
    }
}

fn pump(inner: &Arc<Inner>, st: &mut State, now: u64) {
    drain(inner, st, now);
    if !st.driver_started {
        st.driver_started = true;
        tokio::spawn(drive(Arc::downgrade(inner), Arc::clone(&inner.timer)));
    }
    inner.timer.notify_one();
}

/// Starts the upstream requests the engine asks for and answers the callers it wakes.
fn drain(inner: &Arc<Inner>, st: &mut State, now: u64) {
    let State {
        engine,
        waiting,
        last_failure,
        received,
        ..
    } = st;
    while let Some(t) = engine.poll_transmit(now) {
        tokio::spawn(attempt(
            Arc::clone(inner),
            t.flight,
            TokenSpec::of_transmit(&t),
        ));
    }
    while let Some(wake) = engine.poll_wake(now) {
        let Some(w) = waiting.remove(&wake.ticket) else {
            continue;
        };
        let result = match wake.answer {
            Answer::Token(t) => Ok(Arc::new(response_of(&t, now))),
            Answer::Failed(f) => match (f.cause, received.get(&w.spec)) {
                (Cause::NotStored(e), Some(token)) => {
                    tracing::debug!(error = %e, "token not cached; handed out as received");
                    Ok(Arc::clone(token))
                }
                _ => Err(failed(&f, last_failure.get(&w.spec))),
            },
            _ => Err(GetTokenError::DeadlinePassed(Duration::from_millis(
                inner.config.wait_limit_ms(),
            ))),
        };
        let _ = w.tx.send(result);
    }
    if waiting.is_empty() {
        last_failure.clear();
        received.clear();
    }
}

/// One upstream attempt, reported to the engine when it ends.
async fn attempt(inner: Arc<Inner>, flight: FlightId, spec: TokenSpec) {
    let config = &inner.config;
    let endpoint = inner.endpoint.get();
    let request = spec.as_request(&config.api_version);
    let result = fetch_source(
        &endpoint,
        &request,
        &config.auth,
        config.attempt_timeout,
        |t| {
            let now = unix_ms();
            let mut st = lock(&inner.state);
            if !st.waiting.is_empty() {
                st.received
                    .insert(spec.clone(), Arc::new(TokenResponse::from_core(t)));
            }
            if let Err(e) = st.engine.handle_reply(flight, now, Reply::Token(*t)) {
                tracing::debug!(error = %e, "late token answer");
            }
            pump(&inner, &mut st, now);
        },
    )
    .await;
    if let Err(failure) = result {
        tracing::info!(%failure, resource = ?spec.resource, "upstream attempt failed");
        let now = unix_ms();
        let mut st = lock(&inner.state);
        if let Err(e) = st.engine.handle_reply(flight, now, reply_of(&failure)) {
            tracing::debug!(error = %e, "late failure answer");
        }
        st.last_failure.insert(spec, failure);
        pump(&inner, &mut st, now);
    }
}

/// The timer: handles the engine's timeouts and sleeps until its next `poll_at` or an event.
/// Ends once the client is gone.
async fn drive(inner: Weak<Inner>, timer: Arc<Notify>) {
    loop {
        let next = {
            let Some(inner) = inner.upgrade() else {
                return;
            };
            let now = unix_ms();
            let mut st = lock(&inner.state);
            st.engine.handle_timeout(now);
            drain(&inner, &mut st, now);
            st.engine.poll_at().map(|at| at.saturating_sub(now))
        };
        match next {
            Some(ms) => {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(ms)) => {}
                    () = timer.notified() => {}
                }
            }
            None => timer.notified().await,
        }
    }
}
