//! Hostile clients, part 2: resource exhaustion against real `mitoken emulate` and
//! `mitoken bridge` processes on loopback — slow-loris, 10,000 idle connections, 1,000
//! identities × concurrent clients. Same conventions as `hostile_http.rs`: every attack ends
//! with the process alive, a normal request answered correctly, RSS bounded, and a clean exit.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mitoken_tests::hostile::{
    Kind, Options, RESOURCE, Target, admin_get, ensure_open_files, many_client_id,
    many_identities_config, parse_responses, read_replies,
};

mitoken_tests::hostile_tests!(
    slow_loris,
    ten_thousand_idle_connections,
    thousand_identities_concurrent_clients,
);

/// The servers' default `--max-connections`.
const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// A slow-loris client: sends `prefix` at once, then `trickle` one byte per second, watching for
/// the server to close. Returns when (since its start) the server closed it, or `None` if it
/// was still open after the whole trickle.
fn trickle(addr: &str, prefix: &[u8], trickle: &[u8]) -> Option<Duration> {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    s.write_all(prefix).expect("send prefix");
    let mut buf = [0u8; 4096];
    for byte in trickle {
        if s.write_all(std::slice::from_ref(byte)).is_err() {
            return Some(started.elapsed());
        }
        // Waits one second for the server to say or do something.
        match s.read(&mut buf) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Ok(n) => {
                // Closed (0), or an answer before closing (a 408 would do): the server gave up
                // on this request either way.
                if n > 0 {
                    let (replies, _) = parse_responses(buf.get(..n).unwrap_or_default());
                    assert!(
                        replies.iter().all(|r| r.status >= 400),
                        "a trickled request was answered {:?}",
                        replies.iter().map(|r| r.status).collect::<Vec<_>>()
                    );
                }
                return Some(started.elapsed());
            }
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

/// A byte a second, in heads and in bodies: other clients are served meanwhile without delay,
/// and the request timeout (`--idle-timeout 2`, counted from the connection's start, not from the
/// last byte) closes every trickling connection.
fn slow_loris(kind: Kind) {
    let t = Arc::new(Target::start(kind, Options::default()));
    let timeout = Duration::from_secs(u64::from(t.options.idle_timeout_secs));
    let head = t.normal_request("");
    let head_bytes = head.as_bytes().to_vec();
    let post = format!(
        "POST {} HTTP/1.1\r\nMetadata: true\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 40\r\n\r\n",
        t.token_target(RESOURCE, "")
    );
    let loris: Vec<_> = (0..8)
        .map(|i| {
            let addr = t.addr().to_owned();
            let (prefix, rest) = if i % 2 == 0 {
                // The head itself, a byte at a time (after its first 10 bytes).
                let (a, b) = head_bytes.split_at(10);
                (a.to_vec(), b.get(..12).unwrap_or(b).to_vec())
            } else {
                // A complete head, then its body a byte at a time.
                (
                    post.clone().into_bytes(),
                    b"resource=https%3A%2F%2F".to_vec(),
                )
            };
            std::thread::spawn(move || trickle(&addr, &prefix, &rest))
        })
        .collect();
    // Meanwhile, normal clients are served at once.
    let started = Instant::now();
    let mut latencies = Vec::new();
    while started.elapsed() < timeout + Duration::from_secs(2) {
        let latency = t.assert_normal_request("during slow-loris");
        // A server that waited on a trickling client would hold this request for about a
        // second (the trickle's pace) or until the 2 s timeout; 1.5 s catches both.
        assert!(
            latency < Duration::from_millis(1500),
            "{}: a normal request waited {latency:?} behind slow-loris clients",
            kind.name()
        );
        latencies.push(latency);
        t.sample_rss();
        std::thread::sleep(Duration::from_millis(250));
    }
    let closed: Vec<Option<Duration>> = loris
        .into_iter()
        .map(|h| h.join().expect("loris thread"))
        .collect();
    for (i, c) in closed.iter().enumerate() {
        let at = c.unwrap_or_else(|| {
            panic!(
                "{}: slow-loris #{i} still open after 12 s of a byte per second (timeout {timeout:?})",
                kind.name()
            )
        });
        assert!(
            at <= timeout + Duration::from_millis(2500),
            "{}: slow-loris #{i} closed only after {at:?} (timeout {timeout:?})",
            kind.name()
        );
    }
    // One scheduling hiccup on a loaded machine is tolerated; a pattern of slow answers is not.
    let slow = latencies
        .iter()
        .filter(|l| **l >= Duration::from_millis(500))
        .count();
    assert!(
        slow <= 1,
        "{}: {slow} of {} normal requests took 500 ms or more during slow-loris: {latencies:?}",
        kind.name(),
        latencies.len()
    );
    let worst = latencies.iter().max().copied().unwrap_or_default();
    println!(
        "hostile[{}] slow-loris: 8 trickling clients (4 heads, 4 bodies) closed after {:.1?}; {} normal requests meanwhile, slowest {worst:.1?}",
        kind.name(),
        closed.iter().flatten().max().copied().unwrap_or_default(),
        latencies.len()
    );
    let t = Arc::into_inner(t).expect("threads joined");
    t.finish("slow-loris");
}

/// How an opened connection stands.
#[derive(Debug, Default)]
struct Tally {
    held: usize,
    refused_503: usize,
    closed: usize,
    reset: usize,
}

fn tally(conns: &mut [TcpStream]) -> Tally {
    let mut t = Tally::default();
    let mut buf = [0u8; 1024];
    for s in conns {
        let _ = s.set_nonblocking(true);
        match s.read(&mut buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => t.held += 1,
            Ok(0) => t.closed += 1,
            Ok(n) => {
                let text = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
                assert!(
                    text.starts_with("HTTP/1.1 503 ") && text.contains("Retry-After: 1\r\n"),
                    "an extra connection got {text}"
                );
                t.refused_503 += 1;
            }
            Err(_) => t.reset += 1,
        }
        let _ = s.set_nonblocking(false);
    }
    t
}

/// 10,000 connections opened and left idle: the server holds at most `--max-connections`
/// (the oldest connections without a request are closed for newer ones), keeps its memory and
/// descriptors bounded, serves a normal request while full, then closes the idle ones after
/// the timeout and serves normally again.
fn ten_thousand_idle_connections(kind: Kind) {
    const N: usize = 10_000;
    // The emulator and bridge runs share this process's descriptors: one at a time.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    ensure_open_files(u64::try_from(N).unwrap_or(u64::MAX) + 1_000);
    let options = Options {
        idle_timeout_secs: 6,
        ..Options::default()
    };
    let t = Target::start(kind, options);
    let max = DEFAULT_MAX_CONNECTIONS;
    let started = Instant::now();
    let mut conns = Vec::with_capacity(N);
    let mut connect_errors = 0usize;
    for _ in 0..N {
        match TcpStream::connect(t.addr()) {
            Ok(s) => conns.push(s),
            Err(_) => connect_errors += 1,
        }
    }
    let opened_in = started.elapsed();
    let all_opened = Instant::now();
    let fds_full = t.server.open_fds();
    let rss_full = t.sample_rss();
    // Let the accept loop catch up with the backlog.
    std::thread::sleep(Duration::from_millis(500));
    let rss_full = rss_full.max(t.sample_rss());
    let first = tally(&mut conns);
    assert!(
        first.held <= max,
        "{}: {} connections held open, over --max-connections {max}",
        kind.name(),
        first.held
    );
    assert!(
        first.held + first.refused_503 + first.closed + first.reset == conns.len(),
        "{first:?}"
    );
    assert!(
        first.refused_503 + first.closed + first.reset + connect_errors >= N - max,
        "{}: extras refused: {first:?}, connect errors {connect_errors}",
        kind.name()
    );
    assert!(
        fds_full <= max + 64,
        "{}: {fds_full} descriptors open with {N} clients",
        kind.name()
    );
    // Full of connections that never sent a request: the oldest gives way, a normal request is
    // served (`hostile_flood.rs` times it).
    let mut s = t.connect();
    let _ = s.write_all(t.normal_request("").as_bytes());
    let ex = read_replies(&mut s, 1, Duration::from_secs(5));
    let full_status = ex.replies.first().map_or(0, |r| r.status);
    assert_eq!(
        full_status,
        200,
        "{}: a normal request while full got {full_status}",
        kind.name()
    );
    drop(s);
    t.server.assert_alive("10,000 connections");
    // The idle ones are closed after the timeout (the ones held are the last opened: older
    // ones gave way to them); then normal service resumes.
    let timeout = Duration::from_secs(u64::from(t.options.idle_timeout_secs));
    std::thread::sleep((timeout + Duration::from_secs(1)).saturating_sub(all_opened.elapsed()));
    let second = tally(&mut conns);
    assert_eq!(
        second.held,
        0,
        "{}: idle connections still open after the idle timeout: {second:?}",
        kind.name()
    );
    t.check_healthy("10,000 idle connections (held)");
    drop(conns);
    std::thread::sleep(Duration::from_millis(300));
    let fds_after = t.server.open_fds();
    println!(
        "hostile[{}] 10,000 idle: opened {} in {opened_in:.1?} ({connect_errors} connect errors); held {}, refused 503 {}, closed {}, reset {}; server fds {fds_full} with all open, {fds_after} after; RSS {} KiB idle → {rss_full} KiB full; normal request while full: {full_status}",
        kind.name(),
        N - connect_errors,
        first.held,
        first.refused_503,
        first.closed,
        first.reset,
        t.baseline_rss_kib,
    );
    assert!(
        fds_after <= 64,
        "{}: {fds_after} descriptors left",
        kind.name()
    );
    t.finish("10,000 idle connections");
}

/// A VM of 1,000 user-assigned identities and 8 concurrent keep-alive clients: every answer is
/// the right identity's token, and memory stays bounded.
///
/// The emulator: each client asks for all 1,000 (8,000 requests, 1,000 tokens minted and
/// cached). The bridge: each client asks twice for the same 64 of them, in its own order
/// (1,024 requests) and IMDS is asked exactly once per identity (single-flight and cache). The
/// bridge keeps IMDS's limits towards its upstream (20 requests/s) and caches 256 tokens, so a
/// rotation over all 1,000 would be capped at 20 answers/s by design.
fn thousand_identities_concurrent_clients(kind: Kind) {
    const IDENTITIES: usize = 1_000;
    const CLIENTS: usize = 8;
    let (used, rounds) = match kind {
        Kind::Emulate => (IDENTITIES, 1),
        Kind::Bridge => (64, 2),
    };
    let config = many_identities_config(IDENTITIES);
    let options = Options {
        idle_timeout_secs: 20,
        config: Some(config.clone()),
        ..Options::default()
    };
    let t = Arc::new(Target::start(kind, options));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let t = Arc::clone(&t);
            std::thread::spawn(move || {
                let mut s = t.connect();
                for k in 0..used * rounds {
                    // Spread over the whole table: identity numbers up to 999 either way.
                    let i = ((k + c * used / CLIENTS) % used) * (IDENTITIES / used);
                    let id = many_client_id(i);
                    let request = t.normal_request(&format!("&client_id={id}"));
                    if s.write_all(request.as_bytes()).is_err() {
                        s = t.connect();
                        s.write_all(request.as_bytes()).expect("send");
                    }
                    let ex = read_replies(&mut s, 1, Duration::from_secs(20));
                    let reply = ex.replies.first().unwrap_or_else(|| {
                        panic!("client {c}: no answer for identity {i}: {:?}", ex.end)
                    });
                    t.assert_token_reply(reply, Some(&id), &format!("identity {i}"));
                }
            })
        })
        .collect();
    while clients.iter().any(|c| !c.is_finished()) {
        t.sample_rss();
        std::thread::sleep(Duration::from_millis(100));
    }
    for c in clients {
        c.join().expect("client thread");
    }
    let took = started.elapsed();
    if let Some(up) = &t.upstream {
        // The warm-up's default identity, then one upstream request per identity used.
        let counters = admin_get(&up.addr, "counters");
        assert_eq!(
            counters["total"],
            1 + used,
            "bridge: IMDS asked once per identity: {counters}"
        );
    }
    let rss = t.check_healthy("1,000 identities × 8 concurrent clients");
    println!(
        "hostile[{}] 1,000 identities × {CLIENTS} clients ({used} identities asked for, {rounds} round(s)): {} requests in {took:.1?}; RSS {} KiB → {rss} KiB (peak {} KiB)",
        kind.name(),
        used * rounds * CLIENTS,
        t.baseline_rss_kib,
        t.peak_rss_kib()
    );
    let t = Arc::into_inner(t).expect("threads joined");
    t.finish("1,000 identities × concurrent clients");
    let _ = std::fs::remove_file(config);
}
