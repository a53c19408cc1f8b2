//! `mitoken token` end to end: the real binary against a small real HTTP server on loopback that
//! answers with the IMDS fixtures (`fixtures/`), byte for byte.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Output;
use std::thread::JoinHandle;

use mitoken_tests::{fixture, mitoken_bin};

/// A one-shot HTTP server: accepts one connection, reads the request head (and any body of a
/// declared length), answers with `response` and hands back the request bytes it saw.
struct OneShot {
    port: u16,
    seen: JoinHandle<String>,
}

impl OneShot {
    fn start(response: Vec<u8>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("addr").port();
        let seen = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            serve_one(stream, &response)
        });
        Self { port, seen }
    }

    fn request(self) -> String {
        self.seen.join().expect("server thread")
    }
}

fn serve_one(stream: TcpStream, response: &[u8]) -> String {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).expect("read") == 0 {
            break;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let body_len = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; body_len];
    reader.read_exact(&mut body).expect("body");
    let mut stream = stream;
    stream.write_all(response).expect("write");
    stream.flush().expect("flush");
    head
}

fn mitoken(args: &[&str]) -> Output {
    std::process::Command::new(mitoken_bin())
        .args(args)
        .env_remove("AZURE_POD_IDENTITY_AUTHORITY_HOST")
        .output()
        .expect("run mitoken")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Runs `mitoken token --endpoint <one-shot server answering fixture_name> ARGS…` and returns
/// its output with the request the server saw.
fn token_against(fixture_name: &str, args: &[&str]) -> (Output, String) {
    let server = OneShot::start(fixture(fixture_name));
    let endpoint = format!("http://127.0.0.1:{}", server.port);
    let mut all = vec!["token", "--endpoint", &endpoint];
    all.extend_from_slice(args);
    let out = mitoken(&all);
    (out, server.request())
}

#[test]
fn prints_the_token_from_a_real_server() {
    let (out, request) = token_against(
        "imds-token-response.http",
        &["--resource", "https://management.azure.com/"],
    );
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        request.starts_with(
            "GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F HTTP/1.1\r\n"
        ),
        "request line: {request}"
    );
    assert!(request.contains("\r\nMetadata: true\r\n"), "{request}");

    let body: serde_json::Value =
        serde_json::from_slice(&fixture("imds-token-body.json")).expect("fixture json");
    let printed = json(&out);
    assert_eq!(printed["access_token"], body["access_token"]);
    assert_eq!(printed["resource"], body["resource"]);
    assert_eq!(printed["token_type"], "Bearer");
    assert_eq!(printed["expires_on"], body["expires_on"]);
}

#[test]
fn chunked_response_and_raw_output() {
    let (out, request) = token_against(
        "imds-token-response-chunked.http",
        &[
            "--resource",
            "https://management.azure.com/.default",
            "--client-id",
            "11111111-2222-3333-4444-555555555555",
            "--output",
            "raw",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        request.contains("&client_id=11111111-2222-3333-4444-555555555555"),
        "{request}"
    );
    let body: serde_json::Value =
        serde_json::from_slice(&fixture("imds-token-body.json")).expect("fixture json");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        body["access_token"].as_str().expect("token")
    );
}

#[test]
fn service_error_is_reported_with_status_and_text() {
    let (out, _) = token_against(
        "imds-error-400.http",
        &[
            "--resource",
            "https://vault.azure.net",
            "--object-id",
            "99999999-2222-3333-4444-555555555555",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "service errors exit 3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("400"), "{stderr}");
    assert!(stderr.contains("invalid_request"), "{stderr}");
    assert!(stderr.contains("Identity not found"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn connection_refused_is_a_network_error() {
    // Bind then drop to get a loopback port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let out = mitoken(&[
        "token",
        "--endpoint",
        &endpoint,
        "--resource",
        "https://x/",
        "--timeout",
        "1.5",
    ]);
    assert_eq!(out.status.code(), Some(4), "network errors exit 4");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot connect"), "{stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the retry deadline follows --timeout"
    );
}

#[test]
fn garbage_response_is_a_protocol_error() {
    let server = OneShot::start(b"SSH-2.0-OpenSSH_9.2\r\n\r\n".to_vec());
    let endpoint = format!("http://127.0.0.1:{}", server.port);
    let out = mitoken(&["token", "--endpoint", &endpoint, "--resource", "https://x/"]);
    server.request();
    assert_eq!(out.status.code(), Some(5), "protocol errors exit 5");
}

#[test]
fn control_characters_in_values_are_refused_before_sending() {
    let out = mitoken(&[
        "token",
        "--endpoint",
        "http://127.0.0.1:9",
        "--resource",
        "https://x/\r\nX-Evil: 1",
    ]);
    assert_eq!(out.status.code(), Some(2), "bad input exits 2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("resource"), "{stderr}");
}

#[test]
fn az_output_has_az_cli_fields() {
    let (out, _) = token_against(
        "imds-token-response.http",
        &[
            "--resource",
            "https://management.azure.com/",
            "--output",
            "az",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: serde_json::Value =
        serde_json::from_slice(&fixture("imds-token-body.json")).expect("fixture json");
    let printed = json(&out);
    assert_eq!(printed["accessToken"], body["access_token"]);
    assert_eq!(printed["tokenType"], "Bearer");
    let expires: u64 = body["expires_on"].as_str().unwrap().parse().unwrap();
    assert_eq!(printed["expires_on"], serde_json::json!(expires));
    assert_eq!(printed["tenant"], "f768064f-9585-47ad-a39e-ed24c2c063fe");
    assert!(printed["expiresOn"].as_str().unwrap().ends_with(".000000"));
}

/// A loopback port nobody listens on (bound, then dropped).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A one-shot server that counts the connections it gets within `wait`, for "nothing was sent".
fn connections_within(listener: &TcpListener, wait: std::time::Duration) -> usize {
    listener.set_nonblocking(true).expect("nonblocking");
    let until = std::time::Instant::now() + wait;
    let mut n = 0;
    while std::time::Instant::now() < until {
        if listener.accept().is_ok() {
            n += 1;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    n
}

#[test]
fn malformed_selectors_are_refused_before_sending() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let endpoint = format!(
        "http://127.0.0.1:{}",
        listener.local_addr().expect("addr").port()
    );
    let cases: [(&str, &str, &str); 6] = [
        ("--client-id", "not-a-guid", "is not a GUID"),
        (
            "--client-id",
            "{11111111-2222-3333-4444-555555555555}",
            "is not a GUID",
        ),
        (
            "--object-id",
            "11111111222233334444555555555555",
            "is not a GUID",
        ),
        (
            "--object-id",
            "11111111-2222-3333-4444-55555555555g",
            "is not a GUID",
        ),
        (
            "--resource-id",
            "my-identity",
            "is not a user-assigned identity's resource id",
        ),
        (
            "--resource-id",
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm",
            "is not a user-assigned identity's resource id",
        ),
    ];
    for (flag, value, why) in cases {
        let out = mitoken(&[
            "token",
            "--endpoint",
            &endpoint,
            "--resource",
            "https://x/",
            flag,
            value,
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(why), "{flag} {value}: {stderr}");
        assert!(stderr.contains("nothing was sent"), "{stderr}");
    }
    assert_eq!(
        connections_within(&listener, std::time::Duration::from_millis(300)),
        0,
        "an invalid selector reached the server"
    );
    // Well-formed ones of any case are sent (the server decides whether the identity exists).
    let (out, request) = token_against(
        "imds-token-response.http",
        &[
            "--resource",
            "https://x/",
            "--resource-id",
            "/SUBSCRIPTIONS/s/resourcegroups/g/providers/microsoft.managedidentity/userAssignedIdentities/u",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        request.contains("&msi_res_id=%2FSUBSCRIPTIONS%2F"),
        "{request}"
    );
}

#[test]
fn service_errors_read_without_nested_parentheses() {
    let (out, _) = token_against(
        "imds-error-400.http",
        &[
            "--resource",
            "https://vault.azure.net",
            "--client-id",
            "99999999-2222-3333-4444-555555555555",
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Identity not found"), "{stderr}");
    assert!(stderr.contains("HTTP 400 is not retried"), "{stderr}");
    for line in stderr.lines() {
        let mut depth = 0i32;
        for c in line.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            assert!((0..=1).contains(&depth), "nested parentheses: {line}");
        }
    }
}

#[test]
fn an_unreachable_endpoint_says_what_it_likely_means() {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let out = mitoken(&[
        "token",
        "--endpoint",
        &endpoint,
        "--resource",
        "https://x/",
        "--no-retry",
    ]);
    assert_eq!(out.status.code(), Some(4), "network errors exit 4");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let hint = stderr
        .lines()
        .find(|l| l.contains("hint:"))
        .unwrap_or_else(|| panic!("no hint line: {stderr}"));
    assert!(
        hint.contains(&format!("nothing answered at {endpoint}")),
        "{hint}"
    );
    assert!(hint.contains("mitoken emulate"), "{hint}");
    assert!(hint.contains("--endpoint"), "{hint}");
    // The same with the overall time limit instead of --no-retry.
    let out = mitoken(&[
        "token",
        "--endpoint",
        &endpoint,
        "--resource",
        "https://x/",
        "--timeout",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("hint: nothing answered at"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--endpoint extension` is `localhost:50342`: a private network namespace (`unshare -n`) gives
/// the test that port to itself. The emulator (extension flavor) caches tokens, so a repeated
/// request gets the same token and `--bypass-cache` a new one, if and only if the request
/// carried `bypass_cache=true`.
#[test]
fn bypass_cache_reaches_the_extension_endpoint() {
    let script = format!(
        r#"set -u
ip link set lo up || exit 90
log=$(mktemp)
"{bin}" emulate --flavor extension --listen 127.0.0.1:50342 >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "listening on" "$log" && break; sleep 0.05; done
get() {{ "{bin}" token --endpoint extension --resource https://vault.azure.net -o raw --no-retry "$@"; }}
a=$(get) || exit 91
b=$(get) || exit 92
c=$(get --bypass-cache) || exit 93
[ "$a" = "$b" ] && echo CACHED_SAME=yes || echo CACHED_SAME=no
[ "$a" != "$c" ] && echo BYPASS_NEW=yes || echo BYPASS_NEW=no
kill -TERM $pid; wait $pid
rm -f "$log"
"#,
        bin = mitoken_bin().display()
    );
    let out = std::process::Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .env_remove("AZURE_POD_IDENTITY_AUTHORITY_HOST")
        .output()
        .expect("run unshare (util-linux; needs root)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("CACHED_SAME=yes"),
        "({:?}) {text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("BYPASS_NEW=yes"), "{text}");
}
