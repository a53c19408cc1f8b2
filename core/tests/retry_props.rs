//! Properties of the retry schedule for arbitrary policies and failure sequences.

use mitoken_core::retry::{
    AttemptResult, Decision, RetryError, RetryPolicy, RetryState, is_retryable_status,
};
use proptest::prelude::*;

fn result() -> impl Strategy<Value = AttemptResult> {
    prop_oneof![
        (
            prop_oneof![Just(404u16), Just(410), Just(429), 500u16..600, 0u16..1000],
            proptest::option::of(prop_oneof![0u64..120, Just(u64::MAX)])
        )
            .prop_map(|(s, r)| AttemptResult::status(s, r)),
        Just(AttemptResult::Timeout),
        Just(AttemptResult::ConnectFailed),
        Just(AttemptResult::Io),
        Just(AttemptResult::InvalidResponse),
    ]
}

fn policy() -> impl Strategy<Value = RetryPolicy> {
    (
        (any::<u8>(), 0u64..100_000, 0u64..200_000, 0u64..100_000),
        (0u64..30_000, 0u64..200_000, any::<u8>(), 0u64..400_000),
        prop_oneof![0u16..=1000, any::<u16>()],
    )
        .prop_map(|((mr, base, cap, floor), (gi, gw, mg, dl), j)| {
            let mut p = RetryPolicy::IMDS;
            p.max_retries = mr;
            p.base_delay_ms = base;
            p.max_delay_ms = cap;
            p.min_server_delay_ms = floor;
            p.gone_interval_ms = gi;
            p.gone_window_ms = gw;
            p.max_gone_retries = mg;
            p.deadline_ms = dl;
            p.jitter_permille = j;
            p
        })
}

/// One step: how long the failed attempt took (after the retry time), what it returned, and
/// the random value.
fn steps() -> impl Strategy<Value = Vec<(u64, AttemptResult, u32)>> {
    proptest::collection::vec((0u64..20_000, result(), any::<u32>()), 1..40)
}

fn check(policy: RetryPolicy, start: u64, steps: &[(u64, AttemptResult, u32)]) {
    let mut s = RetryState::new(policy, start);
    let mut now = start;
    let mut retries = 0u32;
    for &(took, result, random) in steps {
        now = now.saturating_add(took);
        match s.on_outcome(now, result, random) {
            Decision::Retry { at, delay } => {
                retries += 1;
                assert!(result.is_retryable(), "retried {result:?}");
                assert_eq!(at, now.saturating_add(delay));
                assert!(delay <= policy.max_delay_ms, "delay {delay} > cap");
                assert!(at <= s.deadline_at(), "retry after the deadline");
                if let AttemptResult::Status {
                    status,
                    retry_after: Some(ra),
                } = result
                {
                    assert!(
                        delay >= ra.saturating_mul(1000),
                        "earlier than Retry-After on {status}"
                    );
                }
                if let AttemptResult::Status { status, .. } = result
                    && (status == 429 || (500..600).contains(&status))
                {
                    assert!(delay >= policy.min_server_delay_ms.min(policy.max_delay_ms));
                }
                now = at;
            }
            Decision::GiveUp(e) => {
                if let AttemptResult::Status { status, .. } = result
                    && !is_retryable_status(status)
                {
                    assert_eq!(e, RetryError::NotRetryable { status });
                }
                // Final: the same answer forever after.
                assert_eq!(
                    s.on_outcome(now, AttemptResult::Timeout, 0),
                    Decision::GiveUp(e)
                );
                break;
            }
        }
    }
    assert!(retries <= u32::from(policy.max_retries) + u32::from(policy.max_gone_retries));
}

proptest! {
    #[test]
    fn default_policy_invariants(start in prop_oneof![0u64..1_000_000_000, Just(u64::MAX - 50_000)], steps in steps()) {
        check(RetryPolicy::IMDS, start, &steps);
    }

    #[test]
    fn any_policy_invariants(policy in policy(), start in any::<u64>(), steps in steps()) {
        check(policy, start, &steps);
    }

    /// Instant attempts, retryable failures only: the whole default schedule (first attempt to
    /// last retry) stays within the deadline, whatever the jitter.
    #[test]
    fn default_schedule_within_deadline(results in proptest::collection::vec((result(), any::<u32>()), 1..30)) {
        let mut s = RetryState::new(RetryPolicy::IMDS, 0);
        let mut now = 0;
        for (result, random) in results {
            match s.on_outcome(now, result, random) {
                Decision::Retry { at, .. } => now = at,
                Decision::GiveUp(_) => break,
            }
        }
        prop_assert!(now <= RetryPolicy::IMDS.deadline_ms);
    }
}
