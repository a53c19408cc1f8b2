//! Hostile clients, part 1: malformed and malicious HTTP against real `mitoken emulate` and
//! `mitoken bridge` processes on loopback (see `mitoken_tests::hostile`).
//!
//! Every attack starts its own target, attacks it over raw TCP, asserts what the server answered
//! (or that it closed), and ends with [`Target::finish`]: the process never exited or panicked,
//! it answers a normal token request correctly, its RSS stayed within
//! `RSS_HEADROOM_KIB` of its warmed-up baseline, and SIGTERM stops it with exit 0.
//!
//! Each attack runs twice: `emulate::<attack>` and `bridge::<attack>` (the bridge in front of an
//! emulator upstream).

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{Shutdown, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mitoken_tests::hostile::{
    End, Exchange, Kind, Options, RESOURCE, Rng, SAMI_CLIENT, ServerProcess, Target, UA1_CLIENT,
    exchange, read_replies, read_until_closed,
};

const WITHIN: Duration = Duration::from_secs(10);

mitoken_tests::hostile_tests!(
    garbage_and_binary_bytes,
    heads_over_the_limits,
    content_length_lies,
    smuggling_attempts,
    header_injection_through_query_values,
    requests_without_metadata_true,
    requests_with_x_forwarded_for,
    absolute_form_urls_to_other_hosts,
    huge_query_strings,
    pipelined_requests,
);

/// Asserts `ex` is refused: at most one response, an error in `allowed` (with
/// `Connection: close` unless it is IMDS's 404 / 405), then the connection closed (FIN or RST). Returns the status (0 for a close without answer).
fn assert_refused_and_closed(kind: Kind, ex: &Exchange, what: &str, allowed: &[u16]) -> u16 {
    assert!(
        ex.replies.len() <= 1,
        "{} {what}: one answer at most, got {:?}",
        kind.name(),
        ex.statuses()
    );
    assert_ne!(
        ex.end,
        End::Open,
        "{} {what}: the connection is closed after a refusal",
        kind.name()
    );
    assert!(
        ex.trailing.is_empty(),
        "{} {what}: torn answer {:?}",
        kind.name(),
        String::from_utf8_lossy(&ex.trailing)
    );
    let Some(reply) = ex.replies.first() else {
        return 0;
    };
    assert!(
        allowed.contains(&reply.status),
        "{} {what}: status {} not in {allowed:?}: {}",
        kind.name(),
        reply.status,
        String::from_utf8_lossy(&reply.body)
    );
    // Malformed HTTP closes the connection (and says so); IMDS's own validation errors (404
    // unknown path, 405 method) keep it, and the half-closed client side ends it.
    if !matches!(reply.status, 404 | 405) {
        assert_eq!(
            reply.header("Connection"),
            Some("close"),
            "{} {what}: a refusal of malformed HTTP says it closes",
            kind.name()
        );
    }
    reply.status
}

/// Random bytes, binary protocols and near-HTTP noise: never a 2xx, never a hang, never a torn
/// answer; the server closes each connection.
fn garbage_and_binary_bytes(kind: Kind) {
    let t = Target::start(kind, Options::default());
    let mut rng = Rng::new(0x5eed_0001);
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("empty line".into(), b"\r\n\r\n".to_vec()),
        ("NULs".into(), vec![0; 16 * 1024]),
        ("0xFF x 64 KiB".into(), vec![0xff; 64 * 1024]),
        (
            "TLS ClientHello".into(),
            [
                &[
                    0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
                ][..],
                &[0xab; 32][..],
                b"\r\n\r\n",
            ]
            .concat(),
        ),
        (
            "HTTP/2 preface".into(),
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00".to_vec(),
        ),
        ("SSH banner".into(), b"SSH-2.0-OpenSSH_9.6\r\n".to_vec()),
        (
            "NUL in request line".into(),
            format!(
                "GET {}\0 HTTP/1.1\r\nMetadata: true\r\n\r\n",
                t.token_path()
            )
            .into_bytes(),
        ),
        (
            "UTF-8 in target".into(),
            "GET /métadata HTTP/1.1\r\nMetadata: true\r\n\r\n"
                .as_bytes()
                .to_vec(),
        ),
        (
            "HTTP/9.9".into(),
            format!(
                "GET {} HTTP/9.9\r\nMetadata: true\r\n\r\n",
                t.token_target(RESOURCE, "")
            )
            .into_bytes(),
        ),
        (
            "lowercase method".into(),
            format!(
                "get {} HTTP/1.1\r\nMetadata: true\r\n\r\n",
                t.token_target(RESOURCE, "")
            )
            .into_bytes(),
        ),
        (
            "8 KiB method".into(),
            format!("{} / HTTP/1.1\r\n\r\n", "G".repeat(9000)).into_bytes(),
        ),
        (
            "bare LF request".into(),
            format!(
                "GET {} HTTP/1.1\nMetadata: true\n\n",
                t.token_target(RESOURCE, "")
            )
            .into_bytes(),
        ),
    ];
    for i in 0..150 {
        let len = 1 + rng.below(if i % 10 == 0 { 40_000 } else { 2_000 });
        let mut bytes = rng.bytes(len);
        if i % 3 == 0 {
            // Sprinkle line ends so the parser gets past its first line.
            for _ in 0..4 {
                let at = rng.below(bytes.len());
                bytes.splice(at..at, *b"\r\n");
            }
        }
        if i % 5 == 0 {
            // A plausible start, then noise.
            bytes.splice(0..0, *b"GET / HTTP/1.1\r\nMetadata: true\r\n");
        }
        cases.push((format!("random #{i} ({len} bytes)"), bytes));
    }
    let mut refusals = std::collections::BTreeMap::<u16, usize>::new();
    for (what, bytes) in &cases {
        let ex = exchange(&t, bytes, true, WITHIN);
        let status = assert_refused_and_closed(kind, &ex, what, &[400, 404, 405, 413, 431, 505]);
        *refusals.entry(status).or_default() += 1;
    }
    println!(
        "hostile[{}] garbage: {} payloads, answers by status (0 = closed without answer): {refusals:?}",
        kind.name(),
        cases.len()
    );
    t.sample_rss();
    t.finish("garbage and binary bytes");
}

/// Heads over the limits (8 KiB lines, 64 header fields): 431 (or 400) and a close, fast, while
/// other clients are served; a big head within the limits is still answered.
fn heads_over_the_limits(kind: Kind) {
    let t = Target::start(kind, Options::default());
    let target = t.token_target(RESOURCE, "");
    let huge_value = t.get_request(&target, &format!("X-Big: {}\r\n", "a".repeat(9_000)));
    let many = (0..70).fold(String::new(), |mut acc, i| {
        let _ = write!(acc, "X-H{i}: v\r\n");
        acc
    });
    let many_headers = t.get_request(&target, &many);
    let long_line = format!(
        "GET {}&pad={} HTTP/1.1\r\nMetadata: true\r\n\r\n",
        target,
        "p".repeat(9_000)
    );
    let long_name = t.get_request(&target, &format!("{}: v\r\n", "N".repeat(9_000)));
    let never_ending = format!(
        "GET {target} HTTP/1.1\r\nMetadata: true\r\nX-Endless: {}",
        "z".repeat(200_000)
    );
    for (what, raw) in [
        ("9,000-byte header value", &huge_value),
        ("70 header fields", &many_headers),
        ("9,000-byte request line", &long_line),
        ("9,000-byte header name", &long_name),
        ("200 KB line without an end", &never_ending),
    ] {
        let started = std::time::Instant::now();
        let ex = exchange(&t, raw.as_bytes(), false, WITHIN);
        let status = assert_refused_and_closed(kind, &ex, what, &[400, 431]);
        assert!(
            status != 0 || ex.end == End::Reset,
            "{} {what}: answered, not dropped",
            kind.name()
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{} {what}: refused at once (not after a timeout): {:?}",
            kind.name(),
            started.elapsed()
        );
        t.check_healthy(what);
    }
    // 50 clients at once, each with an oversized head.
    let t = Arc::new(t);
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let t = Arc::clone(&t);
            let raw = huge_value.clone();
            std::thread::spawn(move || {
                let ex = exchange(&t, raw.as_bytes(), false, WITHIN);
                assert_refused_and_closed(t.kind, &ex, "concurrent oversized heads", &[400, 431]);
            })
        })
        .collect();
    for th in threads {
        th.join().expect("client thread");
    }
    // A big head *within* the limits: 60 fields of 8,000 bytes (480 KB) is answered normally.
    let big = (0..60).fold(String::new(), |mut acc, i| {
        let _ = write!(acc, "X-Pad{i}: {}\r\n", "b".repeat(8_000));
        acc
    });
    let mut s = t.connect();
    s.write_all(t.get_request(&target, &big).as_bytes())
        .expect("send");
    let ex = read_replies(&mut s, 1, WITHIN);
    t.assert_token_reply(
        ex.replies.first().expect("an answer to a big legal head"),
        Some(SAMI_CLIENT),
        "480 KB head within the limits",
    );
    t.sample_rss();
    let t = Arc::into_inner(t).expect("threads joined");
    t.finish("heads over the limits");
}

/// `Content-Length` that disagrees with the body: short bodies time out, long ones leave a
/// refused remainder, malformed or oversized values are refused at once.
fn content_length_lies(kind: Kind) {
    let t = Target::start(kind, Options::default());
    let path = t.token_target(RESOURCE, "");
    // Declares 100, sends 10, waits: closed by the request timeout (2 s), no answer invented.
    let started = std::time::Instant::now();
    let mut s = t.connect();
    s.write_all(
        format!(
            "POST {path} HTTP/1.1\r\nMetadata: true\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nresource=x"
        )
        .as_bytes(),
    )
    .expect("send");
    let ex = read_until_closed(&mut s, WITHIN);
    assert_ne!(ex.end, End::Open, "{}: short body closed", kind.name());
    assert!(
        ex.replies.iter().all(|r| r.status >= 400),
        "{}: short body not answered 2xx: {:?}",
        kind.name(),
        ex.statuses()
    );
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(u64::from(t.options.idle_timeout_secs) + 3),
        "{}: short body closed after the request timeout, not later: {waited:?}",
        kind.name()
    );
    t.check_healthy("Content-Length longer than the body");

    // Declares 5, sends a body of 30: the rest is read as the next request and refused.
    let lie = t.get_request(&path, "Content-Length: 5\r\n");
    let raw = format!("{lie}12345GARBAGE-NOT-A-REQUEST\r\n\r\n");
    let ex = exchange(&t, raw.as_bytes(), true, WITHIN);
    assert!(
        ex.replies.len() <= 2 && ex.end != End::Open,
        "{}: {:?}",
        kind.name(),
        ex.statuses()
    );
    if let [first, second] = ex.replies.as_slice() {
        assert!(
            first.status == 200 || first.status >= 400,
            "{}",
            first.status
        );
        assert_eq!(
            second.status,
            400,
            "{}: the remainder is refused",
            kind.name()
        );
        assert_eq!(second.header("Connection"), Some("close"));
    }

    // Malformed and oversized values: refused at once, nothing waits for a body.
    for value in [
        "-1",
        "+5",
        "0x10",
        "1e3",
        "5 5",
        "5, 6",
        "",
        "99999999999999999999999",
        "18446744073709551616",
    ] {
        let raw = t.get_request(&path, &format!("Content-Length: {value}\r\n"));
        let ex = exchange(&t, raw.as_bytes(), false, WITHIN);
        assert_refused_and_closed(
            kind,
            &ex,
            &format!("Content-Length: {value:?}"),
            &[400, 413],
        );
        assert!(
            !ex.replies.is_empty(),
            "{}: Content-Length {value:?} answered, not dropped",
            kind.name()
        );
    }
    // Two different lengths.
    let raw = t.get_request(&path, "Content-Length: 3\r\nContent-Length: 4\r\n");
    let ex = exchange(&t, format!("{raw}abcd").as_bytes(), false, WITHIN);
    assert_eq!(
        assert_refused_and_closed(kind, &ex, "two Content-Lengths", &[400]),
        400
    );
    // Over the body limit (8 KiB): 413 at once, without reading the body.
    let raw = t.get_request(&path, "Content-Length: 1000000\r\n");
    let started = std::time::Instant::now();
    let ex = exchange(&t, raw.as_bytes(), false, WITHIN);
    assert_eq!(
        assert_refused_and_closed(kind, &ex, "Content-Length 1,000,000", &[413]),
        413
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    t.finish("Content-Length lies");
}

/// Request-smuggling patterns: each refused with 400 (or 501/505) and the connection closed, so
/// no smuggled second request is ever answered.
#[expect(clippy::too_many_lines, reason = "a table of patterns")]
fn smuggling_attempts(kind: Kind) {
    let t = Target::start(kind, Options::default());
    let path = t.token_target(RESOURCE, "");
    // The request a successful smuggle would get answered: an admin/other-identity request.
    let smuggled = t.normal_request(&format!("&client_id={UA1_CLIENT}"));
    let cases: Vec<(&str, String)> = vec![
        (
            "CL + TE",
            format!(
                "POST {path} HTTP/1.1\r\nMetadata: true\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "TE + CL",
            format!(
                "POST {path} HTTP/1.1\r\nMetadata: true\r\nTransfer-Encoding: chunked\r\nContent-Length: {}\r\n\r\n0\r\n\r\n{smuggled}",
                5 + smuggled.len()
            ),
        ),
        (
            "TE gzip, chunked",
            format!(
                "POST {path} HTTP/1.1\r\nMetadata: true\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "TE chunked twice",
            format!(
                "POST {path} HTTP/1.1\r\nMetadata: true\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "TE xchunked",
            format!(
                "POST {path} HTTP/1.1\r\nMetadata: true\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "TE with vertical tab",
            format!(
                "POST {path} HTTP/1.1\r\nMetadata: true\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "space before colon",
            format!(
                "POST {path} HTTP/1.1\r\nMetadata: true\r\nTransfer-Encoding : chunked\r\nContent-Length: 0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "obs-fold",
            format!(
                "POST {path} HTTP/1.1\r\nMetadata: true\r\nContent-Length: 0\r\nX-Fold: a\r\n Transfer-Encoding: chunked\r\n\r\n{smuggled}"
            ),
        ),
        (
            "bare CR",
            format!(
                "GET {path} HTTP/1.1\r\nMetadata: true\rTransfer-Encoding: chunked\r\n\r\n{smuggled}"
            ),
        ),
        (
            "bare LF in a header",
            format!("GET {path} HTTP/1.1\r\nMetadata: true\nContent-Length: 40\r\n\r\n{smuggled}"),
        ),
        (
            "chunk size with junk",
            format!(
                "POST {path} HTTP/1.1\r\nMetadata: true\r\nTransfer-Encoding: chunked\r\n\r\n4;x\0y\r\nabcd\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "negative chunk size",
            format!(
                "POST {path} HTTP/1.1\r\nMetadata: true\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n\r\n{smuggled}"
            ),
        ),
        (
            "overflowing chunk size",
            format!(
                "POST {path} HTTP/1.1\r\nMetadata: true\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n\r\n{smuggled}"
            ),
        ),
        (
            "chunk longer than its size",
            format!(
                "POST {path} HTTP/1.1\r\nMetadata: true\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "TE in HTTP/1.0",
            format!(
                "POST {path} HTTP/1.0\r\nMetadata: true\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "two Host headers",
            format!(
                "GET {path} HTTP/1.1\r\nHost: a\r\nHost: b\r\nMetadata: true\r\n\r\n{smuggled}"
            ),
        ),
        (
            "NUL in a header value",
            format!("GET {path} HTTP/1.1\r\nMetadata: true\r\nX-A: a\0b\r\n\r\n{smuggled}"),
        ),
    ];
    for (what, raw) in &cases {
        let ex = exchange(&t, raw.as_bytes(), true, WITHIN);
        let status = assert_refused_and_closed(kind, &ex, what, &[400, 501, 505]);
        assert_ne!(status, 0, "{} {what}: refused with an answer", kind.name());
    }
    println!(
        "hostile[{}] smuggling: {} patterns refused, no smuggled request answered",
        kind.name(),
        cases.len()
    );
    t.finish("smuggling attempts");
}

/// CR, LF, NUL and header text in query values (encoded and raw): never reflected into a
/// response header or a log line; raw control characters refused.
fn header_injection_through_query_values(kind: Kind) {
    let t = Target::start(kind, Options::default());
    let injected = [
        "%0D%0AX-Injected:%20yes",
        "%0d%0aX-Injected:%20yes%0d%0a%0d%0a",
        "%0AX-Injected:%20yes",
        "%0DX-Injected:%20yes",
        "%00X-Injected",
        "%E5%98%8A%E5%98%8DX-Injected:%20yes",
    ];
    let mut statuses = Vec::new();
    for value in injected {
        for field in [
            "resource",
            "client_id",
            "object_id",
            "msi_res_id",
            "api-version",
        ] {
            let target = if field == "resource" {
                t.token_target(&format!("https://vault.azure.net{value}"), "")
            } else {
                t.token_target(RESOURCE, &format!("&{field}={value}"))
            };
            let mut s = t.connect();
            s.write_all(t.get_request(&target, "").as_bytes())
                .expect("send");
            let _ = s.shutdown(Shutdown::Write);
            let ex = read_until_closed(&mut s, WITHIN);
            assert!(
                ex.trailing.is_empty(),
                "{} {field}={value}: torn answer",
                kind.name()
            );
            let reply = ex
                .replies
                .first()
                .unwrap_or_else(|| panic!("{} {field}={value}: answered", kind.name()));
            assert!(
                reply
                    .headers
                    .iter()
                    .all(|(n, v)| !n.eq_ignore_ascii_case("X-Injected") && !v.contains('\r')),
                "{} {field}={value}: injected header in {:?}",
                kind.name(),
                reply.headers
            );
            // The body is JSON: any echo is escaped.
            let _ = reply.json();
            statuses.push(reply.status);
        }
    }
    // Raw CR / LF / space in the target: malformed, refused.
    for raw in [
        format!(
            "GET {}\r\nX-Injected: yes HTTP/1.1\r\nMetadata: true\r\n\r\n",
            t.token_target(RESOURCE, "")
        ),
        format!(
            "GET {}\rX-Injected: yes HTTP/1.1\r\nMetadata: true\r\n\r\n",
            t.token_target(RESOURCE, "")
        ),
        format!(
            "GET {} X-Injected: yes HTTP/1.1\r\nMetadata: true\r\n\r\n",
            t.token_target(RESOURCE, "")
        ),
    ] {
        let ex = exchange(&t, raw.as_bytes(), true, WITHIN);
        assert_refused_and_closed(kind, &ex, "raw CR/LF in the target", &[400, 505]);
    }
    // Log forging: nothing a client sends starts a log line of its own.
    let forged = t.get_request(
        &format!("{}%0AFORGED-LOG-LINE", t.token_path()),
        "X-Log: \r\n",
    );
    let _ = exchange(&t, forged.as_bytes(), true, WITHIN);
    t.check_healthy("header injection");
    for logs in [
        Some(t.server.logs()),
        t.upstream.as_ref().map(ServerProcess::logs),
    ]
    .into_iter()
    .flatten()
    {
        assert!(
            logs.lines()
                .all(|l| !l.starts_with("FORGED") && !l.starts_with("X-Injected")),
            "{}: a client forged a log line:\n{logs}",
            kind.name()
        );
    }
    if let Some(up) = &t.upstream {
        // Whatever the bridge forwarded, the upstream never saw a second request line.
        assert!(!up.logs().contains("X-Injected"));
    }
    statuses.sort_unstable();
    statuses.dedup();
    println!(
        "hostile[{}] header injection: {} encoded attempts (statuses {statuses:?}), 3 raw",
        kind.name(),
        injected.len() * 5
    );
    t.finish("header injection through query values");
}

/// Without `Metadata: true` (absent, `false`, empty, repeated): IMDS's 400, no token.
fn requests_without_metadata_true(kind: Kind) {
    let t = Target::start(kind, Options::default());
    let target = t.token_target(RESOURCE, "");
    let host = "Host: 169.254.169.254\r\n";
    for (what, headers) in [
        ("absent", String::new()),
        ("false", "Metadata: false\r\n".to_owned()),
        ("empty", "Metadata:\r\n".to_owned()),
        ("yes", "Metadata: yes\r\n".to_owned()),
        ("true-ish", "Metadata: true1\r\n".to_owned()),
        ("misspelled name", "Metadata-: true\r\n".to_owned()),
    ] {
        let raw = format!("GET {target} HTTP/1.1\r\n{host}{headers}\r\n");
        let mut s = t.connect();
        s.write_all(raw.as_bytes()).expect("send");
        let ex = read_replies(&mut s, 1, WITHIN);
        let reply = ex
            .replies
            .first()
            .unwrap_or_else(|| panic!("{} Metadata {what}: answered", kind.name()));
        assert_eq!(
            reply.status,
            400,
            "{} Metadata {what}: {}",
            kind.name(),
            String::from_utf8_lossy(&reply.body)
        );
        let v = reply.json();
        assert!(v.get("access_token").is_none(), "no token without Metadata");
        if kind == Kind::Emulate {
            assert_eq!(
                v["error_description"], "Required metadata header not specified",
                "Metadata {what}"
            );
        }
        // IMDS's validation errors keep the connection: the next request on it is served.
        s.write_all(t.normal_request("").as_bytes()).expect("send");
        let ex = read_replies(&mut s, 1, WITHIN);
        t.assert_token_reply(
            ex.replies.first().expect("answer on the same connection"),
            Some(SAMI_CLIENT),
            "after a refused Metadata",
        );
    }
    // Two Metadata fields, one true: not a way around the check either way it is decided.
    let raw = format!("GET {target} HTTP/1.1\r\n{host}Metadata: false\r\nMetadata: true\r\n\r\n");
    let ex = exchange(&t, raw.as_bytes(), true, WITHIN);
    let status = ex.replies.first().map_or(0, |r| r.status);
    assert!(
        status == 400 || status == 200,
        "{}: two Metadata fields: {status}",
        kind.name()
    );
    t.finish("requests without Metadata: true");
}

/// `X-Forwarded-For` (any spelling, any value): IMDS's 400, no token — the emulator; the bridge
/// (the legacy extension never checked it) must not pass it on either way.
fn requests_with_x_forwarded_for(kind: Kind) {
    let t = Target::start(kind, Options::default());
    let target = t.token_target(RESOURCE, "");
    for header in [
        "X-Forwarded-For: 10.0.0.1\r\n",
        "x-forwarded-for: 127.0.0.1\r\n",
        "X-FORWARDED-FOR: \r\n",
        "X-Forwarded-For: 10.0.0.1, 10.0.0.2\r\n",
    ] {
        let mut s = t.connect();
        s.write_all(t.get_request(&target, header).as_bytes())
            .expect("send");
        let ex = read_replies(&mut s, 1, WITHIN);
        let reply = ex
            .replies
            .first()
            .unwrap_or_else(|| panic!("{} {header:?}: answered", kind.name()));
        match kind {
            Kind::Emulate => {
                assert_eq!(reply.status, 400, "{header:?}");
                assert_eq!(
                    reply.json()["error_description"],
                    "Requests with an X-Forwarded-For header are not allowed; do not use a proxy",
                    "{header:?}"
                );
            }
            Kind::Bridge => assert!(
                reply.status == 400 || reply.status == 200,
                "bridge {header:?}: {}",
                reply.status
            ),
        }
    }
    if let Some(up) = &t.upstream {
        // The bridge never forwards the client's X-Forwarded-For to IMDS: the upstream (which
        // refuses it with 400) saw no such request.
        assert!(
            !up.logs().contains("status=400"),
            "the bridge forwarded X-Forwarded-For upstream:\n{}",
            up.logs()
        );
    }
    t.finish("requests with X-Forwarded-For");
}

/// Absolute-form targets and `Host` headers naming another host (a canary listener of ours on
/// loopback), and `CONNECT`: never a connection to that host; answered locally or refused.
fn absolute_form_urls_to_other_hosts(kind: Kind) {
    let t = Target::start(kind, Options::default());
    let canary = TcpListener::bind("127.0.0.1:0").expect("bind canary");
    let canary_addr = canary.local_addr().expect("canary addr");
    canary.set_nonblocking(true).expect("nonblocking");
    let hits = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let hits = Arc::clone(&hits);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if canary.accept().is_ok() {
                    hits.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let path_and_query = t.token_target(RESOURCE, "");
    let mut statuses = Vec::new();
    for raw in [
        format!(
            "GET http://{canary_addr}{path_and_query} HTTP/1.1\r\nHost: {canary_addr}\r\nMetadata: true\r\n\r\n"
        ),
        format!(
            "GET http://{canary_addr}{path_and_query} HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata: true\r\n\r\n"
        ),
        format!("GET {path_and_query} HTTP/1.1\r\nHost: {canary_addr}\r\nMetadata: true\r\n\r\n"),
        format!(
            "GET http://user:pw@{canary_addr}{path_and_query} HTTP/1.1\r\nMetadata: true\r\n\r\n"
        ),
        format!("GET https://{canary_addr}{path_and_query} HTTP/1.1\r\nMetadata: true\r\n\r\n"),
        format!("CONNECT {canary_addr} HTTP/1.1\r\nHost: {canary_addr}\r\n\r\n"),
        format!("GET http://{canary_addr}/ HTTP/1.1\r\nMetadata: true\r\n\r\n"),
    ] {
        let ex = exchange(&t, raw.as_bytes(), true, WITHIN);
        assert!(ex.trailing.is_empty(), "{}: torn answer", kind.name());
        let reply = ex.replies.first();
        let status = reply.map_or(0, |r| r.status);
        if let Some(reply) = reply.filter(|r| r.status == 200) {
            // Answered locally: the token is ours, for the default identity.
            t.assert_token_reply(reply, Some(SAMI_CLIENT), "absolute-form answered locally");
        } else {
            assert!(
                status == 0 || status >= 400,
                "{} {raw:?}: {status}",
                kind.name()
            );
        }
        statuses.push(status);
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    watcher.join().expect("canary thread");
    assert_eq!(
        hits.load(Ordering::Relaxed),
        0,
        "{} connected to the host named in a request",
        kind.name()
    );
    println!(
        "hostile[{}] absolute-form/CONNECT: statuses {statuses:?}, canary connections 0",
        kind.name()
    );
    t.finish("absolute-form URLs to other hosts");
}

/// Query strings at and over the line limit, thousands of parameters, huge values.
fn huge_query_strings(kind: Kind) {
    let t = Target::start(kind, Options::default());
    let base = t.token_target(RESOURCE, "");
    let cases = [
        (
            "9,000-byte query",
            format!("{base}&x={}", "q".repeat(9_000)),
            true,
        ),
        (
            "100 KB query",
            format!("{base}&x={}", "%41".repeat(35_000)),
            true,
        ),
        (
            "2,000 parameters",
            format!("{base}{}", "&a=1".repeat(1_900)),
            false,
        ),
        (
            "7,000-byte resource",
            t.token_target(&format!("https://r/{}", "r".repeat(7_000)), ""),
            false,
        ),
        (
            "1,000 resources",
            format!("{base}{}", "&resource=x".repeat(600)),
            false,
        ),
        (
            "percent-encoded everything",
            format!("{base}&client_id={}", "%25".repeat(2_500)),
            false,
        ),
    ];
    for (what, target, over) in cases {
        let raw = format!("GET {target} HTTP/1.1\r\nMetadata: true\r\n\r\n");
        let started = std::time::Instant::now();
        let ex = exchange(&t, raw.as_bytes(), true, WITHIN);
        if over {
            assert_refused_and_closed(kind, &ex, what, &[400, 414, 431]);
        } else {
            let reply = ex
                .replies
                .first()
                .unwrap_or_else(|| panic!("{} {what}: answered", kind.name()));
            let _ = reply.json();
            // The bridge may relay IMDS's refusal of what it forwards as a gateway error.
            let gateway = kind == Kind::Bridge && matches!(reply.status, 502..=504);
            assert!(
                reply.status == 200 || (400..500).contains(&reply.status) || gateway,
                "{} {what}: {}",
                kind.name(),
                reply.status
            );
            println!("hostile[{}] {what}: {}", kind.name(), reply.status);
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{} {what}: {:?}",
            kind.name(),
            started.elapsed()
        );
    }
    t.check_healthy("huge query strings");
    t.finish("huge query strings");
}

/// Pipelining: 100 requests in one write answered in order; an error mid-pipeline stops the
/// rest; a client that pipelines thousands and never reads is dropped after the timeout.
fn pipelined_requests(kind: Kind) {
    let t = Target::start(kind, Options::default());
    // 100 alternating identities in one write.
    let mut batch = String::new();
    for i in 0..100 {
        let extra = if i % 2 == 0 {
            String::new()
        } else {
            format!("&client_id={UA1_CLIENT}")
        };
        batch.push_str(&t.normal_request(&extra));
    }
    let mut s = t.connect();
    s.write_all(batch.as_bytes()).expect("send batch");
    let ex = read_replies(&mut s, 100, WITHIN);
    assert_eq!(ex.replies.len(), 100, "{}: 100 answers", kind.name());
    for (i, r) in ex.replies.iter().enumerate() {
        let id = if i % 2 == 0 { SAMI_CLIENT } else { UA1_CLIENT };
        t.assert_token_reply(r, Some(id), &format!("pipelined #{i}"));
    }
    // An error in the middle: answered, then closed; nothing after it is answered.
    let raw = format!(
        "{}GARBAGE\r\n\r\n{}",
        t.normal_request(""),
        t.normal_request("")
    );
    let ex = exchange(&t, raw.as_bytes(), true, WITHIN);
    assert_eq!(
        ex.statuses(),
        vec![200, 400],
        "{}: the request after the garbage is not answered",
        kind.name()
    );
    assert_ne!(ex.end, End::Open);

    // Thousands pipelined, never read: the server stops reading while its answers pile up
    // and must drop the connection after its timeout rather than hold the slot forever.
    let mut s = t.connect();
    let one = t.normal_request("");
    let started = std::time::Instant::now();
    let limit = Duration::from_secs(u64::from(t.options.idle_timeout_secs) + 15);
    s.set_write_timeout(Some(limit)).expect("write timeout");
    let mut sent = 0usize;
    let outcome = loop {
        match s.write_all(one.as_bytes()) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(
            started.elapsed() < limit,
            "{}: still accepting requests after {limit:?} ({sent} sent) from a client that reads nothing",
            kind.name()
        );
    };
    let waited = started.elapsed();
    assert!(
        !matches!(
            outcome.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{}: the server neither read nor closed for {waited:?}",
        kind.name()
    );
    println!(
        "hostile[{}] pipelined flood: {sent} requests sent unread, dropped after {waited:.1?} ({outcome})",
        kind.name()
    );
    t.sample_rss();
    t.finish("pipelined requests");
}
