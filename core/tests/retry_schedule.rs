//! The IMDS retry schedule under a virtual clock (protocol §1.10).

use mitoken_core::client::ClientError;
use mitoken_core::retry::{
    AttemptResult, Decision, RetryError, RetryPolicy, RetryState, is_retryable_status,
};
use mitoken_core::token::ServiceError;

const MID: u32 = u32::MAX / 2;

fn status(s: u16) -> AttemptResult {
    AttemptResult::status(s, None)
}

/// Feeds `result` at `now` and expects a retry; returns the delay.
fn retry(state: &mut RetryState, now: u64, result: AttemptResult, random: u32) -> u64 {
    match state.on_outcome(now, result, random) {
        Decision::Retry { at, delay } => {
            assert_eq!(at, now + delay);
            delay
        }
        Decision::GiveUp(e) => panic!("gave up at {now} on {result}: {e}"),
    }
}

fn give_up(state: &mut RetryState, now: u64, result: AttemptResult, random: u32) -> RetryError {
    match state.on_outcome(now, result, random) {
        Decision::GiveUp(e) => e,
        d @ Decision::Retry { .. } => panic!("expected to give up, got {d:?}"),
    }
}

/// Runs the exponential schedule for `result` with attempts that take no time; returns delays.
fn delays(result: AttemptResult, random: u32) -> Vec<u64> {
    let mut s = RetryState::new(RetryPolicy::IMDS, 0);
    let mut now = 0;
    let mut out = Vec::new();
    while let Decision::Retry { at, delay } = s.on_outcome(now, result, random) {
        out.push(delay);
        now = at;
    }
    out
}

#[test]
fn default_schedule_is_the_documented_table() {
    // Midpoint jitter: the documented 0, 2, 6, 14, 30 s (to the millisecond of rounding).
    let d = delays(AttemptResult::Timeout, MID);
    assert_eq!(d.len(), 5);
    for (got, want) in d.iter().zip([0u64, 2_000, 6_000, 14_000, 30_000]) {
        assert!(got.abs_diff(want) <= 1, "{got} vs {want}");
    }
}

#[test]
fn jitter_bounds_at_extreme_random_values() {
    assert_eq!(
        delays(AttemptResult::Timeout, 0),
        [0, 1_600, 4_800, 11_200, 24_000]
    );
    assert_eq!(
        delays(AttemptResult::Timeout, u32::MAX),
        [0, 2_400, 7_200, 16_800, 36_000]
    );
    assert_eq!(
        delays(AttemptResult::ConnectFailed, u32::MAX),
        delays(AttemptResult::Io, u32::MAX)
    );
}

#[test]
fn nominal_delays_are_capped_and_never_overflow() {
    let p = RetryPolicy::IMDS;
    let nominal: Vec<u64> = (0..=8).map(|n| p.nominal_delay_ms(n)).collect();
    assert_eq!(
        nominal,
        [0, 0, 2_000, 6_000, 14_000, 30_000, 60_000, 60_000, 60_000]
    );
    for n in [63, 64, 65, 1_000, u32::MAX] {
        assert_eq!(p.nominal_delay_ms(n), 60_000);
    }
    let mut big = RetryPolicy::IMDS;
    big.base_delay_ms = u64::MAX;
    big.max_delay_ms = u64::MAX;
    assert_eq!(big.nominal_delay_ms(3), u64::MAX);
}

#[test]
fn exhausted_after_five_retries() {
    let mut s = RetryState::new(RetryPolicy::IMDS, 0);
    let mut now = 0;
    for _ in 0..5 {
        now += retry(&mut s, now, status(404), MID) + 100;
    }
    assert_eq!(
        give_up(&mut s, now, status(404), MID),
        RetryError::Exhausted {
            attempts: 6,
            last: status(404)
        }
    );
}

#[test]
fn server_errors_wait_at_least_one_second() {
    for st in [500, 502, 503, 504, 599] {
        let d = delays(status(st), 0);
        assert_eq!(d, [1_000, 1_600, 4_800, 11_200, 24_000], "{st}");
    }
    // 429 gets the same floor; 404 and transport failures retry at once.
    assert_eq!(delays(status(429), 0)[0], 1_000);
    assert_eq!(delays(status(404), u32::MAX)[0], 0);
    assert_eq!(delays(AttemptResult::Timeout, u32::MAX)[0], 0);
}

#[test]
fn other_statuses_are_never_retried() {
    for st in [
        0, 100, 200, 204, 301, 302, 400, 401, 403, 405, 406, 408, 409, 413, 422, 451, 499, 600, 999,
    ] {
        assert!(!is_retryable_status(st));
        let mut s = RetryState::new(RetryPolicy::IMDS, 0);
        assert_eq!(
            give_up(&mut s, 0, status(st), 0),
            RetryError::NotRetryable { status: st }
        );
        assert_eq!(s.attempts(), 1);
    }
    for st in [404, 410, 429, 500, 511, 599] {
        assert!(is_retryable_status(st));
    }
    let mut s = RetryState::new(RetryPolicy::IMDS, 0);
    assert_eq!(
        give_up(&mut s, 0, AttemptResult::InvalidResponse, 0),
        RetryError::InvalidResponse
    );
}

#[test]
fn retry_after_is_honoured_never_earlier() {
    // Longer than the back-off: wait exactly Retry-After (no jitter added).
    let mut s = RetryState::new(RetryPolicy::IMDS, 0);
    assert_eq!(
        retry(&mut s, 0, AttemptResult::status(429, Some(5)), u32::MAX),
        5_000
    );
    // Shorter than the back-off: the back-off wins.
    assert_eq!(
        retry(&mut s, 5_000, AttemptResult::status(503, Some(1)), 0),
        1_600
    );
    // Exactly the cap is honoured; beyond the cap is refused, not shortened.
    let mut s = RetryState::new(RetryPolicy::IMDS, 0);
    assert_eq!(
        retry(&mut s, 0, AttemptResult::status(503, Some(60)), 0),
        60_000
    );
    assert_eq!(
        give_up(&mut s, 60_000, AttemptResult::status(503, Some(61)), 0),
        RetryError::RetryAfterTooLong {
            seconds: 61,
            status: 503
        }
    );
    let mut s = RetryState::new(RetryPolicy::IMDS, 0);
    assert_eq!(
        give_up(&mut s, 0, AttemptResult::status(429, Some(u64::MAX)), 0),
        RetryError::RetryAfterTooLong {
            seconds: u64::MAX,
            status: 429
        }
    );
    // Retry-After on a status that is never retried does not make it retryable.
    let mut s = RetryState::new(RetryPolicy::IMDS, 0);
    assert_eq!(
        give_up(&mut s, 0, AttemptResult::status(400, Some(1)), 0),
        RetryError::NotRetryable { status: 400 }
    );
}

#[test]
fn gone_is_polled_every_ten_seconds_for_seventy() {
    for (random, jitter) in [(0, 0), (MID, 999), (u32::MAX, 2_000)] {
        let mut s = RetryState::new(RetryPolicy::IMDS, 0);
        // Each attempt takes 150 ms; the first 410 arrives at 150 ms.
        let first = 150;
        let mut now = first;
        let mut ats = Vec::new();
        loop {
            match s.on_outcome(now, status(410), random) {
                Decision::Retry { at, .. } => {
                    ats.push(at - first);
                    now = at + 150;
                }
                Decision::GiveUp(e) => {
                    assert_eq!(e, RetryError::GoneTooLong { attempts: 8 });
                    break;
                }
            }
        }
        let want: Vec<u64> = (1..=7).map(|k| k * 10_000 + jitter).collect();
        assert_eq!(ats, want, "random {random}");
        // The last retry starts no earlier than the documented 70 s after the first 410.
        assert!(*ats.last().unwrap() >= 70_000);
    }
}

#[test]
fn gone_skips_passed_slots_and_keeps_its_own_budget() {
    let mut s = RetryState::new(RetryPolicy::IMDS, 0);
    // Use up four exponential retries first.
    let mut now = 0;
    for _ in 0..4 {
        now += retry(&mut s, now, AttemptResult::Timeout, 0);
    }
    assert_eq!(now, 1_600 + 4_800 + 11_200);
    // 410 window anchors on the first 410 (t = 17.6 s).
    let first = now;
    assert_eq!(retry(&mut s, now, status(410), 0), 10_000);
    // A slow attempt: the next 410 arrives 25 s after the first; slot 2 (20 s) has passed, so
    // the retry goes to slot 3 (30 s).
    now = first + 25_000;
    assert_eq!(retry(&mut s, now, status(410), 0), 5_000);
    // The last exponential retry is still available after the 410s.
    now = first + 31_000;
    assert_eq!(retry(&mut s, now, status(503), 0), 24_000);
    now += 24_000;
    assert!(matches!(
        give_up(&mut s, now, status(503), 0),
        RetryError::Exhausted { attempts: 8, .. }
    ));
}

#[test]
fn gone_honours_retry_after() {
    let mut s = RetryState::new(RetryPolicy::IMDS, 0);
    assert_eq!(
        retry(&mut s, 0, AttemptResult::status(410, Some(15)), 0),
        15_000
    );
}

#[test]
fn deadline_stops_retries_rather_than_shortening_them() {
    let mut p = RetryPolicy::IMDS;
    p.deadline_ms = 15_000;
    let mut s = RetryState::new(p, 1_000_000);
    assert_eq!(s.deadline_at(), 1_015_000);
    // Attempts time out after 3 s each: the first ends at 3 s, the retry (0 s) at 6 s, the
    // next (1.6 s later) at 10.6 s.
    let mut now = 1_003_000;
    now += retry(&mut s, now, AttemptResult::Timeout, 0) + 3_000;
    now += retry(&mut s, now, AttemptResult::Timeout, 0) + 3_000;
    assert_eq!(now, 1_010_600);
    // The next delay, 4.8 s, would start at 15.4 s > 15 s: give up now, do not retry early.
    assert_eq!(
        give_up(&mut s, now, AttemptResult::Timeout, 0),
        RetryError::DeadlineExceeded {
            attempts: 3,
            last: AttemptResult::Timeout
        }
    );
}

#[test]
fn a_retry_exactly_at_the_deadline_is_allowed() {
    let mut p = RetryPolicy::IMDS;
    p.deadline_ms = 1_000;
    let mut s = RetryState::new(p, 0);
    assert_eq!(retry(&mut s, 0, status(500), 0), 1_000);
    let mut s = RetryState::new(p, 0);
    assert!(matches!(
        give_up(&mut s, 1, status(500), 0),
        RetryError::DeadlineExceeded { .. }
    ));
}

#[test]
fn default_worst_case_fits_the_deadline() {
    // Maximum jitter, instant attempts: 0 + 2.4 + 7.2 + 16.8 + 36 = 62.4 s.
    let total: u64 = delays(status(503), u32::MAX).iter().sum();
    assert_eq!(total, 1_000 + 2_400 + 7_200 + 16_800 + 36_000);
    assert!(total <= RetryPolicy::IMDS.deadline_ms);
}

#[test]
fn giving_up_is_final() {
    let mut s = RetryState::new(RetryPolicy::IMDS, 0);
    let e = give_up(&mut s, 0, status(403), 0);
    assert_eq!(give_up(&mut s, 1, AttemptResult::Timeout, 0), e);
    assert_eq!(s.attempts(), 1);
}

#[test]
fn jitter_permille_is_clamped() {
    let mut p = RetryPolicy::IMDS;
    p.jitter_permille = u16::MAX;
    let mut s = RetryState::new(p, 0);
    retry(&mut s, 0, AttemptResult::Timeout, 0);
    assert_eq!(retry(&mut s, 0, AttemptResult::Timeout, 0), 0);
    assert_eq!(retry(&mut s, 0, AttemptResult::Timeout, u32::MAX), 12_000);
}

#[test]
fn conversions_from_exchange_results() {
    let e =
        ServiceError::parse(429, Some(3), br#"{"error":"too_many_requests"}"#, &mut []).unwrap();
    assert_eq!(AttemptResult::from(&e), AttemptResult::status(429, Some(3)));
    assert_eq!(
        AttemptResult::from(ClientError::ClosedEarly),
        AttemptResult::Io
    );
    assert_eq!(
        AttemptResult::from(ClientError::ResponseTooLarge { capacity: 1 }),
        AttemptResult::InvalidResponse
    );
    assert!(AttemptResult::Io.is_retryable());
    assert!(!AttemptResult::InvalidResponse.is_retryable());
}

#[test]
fn errors_display_and_roll_up() {
    let errors = [
        RetryError::NotRetryable { status: 400 },
        RetryError::InvalidResponse,
        RetryError::Exhausted {
            attempts: 6,
            last: AttemptResult::status(503, Some(2)),
        },
        RetryError::GoneTooLong { attempts: 8 },
        RetryError::DeadlineExceeded {
            attempts: 3,
            last: AttemptResult::Timeout,
        },
        RetryError::RetryAfterTooLong {
            seconds: 61,
            status: 429,
        },
    ];
    for e in errors {
        let text = e.to_string();
        assert!(!text.is_empty());
        let all: mitoken_core::Error = e.into();
        assert_eq!(all.to_string(), text);
    }
    assert_eq!(
        RetryError::Exhausted {
            attempts: 6,
            last: AttemptResult::status(503, Some(2))
        }
        .to_string(),
        "gave up after 6 attempts, the last: HTTP 503, Retry-After 2 s"
    );
    assert_eq!(RetryPolicy::default(), RetryPolicy::IMDS);
}
