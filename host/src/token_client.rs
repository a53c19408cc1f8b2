//! The host's token client: retries by IMDS's rules, a token cache with refresh-ahead,
//! single-flight, and an upstream limiter — shared by `mitoken token`, `mitoken demo` and
//! `mitoken bridge`.
//!
//! The decisions are the core's: [`RetryState`] says when to retry, [`TokenCache`] what is
//! fresh, stale or missing. This module only sleeps, locks and counts:
//!
//! - **Retries**: each failed attempt (status, timeout, connection or I/O failure) goes to the
//!   core's [`RetryState`] with a random jitter value; the client sleeps as told or gives up.
//! - **Cache**: a fresh cached token is served without a request; a stale one (refresh due) is
//!   refreshed, and served as a fallback if the refresh fails while it is still valid.
//!   `bypass_cache` skips the lookup and sends `bypass_cache=true` upstream.
//! - **Single-flight**: concurrent callers for the same (selector, resource) share one upstream
//!   request and its result.
//! - **Upstream limiter**: the whole process never exceeds IMDS's identity limits (20 requests/s,
//!   5 concurrent); excess requests wait their turn instead of earning a 429.
//! - No proxy: connections go straight to the endpoint's address.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mitoken_core::cache::{CacheKey, CachedToken, Lookup, TokenCache};
use mitoken_core::request::{Endpoint, RequestError, ResIdParam, Selector, TokenRequest};
use mitoken_core::retry::{AttemptResult, Decision, RetryError, RetryPolicy, RetryState};
use tokio::sync::watch;

use crate::client::{FetchFailure, TokenResponse, fetch_with};
use crate::emulate::throttle::{Throttle, ThrottleLimits, ThrottleReason};

/// The cache is split in shards, each a core [`TokenCache`] behind its own lock: less
/// contention, and no single fixed-size value too large to build on a thread's stack.
pub const CACHE_SHARDS: usize = 16;
/// Entries per shard; the cache keeps up to `CACHE_SHARDS × CACHE_SHARD_ENTRIES` (256) distinct
/// (selector, resource) pairs, least recently used evicted first within a shard.
pub const CACHE_SHARD_ENTRIES: usize = 16;
/// Largest cached token (access token + type + client id); larger tokens are served, not cached.
pub const CACHE_TOKEN_BYTES: usize = 8192;

type Cache = TokenCache<CACHE_SHARD_ENTRIES, CACHE_TOKEN_BYTES>;

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
}

/// How the client behaves.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `imds`, `extension` or a base URL (see [`Endpoint::parse_url`]).
    pub endpoint: String,
    /// IMDS api-version.
    pub api_version: String,
    /// Time limit of one attempt (connect + request + response).
    pub attempt_timeout: Duration,
    /// The retry policy (the core's; `deadline_ms` bounds when a retry may start).
    pub retry: RetryPolicy,
    /// Upstream limits; `None` for none.
    pub upstream_limits: Option<ThrottleLimits>,
    /// Keep tokens in the cache.
    pub cache: bool,
}

impl ClientConfig {
    /// Defaults for `endpoint`: IMDS's retry policy, 20 req/s + 5 concurrent upstream, cache on.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            api_version: mitoken_core::request::DEFAULT_API_VERSION.to_owned(),
            attempt_timeout: Duration::from_secs(10),
            retry: RetryPolicy::IMDS,
            upstream_limits: Some(ThrottleLimits::IMDS_IDENTITY),
            cache: true,
        }
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
            Self::Endpoint { .. } => None,
        }
    }
}

type Shared = Result<Arc<TokenResponse>, GetTokenError>;

struct Inner {
    config: ClientConfig,
    cache: Vec<Mutex<Box<Cache>>>,
    inflight: Mutex<HashMap<TokenSpec, watch::Receiver<Option<Shared>>>>,
    throttle: Option<Throttle>,
    clock: Instant,
}

impl Inner {
    /// The cache shard that holds the token for `request` (by resource and selector, the parts
    /// of the cache key that vary within one client).
    fn shard(&self, request: &TokenRequest<'_>) -> &Mutex<Box<Cache>> {
        use std::hash::{BuildHasher as _, RandomState};
        static HASHER: std::sync::OnceLock<RandomState> = std::sync::OnceLock::new();
        let selector = request.selector.map(|s| (s.param(), s.value()));
        let hash = HASHER
            .get_or_init(RandomState::new)
            .hash_one((request.resource, selector));
        let len = u64::try_from(self.cache.len()).unwrap_or(1).max(1);
        let index = usize::try_from(hash % len).unwrap_or(0);
        &self.cache[index]
    }
}

/// A cloneable handle to one client (cache, in-flight table and limiter are shared).
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

/// Wall-clock milliseconds since the Unix epoch (the cache's clock).
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl TokenClient {
    /// A client; fails if the endpoint does not parse.
    pub fn new(config: ClientConfig) -> Result<Self, GetTokenError> {
        parse_endpoint(&config.endpoint)?;
        Ok(Self {
            inner: Arc::new(Inner {
                throttle: config.upstream_limits.map(Throttle::new),
                config,
                cache: (0..CACHE_SHARDS)
                    .map(|_| Mutex::new(Box::new(Cache::new())))
                    .collect(),
                inflight: Mutex::new(HashMap::new()),
                clock: Instant::now(),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// A token for `spec`: from the cache when fresh, else from upstream (one request per key
    /// at a time, retried by IMDS's rules).
    pub async fn get_token(&self, spec: &TokenSpec) -> Shared {
        let endpoint = parse_endpoint(&self.inner.config.endpoint)?;
        let mut stale = None;
        if self.inner.config.cache && !spec.bypass_cache {
            match self.lookup(&endpoint, spec) {
                (Some(fresh), false) => return Ok(fresh),
                (Some(old), true) => stale = Some(old),
                (None, _) => {}
            }
        }
        let result = self.single_flight(spec).await;
        match (result, stale) {
            (Err(e), Some(old)) => {
                tracing::warn!(error = %e, "refresh failed; serving the cached token, still valid");
                Ok(old)
            }
            (result, _) => result,
        }
    }

    /// Looks `request` up in the cache without allocating or waiting: `f` gets the cached
    /// token and the current Unix time in milliseconds **under the cache lock** (keep it short;
    /// it cannot await), and its result comes back with whether the token is due for refresh
    /// (then call [`TokenClient::refresh_in_background`]). `None` when caching is off or no
    /// valid token is cached. The key is the request's selector and resource as written (see
    /// [`CacheKey`]), so a lookup only ever finds a token fetched for the same selector.
    pub fn with_cached<R>(
        &self,
        request: &TokenRequest<'_>,
        f: impl FnOnce(&CachedToken<'_>, u64) -> R,
    ) -> Option<(R, bool)> {
        if !self.inner.config.cache {
            return None;
        }
        let endpoint = parse_endpoint(&self.inner.config.endpoint).ok()?;
        let key = CacheKey::for_request(request, endpoint);
        let now = unix_ms();
        let mut cache = lock(self.inner.shard(request));
        match cache.get(&key, now) {
            Lookup::Fresh(t) => Some((f(&t, now), false)),
            Lookup::Stale(t) => Some((f(&t, now), true)),
            Lookup::Missing => None,
        }
    }

    /// Refreshes `spec`'s token in a background task on the current tokio runtime (for a
    /// token [`with_cached`](Self::with_cached) reported due), unless a request for it is
    /// already in flight. The new token goes to the cache; a failure is logged, and the cached
    /// token is served until it expires.
    pub fn refresh_in_background(&self, spec: TokenSpec) {
        if lock(&self.inner.inflight).contains_key(&spec) {
            return;
        }
        let client = self.clone();
        tokio::spawn(async move {
            if let Err(e) = client.single_flight(&spec).await {
                tracing::warn!(error = %e, resource = ?spec.resource, "background refresh failed");
            }
        });
    }

    /// The cached token for `spec`, and whether its refresh is due.
    fn lookup(
        &self,
        endpoint: &Endpoint<'_>,
        spec: &TokenSpec,
    ) -> (Option<Arc<TokenResponse>>, bool) {
        let api = &self.inner.config.api_version;
        let request = spec.as_request(api);
        let key = CacheKey::for_request(&request, *endpoint);
        let now = unix_ms();
        let mut cache = lock(self.inner.shard(&request));
        let (cached, stale) = match cache.get(&key, now) {
            Lookup::Fresh(t) => (t, false),
            Lookup::Stale(t) => (t, true),
            Lookup::Missing => return (None, false),
        };
        let response = TokenResponse {
            access_token: crate::client::AccessToken::new(cached.access_token.expose()),
            client_id: cached.client_id.map(str::to_owned),
            expires_in: Some(cached.expires_in(now)),
            expires_on: cached.expires_on,
            ext_expires_in: None,
            not_before: cached.not_before,
            resource: spec.resource.clone(),
            token_type: cached.token_type.to_owned(),
            object_id: None,
            msi_res_id: None,
        };
        (Some(Arc::new(response)), stale)
    }

    async fn single_flight(&self, spec: &TokenSpec) -> Shared {
        loop {
            let (leader, mut rx) = {
                let mut inflight = lock(&self.inner.inflight);
                if let Some(rx) = inflight.get(spec) {
                    (None, rx.clone())
                } else {
                    let (tx, rx) = watch::channel(None);
                    inflight.insert(spec.clone(), rx.clone());
                    (Some(tx), rx)
                }
            };
            if let Some(tx) = leader {
                // Remove the entry even if this future is dropped mid-fetch, so followers retry.
                let guard = InflightGuard {
                    inner: &self.inner,
                    spec,
                };
                // A leader that finished between the caller's cache lookup and this point has
                // cached its token before leaving the in-flight table: use it, so concurrent
                // callers cause one upstream request per key, not two.
                let result = match self.fresh_cached(spec) {
                    Some(fresh) => Ok(fresh),
                    None => self.fetch_with_retries(spec).await,
                };
                drop(guard);
                let _ = tx.send(Some(result.clone()));
                return result;
            }
            // Follower: wait for the leader's result; if the leader vanished, try again.
            loop {
                if let Some(result) = rx.borrow_and_update().clone() {
                    return result;
                }
                if rx.changed().await.is_err() {
                    break;
                }
            }
        }
    }

    /// A fresh (not stale) cached token for `spec`, unless it bypasses the cache.
    fn fresh_cached(&self, spec: &TokenSpec) -> Option<Arc<TokenResponse>> {
        if !self.inner.config.cache || spec.bypass_cache {
            return None;
        }
        let endpoint = parse_endpoint(&self.inner.config.endpoint).ok()?;
        match self.lookup(&endpoint, spec) {
            (Some(fresh), false) => Some(fresh),
            _ => None,
        }
    }

    async fn fetch_with_retries(&self, spec: &TokenSpec) -> Shared {
        let config = &self.inner.config;
        let endpoint = parse_endpoint(&config.endpoint)?;
        let request = spec.as_request(&config.api_version);
        let mut state = RetryState::new(config.retry, self.mono_ms());
        loop {
            let outcome = self.attempt(&endpoint, &request, spec).await;
            let failure = match outcome {
                Ok(token) => return Ok(token),
                Err(f) => f,
            };
            let attempt = match &failure {
                FetchFailure::InvalidRequest(_) => {
                    return Err(GetTokenError::Failed {
                        last: failure,
                        retry: None,
                        attempts: state.attempts().saturating_add(1),
                    });
                }
                FetchFailure::Service(e) => AttemptResult::status(e.status, e.retry_after),
                FetchFailure::Timeout { .. } => AttemptResult::Timeout,
                FetchFailure::Connect { .. } => AttemptResult::ConnectFailed,
                FetchFailure::Io { .. } => AttemptResult::Io,
                FetchFailure::Protocol { error, .. } => AttemptResult::from(*error),
            };
            let random = getrandom::u32().unwrap_or(0x8000_0000);
            match state.on_outcome(self.mono_ms(), attempt, random) {
                Decision::Retry { delay, .. } => {
                    tracing::info!(%failure, delay_ms = delay, "retrying");
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                Decision::GiveUp(reason) => {
                    return Err(GetTokenError::Failed {
                        last: failure,
                        retry: Some(reason),
                        attempts: state.attempts(),
                    });
                }
            }
        }
    }

    /// One upstream request, within the limiter, putting a good token in the cache.
    async fn attempt(
        &self,
        endpoint: &Endpoint<'_>,
        request: &TokenRequest<'_>,
        spec: &TokenSpec,
    ) -> Result<Arc<TokenResponse>, FetchFailure> {
        let _permit = match &self.inner.throttle {
            Some(t) => Some(acquire(t).await),
            None => None,
        };
        let cache_it = self.inner.config.cache;
        let inner = &self.inner;
        let token = fetch_with(endpoint, request, inner.config.attempt_timeout, |t| {
            if cache_it {
                let key = CacheKey::for_request(request, *endpoint);
                if let Err(e) = lock(inner.shard(request)).insert(&key, t, unix_ms()) {
                    tracing::debug!(error = %e, resource = ?spec.resource, "token not cached");
                }
            }
            TokenResponse::from_core(t)
        })
        .await?;
        Ok(Arc::new(token))
    }

    fn mono_ms(&self) -> u64 {
        u64::try_from(self.inner.clock.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Waits for an upstream slot: both under the rate and under the concurrency limit.
async fn acquire(throttle: &Throttle) -> crate::emulate::throttle::ThrottlePermit {
    loop {
        match throttle.try_acquire(Instant::now()) {
            Ok(permit) => return permit,
            // A concurrency slot frees when a request ends: look again soon. A rate slot
            // frees at a known time.
            Err(busy) => {
                let wait = match busy.reason {
                    ThrottleReason::Concurrency => Duration::from_millis(5),
                    ThrottleReason::Rate => busy.retry_after.max(Duration::from_millis(1)),
                };
                tokio::time::sleep(wait).await;
            }
        }
    }
}

struct InflightGuard<'a> {
    inner: &'a Inner,
    spec: &'a TokenSpec,
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        lock(&self.inner.inflight).remove(self.spec);
    }
}

fn parse_endpoint(spec: &str) -> Result<Endpoint<'_>, GetTokenError> {
    crate::token_cmd::parse_endpoint(spec).map_err(|error| GetTokenError::Endpoint {
        spec: spec.to_owned(),
        error,
    })
}
