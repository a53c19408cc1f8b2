//! `mitoken token` end to end: the real binary against a small real HTTP server on loopback that
//! answers with the shared IMDS fixtures, byte for byte.

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
