//! The IMDS retry policy (protocol §1.10): which failed attempts to retry, and when.
//!
//! Pure and sans-I/O: the shell reports each failed attempt to a [`RetryState`] together with
//! the current time and a random `u32` it drew, and gets back a [`Decision`]: retry at an
//! absolute time, or give up with a [`RetryError`]. The core never reads a clock and draws no
//! randomness of its own, so a schedule is fully determined by its inputs and testable under a
//! virtual clock.
//!
//! Times are milliseconds on the caller's clock (any monotonic origin); durations are
//! milliseconds. `Retry-After` comes in as seconds, as [`ServiceError`] carries it.
//!
//! # What is retried
//!
//! | result | retried? | back-off |
//! |---|---|---|
//! | 404 (IMDS updating) | yes | exponential |
//! | 410 (IMDS updating, back within 70 s) | yes | fixed 10 s slots for ≥ 70 s |
//! | 429 (throttled) | yes | exponential, at least 1 s |
//! | 500–599 | yes | exponential, at least 1 s |
//! | timeout, connection failure, I/O error | yes | exponential |
//! | any other status (other 4xx, 1xx–3xx, ≥ 600) | never | — |
//! | invalid response (bad HTTP or token JSON) | never | — |
//!
//! # The exponential schedule
//!
//! The *n*-th exponential retry (n = 1, 2, …) has the nominal delay
//! `base · (2ⁿ⁻¹ − 1)`, capped at `max_delay`: with the defaults (base 2 s, cap 60 s) that is
//! 0, 2, 6, 14, 30 s — exactly the "resulting delays" of the documented `ExponentialBackoff`
//! (retry count 5, min 0 s, max 60 s, delta 2 s, no fast first retry). Then:
//!
//! 1. **Jitter** is symmetric: the delay is drawn uniformly from
//!    `nominal · (1 ± jitter_permille / 1000)`, with `random = 0` giving the low end and
//!    `random = u32::MAX` the high end. A zero nominal delay stays zero. Symmetric jitter keeps
//!    the documented values as the centre of each range ("≈ 2 s").
//! 2. **Floor**: a 5xx or a 429 waits at least `min_server_delay` (1 s), so the first retry of
//!    a 5xx is never immediate (the documentation requires ≥ 1 s for 5xx; we apply the same
//!    floor to 429 because an immediate retry of a throttled request only extends the throttle).
//! 3. **Cap**: the delay is at most `max_delay` (60 s).
//! 4. **`Retry-After`** is honoured: the retry is never earlier than it says. A `Retry-After`
//!    longer than `max_delay` is not shortened — the state gives up with
//!    [`RetryError::RetryAfterTooLong`] instead, so every delay is at most `max_delay` and
//!    never earlier than the service asked.
//!
//! After `max_retries` (5) exponential retries the state gives up with
//! [`RetryError::Exhausted`].
//!
//! # 410 Gone
//!
//! IMDS answers 410 while it is being updated and promises to be back within 70 s. Exponential
//! back-off fits badly (5 retries reach only 52 s, with gaps up to 30 s), so 410 follows the
//! MSAL approach of linear polling: the *k*-th 410 retry is scheduled at the slot
//! `first_410 + k · gone_interval` (k = 1, 2, …), plus up to `jitter_permille` of an interval of
//! *upward* jitter, for slots with `k · gone_interval ≤ gone_window` and at most
//! `max_gone_retries` of them. With the defaults that is one attempt every 10 s, 7 retries, the
//! last starting 70–72 s after the first 410 — never before the documented 70 s have passed.
//! Slots anchor on the first 410, so slow attempts do not stretch the window; a slot that has
//! already passed is skipped (at most one request per interval). 410 retries do not use up the
//! exponential retries, and vice versa. `Retry-After` on a 410 is honoured as above.
//!
//! # The deadline
//!
//! No retry is scheduled later than `started + deadline` (90 s by default): if the retry time
//! computed above is past the deadline, the state gives up with
//! [`RetryError::DeadlineExceeded`] rather than retrying early. The deadline bounds when an
//! attempt may *start*; bound each attempt's own timeout with [`RetryState::deadline_at`] if
//! the whole operation must end by then.
//!
//! ```
//! use mitoken_core::retry::{AttemptResult, Decision, RetryPolicy, RetryState};
//!
//! let mut state = RetryState::new(RetryPolicy::IMDS, 0);
//! // The first attempt timed out at t = 2 s: the first exponential retry is immediate.
//! let d = state.on_outcome(2_000, AttemptResult::Timeout, 0);
//! assert_eq!(d, Decision::Retry { at: 2_000, delay: 0 });
//! // The retry got a 503 at t = 3 s: nominal 2 s ± 20 %; the random value picks the middle.
//! let d = state.on_outcome(3_000, AttemptResult::status(503, None), u32::MAX / 2);
//! assert_eq!(d, Decision::Retry { at: 4_999, delay: 1_999 });
//! // A 400 is never retried.
//! assert!(matches!(state.on_outcome(5_000, AttemptResult::status(400, None), 0), Decision::GiveUp(_)));
//! ```
//!
//! [`ServiceError`]: crate::token::ServiceError

use core::fmt;

use crate::client::ClientError;
use crate::token::ServiceError;

/// Milliseconds in a second.
const MS_PER_S: u64 = 1_000;

/// Retry settings. Start from [`RetryPolicy::IMDS`] (also the [`Default`]) and change fields.
///
/// Every combination of values is accepted; the arithmetic saturates, and a
/// `jitter_permille` above 1000 counts as 1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Exponential retries before giving up (attempts = retries + 1). Default 5.
    pub max_retries: u8,
    /// The "delta back-off" `base` of `base · (2ⁿ⁻¹ − 1)`, in ms. Default 2000.
    pub base_delay_ms: u64,
    /// Longest delay before any retry, in ms. Default 60 000.
    pub max_delay_ms: u64,
    /// Shortest delay before retrying a 5xx or a 429, in ms. Default 1000.
    pub min_server_delay_ms: u64,
    /// Spacing of the 410 retry slots, in ms. Default 10 000.
    pub gone_interval_ms: u64,
    /// How long after the first 410 the last 410 retry slot may lie, in ms. Default 70 000.
    pub gone_window_ms: u64,
    /// Most 410 retries. Default 7.
    pub max_gone_retries: u8,
    /// No retry starts later than this long after [`RetryState::new`], in ms. Default 90 000.
    pub deadline_ms: u64,
    /// Jitter as a fraction of the delay, in thousandths (200 = ±20 %). Default 200.
    pub jitter_permille: u16,
}

impl RetryPolicy {
    /// The documented IMDS guidance: 5 exponential retries of nominally 0, 2, 6, 14 and 30 s
    /// (cap 60 s) with ±20 % jitter, ≥ 1 s before retrying a 5xx or 429, 410 polled every
    /// 10 s for 70 s, everything within 90 s.
    pub const IMDS: Self = Self {
        max_retries: 5,
        base_delay_ms: 2_000,
        max_delay_ms: 60_000,
        min_server_delay_ms: 1_000,
        gone_interval_ms: 10_000,
        gone_window_ms: 70_000,
        max_gone_retries: 7,
        deadline_ms: 90_000,
        jitter_permille: 200,
    };

    /// The nominal (unjittered, unfloored) delay before the `n`-th exponential retry
    /// (`n` ≥ 1): `base · (2ⁿ⁻¹ − 1)`, capped at `max_delay_ms`. `n = 0` is 0.
    pub const fn nominal_delay_ms(&self, n: u32) -> u64 {
        if n == 0 {
            return 0;
        }
        let factor = match 1u64.checked_shl(n - 1) {
            Some(f) => f - 1,
            None => u64::MAX,
        };
        let d = self.base_delay_ms.saturating_mul(factor);
        if d > self.max_delay_ms {
            self.max_delay_ms
        } else {
            d
        }
    }

    const fn jitter(&self) -> u64 {
        if self.jitter_permille > 1000 {
            1000
        } else {
            self.jitter_permille as u64
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::IMDS
    }
}

/// Whether IMDS guidance retries this HTTP status: 404, 410, 429 and 500–599.
pub const fn is_retryable_status(status: u16) -> bool {
    matches!(status, 404 | 410 | 429 | 500..=599)
}

/// What one failed attempt ended with. Report only failures: a token is success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptResult {
    /// The service answered with a non-200 status.
    Status {
        /// HTTP status code.
        status: u16,
        /// `Retry-After` in seconds, if the response had one.
        retry_after: Option<u64>,
    },
    /// The attempt took too long (the shell's own timeout).
    Timeout,
    /// The connection could not be opened (refused, unreachable, …).
    ConnectFailed,
    /// The connection failed while sending or receiving, or closed before the response was
    /// complete.
    Io,
    /// The response was not valid HTTP or not a valid token; retrying would not help.
    InvalidResponse,
}

impl AttemptResult {
    /// A status answer.
    pub const fn status(status: u16, retry_after: Option<u64>) -> Self {
        Self::Status {
            status,
            retry_after,
        }
    }

    /// Whether this result is retried at all (ignoring counts and the deadline).
    pub const fn is_retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => is_retryable_status(*status),
            Self::Timeout | Self::ConnectFailed | Self::Io => true,
            Self::InvalidResponse => false,
        }
    }
}

impl From<&ServiceError<'_>> for AttemptResult {
    fn from(e: &ServiceError<'_>) -> Self {
        Self::status(e.status, e.retry_after)
    }
}

impl From<ClientError> for AttemptResult {
    /// [`ClientError::ClosedEarly`] is an I/O failure (retried); every other client error is
    /// [`AttemptResult::InvalidResponse`] (the same request would fail the same way).
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::ClosedEarly => Self::Io,
            _ => Self::InvalidResponse,
        }
    }
}

impl fmt::Display for AttemptResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status {
                status,
                retry_after: Some(s),
            } => write!(f, "HTTP {status}, Retry-After {s} s"),
            Self::Status { status, .. } => write!(f, "HTTP {status}"),
            Self::Timeout => f.write_str("timeout"),
            Self::ConnectFailed => f.write_str("connection failed"),
            Self::Io => f.write_str("connection error"),
            Self::InvalidResponse => f.write_str("invalid response"),
        }
    }
}

/// Why the retry state gave up. `last` is the failure that ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryError {
    /// The status is never retried: a 4xx other than 404/410/429 (a design-time error — fix the
    /// request), or a status that is not an error at all.
    NotRetryable {
        /// The HTTP status.
        status: u16,
    },
    /// The response was not valid HTTP or token JSON.
    InvalidResponse,
    /// All `max_retries` exponential retries were used.
    Exhausted {
        /// Attempts made, counting the first.
        attempts: u32,
        /// The last failure.
        last: AttemptResult,
    },
    /// IMDS kept answering 410 past the 410 window (or `max_gone_retries`).
    GoneTooLong {
        /// Attempts made, counting the first.
        attempts: u32,
    },
    /// The next retry would start after the overall deadline.
    DeadlineExceeded {
        /// Attempts made, counting the first.
        attempts: u32,
        /// The last failure.
        last: AttemptResult,
    },
    /// The service asked to wait longer than `max_delay_ms`.
    RetryAfterTooLong {
        /// The `Retry-After` value, in seconds.
        seconds: u64,
        /// The HTTP status it came with.
        status: u16,
    },
}

impl fmt::Display for RetryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotRetryable { status } => {
                write!(f, "HTTP {status} is not retried: fix the request")
            }
            Self::InvalidResponse => f.write_str("invalid response; not retried"),
            Self::Exhausted { attempts, last } => {
                write!(f, "gave up after {attempts} attempts, the last: {last}")
            }
            Self::GoneTooLong { attempts } => write!(
                f,
                "IMDS kept answering 410 (updating) beyond its window; gave up after {attempts} attempts"
            ),
            Self::DeadlineExceeded { attempts, last } => write!(
                f,
                "retry deadline reached after {attempts} attempts, the last: {last}"
            ),
            Self::RetryAfterTooLong { seconds, status } => write!(
                f,
                "HTTP {status} asked to retry after {seconds} s, longer than the maximum back-off"
            ),
        }
    }
}

impl core::error::Error for RetryError {}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Decision {
    /// Start the next attempt at `at` (ms, the caller's clock), i.e. `delay` ms after the
    /// `now` that was passed in. Not earlier.
    Retry {
        /// When to retry.
        at: u64,
        /// `at − now`.
        delay: u64,
    },
    /// Stop and report this error (together with the last response, which the shell holds).
    GiveUp(RetryError),
}

/// The retry state of one token acquisition. See the [module](self) docs for the schedule.
///
/// Create it when the first attempt starts; feed every failed attempt to
/// [`on_outcome`](Self::on_outcome). After a [`Decision::GiveUp`] every further call gives up
/// with the same error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryState {
    policy: RetryPolicy,
    started: u64,
    attempts: u32,
    retries: u8,
    gone_retries: u8,
    first_gone: Option<u64>,
    gave_up: Option<RetryError>,
}

impl RetryState {
    /// A fresh state; `now` (ms) is when the first attempt starts and anchors the deadline.
    pub const fn new(policy: RetryPolicy, now: u64) -> Self {
        Self {
            policy,
            started: now,
            attempts: 0,
            retries: 0,
            gone_retries: 0,
            first_gone: None,
            gave_up: None,
        }
    }

    /// The policy.
    pub const fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The latest time (ms) at which a retry may start: `started + deadline_ms`.
    pub const fn deadline_at(&self) -> u64 {
        self.started.saturating_add(self.policy.deadline_ms)
    }

    /// Failed attempts reported so far.
    pub const fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Reports the failed attempt that ended at `now` (ms) with `result`; `random` is a
    /// uniformly random value the caller drew for the jitter. Returns when to retry, or why
    /// not to.
    pub fn on_outcome(&mut self, now: u64, result: AttemptResult, random: u32) -> Decision {
        if let Some(e) = self.gave_up {
            return Decision::GiveUp(e);
        }
        self.attempts = self.attempts.saturating_add(1);
        let decision = self.decide(now, result, random);
        match decision {
            Ok((at, delay)) => Decision::Retry { at, delay },
            Err(e) => {
                self.gave_up = Some(e);
                Decision::GiveUp(e)
            }
        }
    }

    fn decide(
        &mut self,
        now: u64,
        result: AttemptResult,
        random: u32,
    ) -> Result<(u64, u64), RetryError> {
        let p = self.policy;
        let (status, retry_after) = match result {
            AttemptResult::Status {
                status,
                retry_after,
            } => (Some(status), retry_after),
            AttemptResult::InvalidResponse => return Err(RetryError::InvalidResponse),
            AttemptResult::Timeout | AttemptResult::ConnectFailed | AttemptResult::Io => {
                (None, None)
            }
        };
        if let Some(status) = status
            && !is_retryable_status(status)
        {
            return Err(RetryError::NotRetryable { status });
        }
        // Never earlier than Retry-After; never longer than the cap.
        let min_wait = match (status, retry_after) {
            (Some(status), Some(seconds)) => {
                let ms = seconds.saturating_mul(MS_PER_S);
                if ms > p.max_delay_ms {
                    return Err(RetryError::RetryAfterTooLong { seconds, status });
                }
                ms
            }
            _ => 0,
        };
        let (delay, commit) = if status == Some(410) {
            self.gone_delay(now, random)?
        } else {
            self.exponential_delay(status, random, result)?
        };
        let delay = delay.max(min_wait);
        let at = now.saturating_add(delay);
        if at > self.deadline_at() {
            return Err(RetryError::DeadlineExceeded {
                attempts: self.attempts,
                last: result,
            });
        }
        match commit {
            Commit::Exponential => self.retries = self.retries.saturating_add(1),
            Commit::Gone { k, first } => {
                self.gone_retries = k;
                self.first_gone = Some(first);
            }
        }
        Ok((at, delay))
    }

    fn exponential_delay(
        &self,
        status: Option<u16>,
        random: u32,
        last: AttemptResult,
    ) -> Result<(u64, Commit), RetryError> {
        let p = &self.policy;
        if self.retries >= p.max_retries {
            return Err(RetryError::Exhausted {
                attempts: self.attempts,
                last,
            });
        }
        let n = u32::from(self.retries) + 1;
        let mut delay = symmetric_jitter(p.nominal_delay_ms(n), p.jitter(), random);
        if matches!(status, Some(429 | 500..=599)) {
            delay = delay.max(p.min_server_delay_ms);
        }
        Ok((delay.min(p.max_delay_ms), Commit::Exponential))
    }

    fn gone_delay(&self, now: u64, random: u32) -> Result<(u64, Commit), RetryError> {
        let p = &self.policy;
        let first = self.first_gone.unwrap_or(now);
        let gone_for = now.saturating_sub(first);
        // The next slot strictly ahead of now (slots already passed are skipped), and at least
        // one slot after the previous 410 retry.
        let passed = gone_for
            .checked_div(p.gone_interval_ms)
            .unwrap_or(0)
            .saturating_add(1);
        let k = passed.max(u64::from(self.gone_retries).saturating_add(1));
        let slot_offset = k.saturating_mul(p.gone_interval_ms);
        let k8 = u8::try_from(k).unwrap_or(u8::MAX);
        if k > u64::from(p.max_gone_retries) || slot_offset > p.gone_window_ms {
            return Err(RetryError::GoneTooLong {
                attempts: self.attempts,
            });
        }
        let span = mul_div(p.gone_interval_ms, p.jitter(), 1000);
        let jitter = mul_div(span, u64::from(random), u64::from(u32::MAX));
        let at = first.saturating_add(slot_offset).saturating_add(jitter);
        let delay = at.saturating_sub(now).min(p.max_delay_ms);
        Ok((delay, Commit::Gone { k: k8, first }))
    }
}

/// State changes to apply once the retry is known to fit the deadline.
enum Commit {
    Exponential,
    Gone { k: u8, first: u64 },
}

/// `a · b / c` without overflow (c > 0), saturating at `u64::MAX`.
fn mul_div(a: u64, b: u64, c: u64) -> u64 {
    let q = u128::from(a)
        .saturating_mul(u128::from(b))
        .checked_div(u128::from(c))
        .unwrap_or(0);
    u64::try_from(q).unwrap_or(u64::MAX)
}

/// `nominal` ± `permille`/1000 of it, chosen by `random` (0 → low end, `u32::MAX` → high end).
fn symmetric_jitter(nominal: u64, permille: u64, random: u32) -> u64 {
    let span = mul_div(nominal, permille, 1000);
    let low = nominal.saturating_sub(span);
    let offset = mul_div(
        span.saturating_mul(2),
        u64::from(random),
        u64::from(u32::MAX),
    );
    low.saturating_add(offset)
}
