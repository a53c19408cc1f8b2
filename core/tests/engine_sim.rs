//! The token engine on a virtual clock: floods of callers, IMDS's bad days, refresh-ahead,
//! the stale fallback and callers' deadlines. No sockets, no sleeps.

mod engine_support;

use engine_support::{Got, H, MIN, S, Sim, T0, TestEngine, Upstream};
use mitoken_core::cache::{CacheKey, OwnedKey};
use mitoken_core::engine::{Ask, EngineConfig, EngineError};
use mitoken_core::request::{Endpoint, Selector};
use mitoken_core::retry::RetryPolicy;

fn token(got: &Got) -> &str {
    match got {
        Got::Token(t) => t,
        other => panic!("expected a token, got {other:?}"),
    }
}

#[test]
fn two_hundred_callers_over_six_keys_cause_six_requests() {
    let mut sim = Sim::new(6, EngineConfig::DEFAULT);
    sim.latency = 40;
    // 200 callers within 100 ms, round-robin over the 6 keys.
    for i in 0..200 {
        sim.now = T0 + (i as u64 * 100) / 200;
        sim.ask(i % 6, 30 * S, false);
        sim.run_until(sim.now);
    }
    sim.run_until(T0 + 10 * S);
    assert_eq!(sim.sent.len(), 6, "{:?}", sim.sent);
    for k in 0..6 {
        assert_eq!(sim.sent_for(k).len(), 1, "key {k}");
    }
    assert_eq!(sim.max_in_flight, 5, "the 6th waited for a slot");
    assert_eq!(sim.throttled_by_imds, 0);
    for (i, c) in sim.callers.iter().enumerate() {
        let t = token(&c.answer.as_ref().expect("answered").1);
        assert!(t.starts_with(&format!("tok-{}-", c.key)), "caller {i}: {t}");
    }
    // Real request bytes: the selector and resource as IMDS expects them.
    let first = &sim.sent_for(1)[0].request;
    assert!(
        first.starts_with("GET /metadata/identity/oauth2/token?")
            && first.contains("resource=https%3A%2F%2Fr1.example")
            && first.contains("client_id=c1")
            && first.contains("Metadata: true"),
        "{first}"
    );
    // 200 more callers: all from the cache.
    for i in 0..200 {
        sim.ask(i % 6, 30 * S, false);
    }
    assert_eq!(sim.sent.len(), 6);
    assert!(sim.callers.iter().all(|c| c.answer.is_some()));
    assert_eq!(sim.engine.waiting(), 0);
    assert_eq!(sim.engine.flights(), 0);
}

#[test]
fn a_flood_of_keys_stays_within_five_in_flight_and_imds_rate() {
    // 100 distinct keys at once (more than the cache holds: tokens are handed out before
    // eviction matters), slow answers: the limiter paces the requests.
    let mut sim = Sim::new(100, EngineConfig::DEFAULT);
    sim.latency = 10;
    for k in 0..100 {
        sim.ask(k, 60 * S, false);
    }
    sim.run_until(T0 + 60 * S);
    assert_eq!(sim.sent.len(), 100);
    assert!(sim.max_in_flight <= 5);
    // The same bucket IMDS is modelled with never refused one: 20/s after a burst of 20.
    assert_eq!(sim.throttled_by_imds, 0);
    let mut starts: Vec<u64> = sim.sent.iter().map(|s| s.at).collect();
    starts.sort_unstable();
    // Burst of 20, then one every 50 ms: in any window of d ms at most 20 + d/50 + 1 starts.
    for (i, &a) in starts.iter().enumerate() {
        for (j, &b) in starts.iter().enumerate().skip(i) {
            let in_window = j - i + 1;
            assert!(
                in_window as u64 <= 21 + (b - a) / 50,
                "{in_window} in {} ms",
                b - a
            );
        }
    }
    // After the burst, no 1-second window holds more than 20 starts.
    let after: Vec<u64> = starts.iter().copied().filter(|&t| t >= T0 + S).collect();
    for (i, &a) in after.iter().enumerate() {
        let n = after[i..].iter().take_while(|&&b| b < a + S).count();
        assert!(n <= 20, "{n} starts within 1 s after {a}");
    }
    assert!(
        sim.callers
            .iter()
            .all(|c| matches!(c.answer, Some((_, Got::Token(_)))))
    );
}

#[test]
fn a_410_window_of_70_seconds_is_ridden_out() {
    let mut sim = Sim::new(1, EngineConfig::DEFAULT).with_upstream(|_, _, now| {
        if now < T0 + 70 * S {
            Upstream::Status {
                status: 410,
                retry_after: None,
            }
        } else {
            Upstream::Token { expires_in: 86_400 }
        }
    });
    let c = sim.ask(0, 100 * S, false);
    sim.run_until(T0 + 100 * S);
    let (at, got) = sim.callers[c].answer.clone().expect("answered");
    token(&got);
    assert!(
        (T0 + 70 * S..=T0 + 73 * S).contains(&at),
        "answered at +{} ms",
        at - T0
    );
    let sent = sim.sent_for(0);
    assert!(sent.len() >= 8, "{} attempts", sent.len());
    // Retry k starts in its slot: k · 10 s after the first 410, plus up to 2 s of jitter.
    let first_410 = sent[0].at + sim.latency;
    for (k, s) in sent.iter().enumerate().skip(1) {
        let offset = s.at - first_410;
        let slot = k as u64 * 10 * S;
        assert!(
            (slot..=slot + 2 * S).contains(&offset),
            "retry {k} at +{offset} ms"
        );
    }
}

#[test]
fn a_429_retry_after_is_honoured() {
    let mut sim = Sim::new(1, EngineConfig::DEFAULT).with_upstream(|_, attempt, _| {
        if attempt == 1 {
            Upstream::Status {
                status: 429,
                retry_after: Some(3),
            }
        } else {
            Upstream::Token { expires_in: 3600 }
        }
    });
    let c = sim.ask(0, 30 * S, false);
    sim.run_until(T0 + 30 * S);
    token(sim.got(c));
    let sent = sim.sent_for(0);
    assert_eq!(sent.len(), 2);
    let throttled_at = sent[0].at + sim.latency;
    assert!(
        sent[1].at >= throttled_at + 3 * S,
        "retried before Retry-After"
    );
    assert!(sent[1].at <= throttled_at + 3 * S + 100);
}

#[test]
fn a_429_retry_after_beyond_the_policy_is_answered_as_is() {
    let mut sim = Sim::new(1, EngineConfig::DEFAULT).with_upstream(|_, _, _| Upstream::Status {
        status: 429,
        retry_after: Some(600),
    });
    let c = sim.ask(0, 30 * S, false);
    sim.run_until(T0 + 30 * S);
    assert_eq!(
        sim.got(c),
        &Got::Failed {
            status: 429,
            error: "e429".into(),
            text: "simulated 429".into(),
            retry_after: Some(600)
        }
    );
    assert_eq!(sim.sent.len(), 1);
}

#[test]
fn tokens_are_refreshed_at_half_life_without_callers() {
    let mut sim = Sim::new(1, EngineConfig::DEFAULT);
    let c = sim.ask(0, 30 * S, false);
    sim.run_until(T0 + S);
    let first = token(sim.got(c)).to_owned();
    // IMDS's 24 h token: due 12 h after issue (lifetime = expires_on − not_before).
    let due = sim.engine.poll_at().expect("a refresh time");
    assert!(
        (T0 + 12 * H..T0 + 12 * H + S).contains(&due),
        "{}",
        due - T0
    );
    sim.run_until(due - 1);
    assert_eq!(sim.sent.len(), 1, "nothing before half-life");
    sim.run_until(due + S);
    assert_eq!(sim.sent.len(), 2);
    assert_eq!(sim.sent[1].at, due);
    let c2 = sim.ask(0, 30 * S, false);
    let second = token(sim.got(c2)).to_owned();
    assert_ne!(first, second, "the refreshed token is served");
    assert_eq!(sim.sent.len(), 2);
    // Idle between: the next wake-up is the next half-life.
    let next = sim.engine.poll_at().expect("the next refresh time");
    assert!(
        (due + 12 * H..due + 12 * H + S).contains(&next),
        "{}",
        next - due
    );
}

#[test]
fn a_failed_refresh_serves_the_still_valid_token() {
    // 1 h tokens are due 5 min before expiry. The refresh (and everything after) fails.
    let mut sim = Sim::new(1, EngineConfig::DEFAULT.with_refresh_ahead(false)).with_upstream(
        |_, attempt, _| {
            if attempt == 1 {
                Upstream::Token { expires_in: 3600 }
            } else {
                Upstream::Status {
                    status: 500,
                    retry_after: None,
                }
            }
        },
    );
    let c = sim.ask(0, 30 * S, false);
    sim.run_until(T0 + S);
    let tok = token(sim.got(c)).to_owned();
    let expires = T0 + sim.latency + H;
    // Due for refresh: answered at once with the cached token; a refresh starts.
    sim.run_until(expires - 4 * MIN);
    let c = sim.ask(0, 30 * S, false);
    assert_eq!(token(sim.got(c)), tok);
    assert_eq!(sim.sent.len(), 2);
    // A caller that bypasses the cache waits on upstream; when it gives up, it gets the token
    // that is still valid.
    let b = sim.ask(0, 2 * MIN, true);
    sim.run_until(expires - 2 * MIN);
    assert_eq!(token(sim.got(b)), tok, "stale fallback");
    assert!(sim.sent.iter().any(|s| s.bypass_cache));
    // Until it expires, callers keep getting it; then they wait, and get the failure.
    let c = sim.ask(0, 30 * S, false);
    assert_eq!(token(sim.got(c)), tok);
    sim.run_until(expires);
    let c = sim.ask(0, 90 * S, false);
    sim.run_until(expires + 100 * S);
    assert_eq!(
        sim.got(c),
        &Got::Failed {
            status: 500,
            error: "e500".into(),
            text: "simulated 500".into(),
            retry_after: None
        }
    );
}

#[test]
fn a_caller_whose_deadline_passes_while_queued_is_answered_and_its_request_dropped() {
    // Five keys hold every slot with slow answers; the sixth key's caller gives up after 2 s.
    let mut sim = Sim::new(6, EngineConfig::DEFAULT);
    sim.latency = 10 * S;
    for k in 0..5 {
        sim.ask(k, 60 * S, false);
    }
    let late = sim.ask(5, 2 * S, false);
    sim.run_until(T0 + 2 * S);
    assert_eq!(sim.got(late), &Got::DeadlinePassed);
    assert_eq!(sim.callers[late].answer.as_ref().unwrap().0, T0 + 2 * S);
    assert_eq!(sim.engine.flights(), 5, "the orphaned request was dropped");
    sim.run_until(T0 + 60 * S);
    assert!(sim.sent_for(5).is_empty(), "nobody wanted key 5 any more");
    let a = mitoken_core::engine::ErrorAnswer::deadline_passed();
    assert_eq!(
        (a.status, a.error, a.retry_after),
        (503, "service_unavailable", Some(5))
    );
}

#[test]
fn an_unreachable_upstream_is_a_503_after_six_attempts() {
    let mut sim = Sim::new(1, EngineConfig::DEFAULT).with_upstream(|_, _, _| Upstream::Refused);
    let c = sim.ask(0, 120 * S, false);
    sim.run_until(T0 + 120 * S);
    let Got::Failed {
        status,
        error,
        text,
        retry_after,
    } = sim.got(c)
    else {
        panic!("{:?}", sim.got(c))
    };
    assert_eq!(
        (*status, error.as_str(), *retry_after),
        (503, "service_unavailable", Some(5))
    );
    assert!(text.contains("6 attempts"), "{text}");
    assert_eq!(sim.sent.len(), 6);
    // Exponential: 0, 2, 6, 14, 30 s (± 20 %) → the last attempt starts after ~52 s.
    let last = sim.sent[5].at - T0;
    assert!((40 * S..65 * S).contains(&last), "{last}");
}

#[test]
fn answers_that_are_not_tokens_are_not_retried() {
    let mut sim = Sim::new(2, EngineConfig::DEFAULT).with_upstream(|key, _, _| {
        if key == 0 {
            Upstream::Garbage
        } else {
            Upstream::Status {
                status: 302,
                retry_after: None,
            }
        }
    });
    let a = sim.ask(0, 30 * S, false);
    let b = sim.ask(1, 30 * S, false);
    sim.run_until(T0 + 30 * S);
    assert_eq!(sim.sent.len(), 2);
    for c in [a, b] {
        let Got::Failed { status, error, .. } = sim.got(c) else {
            panic!("{:?}", sim.got(c))
        };
        assert_eq!((*status, error.as_str()), (502, "bad_gateway"));
    }
}

#[test]
fn full_tables_are_errors() {
    let mut e: Box<mitoken_core::engine::Engine<2, 512, 128, 2, 3>> =
        Box::new(mitoken_core::engine::Engine::new(EngineConfig::DEFAULT, 1));
    let res = ["a", "b", "c"];
    let key = |i: usize| CacheKey::new(Endpoint::Imds, Some(Selector::ClientId("x")), res[i]);
    assert!(matches!(
        e.request(&key(0), T0, T0 + S, false),
        Ok(Ask::Wait(_))
    ));
    assert!(matches!(
        e.request(&key(1), T0, T0 + S, false),
        Ok(Ask::Wait(_))
    ));
    assert_eq!(
        e.request(&key(2), T0, T0 + S, false),
        Err(EngineError::FlightsFull)
    );
    assert!(matches!(
        e.request(&key(0), T0, T0 + S, false),
        Ok(Ask::Wait(_))
    ));
    assert_eq!(
        e.request(&key(0), T0, T0 + S, false),
        Err(EngineError::WaitersFull)
    );
    let long = "r".repeat(200);
    let k = CacheKey::new(Endpoint::Imds, None, &long);
    assert!(matches!(
        e.request(&k, T0, T0 + S, false),
        Err(EngineError::WaitersFull | EngineError::Key(_))
    ));
    // Waiting callers time out; their slots free up.
    e.handle_timeout(T0 + S);
    let mut woken = 0;
    while e.poll_wake(T0 + S).is_some() {
        woken += 1;
    }
    assert_eq!(woken, 3);
    assert_eq!(e.waiting(), 0);
    assert!(matches!(
        e.request(&k, T0 + S, T0 + 2 * S, false),
        Err(EngineError::Key(_))
    ));
}

#[test]
fn a_token_too_large_for_the_cache_fails_its_callers_with_bad_gateway() {
    let mut e: Box<mitoken_core::engine::Engine<2, 16, 128, 2, 3>> =
        Box::new(mitoken_core::engine::Engine::new(EngineConfig::DEFAULT, 1));
    let key = CacheKey::new(Endpoint::Imds, None, "r");
    let Ok(Ask::Wait(ticket)) = e.request(&key, T0, T0 + S, false) else {
        panic!()
    };
    let flight = e.poll_transmit(T0).unwrap().flight;
    let body = br#"{"access_token":"a-token-longer-than-sixteen-bytes","expires_in":"3600","resource":"r","token_type":"Bearer"}"#;
    let t = mitoken_core::token::Token::parse(body, &mut []).unwrap();
    e.handle_reply(flight, T0, mitoken_core::engine::Reply::Token(t))
        .unwrap();
    assert_eq!(
        e.handle_reply(flight, T0, mitoken_core::engine::Reply::Io),
        Err(EngineError::UnknownFlight)
    );
    let w = e.poll_wake(T0).unwrap();
    assert_eq!(w.ticket, ticket);
    let a = w.answer.error_answer().unwrap();
    assert_eq!((a.status, a.error), (502, "bad_gateway"));
    assert!(
        a.description.to_string().contains("bytes required"),
        "{}",
        a.description
    );
}

#[test]
fn no_retries_policy_and_no_limits() {
    let mut policy = RetryPolicy::IMDS;
    policy.max_retries = 0;
    let config = EngineConfig::DEFAULT.with_retry(policy).with_limits(None);
    let mut sim = Sim::new(30, config).with_upstream(|_, _, _| Upstream::Status {
        status: 503,
        retry_after: None,
    });
    for k in 0..30 {
        sim.ask(k, 10 * S, false);
    }
    sim.run_until(T0 + 10 * S);
    assert_eq!(sim.sent.len(), 30);
    assert!(
        sim.sent.iter().all(|s| s.at == T0),
        "no limiter: all at once"
    );
    // One engine check: nothing is retried.
    let _ = TestEngine::new(config, 0);
}

#[test]
fn cached_answers_only_a_fresh_token_and_changes_nothing_else() {
    // 1 h tokens are due 5 min before expiry; no refresh-ahead timer, so only callers move it.
    let mut sim = Sim::new(2, EngineConfig::DEFAULT.with_refresh_ahead(false));
    let key = OwnedKey::<256>::new(&sim.keys.key(0)).expect("key fits");
    assert!(
        sim.engine.cached(&key.key(), sim.now).is_none(),
        "nothing cached yet"
    );
    sim.upstream = Box::new(|_, _, _| Upstream::Token { expires_in: 3600 });
    let c = sim.ask(0, 30 * S, false);
    sim.run_until(T0 + S);
    let tok = token(sim.got(c)).to_owned();
    let expires = T0 + sim.latency + H;
    let poll_at = sim.engine.poll_at();
    // Fresh: answered, no flight, nothing to send, the timer unchanged.
    let t = sim.engine.cached(&key.key(), sim.now).expect("fresh");
    assert_eq!(t.access_token.expose(), tok);
    assert!(sim.engine.poll_transmit(sim.now).is_none());
    assert_eq!((sim.engine.flights(), sim.engine.poll_at()), (0, poll_at));
    // Another key is not answered by this one.
    assert!(sim.engine.cached(&sim.keys.key(1), sim.now).is_none());
    // Due for refresh: `cached` declines and starts nothing (`request` does both).
    let due = expires - 4 * MIN;
    assert!(sim.engine.cached(&key.key(), due).is_none());
    assert!(sim.engine.poll_transmit(due).is_none());
    assert_eq!(sim.engine.flights(), 0);
    sim.run_until(due);
    let c = sim.ask(0, 30 * S, false);
    assert_eq!(token(sim.got(c)), tok, "the due token, served by request");
    assert_eq!(sim.sent.len(), 2, "request started the refresh");
    // Expired: declined.
    assert!(sim.engine.cached(&key.key(), expires + 1).is_none());
}
