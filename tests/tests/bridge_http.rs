//! `mitoken bridge` on the wire: what it refuses before asking IMDS (and that IMDS then sees
//! nothing), keep-alive and pipelining, loopback-only listening and peers, start-up errors and
//! a graceful stop. Real processes on loopback; `mitoken emulate` is IMDS.

use std::io::{BufReader, Write as _};
use std::process::Command;

use mitoken_tests::{
    BridgeProcess, EmulatorProcess, legacy_get, legacy_post, mitoken_bin, non_loopback_ipv4,
    read_response,
};

const UA1: &str = "20000000-0000-4000-8000-000000000002";
const Q: &str = "resource=https%3A%2F%2Fvault.azure.net";

fn pair() -> (EmulatorProcess, BridgeProcess) {
    let emu = EmulatorProcess::spawn(&[]);
    let bridge = BridgeProcess::spawn(&emu.base_url(), &[]);
    (emu, bridge)
}

#[test]
#[allow(clippy::too_many_lines)] // one table
fn refusals_never_reach_imds() {
    let (emu, bridge) = pair();
    let raw = |target: &str, headers: &str| {
        format!(
            "GET {target} HTTP/1.1\r\nHost: localhost:50342\r\n{headers}Connection: close\r\n\r\n"
        )
    };
    let target = format!("/oauth2/token?{Q}");
    let cases = [
        (
            "no Metadata",
            raw(&target, ""),
            400,
            "bad_request_102",
            "Required metadata header not specified",
        ),
        (
            "X-Forwarded-For",
            raw(
                &target,
                "Metadata: true\r\nX-Forwarded-For: 203.0.113.9\r\n",
            ),
            400,
            "invalid_request",
            "X-Forwarded-For",
        ),
        (
            "Forwarded",
            raw(&target, "Metadata: true\r\nForwarded: for=203.0.113.9\r\n"),
            400,
            "invalid_request",
            "X-Forwarded-For",
        ),
        (
            "absolute-form for IMDS",
            raw(
                &format!("http://169.254.169.254/oauth2/token?{Q}"),
                "Metadata: true\r\n",
            ),
            401,
            "unknown_source",
            "Unknown Source http://169.254.169.254/oauth2/token",
        ),
        (
            "absolute-form for another host",
            raw(
                &format!("http://attacker.example:50342/oauth2/token?{Q}"),
                "Metadata: true\r\n",
            ),
            401,
            "unknown_source",
            "Unknown Source http://attacker.example:50342/oauth2/token",
        ),
        (
            "IMDS path",
            raw(
                &format!("/metadata/identity/oauth2/token?api-version=2018-02-01&{Q}"),
                "Metadata: true\r\n",
            ),
            401,
            "unknown_source",
            "Unknown Source /metadata/identity/oauth2/token",
        ),
        (
            "admin path",
            raw("/mitoken/admin/counters", "Metadata: true\r\n"),
            401,
            "unknown_source",
            "Unknown Source /mitoken/admin/counters",
        ),
        (
            "duplicate",
            raw(&format!("/oauth2/token?{Q}&{Q}"), "Metadata: true\r\n"),
            400,
            "invalid_request",
            "Duplicate query parameters are not allowed",
        ),
        (
            "two selectors",
            raw(
                &format!("/oauth2/token?{Q}&client_id={UA1}&object_id={UA1}"),
                "Metadata: true\r\n",
            ),
            400,
            "invalid_request",
            "Only one of client_id, object_id and msi_res_id may be specified",
        ),
        (
            "no resource",
            raw(
                &format!("/oauth2/token?client_id={UA1}"),
                "Metadata: true\r\n",
            ),
            400,
            "invalid_request",
            "Required query variable 'resource' is missing",
        ),
        (
            "PUT",
            format!(
                "PUT /oauth2/token?{Q} HTTP/1.1\r\nMetadata: true\r\nContent-Length: 0\r\n\r\n"
            ),
            405,
            "method_not_allowed",
            "Not allowed",
        ),
        (
            "JSON body",
            "POST /oauth2/token HTTP/1.1\r\nMetadata: true\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
                .to_owned(),
            400,
            "invalid_request",
            "POST body must be application/x-www-form-urlencoded",
        ),
        (
            "garbage",
            "\x16\x03\x01\x00\x05hello".to_owned(),
            400,
            "bad_request",
            "Malformed HTTP request",
        ),
    ];
    for (name, request, status, error, description) in cases {
        let reply = bridge
            .send(&request)
            .unwrap_or_else(|| panic!("{name}: no answer"));
        assert_eq!(reply.status, status, "{name}");
        let body = reply.json();
        assert_eq!(body["error"], error, "{name}: {body}");
        let text = body["error_description"].as_str().unwrap_or_default();
        assert!(text.contains(description), "{name}: {body}");
    }
    let c = emu.admin("GET", "counters", "");
    assert_eq!(c["total"], 0, "nothing refused was sent upstream: {c}");
    let logs = bridge.logs();
    assert!(
        !logs.contains("203.0.113.9"),
        "forwarded addresses are not echoed anywhere"
    );
}

#[test]
fn keep_alive_pipelining_and_the_legacy_shape() {
    let (emu, bridge) = pair();
    // Three requests in one write on one connection: GET, form POST, GET (close).
    let keep = |s: String| s.replace("Connection: close\r\n", "");
    let requests = [
        keep(legacy_get(Q)),
        keep(legacy_post(&format!("{Q}&client_id={UA1}"))),
        legacy_get(&format!("{Q}&bypass_cache=true")),
    ]
    .concat();
    let mut s = bridge.connect();
    s.write_all(requests.as_bytes()).unwrap();
    let mut reader = BufReader::new(s);
    let mut appids = Vec::new();
    for i in 0..3 {
        let reply = read_response(&mut reader).unwrap_or_else(|| panic!("answer {i}"));
        assert_eq!(reply.status, 200, "{i}");
        assert_eq!(
            reply.header("Connection"),
            (i == 2).then_some("close"),
            "{i}"
        );
        let body = reply.json();
        assert_eq!(body["refresh_token"], "", "the legacy shape");
        assert!(
            body.get("client_id").is_none(),
            "no client_id in the legacy shape"
        );
        assert_eq!(body["resource"], "https://vault.azure.net");
        let claims = mitoken_tests::jwt_claims(body["access_token"].as_str().unwrap());
        appids.push(claims["appid"].as_str().unwrap().to_owned());
    }
    assert!(
        read_response(&mut reader).is_none(),
        "closed after Connection: close"
    );
    assert_eq!(
        appids,
        [
            "20000000-0000-4000-8000-000000000001",
            UA1,
            "20000000-0000-4000-8000-000000000001"
        ]
    );
    // The default identity twice: the second (bypass_cache) went upstream again.
    let c = emu.admin("GET", "counters", "");
    assert_eq!(c["total"], 3, "{c}");
}

#[test]
fn non_loopback_peers_are_closed_unanswered() {
    let (_emu, bridge) = pair();
    let Some(ip) = non_loopback_ipv4() else {
        eprintln!("SKIP: this machine has no non-loopback IPv4 address to connect from");
        return;
    };
    // curl from a non-loopback source address to the bridge's loopback port.
    let out = Command::new("curl")
        .args([
            "-s",
            "--noproxy",
            "*",
            "--interface",
            &ip,
            "-H",
            "Metadata: true",
        ])
        .arg(format!("{}?{Q}", bridge.token_url()))
        .output()
        .expect("run curl");
    // 52: empty reply (accepted, then closed); 7/56: refused or reset.
    assert!(
        matches!(out.status.code(), Some(52 | 56 | 7)),
        "curl exit {:?}, stdout {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stdout.is_empty());
    let logs = bridge.logs();
    assert!(logs.contains("non-loopback peer refused"), "{logs}");
    // The same from loopback works.
    let reply = bridge.send(&legacy_get(Q)).unwrap();
    assert_eq!(reply.status, 200);
}

#[test]
fn listening_beyond_loopback_needs_the_flag() {
    let emu = EmulatorProcess::spawn(&[]);
    let out = Command::new(mitoken_bin())
        .args([
            "bridge",
            "--listen",
            "0.0.0.0:0",
            "--upstream",
            &emu.base_url(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a loopback address") && err.contains("--allow-non-loopback"),
        "{err}"
    );
    // With the flag it serves, here reached over loopback.
    let bridge = BridgeProcess::spawn(
        &emu.base_url(),
        &["--allow-non-loopback", "--listen", "0.0.0.0:0"],
    );
    let port = bridge.addr.rsplit(':').next().unwrap().to_owned();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
    s.write_all(legacy_get(Q).as_bytes()).unwrap();
    assert_eq!(read_response(&mut BufReader::new(s)).unwrap().status, 200);
}

#[test]
fn bad_upstreams_are_refused_at_start() {
    for (upstream, why) in [
        ("https://169.254.169.254", "https"),
        ("ftp://x", "http"),
        ("extension", "own address"),
    ] {
        let out = Command::new(mitoken_bin())
            .args(["bridge", "--listen", "127.0.0.1:0", "--upstream", upstream])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{upstream}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.to_lowercase().contains(why), "{upstream}: {err}");
    }
}

#[test]
fn sigterm_stops_it_gracefully() {
    let (_emu, bridge) = pair();
    assert_eq!(bridge.send(&legacy_get(Q)).unwrap().status, 200);
    let addr = bridge.addr.clone();
    let status = bridge.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "no longer listening"
    );
}
