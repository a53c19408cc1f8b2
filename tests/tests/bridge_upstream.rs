//! `mitoken bridge` against an unwell upstream: real processes on loopback, `mitoken emulate`
//! as IMDS, and legacy clients (Python doing what msrestazure did, and curl).
//!
//! The bridge retries by the core's IMDS policy (410 every 10 s for 70 s; 404/429/5xx and
//! network failures 5 times after nominally 0/2/6/14/30 s ± 20 %, at least 1 s for 5xx and
//! 429, never earlier than `Retry-After`), so some of these tests take the better part of a
//! minute; they run in parallel ([`long_outages`]).

use std::process::Command;
use std::time::{Duration, Instant};

use mitoken_tests::{BridgeProcess, EmulatorProcess, jwt_claims, legacy_get};

const UA1: &str = "20000000-0000-4000-8000-000000000002";
const RESOURCE: &str = "https://vault.azure.net";

/// A legacy client: Python, `requests` if installed (as msrestazure used), else `urllib`;
/// `GET` with the query or `POST` with the form, `Metadata: true`, no proxy. Prints
/// `{"status": N, "body": {...}, "seconds": S}`.
const LEGACY_CLIENT: &str = r#"
import json, sys, time, urllib.parse, urllib.request, urllib.error
url, method, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
started = time.monotonic()
try:
    import requests
    s = requests.Session()
    s.trust_env = False
    if method == "GET":
        r = s.get(url, params=params, headers={"Metadata": "true"}, timeout=120)
    else:
        r = s.post(url, data=params, headers={"Metadata": "true"}, timeout=120)
    status, text = r.status_code, r.text
except ImportError:
    data = urllib.parse.urlencode(params)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    if method == "GET":
        req = urllib.request.Request(url + "?" + data, headers={"Metadata": "true"})
    else:
        req = urllib.request.Request(url, data=data.encode(), headers={"Metadata": "true"})
    try:
        with opener.open(req, timeout=120) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
print(json.dumps({"status": status, "body": json.loads(text), "seconds": time.monotonic() - started}))
"#;

/// Runs the legacy client; returns (status, body, seconds).
fn legacy_client(
    url: &str,
    method: &str,
    params: &serde_json::Value,
) -> (u16, serde_json::Value, f64) {
    let out = Command::new("python3")
        .args(["-c", LEGACY_CLIENT, url, method, &params.to_string()])
        .env("NO_PROXY", "*")
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "legacy client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("client output");
    let status = u16::try_from(v["status"].as_u64().unwrap()).unwrap();
    (status, v["body"].clone(), v["seconds"].as_f64().unwrap())
}

/// The legacy token shape (docs/protocol.md §2.3): exactly these fields, every value a string.
fn assert_legacy_token(body: &serde_json::Value, resource: &str, appid: &str) {
    let obj = body.as_object().expect("an object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "access_token",
            "expires_in",
            "expires_on",
            "not_before",
            "refresh_token",
            "resource",
            "token_type"
        ],
        "{body}"
    );
    assert!(obj.values().all(serde_json::Value::is_string), "{body}");
    assert_eq!(body["resource"], resource);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["refresh_token"], "");
    let claims = jwt_claims(body["access_token"].as_str().unwrap());
    assert_eq!(claims["appid"], appid, "token for the identity asked for");
    assert_eq!(claims["aud"], resource);
}

/// The three long outages run at once (the test harness would otherwise run them two at a
/// time on a 2-core machine): about 55 s in all.
#[test]
fn long_outages() {
    let cases: [(&str, fn()); 3] = [
        ("410 for 20 s", gone_for_the_first_20_seconds_then_a_token),
        (
            "500 storm",
            a_500_storm_gets_bounded_retries_and_a_clear_error,
        ),
        (
            "unreachable",
            an_unreachable_upstream_is_a_503_after_retries,
        ),
    ];
    let failed: Vec<&str> = std::thread::scope(|scope| {
        let running: Vec<_> = cases
            .iter()
            .map(|&(name, case)| (name, scope.spawn(case)))
            .collect();
        running
            .into_iter()
            .filter_map(|(name, t)| t.join().is_err().then_some(name))
            .collect()
    });
    assert!(
        failed.is_empty(),
        "failed: {failed:?} (see their panics above)"
    );
}

fn gone_for_the_first_20_seconds_then_a_token() {
    let emu = EmulatorProcess::spawn(&["--fault", "status=410"]);
    let started = Instant::now();
    let bridge = BridgeProcess::spawn(&emu.base_url(), &[]);
    // IMDS is "updating" for 20 s after the emulator started.
    let admin = std::thread::spawn({
        let base = emu.addr.clone();
        move || {
            std::thread::sleep(Duration::from_secs(20).saturating_sub(started.elapsed()));
            let raw =
                "DELETE /mitoken/admin/faults HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
            let mut s = std::net::TcpStream::connect(base).unwrap();
            std::io::Write::write_all(&mut s, raw.as_bytes()).unwrap();
            let r = mitoken_tests::read_response(&mut std::io::BufReader::new(s)).unwrap();
            assert_eq!(r.status, 200);
            Instant::now()
        }
    });
    let params = serde_json::json!({"resource": RESOURCE, "client_id": UA1});
    let (status, body, seconds) = legacy_client(&bridge.token_url(), "GET", &params);
    let healed = admin.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_legacy_token(&body, RESOURCE, UA1);
    assert!(Instant::now() >= healed);
    // 410 is polled every 10 s (+ up to 2 s): the retry at ~20 s or the one at ~30 s gets it.
    assert!((18.0..36.0).contains(&seconds), "took {seconds:.1} s");
    let c = emu.admin("GET", "counters", "");
    let gone = c["by_status"]["410"].as_u64().unwrap();
    assert!((2..=3).contains(&gone), "410 answers: {c}");
    assert_eq!(c["by_status"]["200"], 1, "{c}");
    assert_eq!(c["total"].as_u64().unwrap(), gone + 1, "{c}");
}

fn a_500_storm_gets_bounded_retries_and_a_clear_error() {
    let emu = EmulatorProcess::spawn(&[
        "--fault",
        "status=500,description=Entra ID is having a bad day",
    ]);
    let bridge = BridgeProcess::spawn(&emu.base_url(), &[]);
    let params = serde_json::json!({"resource": RESOURCE, "client_id": UA1});
    let (status, body, seconds) = legacy_client(&bridge.token_url(), "POST", &params);
    // The upstream's status and text, in the legacy error shape.
    assert_eq!(status, 500, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"error": "server_error", "error_description": "Entra ID is having a bad day"})
    );
    // 1 attempt + 5 retries after ≥1, 2, 6, 14, 30 s (± 20 %): about 53 s, then it gives up.
    let c = emu.admin("GET", "counters", "");
    assert_eq!(c["total"], 6, "bounded: 6 attempts in all: {c}");
    assert_eq!(c["by_status"]["500"], 6, "{c}");
    assert!((40.0..70.0).contains(&seconds), "took {seconds:.1} s");
    let logs = bridge.logs();
    assert!(logs.contains("no token from upstream"), "{logs}");
    assert!(
        logs.contains("6 attempts") || logs.contains("retries"),
        "{logs}"
    );
    assert!(!logs.contains("eyJ"), "no token material in the logs");
}

#[test]
fn retry_after_of_a_429_is_honoured() {
    let emu = EmulatorProcess::spawn(&["--fault", "status=429,retry_after=3,count=1"]);
    let bridge = BridgeProcess::spawn(&emu.base_url(), &[]);
    let started = Instant::now();
    let out = Command::new("curl")
        .args([
            "-s",
            "--noproxy",
            "*",
            "-H",
            "Metadata: true",
            "-w",
            "\n%{http_code}",
        ])
        .arg(format!("{}?resource={RESOURCE}", bridge.token_url()))
        .output()
        .expect("run curl");
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, code) = text.rsplit_once('\n').unwrap();
    assert_eq!(code, "200", "{text}");
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_legacy_token(&body, RESOURCE, "20000000-0000-4000-8000-000000000001");
    assert!(
        elapsed >= Duration::from_secs(3),
        "retried before Retry-After: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    let c = emu.admin("GET", "counters", "");
    assert_eq!(
        (
            c["by_status"]["429"].as_u64(),
            c["by_status"]["200"].as_u64()
        ),
        (Some(1), Some(1)),
        "{c}"
    );
}

#[test]
fn an_identity_the_vm_lacks_gets_the_upstreams_error_text() {
    let emu = EmulatorProcess::spawn(&[]);
    let bridge = BridgeProcess::spawn(&emu.base_url(), &[]);
    let missing = "20000000-0000-4000-8000-0000000000ff";
    // What IMDS (the emulator) itself answers.
    let direct = emu.get(&mitoken_tests::token_target(
        RESOURCE,
        &format!("&client_id={missing}"),
    ));
    assert_eq!(direct.status, 400);
    for (method, params) in [
        (
            "GET",
            serde_json::json!({"resource": RESOURCE, "client_id": missing}),
        ),
        (
            "POST",
            serde_json::json!({"resource": RESOURCE, "object_id": missing}),
        ),
        (
            "POST",
            serde_json::json!({"resource": RESOURCE, "msi_res_id": "/subscriptions/x/resourceGroups/y/providers/Microsoft.ManagedIdentity/userAssignedIdentities/none"}),
        ),
    ] {
        let (status, body, seconds) = legacy_client(&bridge.token_url(), method, &params);
        assert_eq!(status, 400, "{params}: {body}");
        assert_eq!(
            body,
            direct.json(),
            "{params}: the upstream's error, unchanged"
        );
        assert!(seconds < 5.0, "400 is not retried");
    }
    let c = emu.admin("GET", "counters", "");
    assert_eq!(
        c["by_status"]["400"], 4,
        "one upstream request each (and the direct one): {c}"
    );
    // A raw request on the wire: status line, JSON type, length.
    let reply = bridge
        .send(&legacy_get(&format!(
            "resource={RESOURCE}&client_id={missing}"
        )))
        .unwrap();
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.header("Content-Type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(reply.body, direct.body);
}

fn an_unreachable_upstream_is_a_503_after_retries() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bridge = BridgeProcess::spawn(&format!("http://127.0.0.1:{port}"), &[]);
    let started = Instant::now();
    let reply = bridge
        .send(&legacy_get(&format!("resource={RESOURCE}")))
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("Retry-After"), Some("5"));
    let body = reply.json();
    assert_eq!(body["error"], "service_unavailable");
    let text = body["error_description"].as_str().unwrap();
    assert!(
        text.contains(&format!("127.0.0.1:{port}")) && text.contains("6 attempts"),
        "{text}"
    );
    // Connection failures: 0, 2, 6, 14, 30 s (± 20 %) → about 52 s.
    assert!((38.0..70.0).contains(&elapsed.as_secs_f64()), "{elapsed:?}");
}
