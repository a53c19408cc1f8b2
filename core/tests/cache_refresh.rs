//! The token cache under a virtual clock: expiry, refresh-ahead, LRU, limits.

use std::fmt::Write as _;

use mitoken_core::cache::{CacheError, CacheKey, CachedToken, Lookup, TokenCache};
use mitoken_core::request::{
    Endpoint, IMDS_HOST, IMDS_TOKEN_PATH, ResIdParam, Selector, Style, TokenRequest,
};
use mitoken_core::token::Token;

const S: u64 = 1_000;
const MIN: u64 = 60 * S;
const H: u64 = 60 * MIN;
/// Unix ms at the start of every test.
const T0: u64 = 1_800_000_000 * S;

/// A token body: `(expires_in, expires_on, not_before)` as present.
fn body(access: &str, rel: Option<u64>, abs: Option<u64>, nbf: Option<u64>) -> String {
    let mut b = format!(
        r#"{{"access_token":"{access}","resource":"r","token_type":"Bearer","client_id":"cid""#
    );
    for (k, v) in [
        ("expires_in", rel),
        ("expires_on", abs),
        ("not_before", nbf),
    ] {
        if let Some(v) = v {
            write!(b, r#","{k}":"{v}""#).unwrap();
        }
    }
    b.push('}');
    b
}

fn token(b: &str) -> Token<'_> {
    Token::parse(b.as_bytes(), &mut []).unwrap()
}

/// A fresh IMDS 24 h token as received at `now` (ms): `expires_in` 86400, lifetime 86700.
fn imds_body(access: &str, now: u64) -> String {
    let on = now / S + 86_400;
    body(access, Some(86_400), Some(on), Some(on - 86_700))
}

fn key(resource: &str) -> CacheKey<'_> {
    CacheKey::new(Endpoint::Imds, None, resource)
}

type Cache = TokenCache<4, 256, 128>;

fn refresh_at(c: &Cache, k: &CacheKey<'_>, now: u64) -> u64 {
    c.peek(k, now).token().unwrap().refresh_at
}

#[test]
fn imds_day_token_refreshes_at_half_life() {
    let mut c = Cache::new();
    let b = imds_body("tok", T0);
    c.insert(&key("r"), &token(&b), T0).unwrap();
    let t = *c.peek(&key("r"), T0).token().unwrap();
    assert_eq!(t.expires_at, T0 + 86_400 * S);
    // Half of 86 700 s before expiry is 43 050 s after receipt; halfway through the 86 400 s
    // left is later (43 200 s) and wins.
    assert_eq!(t.refresh_at, T0 + 43_200 * S);
    assert_eq!(c.next_refresh_at(), Some(T0 + 43_200 * S));
    assert_eq!(t.access_token.expose(), "tok");
    assert_eq!(t.token_type, "Bearer");
    assert_eq!(t.client_id, Some("cid"));
    assert_eq!(t.expires_in(T0 + 500), 86_399);
}

#[test]
fn hour_token_refreshes_five_minutes_before_expiry() {
    let mut c = Cache::new();
    let b = body("tok", Some(3_600), None, None);
    c.insert(&key("r"), &token(&b), T0).unwrap();
    assert_eq!(refresh_at(&c, &key("r"), T0), T0 + 55 * MIN);
}

#[test]
fn two_hours_is_the_boundary() {
    let mut c = Cache::new();
    let b = body("a", Some(7_200), None, None);
    c.insert(&key("a"), &token(&b), T0).unwrap();
    assert_eq!(refresh_at(&c, &key("a"), T0), T0 + 2 * H - 5 * MIN);
    let b = body("b", Some(7_201), None, None);
    c.insert(&key("b"), &token(&b), T0).unwrap();
    assert_eq!(refresh_at(&c, &key("b"), T0), T0 + 3_600_500);
}

#[test]
fn lifetime_comes_from_expires_on_minus_not_before() {
    let mut c = Cache::new();
    // 1 h left (expires_in), but a 3 h token: refresh-ahead at half life (1.5 h before
    // expiry) is already past, so the token is due halfway through what is left.
    let on = T0 / S + 3_600;
    let b = body("tok", Some(3_600), Some(on), Some(on - 3 * 3_600));
    c.insert(&key("r"), &token(&b), T0).unwrap();
    assert_eq!(refresh_at(&c, &key("r"), T0), T0 + 30 * MIN);
}

#[test]
fn cached_imds_tokens_do_not_cause_a_refresh_storm() {
    // IMDS returns its cached 24 h token with 1 h left, again and again: refreshes come at
    // halving intervals, not on every use.
    let mut c = Cache::new();
    let on = T0 / S + 3_600;
    let mut now = T0;
    let mut refreshes = 0;
    while now < on * S {
        let b = body("same", Some(on - now / S), Some(on), Some(on - 86_700));
        if c.insert(&key("r"), &token(&b), now).is_err() {
            break;
        }
        refreshes += 1;
        let due = c.next_refresh_at().unwrap();
        assert!(
            due > now || on * S - now < 2,
            "due at once with {} ms left",
            on * S - now
        );
        now = due.max(now + S);
    }
    assert!(refreshes <= 13, "{refreshes} refreshes in the last hour");
}

#[test]
fn expiry_is_the_earlier_of_expires_on_and_expires_in() {
    let mut c = Cache::new();
    // Local clock 10 min behind IMDS: expires_on looks 10 min further away than expires_in.
    let b = body("a", Some(3_600), Some(T0 / S + 4_200), None);
    c.insert(&key("a"), &token(&b), T0).unwrap();
    assert_eq!(
        c.peek(&key("a"), T0).token().unwrap().expires_at,
        T0 + 3_600 * S
    );
    // Local clock ahead: expires_on comes first.
    let b = body("b", Some(3_600), Some(T0 / S + 3_000), None);
    c.insert(&key("b"), &token(&b), T0).unwrap();
    assert_eq!(
        c.peek(&key("b"), T0).token().unwrap().expires_at,
        T0 + 3_000 * S
    );
    // Only expires_on (App Service).
    let b = body("c", None, Some(T0 / S + 600), None);
    c.insert(&key("c"), &token(&b), T0).unwrap();
    let t = *c.peek(&key("c"), T0).token().unwrap();
    assert_eq!(t.expires_at, T0 + 600 * S);
    assert_eq!(t.refresh_at, T0 + 300 * S);
    assert_eq!(t.expires_on, Some(T0 / S + 600));
}

#[test]
fn expired_tokens_are_refused() {
    let mut c = Cache::new();
    for b in [
        body("a", Some(0), None, None),
        body("a", None, Some(T0 / S), None),
        body("a", Some(3_600), Some(T0 / S - 1), None),
    ] {
        assert_eq!(
            c.insert(&key("a"), &token(&b), T0),
            Err(CacheError::Expired)
        );
    }
    assert!(c.is_empty());
}

#[test]
fn fresh_then_stale_then_gone() {
    let mut c = Cache::new();
    let b = body("tok", Some(3_600), None, None);
    c.insert(&key("r"), &token(&b), T0).unwrap();
    assert!(matches!(
        c.get(&key("r"), T0 + 55 * MIN - 1),
        Lookup::Fresh(_)
    ));
    assert!(matches!(c.get(&key("r"), T0 + 55 * MIN), Lookup::Stale(_)));
    assert!(matches!(c.get(&key("r"), T0 + H - 1), Lookup::Stale(_)));
    assert!(matches!(c.peek(&key("r"), T0 + H), Lookup::Missing));
    assert_eq!(c.len(), 1, "peek changes nothing");
    assert!(matches!(c.get(&key("r"), T0 + H), Lookup::Missing));
    assert_eq!(c.len(), 0, "get drops the expired entry");
    assert!(matches!(c.get(&key("other"), T0), Lookup::Missing));
}

#[test]
fn replacing_a_key_keeps_one_entry() {
    let mut c = Cache::new();
    let b1 = body("old", Some(3_600), None, None);
    let b2 = body("new", Some(7_200), None, None);
    c.insert(&key("r"), &token(&b1), T0).unwrap();
    c.insert(&key("r"), &token(&b2), T0 + MIN).unwrap();
    assert_eq!(c.len(), 1);
    let t = *c.peek(&key("r"), T0 + MIN).token().unwrap();
    assert_eq!(t.access_token.expose(), "new");
    assert_eq!(t.received_at, T0 + MIN);
}

#[test]
fn least_recently_used_is_evicted() {
    let mut c: TokenCache<3, 64, 64> = TokenCache::new();
    let b = body("t", Some(3_600), None, None);
    for (i, r) in ["a", "b", "c"].into_iter().enumerate() {
        c.insert(&key(r), &token(&b), T0 + i as u64).unwrap();
    }
    // Use "a" so "b" becomes the least recently used.
    assert!(matches!(c.get(&key("a"), T0 + 10), Lookup::Fresh(_)));
    c.insert(&key("d"), &token(&b), T0 + 11).unwrap();
    assert_eq!(c.len(), 3);
    assert!(matches!(c.peek(&key("b"), T0 + 12), Lookup::Missing));
    for r in ["a", "c", "d"] {
        assert!(matches!(c.peek(&key(r), T0 + 12), Lookup::Fresh(_)), "{r}");
    }
    // peek does not count as use: "c" is now the oldest.
    c.insert(&key("e"), &token(&b), T0 + 13).unwrap();
    assert!(matches!(c.peek(&key("c"), T0 + 14), Lookup::Missing));
}

#[test]
fn expired_entries_are_evicted_before_live_ones() {
    let mut c: TokenCache<2, 64, 64> = TokenCache::new();
    let short = body("s", Some(60), None, None);
    let long = body("l", Some(3_600), None, None);
    c.insert(&key("short"), &token(&short), T0).unwrap();
    c.insert(&key("long"), &token(&long), T0).unwrap();
    // "long" is the least recently used, but "short" has expired.
    assert!(matches!(c.get(&key("short"), T0 + 1), Lookup::Fresh(_)));
    c.insert(&key("new"), &token(&long), T0 + 2 * MIN).unwrap();
    assert!(matches!(
        c.peek(&key("long"), T0 + 2 * MIN),
        Lookup::Fresh(_)
    ));
    assert!(matches!(
        c.peek(&key("new"), T0 + 2 * MIN),
        Lookup::Fresh(_)
    ));
}

#[test]
fn keys_distinguish_endpoint_selector_and_resource() {
    let mut c: TokenCache<16, 64, 256> = TokenCache::new();
    let custom = Endpoint::Custom {
        host: "127.0.0.1",
        port: 8080,
        path: "/token",
        style: Style::Imds,
    };
    let rid = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u";
    let keys = [
        CacheKey::new(Endpoint::Imds, None, "r"),
        CacheKey::new(Endpoint::Imds, None, "r/"),
        CacheKey::new(Endpoint::Extension, None, "r"),
        CacheKey::new(custom, None, "r"),
        CacheKey::new(custom.with_style(Style::Extension), None, "r"),
        CacheKey::new(Endpoint::Imds, Some(Selector::ClientId("x")), "r"),
        CacheKey::new(Endpoint::Imds, Some(Selector::ObjectId("x")), "r"),
        CacheKey::new(
            Endpoint::Imds,
            Some(Selector::ResourceId {
                id: rid,
                param: ResIdParam::MsiResId,
            }),
            "r",
        ),
        CacheKey::new(
            Endpoint::Imds,
            Some(Selector::ResourceId {
                id: rid,
                param: ResIdParam::MiResId,
            }),
            "r",
        ),
        // Length framing: ("ab", "c") and ("a", "bc") differ.
        CacheKey::new(Endpoint::Imds, Some(Selector::ClientId("ab")), "c"),
        CacheKey::new(Endpoint::Imds, Some(Selector::ClientId("a")), "bc"),
    ];
    let bodies: Vec<String> = (0..keys.len())
        .map(|i| body(&format!("t{i}"), Some(3_600), None, None))
        .collect();
    for (k, b) in keys.iter().zip(&bodies) {
        c.insert(k, &token(b), T0).unwrap();
    }
    assert_eq!(c.len(), keys.len());
    for (i, k) in keys.iter().enumerate() {
        let t = *c.peek(k, T0).token().unwrap();
        assert_eq!(t.access_token.expose(), format!("t{i}"));
        // The stored key reads back as given.
        assert_eq!(t.key, *k);
    }
}

#[test]
fn builtin_endpoints_equal_their_custom_spelling() {
    let mut c = Cache::new();
    let b = body("tok", Some(3_600), None, None);
    c.insert(&key("r"), &token(&b), T0).unwrap();
    let spelled = Endpoint::parse_url("http://169.254.169.254").unwrap();
    assert_eq!(
        (spelled.host(), spelled.path()),
        (IMDS_HOST, IMDS_TOKEN_PATH)
    );
    let t = *c
        .peek(&CacheKey::new(spelled, None, "r"), T0)
        .token()
        .unwrap();
    assert_eq!(t.key.endpoint, Endpoint::Imds);
    let ext = Endpoint::parse_url("http://localhost:50342/oauth2/token")
        .unwrap()
        .with_style(Style::Extension);
    c.insert(&CacheKey::new(ext, None, "r"), &token(&b), T0)
        .unwrap();
    assert!(matches!(
        c.peek(&CacheKey::new(Endpoint::Extension, None, "r"), T0),
        Lookup::Fresh(_)
    ));
    let req = TokenRequest::new("r").with_selector(Selector::ClientId("c"));
    assert_eq!(
        CacheKey::for_request(&req, Endpoint::Imds),
        CacheKey::new(Endpoint::Imds, Some(Selector::ClientId("c")), "r")
    );
}

#[test]
fn too_large_tokens_and_keys_are_refused_not_truncated() {
    // T = 16: "Bearer" (6) + "cid" (3) leaves 7 bytes for the access token.
    let mut c: TokenCache<2, 16, 32> = TokenCache::new();
    let fits = body("1234567", Some(60), None, None);
    c.insert(&key("r"), &token(&fits), T0).unwrap();
    let over = body("12345678", Some(60), None, None);
    assert_eq!(
        c.insert(&key("s"), &token(&over), T0),
        Err(CacheError::TokenTooLarge { required: 17 })
    );
    // Key: 1 (IMDS) + 1 (no selector) + 4 + resource.
    let exact = "x".repeat(26);
    assert_eq!(key(&exact).encoded_len(), 32);
    c.insert(&key(&exact), &token(&fits), T0).unwrap();
    let long = "x".repeat(27);
    assert_eq!(
        c.insert(&key(&long), &token(&fits), T0),
        Err(CacheError::KeyTooLarge { required: 33 })
    );
    assert!(matches!(c.get(&key(&long), T0), Lookup::Missing));
    assert_eq!(c.len(), 2);
    assert_eq!(
        c.peek(&key("r"), T0).token().unwrap().access_token.expose(),
        "1234567"
    );
}

#[test]
fn zero_capacity_refuses() {
    let mut c: TokenCache<0, 64, 64> = TokenCache::new();
    let b = body("t", Some(60), None, None);
    assert_eq!(
        c.insert(&key("r"), &token(&b), T0),
        Err(CacheError::NoCapacity)
    );
    assert_eq!(c.next_refresh_at(), None);
}

#[test]
fn remove_clear_and_purge() {
    let mut c = Cache::new();
    let short = body("s", Some(60), None, None);
    let long = body("l", Some(3_600), None, None);
    c.insert(&key("a"), &token(&short), T0).unwrap();
    c.insert(&key("b"), &token(&long), T0).unwrap();
    c.insert(&key("c"), &token(&short), T0).unwrap();
    assert!(c.remove(&key("a")));
    assert!(!c.remove(&key("a")));
    assert_eq!(c.len(), 2);
    assert!(matches!(c.peek(&key("c"), T0), Lookup::Fresh(_)));
    assert_eq!(c.purge_expired(T0 + MIN), 1);
    assert_eq!(c.len(), 1);
    assert!(matches!(c.peek(&key("b"), T0 + MIN), Lookup::Fresh(_)));
    c.clear();
    assert!(c.is_empty());
    assert_eq!(c.capacity(), 4);
    assert!(matches!(c.peek(&key("b"), T0), Lookup::Missing));
}

#[test]
fn due_and_defer_drive_a_scheduler() {
    let mut c = Cache::new();
    let b1 = body("a", Some(3_600), None, None);
    let b2 = body("b", Some(1_800), None, None);
    c.insert(&key("a"), &token(&b1), T0).unwrap();
    c.insert(&key("b"), &token(&b2), T0).unwrap();
    assert_eq!(c.next_refresh_at(), Some(T0 + 25 * MIN));
    assert!(c.due(T0 + 25 * MIN - 1).is_none());
    let now = T0 + 56 * MIN;
    // "b" (30 min) has expired by 56 min; only "a" is due.
    let d: CachedToken<'_> = c.due(now).unwrap();
    assert_eq!(d.key, key("a"));
    // A refresh is in flight: defer "a" by 30 s; nothing else is due.
    assert!(c.defer_refresh(&key("a"), now + 30 * S));
    assert!(c.due(now).is_none());
    // Deferring past expiry stops at expiry.
    assert!(c.defer_refresh(&key("a"), u64::MAX));
    assert_eq!(refresh_at(&c, &key("a"), now), T0 + H);
    assert!(!c.defer_refresh(&key("zzz"), now));
    // The expired "b" still holds the earliest refresh time until purged.
    assert_eq!(c.next_refresh_at(), Some(T0 + 25 * MIN));
    assert_eq!(c.purge_expired(now), 1);
    assert_eq!(c.next_refresh_at(), Some(T0 + H));
}

#[test]
fn a_week_of_refreshes_under_a_virtual_clock() {
    // A shell that sleeps until next_refresh_at, refreshes what is due from an "IMDS" that
    // issues fresh 24 h tokens, and serves requests every 17 minutes in between.
    let mut c = Cache::new();
    let keys = [key("a"), key("b")];
    let mut now = T0;
    let mut issued = 0u32;
    let mut bodies: Vec<String> = Vec::new();
    for k in &keys {
        bodies.push(imds_body(&format!("t{issued}"), now));
        issued += 1;
        c.insert(k, &token(bodies.last().unwrap()), now).unwrap();
    }
    let end = T0 + 7 * 24 * H;
    let mut next_request = now + 17 * MIN;
    while now < end {
        let wake = c.next_refresh_at().unwrap();
        assert!(wake > now, "scheduler would spin");
        if next_request < wake {
            now = next_request;
            next_request += 17 * MIN;
            for k in &keys {
                match c.get(k, now) {
                    Lookup::Fresh(t) => assert!(now < t.refresh_at && t.refresh_at <= t.expires_at),
                    other => panic!("{other:?} at {now}"),
                }
            }
            continue;
        }
        now = wake;
        while let Some(t) = c.due(now) {
            let k = t.key;
            let r = k.resource.to_owned();
            bodies.push(imds_body(&format!("t{issued}"), now));
            issued += 1;
            c.insert(&key(&r), &token(bodies.last().unwrap()), now)
                .unwrap();
        }
    }
    // Two keys, one refresh every 12 h each, for 7 days.
    assert_eq!(issued, 2 + 2 * 14);
}

#[test]
fn debug_redacts_tokens() {
    let mut c = Cache::new();
    let b = body("SECRET-TOKEN-TEXT", Some(3_600), None, None);
    c.insert(&key("https://vault.azure.net"), &token(&b), T0)
        .unwrap();
    let text = format!("{c:?}");
    assert!(!text.contains("SECRET-TOKEN-TEXT"), "{text}");
    assert!(text.contains("https://vault.azure.net"), "{text}");
    assert!(text.contains("redacted"), "{text}");
    let view = format!("{:?}", c.get(&key("https://vault.azure.net"), T0));
    assert!(!view.contains("SECRET-TOKEN-TEXT"));
}

#[test]
fn errors_display_and_roll_up() {
    for e in [
        CacheError::KeyTooLarge { required: 600 },
        CacheError::TokenTooLarge { required: 5000 },
        CacheError::Expired,
        CacheError::NoCapacity,
    ] {
        let text = e.to_string();
        assert!(!text.is_empty());
        assert_eq!(mitoken_core::Error::from(e).to_string(), text);
    }
    assert_eq!(
        CacheError::TokenTooLarge { required: 5000 }.to_string(),
        "token too large for a cache entry: 5000 bytes required"
    );
}
