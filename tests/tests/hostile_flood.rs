//! Hostile clients, part 3: a local connection flood against real `mitoken emulate` and
//! `mitoken bridge` processes on loopback. One process opens 10,000 connections, sends each the
//! start of a request head (`GET / HTTP/1.1\r\nHo`) and goes silent; meanwhile (while it opens
//! them, and while it holds them all) other clients must be served: a new connection's token
//! request answered 200 in under a second, a keep-alive connection that completed a request
//! before the attack still served, memory and descriptors bounded. Same conventions as
//! `hostile_load.rs`: the process is alive, healthy and exits cleanly afterwards.

use std::io::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mitoken_tests::hostile::{
    Kind, Options, SAMI_CLIENT, Target, ensure_open_files, half_open_flood, read_replies,
    still_open,
};

mitoken_tests::hostile_tests!(half_open_flood_of_ten_thousand);

/// Half-open connections the attacker opens and holds.
const FLOOD: usize = 10_000;
/// The servers' default `--max-connections`.
const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// The longest a good request may take during the attack.
const SERVICE_BOUND: Duration = Duration::from_secs(1);
/// How long the attacker holds all its connections while good requests go on.
const HOLD: Duration = Duration::from_secs(2);

/// The emulator and bridge runs share this process's descriptors (and the machine's cores):
/// one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A token request on a new connection; asserts a correct 200 and returns how long it took.
fn good_request(t: &Target, context: &str) -> Duration {
    let started = Instant::now();
    let mut s = t.connect();
    s.write_all(t.normal_request("").as_bytes())
        .unwrap_or_else(|e| panic!("{} {context}: send: {e}", t.kind.name()));
    let ex = read_replies(&mut s, 1, Duration::from_secs(5));
    let latency = started.elapsed();
    let reply = ex.replies.first().unwrap_or_else(|| {
        panic!(
            "{} {context}: no answer to a good request ({:?} after {latency:?})",
            t.kind.name(),
            ex.end
        )
    });
    t.assert_token_reply(reply, Some(SAMI_CLIENT), context);
    latency
}

/// A request on the keep-alive connection opened before the attack: it is still served.
fn kept_request(t: &Target, kept: &mut std::net::TcpStream, context: &str) {
    kept.write_all(t.normal_request("").as_bytes())
        .unwrap_or_else(|e| panic!("{} {context}: keep-alive send: {e}", t.kind.name()));
    let ex = read_replies(kept, 1, Duration::from_secs(5));
    let reply = ex.replies.first().unwrap_or_else(|| {
        panic!(
            "{} {context}: the keep-alive connection lost ({:?})",
            t.kind.name(),
            ex.end
        )
    });
    t.assert_token_reply(reply, Some(SAMI_CLIENT), context);
}

/// 10,000 half-open connections from one local process: service for everyone else during the
/// attack (the server evicts the oldest connections that never completed a request instead of
/// refusing newcomers), bounded memory and descriptors, and the connections that completed a
/// request are not the victims.
fn half_open_flood_of_ten_thousand(kind: Kind) {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let nofile = ensure_open_files(u64::try_from(FLOOD).unwrap_or(u64::MAX) + 2_000);
    // No timeout ends the flood's connections during the test: eviction alone must serve.
    let options = Options {
        idle_timeout_secs: 60,
        request_timeout_secs: Some(60),
        ..Options::default()
    };
    let t = Target::start(kind, options);
    let fds_before = t.server.open_fds();
    // A client that completed a request before the attack, kept alive.
    let mut kept = t.connect();
    kept_request(&t, &mut kept, "before the flood");

    let addr = t.addr().to_owned();
    let attacker = std::thread::spawn(move || {
        let started = Instant::now();
        let (held, failed) = half_open_flood(&addr, FLOOD);
        (held, failed, started.elapsed())
    });
    // While the attacker opens its connections.
    let mut while_opening = Vec::new();
    let mut fds_opening = 0;
    while !attacker.is_finished() {
        while_opening.push(good_request(&t, "while the flood opens"));
        fds_opening = fds_opening.max(t.server.open_fds());
        t.sample_rss();
        std::thread::sleep(Duration::from_millis(20));
    }
    let (held, failed, opened_in) = attacker.join().expect("attacker thread");
    // While it holds them all.
    let mut while_held = Vec::new();
    let mut fds_during = 0;
    let hold_started = Instant::now();
    while hold_started.elapsed() < HOLD {
        while_held.push(good_request(&t, "while the flood is held"));
        fds_during = fds_during.max(t.server.open_fds());
        t.sample_rss();
        std::thread::sleep(Duration::from_millis(50));
    }
    kept_request(&t, &mut kept, "during the flood");
    let rss_during = t.peak_rss_kib();
    let server_holds = still_open(&held);
    t.server.assert_alive("half-open flood");
    assert!(
        server_holds <= DEFAULT_MAX_CONNECTIONS,
        "{}: {server_holds} flood connections held by the server, over the cap",
        kind.name()
    );
    assert!(
        fds_during.max(fds_opening) <= DEFAULT_MAX_CONNECTIONS + 64,
        "{}: {fds_opening} / {fds_during} descriptors open while the flood opens / is held",
        kind.name()
    );
    assert!(
        while_held.len() >= 10,
        "{}: only {} good requests while held",
        kind.name(),
        while_held.len()
    );
    t.assert_rss_bounded("half-open flood");
    drop(held);
    std::thread::sleep(Duration::from_millis(500));
    let fds_after = t.server.open_fds();
    let rss_after = t.sample_rss();
    let worst = while_opening
        .iter()
        .chain(&while_held)
        .max()
        .copied()
        .unwrap_or_default();
    let mean_held =
        while_held.iter().sum::<Duration>() / u32::try_from(while_held.len()).unwrap_or(1).max(1);
    println!(
        "hostile[{}] half-open flood: RLIMIT_NOFILE soft {nofile}; {} of {FLOOD} half-open connections opened in {opened_in:.1?} ({failed} failed), \
         the server still held {server_holds} of them after {HOLD:?} held; good requests: {} while opening, {} while held (mean {mean_held:.1?}), slowest {worst:.1?}; \
         server fds {fds_before} before, {fds_opening} peak while opening, {fds_during} peak while held, {fds_after} after; RSS {} KiB before, {rss_during} KiB peak during, {rss_after} KiB after",
        kind.name(),
        FLOOD - failed,
        while_opening.len(),
        while_held.len(),
        t.baseline_rss_kib,
    );
    let slow: Vec<&Duration> = while_opening
        .iter()
        .chain(&while_held)
        .filter(|l| **l >= SERVICE_BOUND)
        .collect();
    assert!(
        slow.is_empty(),
        "{}: good requests over {SERVICE_BOUND:?} during the attack: {slow:?}",
        kind.name()
    );
    assert!(
        fds_after <= fds_before + 8,
        "{}: {fds_after} descriptors left (before: {fds_before})",
        kind.name()
    );
    // The keep-alive connection is still served after the attack, too.
    kept_request(&t, &mut kept, "after the flood");
    drop(kept);
    t.finish("half-open flood");
}
