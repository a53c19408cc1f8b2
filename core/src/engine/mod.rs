//! The token engine: every decision about getting a token, as a sans-I/O state machine.
//!
//! The engine owns the token cache with refresh-ahead ([`crate::cache`]), single-flight (one
//! upstream request per (endpoint, identity, resource) however many callers wait), the
//! upstream [limiter] (IMDS's 20 requests/s and 5 in flight), the [retry](crate::retry)
//! schedule, the stale-token fallback, callers' deadlines, and what a caller gets when its
//! request fails ([`answer`]). It reads no clock, owns no socket and allocates nothing; the
//! shell (a tokio runner, a smoltcp loop, a test with a virtual clock) drives it:
//!
//! - **In:** [`request`](Engine::request) — a caller asks for a key at `now` with a deadline
//!   ([`cached`](Engine::cached) first answers a fresh cached token with no state to drain);
//!   [`handle_reply`](Engine::handle_reply) — an upstream attempt ended;
//!   [`handle_timeout`](Engine::handle_timeout) — time passed; [`cancel`](Engine::cancel) — a
//!   caller went away.
//! - **Out:** [`poll_transmit`](Engine::poll_transmit) — start this upstream request now;
//!   [`poll_wake`](Engine::poll_wake) — this waiting caller's answer is ready;
//!   [`poll_at`](Engine::poll_at) — call [`handle_timeout`](Engine::handle_timeout) then.
//!
//! The contract: after every `request`, `handle_reply` and `handle_timeout`, the shell drains
//! `poll_transmit` (until `None`) and `poll_wake` (until `None`), then sleeps until `poll_at`
//! or the next event, whichever comes first. Times are Unix milliseconds (the cache's clock);
//! an earlier `now` than before counts as no time passing.
//!
//! # Policy
//!
//! - A fresh cached token is answered at once. A token due for refresh is answered at once
//!   too, and a refresh is started in the background; with
//!   [`EngineConfig::refresh_ahead`], tokens are also refreshed when due without a caller
//!   asking ([`poll_at`](Engine::poll_at) includes the cache's next refresh time).
//! - Otherwise the caller waits on the flight for its key (created if none). A flight is sent
//!   when its retry time has come and the limiter admits it; each failed attempt goes to the
//!   flight's [`RetryState`](crate::retry::RetryState), which says when to try again or to give
//!   up.
//! - When a flight gives up, its callers get the cached token if one is still valid (the stale
//!   fallback), else the [`Failure`]. A refresh that gives up is tried again
//!   [`EngineConfig::refresh_retry_ms`] later (never after the token expires).
//! - A caller whose deadline passes gets [`Answer::DeadlinePassed`]; a queued flight nobody
//!   waits for any more is dropped.
//!
//! # Capacities
//!
//! `N`, `T`, `K`: the cache's entries, token bytes and key bytes ([`TokenCache`]). `F`:
//! flights (distinct keys being fetched at once). `W`: waiting callers. A full table is an
//! [`EngineError`], never a panic. Tokens are handed out from the cache, so a token that does
//! not fit in `T` bytes fails its callers ([`Cause::NotStored`]); size `N` at least `F`.
//!
//! # Example
//!
//! ```
//! use mitoken_core::cache::CacheKey;
//! use mitoken_core::engine::{Answer, Ask, Engine, EngineConfig, Reply};
//! use mitoken_core::request::Endpoint;
//! use mitoken_core::token::Token;
//!
//! let mut engine: Engine<4, 2048, 256, 4, 8> = Engine::new(EngineConfig::DEFAULT, 7);
//! let key = CacheKey::new(Endpoint::Imds, None, "https://vault.azure.net");
//! let now = 1_700_000_000_000;
//! let Ok(Ask::Wait(ticket)) = engine.request(&key, now, now + 30_000, false) else { panic!() };
//! // The shell sends the request the engine asks for ...
//! let flight = engine.poll_transmit(now).unwrap().flight;
//! assert!(engine.poll_transmit(now).is_none());
//! // ... and reports the answer.
//! let body = br#"{"access_token":"eyJ0eXAi","expires_in":"3600","resource":"r","token_type":"Bearer"}"#;
//! engine.handle_reply(flight, now + 20, Reply::Token(Token::parse(body, &mut []).unwrap())).unwrap();
//! let wake = engine.poll_wake(now + 20).unwrap();
//! assert_eq!(wake.ticket, ticket);
//! assert!(matches!(wake.answer, Answer::Token(t) if t.access_token.expose() == "eyJ0eXAi"));
//! // The next caller is answered from the cache.
//! assert!(matches!(engine.request(&key, now + 30, now + 60, false), Ok(Ask::Ready(_))));
//! ```

pub mod answer;
pub mod failure;
mod flight;
pub mod limiter;
mod waiter;

use core::fmt;

use crate::cache::{CacheError, CacheKey, CachedToken, Lookup, OwnedKey, TokenCache};
use crate::request::TokenRequest;
use crate::retry::{Decision, RetryPolicy};

pub use answer::{Description, ErrorAnswer};
pub use failure::{Cause, Failure, Reply};
pub use flight::FlightId;
pub use limiter::{Limiter, Limits};
pub use waiter::Ticket;

use failure::{StoredCause, StoredFailure};
use flight::{Flight, Phase};
use waiter::Waiter;

/// How the engine behaves. Start from [`EngineConfig::DEFAULT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineConfig {
    /// When to retry a failed attempt, and when to give up.
    pub retry: RetryPolicy,
    /// Upstream limits; `None` for none.
    pub limits: Option<Limits>,
    /// Refresh cached tokens when due even if no caller asks.
    pub refresh_ahead: bool,
    /// After a refresh gives up, try again this long later (ms; at least 1).
    pub refresh_retry_ms: u64,
}

impl EngineConfig {
    /// IMDS's retry policy and identity limits, refresh-ahead on, a failed refresh tried again
    /// after a minute.
    pub const DEFAULT: Self = Self {
        retry: RetryPolicy::IMDS,
        limits: Some(Limits::IMDS_IDENTITY),
        refresh_ahead: true,
        refresh_retry_ms: 60_000,
    };

    /// With `retry`.
    #[must_use]
    pub const fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// With `limits` (`None`: unlimited).
    #[must_use]
    pub const fn with_limits(mut self, limits: Option<Limits>) -> Self {
        self.limits = limits;
        self
    }

    /// With refresh-ahead on or off.
    #[must_use]
    pub const fn with_refresh_ahead(mut self, on: bool) -> Self {
        self.refresh_ahead = on;
        self
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why the engine refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineError {
    /// `W` callers are already waiting.
    WaitersFull,
    /// `F` distinct keys are already being fetched.
    FlightsFull,
    /// The key does not fit the engine's key capacity `K`.
    Key(CacheError),
    /// No such flight in flight (already answered, or never sent).
    UnknownFlight,
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WaitersFull => f.write_str("too many callers waiting for tokens"),
            Self::FlightsFull => f.write_str("too many tokens being fetched at once"),
            Self::Key(e) => write!(f, "{e}"),
            Self::UnknownFlight => f.write_str("no such upstream request in flight"),
        }
    }
}

impl core::error::Error for EngineError {}

/// The answer of [`Engine::request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Ask<'e> {
    /// A valid token from the cache.
    Ready(CachedToken<'e>),
    /// Wait: [`Engine::poll_wake`] will hand this ticket back with the answer.
    Wait(Ticket),
}

/// An upstream request to start now (from [`Engine::poll_transmit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Transmit<'e> {
    /// Report the attempt's end with this id.
    pub flight: FlightId,
    /// What to ask for, and where.
    pub key: CacheKey<'e>,
    /// Send `bypass_cache=true`.
    pub bypass_cache: bool,
    /// Which attempt this is (1 for the first).
    pub attempt: u32,
}

impl<'e> Transmit<'e> {
    /// The core request to write for this transmit (see [`crate::client::Exchange`]).
    pub const fn request(&self, api_version: &'e str) -> TokenRequest<'e> {
        let r = TokenRequest::new(self.key.resource)
            .with_api_version(api_version)
            .with_bypass_cache(self.bypass_cache);
        match self.key.selector {
            Some(s) => r.with_selector(s),
            None => r,
        }
    }
}

/// What a waiting caller gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Answer<'e> {
    /// A token (fetched for it, or the still-valid cached one after a failed refresh).
    Token(CachedToken<'e>),
    /// No token: why.
    Failed(Failure<'e>),
    /// The caller's deadline passed first.
    DeadlinePassed,
}

impl<'e> Answer<'e> {
    /// The error answer for a caller that got no token (see [`answer`]).
    pub fn error_answer(&self) -> Option<ErrorAnswer<'e>> {
        match self {
            Self::Token(_) => None,
            Self::Failed(f) => Some(ErrorAnswer::for_failure(f)),
            Self::DeadlinePassed => Some(ErrorAnswer::deadline_passed()),
        }
    }
}

/// A waiting caller's answer (from [`Engine::poll_wake`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Wake<'e> {
    /// The caller's ticket.
    pub ticket: Ticket,
    /// Its answer.
    pub answer: Answer<'e>,
}

/// The token engine. See the [module](self) docs.
pub struct Engine<const N: usize, const T: usize, const K: usize, const F: usize, const W: usize> {
    config: EngineConfig,
    cache: TokenCache<N, T, K>,
    flights: [Option<Flight<K>>; F],
    waiters: [Option<Waiter>; W],
    limiter: Option<Limiter>,
    serial: u32,
    rng: u32,
}

impl<const N: usize, const T: usize, const K: usize, const F: usize, const W: usize> fmt::Debug
    for Engine<N, T, K, F, W>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .field("cache", &self.cache)
            .field("flights", &self.flights.iter().flatten().count())
            .field("waiters", &self.waiting())
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

/// xorshift32: the jitter source, seeded by the shell.
const fn next_random(state: &mut u32) -> u32 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    x
}

fn slot_u16(i: usize) -> u16 {
    u16::try_from(i).unwrap_or(u16::MAX)
}

impl<const N: usize, const T: usize, const K: usize, const F: usize, const W: usize>
    Engine<N, T, K, F, W>
{
    /// An engine with an empty cache. `seed` seeds the retry jitter (draw it from the
    /// shell's randomness; any value works).
    pub const fn new(config: EngineConfig, seed: u32) -> Self {
        let limiter = match config.limits {
            Some(l) => Some(Limiter::new(l)),
            None => None,
        };
        Self {
            config,
            cache: TokenCache::new(),
            flights: [const { None }; F],
            waiters: [const { None }; W],
            limiter,
            serial: 0,
            rng: if seed == 0 { 0x9E37_79B9 } else { seed },
        }
    }

    /// Replaces the configuration, e.g. of an engine built in a `static` with
    /// [`EngineConfig::DEFAULT`]. Call before the first request: the limiter starts afresh and
    /// flights already queued keep their retry policy.
    pub const fn configure(&mut self, config: EngineConfig) {
        self.config = config;
        self.limiter = match config.limits {
            Some(l) => Some(Limiter::new(l)),
            None => None,
        };
    }

    /// Reseeds the retry jitter (see [`new`](Self::new)).
    pub const fn reseed(&mut self, seed: u32) {
        self.rng = if seed == 0 { 0x9E37_79B9 } else { seed };
    }

    /// When `flight` is queued to be sent again after a failed attempt (for a shell's log),
    /// `None` when it is not queued (in flight, done, or gone).
    pub fn retry_at(&self, flight: FlightId) -> Option<u64> {
        match self
            .flights
            .get(usize::from(flight.slot))?
            .as_ref()
            .filter(|f| f.serial == flight.serial)?
            .phase
        {
            Phase::Queued { ready_at } => Some(ready_at),
            _ => None,
        }
    }

    /// The configuration.
    pub const fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The token cache (read-only).
    pub const fn cache(&self) -> &TokenCache<N, T, K> {
        &self.cache
    }

    /// Upstream attempts in flight (sent, not yet answered).
    pub fn in_flight(&self) -> usize {
        self.flights
            .iter()
            .flatten()
            .filter(|f| matches!(f.phase, Phase::InFlight))
            .count()
    }

    /// Flights held (queued, in flight, or done with callers still to wake).
    pub fn flights(&self) -> usize {
        self.flights.iter().flatten().count()
    }

    /// Callers waiting (including those whose answer is ready but not yet taken).
    pub fn waiting(&self) -> usize {
        self.waiters.iter().flatten().count()
    }

    fn next_serial(&mut self) -> u32 {
        self.serial = self.serial.wrapping_add(1);
        self.serial
    }

    /// Frees flights that are done and fully answered, and queued flights nobody wants.
    fn sweep(&mut self) {
        for slot in &mut self.flights {
            if slot
                .as_ref()
                .is_some_and(|f| (f.is_done() && f.waiters == 0) || f.is_orphan())
            {
                *slot = None;
            }
        }
    }

    fn find_flight(&self, key: &CacheKey<'_>, bypass_cache: bool) -> Option<usize> {
        self.flights
            .iter()
            .position(|f| f.as_ref().is_some_and(|f| f.is_for(key, bypass_cache)))
    }

    /// The flight for `key`, created (queued now) if there is none.
    fn flight_for(
        &mut self,
        key: &CacheKey<'_>,
        bypass_cache: bool,
        now: u64,
    ) -> Result<usize, EngineError> {
        if let Some(i) = self.find_flight(key, bypass_cache) {
            return Ok(i);
        }
        let owned = OwnedKey::<K>::new(key).map_err(EngineError::Key)?;
        let free = self
            .flights
            .iter()
            .position(Option::is_none)
            .ok_or(EngineError::FlightsFull)?;
        let serial = self.next_serial();
        let flight = Flight::new(serial, owned, bypass_cache, self.config.retry, now);
        if let Some(slot) = self.flights.get_mut(free) {
            *slot = Some(flight);
        }
        Ok(free)
    }

    /// Makes sure a refresh of `key` is under way, and moves the entry's refresh time out of
    /// the way until it ends (`expires_at`), or to a later retry when no flight is free.
    fn start_refresh(&mut self, key: &OwnedKey<K>, expires_at: u64, now: u64) {
        let k = key.key();
        let defer_to = match self.flight_for(&k, false, now) {
            Ok(i) => {
                if let Some(f) = self.flights.get_mut(i).and_then(Option::as_mut) {
                    f.refresh = true;
                }
                expires_at
            }
            Err(_) => now.saturating_add(self.config.refresh_retry_ms.max(1)),
        };
        self.cache.defer_refresh(&k, defer_to);
    }

    /// The cached token for `key` when it is fresh at `now` — valid, and no refresh due —
    /// else `None` (then ask [`request`](Self::request) or [`lookup`](Self::lookup)). It
    /// changes nothing but the entry's recency, so there is nothing to drain after it and
    /// [`poll_at`](Self::poll_at) stays as it was: a shell's fast path for a cache hit.
    pub fn cached(&mut self, key: &CacheKey<'_>, now: u64) -> Option<CachedToken<'_>> {
        self.cache.get_fresh(key, now)
    }

    /// The cached token for `key` at `now`, without waiting: [`Lookup::Missing`] when there
    /// is none. A token due for refresh starts a background refresh (drain
    /// [`poll_transmit`](Self::poll_transmit) after) and is reported [`Lookup::Fresh`] from
    /// then on, until that refresh ends.
    pub fn lookup(&mut self, key: &CacheKey<'_>, now: u64) -> Lookup<'_> {
        self.sweep();
        let due = match self.cache.peek(key, now) {
            Lookup::Fresh(_) => None,
            Lookup::Stale(t) => OwnedKey::<K>::new(&t.key).ok().map(|k| (k, t.expires_at)),
            Lookup::Missing => return Lookup::Missing,
        };
        if let Some((owned, expires_at)) = due {
            self.start_refresh(&owned, expires_at, now);
        }
        self.cache.get(key, now)
    }

    /// A caller asks for `key` at `now`, waiting at most until `deadline`. With
    /// `bypass_cache` the cache is not consulted and the upstream is asked to skip its own.
    ///
    /// On [`Ask::Wait`], the answer comes from [`poll_wake`](Self::poll_wake); drain
    /// [`poll_transmit`](Self::poll_transmit) first.
    pub fn request(
        &mut self,
        key: &CacheKey<'_>,
        now: u64,
        deadline: u64,
        bypass_cache: bool,
    ) -> Result<Ask<'_>, EngineError> {
        if !bypass_cache && self.lookup(key, now).token().is_some() {
            return match self.cache.peek(key, now) {
                Lookup::Fresh(t) | Lookup::Stale(t) => Ok(Ask::Ready(t)),
                Lookup::Missing => Err(EngineError::Key(CacheError::Expired)),
            };
        }
        self.sweep();
        let free = self
            .waiters
            .iter()
            .position(Option::is_none)
            .ok_or(EngineError::WaitersFull)?;
        let flight = self.flight_for(key, bypass_cache, now)?;
        let serial = self.next_serial();
        if let Some(f) = self.flights.get_mut(flight).and_then(Option::as_mut) {
            f.waiters = f.waiters.saturating_add(1);
        }
        if let Some(w) = self.waiters.get_mut(free) {
            *w = Some(Waiter {
                serial,
                flight: Some(slot_u16(flight)),
                deadline,
            });
        }
        Ok(Ask::Wait(Ticket {
            slot: slot_u16(free),
            serial,
        }))
    }

    /// The caller holding `ticket` stopped waiting; its answer will not be asked for. True if
    /// the ticket was live.
    pub fn cancel(&mut self, ticket: Ticket) -> bool {
        let Some(w) = self
            .waiters
            .get_mut(usize::from(ticket.slot))
            .and_then(|w| w.take_if(|w| w.serial == ticket.serial))
        else {
            return false;
        };
        self.detach(w.flight);
        self.sweep();
        true
    }

    fn detach(&mut self, flight: Option<u16>) {
        if let Some(f) = flight
            .and_then(|i| self.flights.get_mut(usize::from(i)))
            .and_then(Option::as_mut)
        {
            f.waiters = f.waiters.saturating_sub(1);
        }
    }

    /// The next upstream request to start at `now`, if any is due and the limiter admits it.
    /// The shell MUST report its end with [`handle_reply`](Self::handle_reply) (a timeout
    /// included: the shell bounds each attempt).
    pub fn poll_transmit(&mut self, now: u64) -> Option<Transmit<'_>> {
        self.sweep();
        if self.limiter.as_ref().is_some_and(|l| !l.has_free_slot()) {
            return None;
        }
        let (i, _) = self
            .flights
            .iter()
            .enumerate()
            .filter_map(|(i, f)| match f.as_ref()?.phase {
                Phase::Queued { ready_at } if ready_at <= now => Some((i, ready_at)),
                _ => None,
            })
            .min_by_key(|&(_, at)| at)?;
        if let Some(l) = self.limiter.as_mut()
            && l.try_acquire(now).is_err()
        {
            return None;
        }
        let f = self.flights.get_mut(i)?.as_mut()?;
        f.phase = Phase::InFlight;
        f.attempts = f.attempts.saturating_add(1);
        let f = self.flights.get(i)?.as_ref()?;
        Some(Transmit {
            flight: FlightId {
                slot: slot_u16(i),
                serial: f.serial,
            },
            key: f.key.key(),
            bypass_cache: f.bypass_cache,
            attempt: f.attempts,
        })
    }

    /// An upstream attempt of `flight` ended at `now` with `reply`. A token goes into the
    /// cache; a failure is retried or ends the flight, by the retry policy.
    pub fn handle_reply(
        &mut self,
        flight: FlightId,
        now: u64,
        reply: Reply<'_>,
    ) -> Result<(), EngineError> {
        let f = self
            .flights
            .get_mut(usize::from(flight.slot))
            .and_then(Option::as_mut)
            .filter(|f| f.serial == flight.serial && matches!(f.phase, Phase::InFlight))
            .ok_or(EngineError::UnknownFlight)?;
        if let Some(l) = self.limiter.as_mut() {
            l.release();
        }
        let attempts = f.attempts;
        let stored = match reply {
            Reply::Token(token) => match self.cache.insert(&f.key.key(), &token, now) {
                Ok(()) => {
                    f.phase = Phase::Succeeded;
                    f.last = None;
                    self.sweep();
                    return Ok(());
                }
                Err(e) => StoredFailure::new(StoredCause::NotStored(e), attempts),
            },
            Reply::Service(e) => StoredFailure::service(&e, attempts),
            Reply::Timeout => StoredFailure::new(StoredCause::Timeout, attempts),
            Reply::ConnectFailed => StoredFailure::new(StoredCause::ConnectFailed, attempts),
            Reply::Io => StoredFailure::new(StoredCause::Io, attempts),
            Reply::InvalidResponse(e) => {
                StoredFailure::new(StoredCause::InvalidResponse(e), attempts)
            }
            Reply::Unsendable(e) => StoredFailure::new(StoredCause::Unsendable(e), attempts),
        };
        let decision = stored
            .cause
            .attempt()
            .map(|a| f.retry.on_outcome(now, a, next_random(&mut self.rng)));
        match decision {
            Some(Decision::Retry { at, .. }) => {
                f.phase = Phase::Queued { ready_at: at };
                f.last = Some(stored);
            }
            Some(Decision::GiveUp(reason)) => {
                let mut stored = stored;
                stored.retry = Some(reason);
                f.phase = Phase::Failed;
                f.last = Some(stored);
            }
            None => {
                f.phase = Phase::Failed;
                f.last = Some(stored);
            }
        }
        if f.is_done() && f.refresh {
            let at = now.saturating_add(self.config.refresh_retry_ms.max(1));
            self.cache.defer_refresh(&f.key.key(), at);
        }
        self.sweep();
        Ok(())
    }

    /// Time passed: callers whose deadline is at or before `now` get
    /// [`Answer::DeadlinePassed`] (from [`poll_wake`](Self::poll_wake)), expired tokens are
    /// dropped, and with refresh-ahead the tokens due are queued for refresh.
    pub fn handle_timeout(&mut self, now: u64) {
        for i in 0..W {
            let Some(w) = self.waiters.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            if w.flight.is_some() && w.deadline <= now {
                let flight = w.flight.take();
                self.detach(flight);
            }
        }
        self.sweep();
        self.cache.purge_expired(now);
        if self.config.refresh_ahead {
            for _ in 0..N {
                let Some((key, expires_at)) = self
                    .cache
                    .due(now)
                    .and_then(|t| Some((OwnedKey::<K>::new(&t.key).ok()?, t.expires_at)))
                else {
                    break;
                };
                self.start_refresh(&key, expires_at, now);
            }
        }
    }

    /// The next waiting caller whose answer is ready at `now`, if any. Drain it after every
    /// `handle_*` call.
    pub fn poll_wake(&mut self, now: u64) -> Option<Wake<'_>> {
        loop {
            let (slot, waiter) = self.waiters.iter().enumerate().find_map(|(i, w)| {
                let w = w.as_ref()?;
                let ready = match w.flight {
                    None => true,
                    Some(f) => self
                        .flights
                        .get(usize::from(f))
                        .and_then(Option::as_ref)
                        .is_some_and(Flight::is_done),
                };
                ready.then_some((i, *w))
            })?;
            let ticket = Ticket {
                slot: slot_u16(slot),
                serial: waiter.serial,
            };
            let Some(fi) = waiter.flight.map(usize::from) else {
                if let Some(w) = self.waiters.get_mut(slot) {
                    *w = None;
                }
                return Some(Wake {
                    ticket,
                    answer: Answer::DeadlinePassed,
                });
            };
            let f = self.flights.get_mut(fi)?.as_mut()?;
            let has_token = self.cache.peek(&f.key.key(), now).token().is_some();
            if !has_token && matches!(f.phase, Phase::Succeeded) {
                // The token expired or was evicted before its callers took it: fetch again.
                f.restart(self.config.retry, now);
                continue;
            }
            f.waiters = f.waiters.saturating_sub(1);
            if let Some(w) = self.waiters.get_mut(slot) {
                *w = None;
            }
            let f = self.flights.get(fi)?.as_ref()?;
            let answer = match (self.cache.peek(&f.key.key(), now).token(), &f.last) {
                (Some(t), _) => Answer::Token(*t),
                (None, Some(failure)) => Answer::Failed(failure.view()),
                (None, None) => return None,
            };
            return Some(Wake { ticket, answer });
        }
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next (Unix ms; may be in the
    /// past), `None` when nothing is due but events. It changes after every call that takes
    /// `&mut self`.
    pub fn poll_at(&self) -> Option<u64> {
        let deadlines = self
            .waiters
            .iter()
            .flatten()
            .filter(|w| w.flight.is_some())
            .map(|w| w.deadline);
        let can_send = self.limiter.as_ref().is_none_or(Limiter::has_free_slot);
        let admit_at = self.limiter.as_ref().map_or(0, Limiter::next_admission_at);
        let sends = self.flights.iter().flatten().filter_map(|f| match f.phase {
            Phase::Queued { ready_at } if can_send => Some(ready_at.max(admit_at)),
            _ => None,
        });
        let refresh = if self.config.refresh_ahead {
            self.cache.next_refresh_at()
        } else {
            None
        };
        deadlines.chain(sends).chain(refresh).min()
    }
}
