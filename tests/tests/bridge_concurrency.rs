//! 200 concurrent legacy clients of `mitoken bridge` asking for 3 identities × 2 resources:
//! the emulator (IMDS) sees one request per (identity, resource) — single-flight and the cache
//! — and never more than 5 at once (the bridge's upstream limiter), while every client gets a
//! token for exactly the identity and resource it asked for.
//!
//! The emulator delays every answer by 300 ms so that requests overlap, and enforces IMDS's
//! own limits (`--throttle`: 20/s and 5 concurrent, else 429) to show none was exceeded.

use std::sync::{Arc, Barrier};

use mitoken_tests::{
    BridgeProcess, EmulatorProcess, jwt_claims, legacy_get, legacy_post, read_response,
};

const SAMI: &str = "20000000-0000-4000-8000-000000000001";
const UA1: &str = "20000000-0000-4000-8000-000000000002";
const UA2: &str = "20000000-0000-4000-8000-000000000003";
const UA2_RES: &str = "%2Fsubscriptions%2F40000000-0000-4000-8000-000000000000%2FresourceGroups%2Fmitoken-emulator%2Fproviders%2FMicrosoft.ManagedIdentity%2FuserAssignedIdentities%2Fuami-2";
const RESOURCES: [&str; 2] = ["https://vault.azure.net", "https://management.azure.com/"];

/// Client `i`: its identity (by no selector, `client_id` or `msi_res_id`), its resource, and
/// GET or POST.
fn request_for(i: usize) -> (String, &'static str, &'static str) {
    let resource = RESOURCES[i % 2];
    let (selector, appid) = match (i / 2) % 3 {
        0 => (String::new(), SAMI),
        1 => (format!("&client_id={UA1}"), UA1),
        _ => (format!("&msi_res_id={UA2_RES}"), UA2),
    };
    let query = format!(
        "resource={}{selector}",
        resource.replace(':', "%3A").replace('/', "%2F")
    );
    let raw = if i % 4 < 2 {
        legacy_get(&query)
    } else {
        legacy_post(&query)
    };
    (raw, appid, resource)
}

/// Runs `n` clients at once (released together by a barrier); each checks its token.
fn wave(bridge: &BridgeProcess, n: usize) {
    let barrier = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            let addr = bridge.addr.clone();
            std::thread::spawn(move || {
                let (raw, appid, resource) = request_for(i);
                let mut s = std::net::TcpStream::connect(&addr).expect("connect");
                s.set_read_timeout(Some(std::time::Duration::from_mins(1)))
                    .unwrap();
                barrier.wait();
                std::io::Write::write_all(&mut s, raw.as_bytes()).unwrap();
                let reply = read_response(&mut std::io::BufReader::new(s)).expect("an answer");
                assert_eq!(
                    reply.status,
                    200,
                    "client {i}: {}",
                    String::from_utf8_lossy(&reply.body)
                );
                let body = reply.json();
                let claims = jwt_claims(body["access_token"].as_str().unwrap());
                assert_eq!(
                    claims["appid"], appid,
                    "client {i}: token of the identity it asked for"
                );
                assert_eq!(claims["aud"], resource, "client {i}");
                assert_eq!(body["resource"], resource, "client {i}");
                body["access_token"].as_str().unwrap().to_owned()
            })
        })
        .collect();
    let tokens: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    // One token per (identity, resource): everyone asking for the same pair got the same one.
    let mut distinct = tokens.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 6);
}

#[test]
fn two_hundred_clients_six_upstream_requests_at_most_five_at_once() {
    let emu = EmulatorProcess::spawn(&["--throttle", "--fault", "delay=300ms"]);
    let bridge = BridgeProcess::spawn(&emu.base_url(), &[]);
    wave(&bridge, 200);
    let c = emu.admin("GET", "counters", "");
    println!("after 200 concurrent clients: {c}");
    assert_eq!(
        c["total"], 6,
        "one upstream request per (identity, resource): {c}"
    );
    assert_eq!(c["by_status"]["200"], 6, "{c}");
    assert_eq!(
        c["by_origin"]["throttle"], 0,
        "IMDS's limits were never hit: {c}"
    );
    let max = c["max_in_flight"].as_u64().unwrap();
    assert!(
        (1..=5).contains(&max),
        "at most 5 upstream requests at once: {c}"
    );
    for id in [SAMI, UA1, UA2] {
        assert_eq!(c["by_identity"][id]["total"], 2, "{id}: {c}");
    }
    // A second wave is served from the cache: IMDS sees nothing more.
    wave(&bridge, 200);
    let again = emu.admin("GET", "counters", "");
    assert_eq!(again["total"], 6, "{again}");
    let status = bridge.terminate();
    assert!(status.success(), "{status:?}");
}
