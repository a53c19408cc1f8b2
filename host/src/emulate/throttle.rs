//! `--throttle`: IMDS's limits for the identity category (docs/protocol.md §1.11): 20 requests per
//! second **and** 5 concurrent requests per VM; over either, `429` with `Retry-After`.
//!
//! The decisions are the core's [`Limiter`] (the same one the token engine paces its own
//! upstream requests with); this module shares it between connections and turns a
//! refusal into IMDS's answer. The concurrency slot is held by an RAII [`ThrottlePermit`].
//! Time comes in as an `Instant`, so tests drive a virtual clock.

use core::time::Duration;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use mitoken_core::engine::limiter::{LimitReason, Limiter, Limits, Refused};

use super::faults::FaultResponse;

/// The limits a [`Throttle`] enforces (the core's).
pub type ThrottleLimits = Limits;

/// Which limit refused a request.
pub type ThrottleReason = LimitReason;

/// A refused request: answer `429` with `Retry-After`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttled {
    /// The limit that refused it.
    pub reason: ThrottleReason,
    /// When a retry would be admitted by the rate limit (for concurrency: an estimate).
    pub retry_after: Duration,
}

impl Throttled {
    fn of(r: Refused) -> Self {
        Self {
            reason: r.reason,
            retry_after: Duration::from_millis(r.retry_after_ms),
        }
    }

    /// `retry_after` in whole seconds, rounded up, at least 1 (the `Retry-After` header value).
    pub fn retry_after_secs(&self) -> u32 {
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
    }

    /// The answer to send: `429 too_many_requests` with `Retry-After`.
    pub fn response(&self) -> FaultResponse {
        let mut response = FaultResponse::for_status(429);
        let description = match self.reason {
            ThrottleReason::Rate => "Too many requests: more than the allowed requests per second",
            ThrottleReason::Concurrency => "Too many requests: too many concurrent requests",
        };
        description.clone_into(&mut response.error_description);
        response.retry_after = Some(self.retry_after_secs());
        response
    }
}

#[derive(Debug)]
struct State {
    limiter: Limiter,
    /// The limiter's clock: milliseconds since this instant.
    origin: Instant,
}

/// The throttle; clones share the same state.
#[derive(Clone, Debug)]
pub struct Throttle {
    limits: ThrottleLimits,
    state: Arc<Mutex<State>>,
}

/// Admission for one request; dropping it (when the answer is written) frees its concurrency
/// slot.
#[derive(Debug)]
#[must_use = "the request counts as in flight only while the permit lives"]
pub struct ThrottlePermit {
    state: Arc<Mutex<State>>,
}

impl Drop for ThrottlePermit {
    fn drop(&mut self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.limiter.release();
    }
}

impl Throttle {
    /// A throttle with `limits`, starting with a full bucket.
    pub fn new(limits: ThrottleLimits) -> Self {
        Self {
            limits,
            state: Arc::new(Mutex::new(State {
                limiter: Limiter::new(limits),
                origin: Instant::now(),
            })),
        }
    }

    /// The limits enforced.
    pub fn limits(&self) -> ThrottleLimits {
        self.limits
    }

    /// Admits a request arriving at `now`, or says how long to wait. A refused request uses up
    /// nothing. `now` should not go backwards (an earlier `now` is treated as no time passing).
    pub fn try_acquire(&self, now: Instant) -> Result<ThrottlePermit, Throttled> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let ms = u64::try_from(now.saturating_duration_since(state.origin).as_millis())
            .unwrap_or(u64::MAX);
        state.limiter.try_acquire(ms).map_err(Throttled::of)?;
        Ok(ThrottlePermit {
            state: Arc::clone(&self.state),
        })
    }

    /// Requests currently holding a permit.
    pub fn in_flight(&self) -> u32 {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .limiter
            .in_flight()
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new(ThrottleLimits::IMDS_IDENTITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn twenty_per_second_then_429_with_retry_after() {
        let t = Throttle::default();
        let t0 = Instant::now();
        for i in 0..20 {
            drop(
                t.try_acquire(t0)
                    .unwrap_or_else(|e| panic!("request {i}: {e:?}")),
            );
        }
        let refused = t.try_acquire(t0).unwrap_err();
        assert_eq!(refused.reason, ThrottleReason::Rate);
        assert_eq!(refused.retry_after, ms(50));
        assert_eq!(refused.retry_after_secs(), 1);
        let body = refused.response();
        assert_eq!(
            (body.status, body.error.as_str()),
            (429, "too_many_requests")
        );
        assert_eq!(body.retry_after, Some(1));

        // Still throttled 49 ms later; one more is admitted at 50 ms, not two.
        assert!(t.try_acquire(t0 + ms(49)).is_err());
        drop(t.try_acquire(t0 + ms(50)).unwrap());
        let again = t.try_acquire(t0 + ms(50)).unwrap_err();
        assert_eq!(again.retry_after, ms(50));

        // A quiet second refills the whole burst, but no more.
        let later = t0 + Duration::from_secs(10);
        for _ in 0..20 {
            drop(t.try_acquire(later).unwrap());
        }
        assert!(t.try_acquire(later).is_err());
    }

    #[test]
    fn sustained_rate_is_twenty_per_second() {
        let t = Throttle::default();
        let t0 = Instant::now();
        // A client sending every 10 ms for 5 s: 500 attempts.
        let admitted = (0..500)
            .filter(|i| t.try_acquire(t0 + ms(i * 10)).is_ok())
            .count();
        // Initial burst of 20 plus 20/s over ~5 s.
        assert!((115..=121).contains(&admitted), "{admitted}");
    }

    #[test]
    fn five_concurrent_and_permits_release() {
        let t = Throttle::default();
        let t0 = Instant::now();
        let permits: Vec<_> = (0..5).map(|_| t.try_acquire(t0).unwrap()).collect();
        assert_eq!(t.in_flight(), 5);
        let refused = t.try_acquire(t0).unwrap_err();
        assert_eq!(refused.reason, ThrottleReason::Concurrency);
        assert_eq!(refused.response().retry_after, Some(1));
        drop(permits);
        assert_eq!(t.in_flight(), 0);
        let p = t.try_acquire(t0).unwrap();
        assert_eq!(t.clone().in_flight(), 1);
        drop(p);
        // Refused requests did not use up rate credit: 5 + 1 admitted so far, 14 left.
        for _ in 0..14 {
            drop(t.try_acquire(t0).unwrap());
        }
        assert_eq!(t.try_acquire(t0).unwrap_err().reason, ThrottleReason::Rate);
    }

    #[test]
    fn custom_limits_and_rounding() {
        let t = Throttle::new(ThrottleLimits {
            requests_per_second: 1,
            burst: 1,
            max_concurrent: 10,
        });
        let t0 = Instant::now();
        drop(t.try_acquire(t0).unwrap());
        let e = t.try_acquire(t0 + ms(100)).unwrap_err();
        assert_eq!(e.retry_after, ms(900));
        assert_eq!(e.retry_after_secs(), 1);
        let e = Throttled {
            reason: ThrottleReason::Rate,
            retry_after: ms(2001),
        };
        assert_eq!(e.retry_after_secs(), 3);
        // Time going backwards is no time passing.
        assert!(t.try_acquire(t0).is_err());
        assert_eq!(t.limits().requests_per_second, 1);
    }
}
