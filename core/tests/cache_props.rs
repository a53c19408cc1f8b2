//! Properties of the token cache for arbitrary operation sequences under a virtual clock.

use std::collections::HashMap;
use std::fmt::Write as _;

use mitoken_core::cache::{CacheKey, Lookup, TokenCache};
use mitoken_core::request::{Endpoint, Selector};
use mitoken_core::token::Token;
use proptest::prelude::*;

const N: usize = 4;
const RESOURCES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

fn key(i: usize) -> CacheKey<'static> {
    let r = RESOURCES[i % RESOURCES.len()];
    if i >= RESOURCES.len() {
        CacheKey::new(Endpoint::Imds, Some(Selector::ClientId("x")), r)
    } else {
        CacheKey::new(Endpoint::Imds, None, r)
    }
}

#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    Insert {
        key: usize,
        expires_in: Option<u64>,
        /// Relative to now, in seconds (may be negative).
        expires_on: Option<i64>,
        not_before: Option<i64>,
        len: usize,
    },
    Get(usize),
    Remove(usize),
    Purge,
    Defer(usize, u64),
}

fn op() -> impl Strategy<Value = Op> {
    let secs = prop_oneof![0u64..400, 0u64..10_000, 0u64..200_000, Just(u64::MAX)];
    let rel = prop_oneof![-100i64..400, -100_000i64..200_000];
    prop_oneof![
        (0u64..4_000_000).prop_map(Op::Advance),
        (
            0usize..12,
            proptest::option::of(secs),
            proptest::option::of(rel.clone()),
            proptest::option::of(rel),
            0usize..60
        )
            .prop_map(
                |(key, expires_in, expires_on, not_before, len)| Op::Insert {
                    key,
                    expires_in,
                    expires_on,
                    not_before,
                    len,
                }
            ),
        (0usize..12).prop_map(Op::Get),
        (0usize..12).prop_map(Op::Remove),
        Just(Op::Purge),
        (0usize..12, 0u64..4_000_000).prop_map(|(k, d)| Op::Defer(k, d)),
    ]
}

/// A token body; `on` and `nbf` are relative to `now_s`.
fn body(access: &str, now_s: u64, secs: Option<u64>, on: Option<i64>, nbf: Option<i64>) -> String {
    let abs = |rel: i64| now_s.saturating_add_signed(rel);
    let mut b = format!(r#"{{"access_token":"{access}","resource":"r","token_type":"Bearer""#);
    if let Some(v) = secs {
        write!(b, r#","expires_in":"{v}""#).unwrap();
    }
    if let Some(v) = on {
        write!(b, r#","expires_on":"{}""#, abs(v)).unwrap();
    }
    if let Some(v) = nbf {
        write!(b, r#","not_before":"{}""#, abs(v)).unwrap();
    }
    if secs.is_none() && on.is_none() {
        b.push_str(r#","expires_in":"0""#);
    }
    b.push('}');
    b
}

fn check_lookup(l: &Lookup<'_>, now: u64, model: &HashMap<usize, String>, k: usize) {
    if let Some(t) = l.token() {
        assert!(now < t.expires_at, "expired token returned");
        assert!(t.refresh_at <= t.expires_at);
        if matches!(l, Lookup::Fresh(_)) {
            assert!(now < t.refresh_at, "due token returned as fresh");
        } else {
            assert!(now >= t.refresh_at);
        }
        assert_eq!(
            Some(t.access_token.expose()),
            model.get(&k).map(String::as_str)
        );
        assert_eq!(t.key, key(k));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn cache_invariants(start in 1_600_000_000_000u64..1_900_000_000_000, ops in proptest::collection::vec(op(), 1..80)) {
        let mut c: TokenCache<N, 64, 64> = TokenCache::new();
        // Model: the last token text inserted per key (entries may since be evicted/expired).
        let mut model: HashMap<usize, String> = HashMap::new();
        let mut now = start;
        let mut serial = 0u32;
        for op in ops {
            match op {
                Op::Advance(d) => now += d,
                Op::Insert { key: k, expires_in, expires_on, not_before, len } => {
                    serial += 1;
                    let text = format!("{serial}{}", "t".repeat(len));
                    let b = body(&text, now / 1000, expires_in, expires_on, not_before);
                    let t = Token::parse(b.as_bytes(), &mut []).unwrap();
                    let before = c.len();
                    if c.insert(&key(k), &t, now).is_ok() {
                        model.insert(k, text);
                        // Just inserted: retrievable right away.
                        let l = c.peek(&key(k), now);
                        prop_assert!(l.token().is_some());
                        check_lookup(&l, now, &model, k);
                    } else {
                        prop_assert_eq!(c.len(), before);
                    }
                }
                Op::Get(k) => {
                    let l = c.get(&key(k), now);
                    check_lookup(&l, now, &model, k);
                }
                Op::Remove(k) => {
                    c.remove(&key(k));
                    prop_assert!(c.peek(&key(k), now).token().is_none());
                }
                Op::Purge => {
                    c.purge_expired(now);
                }
                Op::Defer(k, d) => {
                    c.defer_refresh(&key(k), now + d);
                }
            }
            prop_assert!(c.len() <= N);
            let mut min_refresh = None::<u64>;
            for k in 0..12 {
                let l = c.peek(&key(k), now);
                check_lookup(&l, now, &model, k);
                if let Some(t) = l.token() {
                    min_refresh = Some(min_refresh.map_or(t.refresh_at, |m| m.min(t.refresh_at)));
                }
            }
            // next_refresh_at covers every live entry (expired, unpurged ones may be earlier).
            if let Some(m) = min_refresh {
                prop_assert!(c.next_refresh_at().is_some_and(|n| n <= m));
            }
            if let Some(d) = c.due(now) {
                prop_assert!(d.refresh_at <= now && now < d.expires_at);
            }
        }
    }
}
