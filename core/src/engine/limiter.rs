//! The upstream limiter: IMDS's limits for the identity category (protocol.md §1.11), 20
//! requests per second **and** 5 concurrent requests per VM.
//!
//! A token bucket refilled continuously (burst = `burst` requests) plus a count of requests in
//! flight. Time comes in as milliseconds on any clock that does not go backwards (an earlier
//! `now` counts as no time passing). The token engine uses it to hold back its own upstream
//! requests; the emulator's `--throttle` uses it to answer `429` the way IMDS does.

use core::fmt;

/// Microseconds in a millisecond.
const US_PER_MS: u64 = 1_000;
/// Microseconds in a second.
const US_PER_S: u64 = 1_000_000;

/// The limits a [`Limiter`] enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sustained requests per second (0 counts as 1).
    pub requests_per_second: u32,
    /// How many requests may start at once after a quiet period (0 counts as 1).
    pub burst: u32,
    /// Requests in flight at the same time.
    pub max_concurrent: u32,
}

impl Limits {
    /// IMDS's managed-identity limits: 20 requests/s (burst 20), 5 concurrent.
    pub const IMDS_IDENTITY: Self = Self {
        requests_per_second: 20,
        burst: 20,
        max_concurrent: 5,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::IMDS_IDENTITY
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitReason {
    /// More requests per second than allowed.
    Rate,
    /// Too many requests in flight.
    Concurrency,
}

/// A refused request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// The limit that refused it.
    pub reason: LimitReason,
    /// Milliseconds until the rate limit admits one more request; for
    /// [`LimitReason::Concurrency`] an estimate (1 s), since it depends on when a request ends.
    pub retry_after_ms: u64,
}

impl Refused {
    /// `retry_after_ms` in whole seconds, rounded up, at least 1 (a `Retry-After` value).
    pub const fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after_ms.div_ceil(1_000);
        if secs == 0 { 1 } else { secs }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            LimitReason::Rate => write!(
                f,
                "more requests per second than allowed; next slot in {} ms",
                self.retry_after_ms
            ),
            LimitReason::Concurrency => f.write_str("too many requests in flight"),
        }
    }
}

impl core::error::Error for Refused {}

/// The limiter. See the [module](self) docs.
#[derive(Debug, Clone)]
pub struct Limiter {
    limits: Limits,
    cost_us: u64,
    capacity_us: u64,
    credit_us: u64,
    last: Option<u64>,
    in_flight: u32,
}

impl Limiter {
    /// A limiter with `limits`, starting with a full bucket.
    pub const fn new(limits: Limits) -> Self {
        let rps = if limits.requests_per_second == 0 {
            1
        } else {
            limits.requests_per_second as u64
        };
        let burst = if limits.burst == 0 {
            1
        } else {
            limits.burst as u64
        };
        let cost_us = US_PER_S / rps;
        let capacity_us = cost_us.saturating_mul(burst);
        Self {
            limits,
            cost_us,
            capacity_us,
            credit_us: capacity_us,
            last: None,
            in_flight: 0,
        }
    }

    /// The limits enforced.
    pub const fn limits(&self) -> Limits {
        self.limits
    }

    /// Requests admitted and not yet [`release`](Self::release)d.
    pub const fn in_flight(&self) -> u32 {
        self.in_flight
    }

    fn refill(&mut self, now: u64) {
        if let Some(last) = self.last {
            let elapsed_us = now.saturating_sub(last).saturating_mul(US_PER_MS);
            self.credit_us = self
                .credit_us
                .saturating_add(elapsed_us)
                .min(self.capacity_us);
        }
        if self.last.is_none_or(|last| now > last) {
            self.last = Some(now);
        }
    }

    /// Admits a request starting at `now` (ms), or says which limit refuses it and for how long.
    /// A refused request uses up nothing. Every admitted request MUST be
    /// [`release`](Self::release)d when it ends.
    pub fn try_acquire(&mut self, now: u64) -> Result<(), Refused> {
        self.refill(now);
        if self.in_flight >= self.limits.max_concurrent {
            return Err(Refused {
                reason: LimitReason::Concurrency,
                retry_after_ms: 1_000,
            });
        }
        if self.credit_us < self.cost_us {
            return Err(Refused {
                reason: LimitReason::Rate,
                retry_after_ms: (self.cost_us - self.credit_us).div_ceil(US_PER_MS),
            });
        }
        self.credit_us -= self.cost_us;
        self.in_flight += 1;
        Ok(())
    }

    /// Ends an admitted request, freeing its concurrency slot.
    pub const fn release(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// True when a request could be admitted now as far as concurrency goes.
    pub const fn has_free_slot(&self) -> bool {
        self.in_flight < self.limits.max_concurrent
    }

    /// The earliest time (ms) at which the rate limit admits one more request, on the clock of
    /// the last [`try_acquire`](Self::try_acquire) (0 before any). Concurrency is not
    /// considered.
    pub const fn next_admission_at(&self) -> u64 {
        let Some(last) = self.last else { return 0 };
        last.saturating_add(
            self.cost_us
                .saturating_sub(self.credit_us)
                .div_ceil(US_PER_MS),
        )
    }

    /// The earliest time (ms, not before `now`) at which the rate limit admits one more
    /// request. Concurrency is not considered: a slot frees when a request ends.
    pub fn rate_ready_at(&self, now: u64) -> u64 {
        let elapsed_us = self
            .last
            .map_or(0, |last| now.saturating_sub(last).saturating_mul(US_PER_MS));
        let credit = self
            .credit_us
            .saturating_add(elapsed_us)
            .min(self.capacity_us);
        now.saturating_add(self.cost_us.saturating_sub(credit).div_ceil(US_PER_MS))
    }
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new(Limits::IMDS_IDENTITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_per_second_then_refused_for_50_ms() {
        let mut l = Limiter::default();
        for _ in 0..20 {
            l.try_acquire(0).unwrap();
            l.release();
        }
        let refused = l.try_acquire(0).unwrap_err();
        assert_eq!(refused.reason, LimitReason::Rate);
        assert_eq!(refused.retry_after_ms, 50);
        assert_eq!(refused.retry_after_secs(), 1);
        assert_eq!(l.rate_ready_at(0), 50);
        assert!(l.try_acquire(49).is_err());
        l.try_acquire(50).unwrap();
        l.release();
        assert_eq!(l.try_acquire(50).unwrap_err().retry_after_ms, 50);
        // A quiet period refills the burst and no more.
        for _ in 0..20 {
            l.try_acquire(10_000).unwrap();
            l.release();
        }
        assert!(l.try_acquire(10_000).is_err());
    }

    #[test]
    fn five_concurrent() {
        let mut l = Limiter::default();
        for _ in 0..5 {
            l.try_acquire(0).unwrap();
        }
        assert!(!l.has_free_slot());
        assert_eq!(
            l.try_acquire(0).unwrap_err().reason,
            LimitReason::Concurrency
        );
        l.release();
        l.try_acquire(0).unwrap();
        assert_eq!(l.in_flight(), 5);
    }

    #[test]
    fn odd_rates_and_backwards_time() {
        let mut l = Limiter::new(Limits {
            requests_per_second: 3,
            burst: 0,
            max_concurrent: 10,
        });
        l.try_acquire(1_000).unwrap();
        let e = l.try_acquire(1_100).unwrap_err();
        assert_eq!(e.retry_after_ms, 234);
        assert!(l.try_acquire(500).is_err());
        assert_eq!(l.rate_ready_at(1_100), 1_334);
    }
}
