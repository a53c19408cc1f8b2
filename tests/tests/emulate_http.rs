//! `mitoken emulate` over real loopback sockets: keep-alive, malformed input, the JWKS and OpenID
//! documents, the cache, faults and counters on the admin path, throttling, the extension
//! flavor, start-up errors and SIGTERM.

use std::io::{BufReader, Write as _};
use std::process::Command;

use mitoken_tests::{EmulatorProcess, get_request, mitoken_bin, read_response, token_target};

const SAMI_CLIENT: &str = "20000000-0000-4000-8000-000000000001";
const UA1_CLIENT: &str = "20000000-0000-4000-8000-000000000002";
const VAULT: &str = "https://vault.azure.net";

fn field(v: &serde_json::Value, name: &str) -> String {
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("no string {name} in {v}"))
        .to_owned()
}

#[test]
fn keep_alive_serves_two_requests_on_one_connection_from_the_cache() {
    let emu = EmulatorProcess::spawn(&[]);
    let mut stream = emu.connect();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let target = token_target(VAULT, "");
    stream
        .write_all(get_request(&target, true).as_bytes())
        .unwrap();
    let first = read_response(&mut reader).expect("first answer");
    assert_eq!(first.status, 200);
    assert_eq!(first.header("Connection"), None, "kept alive");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    stream
        .write_all(get_request(&target, true).as_bytes())
        .unwrap();
    let second = read_response(&mut reader).expect("second answer on the same connection");
    assert_eq!(second.status, 200);
    let (a, b) = (first.json(), second.json());
    assert_eq!(
        field(&a, "access_token"),
        field(&b, "access_token"),
        "cached"
    );
    assert_eq!(field(&a, "expires_on"), field(&b, "expires_on"));
    let expires_in = |v: &serde_json::Value| field(v, "expires_in").parse::<u64>().unwrap();
    assert_eq!(expires_in(&a), 86_400);
    assert!(expires_in(&b) < 86_400, "expires_in counts down: {b}");
    let lifetime = field(&a, "expires_on").parse::<u64>().unwrap()
        - field(&a, "not_before").parse::<u64>().unwrap();
    assert_eq!(lifetime, 86_700);
    assert_eq!(field(&a, "client_id"), SAMI_CLIENT);
    assert_eq!(field(&a, "token_type"), "Bearer");
    assert_eq!(field(&a, "resource"), VAULT);

    // bypass_cache=true mints a new token.
    let bypassed = emu.get(&token_target(VAULT, "&bypass_cache=true")).json();
    assert_ne!(field(&bypassed, "access_token"), field(&a, "access_token"));
    assert_eq!(field(&bypassed, "expires_in"), "86400");

    // Two pipelined requests in one write.
    let two = format!(
        "{}{}",
        get_request(&target, true),
        get_request(
            &token_target(VAULT, &format!("&client_id={UA1_CLIENT}")),
            true
        )
    );
    stream.write_all(two.as_bytes()).unwrap();
    let p1 = read_response(&mut reader).unwrap();
    let p2 = read_response(&mut reader).unwrap();
    assert_eq!((p1.status, p2.status), (200, 200));
    assert_eq!(field(&p2.json(), "client_id"), UA1_CLIENT);
    let logs = emu.logs();
    assert!(
        !logs.contains(&field(&a, "access_token")),
        "logs hold no token"
    );
    assert!(logs.contains("status=200"), "{logs}");
}

#[test]
fn malformed_request_is_answered_400_then_the_server_keeps_serving() {
    let emu = EmulatorProcess::spawn(&[]);
    let bad = emu.send("GARBAGE\r\n\r\n");
    assert_eq!(bad.status, 400);
    assert_eq!(bad.header("Connection"), Some("close"));
    assert_eq!(field(&bad.json(), "error"), "bad_request");

    let huge = format!(
        "GET /metadata/identity/oauth2/token HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(10_000)
    );
    assert_eq!(emu.send(&huge).status, 431);

    let good = emu.get(&token_target(VAULT, ""));
    assert_eq!(good.status, 200);
    // IMDS's own validation errors keep the connection.
    let no_metadata = emu.send(&get_request(&token_target(VAULT, ""), false));
    assert_eq!(no_metadata.status, 400);
    assert_eq!(
        field(&no_metadata.json(), "error_description"),
        "Required metadata header not specified"
    );
    assert_eq!(emu.get("/metadata/instance").status, 404);
}

#[test]
fn openid_configuration_points_at_the_jwks() {
    let emu = EmulatorProcess::spawn(&[]);
    let doc = emu.send(&get_request("/.well-known/openid-configuration", false));
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    let jwks_uri = field(&doc, "jwks_uri");
    let path = jwks_uri
        .strip_prefix(&emu.base_url())
        .unwrap_or_else(|| panic!("jwks_uri {jwks_uri} is on the same listener"));
    let jwks = emu.send(&get_request(path, false));
    assert_eq!(jwks.status, 200);
    let key = &jwks.json()["keys"][0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    let kid = key["kid"].as_str().unwrap();
    assert!(emu.banner.iter().any(|l| l.contains(kid)));
    assert!(
        field(&doc, "issuer").starts_with("https://sts.windows.net/"),
        "{doc}"
    );
    let post = emu.send("POST /.well-known/jwks.json HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(post.status, 405);
}

#[test]
fn faults_and_counters_on_the_admin_path() {
    let emu = EmulatorProcess::spawn(&["--fault", "status=410,count=2"]);
    let target = token_target(VAULT, "");
    assert_eq!(emu.get(&target).status, 410);
    let rules = emu.admin("GET", "faults", "");
    assert_eq!(rules["rules"][0]["count"], 1);
    assert_eq!(emu.get(&target).status, 410);
    assert_eq!(emu.get(&target).status, 200);

    // Run-time rules: per identity, a 500 then a 429 with Retry-After.
    emu.admin(
        "PUT",
        "faults",
        &format!(
            r#"{{"rules":[{{"identity":"{UA1_CLIENT}","status":500,"count":1}},{{"status":429,"retry_after":3,"count":1}}]}}"#
        ),
    );
    let ua1 = token_target(VAULT, &format!("&client_id={UA1_CLIENT}"));
    let throttled = emu.get(&ua1);
    assert_eq!(throttled.status, 429);
    assert_eq!(throttled.header("Retry-After"), Some("3"));
    assert_eq!(emu.get(&target).status, 200, "the 500 is for UA1 only");
    assert_eq!(emu.get(&ua1).status, 500);
    assert_eq!(emu.get(&ua1).status, 200);
    // A close rule: the connection ends without an answer.
    emu.admin("POST", "faults", r#"{"close":true,"count":1}"#);
    let mut s = emu.connect();
    s.write_all(get_request(&target, true).as_bytes()).unwrap();
    assert!(read_response(&mut BufReader::new(s)).is_none());
    // Unknown paths and the admin path itself are never faulted or counted.
    emu.admin("POST", "faults", r#"{"status":503}"#);
    assert_eq!(emu.get("/nope").status, 404);
    emu.admin("DELETE", "faults", "");

    let counters = emu.admin("GET", "counters", "");
    assert_eq!(counters["total"], 9, "{counters}");
    assert_eq!(counters["by_status"]["410"], 2);
    assert_eq!(counters["by_status"]["200"], 3);
    assert_eq!(counters["by_status"]["429"], 1);
    assert_eq!(counters["by_status"]["500"], 1);
    assert_eq!(counters["by_status"]["404"], 1);
    assert_eq!(counters["closed"], 1);
    assert_eq!(counters["by_origin"]["fault"], 5);
    let ua1_counts = &counters["by_identity"][UA1_CLIENT];
    assert_eq!(ua1_counts["total"], 2, "{counters}");
    assert_eq!(ua1_counts["by_status"]["500"], 1);
    let reset = emu.admin("DELETE", "counters", "");
    assert_eq!(reset["total"], 9);
    assert_eq!(emu.admin("GET", "counters", "")["total"], 0);
}

#[test]
fn throttle_answers_429_with_retry_after() {
    let emu = EmulatorProcess::spawn(&["--throttle"]);
    let mut stream = emu.connect();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let target = token_target(VAULT, "");
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..25 {
        stream
            .write_all(get_request(&target, true).as_bytes())
            .unwrap();
        let r = read_response(&mut reader).unwrap();
        if r.status == 429 {
            retry_after = r.header("Retry-After").map(str::to_owned);
        }
        statuses.push(r.status);
    }
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    assert!((20..25).contains(&ok), "{statuses:?}");
    assert!(statuses.contains(&429));
    assert_eq!(retry_after.as_deref(), Some("1"));
    let c = emu.admin("GET", "counters", "");
    assert_eq!(c["by_origin"]["throttle"], 25 - ok);
    let t = emu.admin("PUT", "throttle", r#"{"enabled":false}"#);
    assert_eq!(t["enabled"], false);
    assert_eq!(emu.get(&target).status, 200);
}

#[test]
fn extension_flavor_answers_on_its_own_path() {
    let emu = EmulatorProcess::spawn(&["--flavor", "extension"]);
    assert!(emu.banner[1].contains("/oauth2/token"), "{:?}", emu.banner);
    let ok = emu.get(&format!("/oauth2/token?resource={VAULT}"));
    assert_eq!(ok.status, 200);
    let body = ok.json();
    assert_eq!(field(&body, "token_type"), "Bearer");
    let imds_path = emu.get(&token_target(VAULT, ""));
    assert_eq!(imds_path.status, 401);
    assert_eq!(field(&imds_path.json(), "error"), "unknown_source");
}

#[test]
fn non_loopback_listen_needs_the_flag() {
    let out = Command::new(mitoken_bin())
        .args(["emulate", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a loopback address"), "{err}");
}

#[test]
fn config_errors_name_file_line_and_field() {
    let path = std::env::temp_dir().join(format!("mitoken-bad-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[system_assigned]\nclient_id = \"20000000-0000-4000-8000-000000000001\"\nobject_id = \"not-a-guid\"\n",
    )
    .unwrap();
    let out = Command::new(mitoken_bin())
        .args(["emulate", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "{}:3:13: system_assigned.object_id: `not-a-guid` is not a GUID",
        path.display()
    );
    assert!(err.contains(&want), "{err}");
}

#[test]
fn config_file_vm_and_sigterm_exits_zero() {
    let path = std::env::temp_dir().join(format!("mitoken-vm-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "tenant_id = \"aaaaaaaa-0000-4000-8000-000000000000\"\n\
         [[user_assigned]]\n\
         client_id = \"c1c1c1c1-1111-4111-8111-111111111111\"\n\
         object_id = \"d1d1d1d1-1111-4111-8111-111111111111\"\n\
         resource_id = \"/subscriptions/00000000-0000-0000-0000-00000000000a/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/one\"\n",
    )
    .unwrap();
    let emu = EmulatorProcess::spawn(&["--config", path.to_str().unwrap()]);
    std::fs::remove_file(&path).ok();
    assert!(
        emu.banner.iter().any(|l| l == "1 identities:"),
        "{:?}",
        emu.banner
    );
    // The lone user-assigned identity is the default.
    let token = emu.get(&token_target(VAULT, "")).json();
    assert_eq!(
        field(&token, "client_id"),
        "c1c1c1c1-1111-4111-8111-111111111111"
    );
    // An idle keep-alive connection does not hold up shutdown.
    let _idle = emu.connect();
    let status = emu.terminate();
    assert_eq!(status.code(), Some(0), "clean exit on SIGTERM");
}
