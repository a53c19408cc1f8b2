//! Random event sequences never panic the token engine and keep its invariants: at most 5
//! upstream requests in flight and one per key, every caller answered exactly once and never
//! after its deadline (a passed deadline answered exactly then), and nothing left behind.

mod engine_support;

use engine_support::{S, Sim, Upstream};
use mitoken_core::engine::EngineConfig;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Ask { key: usize, wait: u64, bypass: bool },
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..8usize, 0..120_000u64, proptest::bool::weighted(0.1))
            .prop_map(|(key, wait, bypass)| Op::Ask { key, wait, bypass }),
        1 => (0..30_000u64).prop_map(Op::Advance),
    ]
}

/// A deterministic "random" upstream answer for (seed, key, attempt).
fn answer(seed: u64, key: usize, attempt: u32) -> Upstream {
    let mut x = seed ^ (key as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(attempt) << 32;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    match x % 10 {
        0 => Upstream::Status {
            status: 410,
            retry_after: None,
        },
        1 => Upstream::Status {
            status: 429,
            retry_after: Some(x % 4),
        },
        2 => Upstream::Status {
            status: 500,
            retry_after: None,
        },
        3 => Upstream::Refused,
        4 => Upstream::Garbage,
        5 => Upstream::Status {
            status: 400,
            retry_after: None,
        },
        6 => Upstream::Token {
            expires_in: 60 + x % 600,
        },
        _ => Upstream::Token {
            expires_in: 3_600 + x % 86_400,
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_keep_the_invariants(
        ops in proptest::collection::vec(op(), 1..120),
        seed in any::<u64>(),
        latency in 1..3_000u64,
        refresh_ahead in any::<bool>(),
    ) {
        let config = EngineConfig::DEFAULT.with_refresh_ahead(refresh_ahead);
        let mut sim = Sim::new(8, config).with_upstream(move |k, a, _| answer(seed, k, a));
        sim.latency = latency;
        for op in ops {
            match op {
                Op::Ask { key, wait, bypass } => {
                    sim.ask(key, wait, bypass);
                }
                Op::Advance(ms) => sim.run_until(sim.now + ms),
            }
        }
        // Past every deadline and retry window: everyone answered, nothing held.
        sim.run_until(sim.now + 300 * S);
        prop_assert!(sim.callers.iter().all(|c| c.answer.is_some()));
        prop_assert_eq!(sim.engine.waiting(), 0);
        prop_assert!(sim.max_in_flight <= 5);
        prop_assert_eq!(sim.throttled_by_imds, 0);
        if refresh_ahead {
            // Background refreshes go on for as long as tokens are cached (a 60 s token is
            // refreshed every 30 s): one may be on the wire when the run stops, with nobody
            // waiting on it.
            prop_assert!(sim.engine.in_flight() <= 5);
        } else {
            prop_assert_eq!(sim.engine.in_flight(), 0);
            prop_assert_eq!(sim.engine.flights(), 0);
        }
    }
}
