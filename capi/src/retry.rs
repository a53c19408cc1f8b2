//! `mitoken_retry`: the IMDS retry decision, with time passed in as milliseconds.

use core::ffi::c_char;

use mitoken_core::retry::{AttemptResult, Decision, RetryError, RetryPolicy, RetryState};

use crate::message;
use crate::raw::{self, Storage};
use crate::response::{mitoken_response, mitoken_response_kind};
use crate::result::mitoken_result;

/// The attempt got an HTTP answer other than a token (`status`, `retry_after`).
pub const MITOKEN_ATTEMPT_STATUS: u32 = 0;
/// The attempt timed out (your own timeout).
pub const MITOKEN_ATTEMPT_TIMEOUT: u32 = 1;
/// The connection could not be opened (refused, unreachable).
pub const MITOKEN_ATTEMPT_CONNECT_FAILED: u32 = 2;
/// Sending or receiving failed, or the connection closed early.
pub const MITOKEN_ATTEMPT_IO: u32 = 3;
/// The response was not valid HTTP or not a valid token (never retried).
pub const MITOKEN_ATTEMPT_INVALID_RESPONSE: u32 = 4;

/// Words (`uint64_t`) of a `mitoken_retry`.
pub const MITOKEN_RETRY_WORDS: usize = 24;
/// Bytes of a `mitoken_retry`.
pub const MITOKEN_RETRY_SIZE: usize = MITOKEN_RETRY_WORDS * 8;

/// Retry settings, all times in milliseconds. Get the documented IMDS guidance with
/// `mitoken_retry_policy_imds` and change fields if you must.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct mitoken_retry_policy {
    /// Exponential retries before giving up (IMDS: 5).
    pub max_retries: u8,
    /// `base` of the nominal delay `base * (2^(n-1) - 1)` (IMDS: 2000).
    pub base_delay_ms: u64,
    /// Longest delay before any retry (IMDS: 60000).
    pub max_delay_ms: u64,
    /// Shortest delay before retrying a 5xx or 429 (IMDS: 1000).
    pub min_server_delay_ms: u64,
    /// Spacing of the 410 retry slots (IMDS: 10000).
    pub gone_interval_ms: u64,
    /// How long after the first 410 the last 410 retry may lie (IMDS: 70000).
    pub gone_window_ms: u64,
    /// Most 410 retries (IMDS: 7).
    pub max_gone_retries: u8,
    /// No retry starts later than this after `mitoken_retry_start` (IMDS: 90000).
    pub deadline_ms: u64,
    /// Jitter in thousandths of the delay (IMDS: 200 = ±20 %).
    pub jitter_permille: u16,
}

impl From<RetryPolicy> for mitoken_retry_policy {
    fn from(p: RetryPolicy) -> Self {
        Self {
            max_retries: p.max_retries,
            base_delay_ms: p.base_delay_ms,
            max_delay_ms: p.max_delay_ms,
            min_server_delay_ms: p.min_server_delay_ms,
            gone_interval_ms: p.gone_interval_ms,
            gone_window_ms: p.gone_window_ms,
            max_gone_retries: p.max_gone_retries,
            deadline_ms: p.deadline_ms,
            jitter_permille: p.jitter_permille,
        }
    }
}

impl From<mitoken_retry_policy> for RetryPolicy {
    fn from(c: mitoken_retry_policy) -> Self {
        let mut p = RetryPolicy::IMDS;
        p.max_retries = c.max_retries;
        p.base_delay_ms = c.base_delay_ms;
        p.max_delay_ms = c.max_delay_ms;
        p.min_server_delay_ms = c.min_server_delay_ms;
        p.gone_interval_ms = c.gone_interval_ms;
        p.gone_window_ms = c.gone_window_ms;
        p.max_gone_retries = c.max_gone_retries;
        p.deadline_ms = c.deadline_ms;
        p.jitter_permille = c.jitter_permille;
        p
    }
}

/// How one failed attempt ended. Fill it with `mitoken_attempt_from_response` or
/// `mitoken_attempt_from_result`, or set `kind` to `MITOKEN_ATTEMPT_TIMEOUT`,
/// `MITOKEN_ATTEMPT_CONNECT_FAILED` or `MITOKEN_ATTEMPT_IO` for your transport's failures.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct mitoken_attempt {
    /// One of `MITOKEN_ATTEMPT_*`.
    pub kind: u32,
    /// `MITOKEN_ATTEMPT_STATUS`: the HTTP status.
    pub status: u16,
    /// `MITOKEN_ATTEMPT_STATUS`: true when the answer had a `Retry-After`.
    pub has_retry_after: bool,
    /// `MITOKEN_ATTEMPT_STATUS`: `Retry-After` in seconds.
    pub retry_after: u64,
}

impl mitoken_attempt {
    fn of(kind: u32) -> Self {
        Self {
            kind,
            status: 0,
            has_retry_after: false,
            retry_after: 0,
        }
    }

    fn to_core(self) -> Option<AttemptResult> {
        Some(match self.kind {
            MITOKEN_ATTEMPT_STATUS => AttemptResult::status(
                self.status,
                self.has_retry_after.then_some(self.retry_after),
            ),
            MITOKEN_ATTEMPT_TIMEOUT => AttemptResult::Timeout,
            MITOKEN_ATTEMPT_CONNECT_FAILED => AttemptResult::ConnectFailed,
            MITOKEN_ATTEMPT_IO => AttemptResult::Io,
            MITOKEN_ATTEMPT_INVALID_RESPONSE => AttemptResult::InvalidResponse,
            _ => return None,
        })
    }
}

/// Retry, or give up.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum mitoken_decision_kind {
    /// Start the next attempt at `at_ms` (`delay_ms` after the `now_ms` you passed). Not earlier.
    Retry = 1,
    /// Stop; `give_up` says why.
    GiveUp = 2,
}

/// Why the retry state gave up.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum mitoken_give_up {
    /// Not given up (the decision is a retry).
    None = 0,
    /// The status is never retried (4xx other than 404/410/429: fix the request). `status`.
    NotRetryable = 1,
    /// The response was not valid HTTP or token JSON.
    InvalidResponse = 2,
    /// All exponential retries were used. `attempts`.
    Exhausted = 3,
    /// IMDS kept answering 410 beyond its window. `attempts`.
    GoneTooLong = 4,
    /// The next retry would start after the deadline. `attempts`.
    DeadlineExceeded = 5,
    /// The service asked to wait longer than `max_delay_ms`. `status`, `retry_after`.
    RetryAfterTooLong = 6,
}

/// What `mitoken_retry_decide` decided.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct mitoken_decision {
    /// Retry or give up.
    pub kind: mitoken_decision_kind,
    /// Retry: when to start the next attempt (ms, your clock).
    pub at_ms: u64,
    /// Retry: `at_ms` minus the `now_ms` you passed.
    pub delay_ms: u64,
    /// Give up: why.
    pub give_up: mitoken_give_up,
    /// Failed attempts reported so far, counting this one.
    pub attempts: u32,
    /// Give up because of a status: the status.
    pub status: u16,
    /// `RETRY_AFTER_TOO_LONG`: the `Retry-After` in seconds.
    pub retry_after: u64,
}

impl mitoken_decision {
    fn of(d: Decision, attempts: u32) -> Self {
        let mut out = Self {
            kind: mitoken_decision_kind::GiveUp,
            at_ms: 0,
            delay_ms: 0,
            give_up: mitoken_give_up::None,
            attempts,
            status: 0,
            retry_after: 0,
        };
        match d {
            Decision::Retry { at, delay } => {
                out.kind = mitoken_decision_kind::Retry;
                out.at_ms = at;
                out.delay_ms = delay;
            }
            Decision::GiveUp(e) => {
                out.give_up = match e {
                    RetryError::NotRetryable { status } => {
                        out.status = status;
                        mitoken_give_up::NotRetryable
                    }
                    RetryError::Exhausted { .. } => mitoken_give_up::Exhausted,
                    RetryError::GoneTooLong { .. } => mitoken_give_up::GoneTooLong,
                    RetryError::DeadlineExceeded { .. } => mitoken_give_up::DeadlineExceeded,
                    RetryError::RetryAfterTooLong { seconds, status } => {
                        out.status = status;
                        out.retry_after = seconds;
                        mitoken_give_up::RetryAfterTooLong
                    }
                    _ => mitoken_give_up::InvalidResponse,
                };
            }
        }
        out
    }
}

/// Storage for the retry state of one token acquisition. Opaque, like `mitoken_exchange`.
#[repr(C)]
pub struct mitoken_retry {
    /// Private.
    pub opaque: [u64; MITOKEN_RETRY_WORDS],
}

/// What the storage holds once started.
#[derive(Clone, Copy)]
pub(crate) struct State {
    retry: RetryState,
    gave_up: Option<RetryError>,
}

// SAFETY: a repr(C) struct holding only a `u64` array.
unsafe impl Storage for mitoken_retry {
    type State = State;
    const TAG: u64 = 0x6d69_746f_6b72_7431; // "mitokrt1"
    fn words(&mut self) -> &mut [u64] {
        &mut self.opaque
    }
}

const _: () = assert!(raw::fits::<mitoken_retry>());

fn code(r: Result<(), mitoken_result>) -> mitoken_result {
    r.map_or_else(|e| e, |()| mitoken_result::Ok)
}

/// The documented IMDS retry guidance, in `*policy`: 5 exponential retries of nominally
/// 0, 2, 6, 14 and 30 s (±20 %), ≥ 1 s before retrying a 5xx or 429, 410 polled every 10 s for
/// 70 s, nothing started after 90 s.
///
/// Returns `OK`, `NULL_ARGUMENT`, `MISALIGNED`.
///
/// # Safety
/// `policy` points to a writable `mitoken_retry_policy`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mitoken_retry_policy_imds(
    policy: *mut mitoken_retry_policy,
) -> mitoken_result {
    // SAFETY: `policy` is NULL or writable (contract).
    code(unsafe { raw::out(policy, RetryPolicy::IMDS.into()) })
}

/// Starts the retry state of one token acquisition in `r`; `now_ms` is when the first attempt
/// starts, on any monotonic millisecond clock you like (the same clock for every call).
/// `*policy` is copied.
///
/// Returns `OK`, `NULL_ARGUMENT`, `MISALIGNED`.
///
/// # Safety
/// `r` points to a `mitoken_retry`, `policy` to a valid `mitoken_retry_policy`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mitoken_retry_start(
    r: *mut mitoken_retry,
    policy: *const mitoken_retry_policy,
    now_ms: u64,
) -> mitoken_result {
    // SAFETY: `policy` is NULL or valid (contract).
    let policy = match unsafe { raw::get(policy) } {
        Ok(p) => *p,
        Err(e) => return e,
    };
    // SAFETY: `r` is NULL or valid, exclusive storage (contract).
    let storage = match unsafe { raw::storage(r) } {
        Ok(s) => s,
        Err(e) => return e,
    };
    raw::put(
        storage,
        State {
            retry: RetryState::new(policy.into(), now_ms),
            gave_up: None,
        },
    );
    mitoken_result::Ok
}

/// Reports a failed attempt that ended at `now_ms` and decides: `*decision` says when to retry
/// or why to give up. `random` is a uniformly random number you drew (the jitter; `rand()` is
/// fine, a constant makes every client retry in lock-step). Once it gives up it keeps giving
/// up with the same reason.
///
/// Returns `OK`; `INVALID_ARGUMENT` (unknown `attempt->kind`); `MISUSE` (not started);
/// `NULL_ARGUMENT`, `MISALIGNED`.
///
/// # Safety
/// `r` points to a `mitoken_retry`, `attempt` to a valid `mitoken_attempt`, `decision` to a
/// writable `mitoken_decision`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mitoken_retry_decide(
    r: *mut mitoken_retry,
    now_ms: u64,
    attempt: *const mitoken_attempt,
    random: u32,
    decision: *mut mitoken_decision,
) -> mitoken_result {
    if decision.is_null() {
        return mitoken_result::NullArgument;
    }
    // SAFETY: `attempt` is NULL or valid (contract).
    let attempt = match unsafe { raw::get(attempt) } {
        Ok(a) => *a,
        Err(e) => return e,
    };
    let Some(attempt) = attempt.to_core() else {
        return mitoken_result::InvalidArgument;
    };
    // SAFETY: `r` is NULL or valid, exclusive storage (contract).
    let storage = match unsafe { raw::storage(r) } {
        Ok(s) => s,
        Err(e) => return e,
    };
    let Some(state) = raw::state(storage) else {
        return mitoken_result::Misuse;
    };
    let d = state.retry.on_outcome(now_ms, attempt, random);
    if let Decision::GiveUp(e) = d {
        state.gave_up = Some(e);
    }
    let out = mitoken_decision::of(d, state.retry.attempts());
    // SAFETY: `decision` is writable (contract; NULL checked above).
    code(unsafe { raw::out(decision, out) })
}

/// The latest time (ms) a retry may start: the `now_ms` given to `mitoken_retry_start` plus
/// `deadline_ms`, in `*at_ms`. Bound each attempt's own timeout with it.
///
/// Returns `OK`, `MISUSE` (not started), `NULL_ARGUMENT`, `MISALIGNED`.
///
/// # Safety
/// `r` points to a `mitoken_retry`, `at_ms` to a writable `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mitoken_retry_deadline(
    r: *mut mitoken_retry,
    at_ms: *mut u64,
) -> mitoken_result {
    // SAFETY: `r` is NULL or valid, exclusive storage (contract).
    let storage = match unsafe { raw::storage(r) } {
        Ok(s) => s,
        Err(e) => return e,
    };
    let Some(state) = raw::state(storage) else {
        return mitoken_result::Misuse;
    };
    let at = state.retry.deadline_at();
    // SAFETY: `at_ms` is NULL or writable (contract).
    code(unsafe { raw::out(at_ms, at) })
}

/// Explains why the retry state gave up, like `mitoken_exchange_error_text` (NUL-terminated,
/// never truncated, 256 bytes suffice; empty if it has not given up).
///
/// Returns `OK`, `BUFFER_TOO_SMALL`, `MISUSE` (not started), `NULL_ARGUMENT`, `MISALIGNED`.
///
/// # Safety
/// `r` points to a `mitoken_retry`, `text` to `cap` writable bytes, `len` to a `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mitoken_retry_error_text(
    r: *mut mitoken_retry,
    text: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> mitoken_result {
    // SAFETY: `r` is NULL or valid, exclusive storage (contract).
    let storage = match unsafe { raw::storage(r) } {
        Ok(s) => s,
        Err(e) => return e,
    };
    let Some(state) = raw::state(storage) else {
        return mitoken_result::Misuse;
    };
    let gave_up = state.gave_up;
    // SAFETY: `text` is NULL or `cap` writable bytes (contract).
    let text = match unsafe { raw::bytes_mut(text.cast::<u8>(), cap) } {
        Ok(t) => t,
        Err(e) => return e,
    };
    let (result, n) = match gave_up {
        Some(e) => message::write(text, e),
        None => message::write(text, ""),
    };
    // SAFETY: `len` is NULL or writable (contract).
    match unsafe { raw::out(len, n) } {
        Ok(()) => result,
        Err(e) => e,
    }
}

/// The attempt a parsed answer amounts to (`MITOKEN_ATTEMPT_STATUS` with its status and
/// `Retry-After`), in `*attempt`. Use it for a `MITOKEN_RESPONSE_KIND_SERVICE_ERROR`; a token
/// is success, not an attempt to retry.
///
/// Returns `OK`, `NULL_ARGUMENT`, `MISALIGNED`.
///
/// # Safety
/// `response` points to a `mitoken_response` written by `mitoken_exchange_finish`, `attempt`
/// to a writable `mitoken_attempt`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mitoken_attempt_from_response(
    response: *const mitoken_response,
    attempt: *mut mitoken_attempt,
) -> mitoken_result {
    // SAFETY: `response` is NULL or a valid response (contract).
    let response = match unsafe { raw::get(response) } {
        Ok(r) => r,
        Err(e) => return e,
    };
    let status = match response.kind {
        mitoken_response_kind::Token => 200,
        mitoken_response_kind::ServiceError => response.status,
    };
    let a = mitoken_attempt {
        kind: MITOKEN_ATTEMPT_STATUS,
        status,
        has_retry_after: response.has_retry_after,
        retry_after: response.retry_after,
    };
    // SAFETY: `attempt` is NULL or writable (contract).
    code(unsafe { raw::out(attempt, a) })
}

/// The attempt an exchange error amounts to, in `*attempt`: `CLOSED_EARLY` is
/// `MITOKEN_ATTEMPT_IO` (retried); every other error is `MITOKEN_ATTEMPT_INVALID_RESPONSE`
/// (the same request would fail the same way).
///
/// Returns `OK`, `INVALID_ARGUMENT` (`result` is not an error code), `NULL_ARGUMENT`, `MISALIGNED`.
///
/// # Safety
/// `attempt` points to a writable `mitoken_attempt`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mitoken_attempt_from_result(
    result: i32,
    attempt: *mut mitoken_attempt,
) -> mitoken_result {
    if result >= 0 {
        return mitoken_result::InvalidArgument;
    }
    let kind = if result == mitoken_result::ClosedEarly as i32 {
        MITOKEN_ATTEMPT_IO
    } else {
        MITOKEN_ATTEMPT_INVALID_RESPONSE
    };
    // SAFETY: `attempt` is NULL or writable (contract).
    code(unsafe { raw::out(attempt, mitoken_attempt::of(kind)) })
}
