//! `mitoken bridge` on the wire: what it refuses before asking IMDS (and that IMDS then sees
//! nothing), keep-alive and pipelining, loopback-only listening and peers, start-up errors and
//! a graceful stop. Real processes on loopback; `mitoken emulate` is IMDS.

use std::io::{BufReader, Write as _};
use std::process::Command;

use mitoken_tests::{
    BridgeProcess, EmulatorProcess, legacy_get, legacy_post, mitoken_bin, read_response,
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

/// A non-loopback peer, for real, without touching this machine's network: inside a private
/// network namespace (`unshare -n`), `lo` also gets 192.0.2.2 (TEST-NET-1); the bridge listens
/// on the namespace's 127.0.0.1 and curl connects from 192.0.2.2, then from 127.0.0.1.
#[test]
fn non_loopback_peers_are_closed_unanswered() {
    let script = format!(
        r#"set -u
ip link set lo up && ip addr add 192.0.2.2/32 dev lo || exit 90
log=$(mktemp)
MITOKEN_LOG=info "{bin}" bridge --listen 127.0.0.1:50342 --upstream http://127.0.0.1:9 >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "listening on" "$log" && break; sleep 0.05; done
curl -s -o /dev/null --noproxy '*' --max-time 5 --interface 192.0.2.2 -H 'Metadata: true'   'http://127.0.0.1:50342/oauth2/token?resource=https%3A%2F%2Fvault.azure.net'
echo "REMOTE_EXIT=$?"
code=$(curl -s -o /dev/null -w '%{{http_code}}' --noproxy '*' --max-time 5   'http://127.0.0.1:50342/oauth2/token?resource=https%3A%2F%2Fvault.azure.net')
echo "LOCAL_STATUS=$code"
kill -TERM $pid; wait $pid
echo "BRIDGE_EXIT=$?"
cat "$log"; rm -f "$log"
"#,
        bin = mitoken_bin().display()
    );
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .output()
        .expect("run unshare (util-linux; needs root)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "namespace setup failed ({:?}): {text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // 52: empty reply (accepted, then closed); 56: reset.
    assert!(
        text.contains("REMOTE_EXIT=52") || text.contains("REMOTE_EXIT=56"),
        "{text}"
    );
    assert!(text.contains("non-loopback peer refused"), "{text}");
    // From loopback the same bridge answers (400: no `Metadata: true`, nothing sent upstream).
    assert!(text.contains("LOCAL_STATUS=400"), "{text}");
    assert!(text.contains("BRIDGE_EXIT=0"), "{text}");
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
