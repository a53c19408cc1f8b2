//! Single-flight: the table of upstream requests, one per (key, `bypass_cache`), each with its
//! retry state, the callers waiting on it and, once done, its result.

use crate::cache::{CacheKey, OwnedKey};
use crate::retry::{RetryPolicy, RetryState};

use super::failure::StoredFailure;

/// Names one upstream request of an engine; stale ids are refused, never confused with a newer
/// request in the same slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlightId {
    pub(super) slot: u16,
    pub(super) serial: u32,
}

/// Where a flight is.
#[derive(Debug, Clone)]
pub(super) enum Phase {
    /// Waiting to be sent: not before `ready_at` (a retry's time), and when the limiter admits.
    Queued { ready_at: u64 },
    /// An attempt is with the shell.
    InFlight,
    /// Finished with a token (now in the cache).
    Succeeded,
    /// Finished without a token (the failure is the flight's `last`).
    Failed,
}

/// One upstream request.
#[derive(Debug, Clone)]
pub(super) struct Flight<const K: usize> {
    pub(super) serial: u32,
    pub(super) key: OwnedKey<K>,
    pub(super) bypass_cache: bool,
    /// Started (or joined) by refresh-ahead: a failure defers the cache entry's refresh.
    pub(super) refresh: bool,
    /// Callers attached and not yet answered.
    pub(super) waiters: u16,
    pub(super) phase: Phase,
    pub(super) retry: RetryState,
    /// Attempts sent.
    pub(super) attempts: u32,
    /// The last failed attempt: kept while retrying, the answer once failed.
    pub(super) last: Option<StoredFailure>,
}

impl<const K: usize> Flight<K> {
    pub(super) const fn new(
        serial: u32,
        key: OwnedKey<K>,
        bypass_cache: bool,
        policy: RetryPolicy,
        now: u64,
    ) -> Self {
        Self {
            serial,
            key,
            bypass_cache,
            refresh: false,
            waiters: 0,
            phase: Phase::Queued { ready_at: now },
            retry: RetryState::new(policy, now),
            attempts: 0,
            last: None,
        }
    }

    pub(super) fn is_for(&self, key: &CacheKey<'_>, bypass_cache: bool) -> bool {
        self.bypass_cache == bypass_cache && self.key.matches(key)
    }

    pub(super) const fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Succeeded | Phase::Failed)
    }

    /// Queued and asked for by no one: nothing would use its answer.
    pub(super) const fn is_orphan(&self) -> bool {
        self.waiters == 0 && !self.refresh && matches!(self.phase, Phase::Queued { .. })
    }

    /// Back to the queue with a fresh retry budget (its token vanished before a caller took it).
    pub(super) fn restart(&mut self, policy: RetryPolicy, now: u64) {
        self.phase = Phase::Queued { ready_at: now };
        self.retry = RetryState::new(policy, now);
        self.attempts = 0;
        self.last = None;
    }
}
