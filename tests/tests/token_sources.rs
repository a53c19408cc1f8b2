//! `mitoken token --source …` end to end: the real binary against a real loopback HTTP server
//! answering with the recorded bodies of each managed-identity source
//! (`fixtures/sources/`), with the environment each platform sets. Checks the request bytes
//! the server saw, the token printed, the exit code, and `--explain` (which must never print
//! a secret).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Output;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mitoken_tests::{fixture, mitoken_bin};

const SECRET: &str = "5f1a6c7e-2b3d-4e5f-8a9b-0c1d2e3f4a5b";

/// A loopback server that answers one connection per response, in order, and hands back each
/// request (head and body) it saw.
struct Server {
    port: u16,
    seen: JoinHandle<Vec<String>>,
}

impl Server {
    fn start(responses: Vec<Vec<u8>>) -> Self {
        Self::start_with(responses, Duration::from_secs(20))
    }

    /// As [`Server::start`], waiting at most `patience` for each connection.
    fn start_with(responses: Vec<Vec<u8>>, patience: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let seen = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for response in responses {
                // A client that stops connecting ends the server after `patience` (the test
                // then sees fewer requests than responses).
                let deadline = Instant::now() + patience;
                let stream = loop {
                    match listener.accept() {
                        Ok((s, _)) => break Some(s),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            if Instant::now() > deadline {
                                break None;
                            }
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(e) => panic!("accept: {e}"),
                    }
                };
                let Some(stream) = stream else { break };
                stream.set_nonblocking(false).expect("blocking");
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).expect("read") == 0 || line == "\r\n" {
                        head.push_str(&line);
                        break;
                    }
                    head.push_str(&line);
                }
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (n, v) = l.split_once(':')?;
                        n.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                let mut body = vec![0; len];
                reader.read_exact(&mut body).expect("body");
                head.push_str(&String::from_utf8_lossy(&body));
                let mut stream = stream;
                stream.write_all(&response).expect("write");
                stream.flush().expect("flush");
                seen.push(head);
            }
            seen
        });
        Self { port, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(self) -> Vec<String> {
        self.seen.join().expect("server thread")
    }
}

fn http(status: &str, extra_headers: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json; charset=utf-8\r\n{extra_headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn ok(fixture_name: &str) -> Vec<u8> {
    http("200 OK", "", &fixture(&format!("sources/{fixture_name}")))
}

/// Runs `mitoken ARGS` with exactly `env` as its environment.
fn mitoken(args: &[&str], env: &[(&str, &str)]) -> Output {
    std::process::Command::new(mitoken_bin())
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run mitoken")
}

fn stdout_json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "exit {:?}; stdout is not JSON ({e}): {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn auto_app_service_sends_the_identity_header_and_explains_without_the_secret() {
    let server = Server::start(vec![ok("app-service/token.json")]);
    let endpoint = server.url("/MSI/token/");
    // A "proxy" that must see nothing: the secret header would go through it.
    let proxy = TcpListener::bind("127.0.0.1:0").expect("bind");
    proxy.set_nonblocking(true).expect("nonblocking");
    let proxy_url = format!("http://{}", proxy.local_addr().expect("addr"));
    let out = mitoken(
        &[
            "token",
            "--resource",
            "https://vault.azure.net",
            "--explain",
        ],
        &[
            ("IDENTITY_ENDPOINT", &endpoint),
            ("IDENTITY_HEADER", SECRET),
            ("HTTP_PROXY", &proxy_url),
            ("http_proxy", &proxy_url),
            ("ALL_PROXY", &proxy_url),
        ],
    );
    assert!(proxy.accept().is_err(), "the proxy was used");
    let json = stdout_json(&out);
    assert_eq!(json["expires_on"], "1586984735");
    assert_eq!(json["resource"], "https://vault.azure.net");
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert!(
        r.starts_with("GET /MSI/token/?api-version=2019-08-01&resource=https%3A%2F%2Fvault.azure.net HTTP/1.1\r\n"),
        "{r}"
    );
    assert!(
        r.contains(&format!("\r\nX-IDENTITY-HEADER: {SECRET}\r\n")),
        "{r}"
    );
    let err = stderr(&out);
    assert!(err.contains("source: app-service (auto)"), "{err}");
    assert!(
        err.contains(&format!("IDENTITY_ENDPOINT={endpoint}")),
        "{err}"
    );
    assert!(err.contains("IDENTITY_HEADER=<set, 36 bytes>"), "{err}");
    assert!(!err.contains(SECRET), "secret printed: {err}");
}

#[test]
fn app_service_error_body_is_printed_with_its_correlation_id() {
    let server = Server::start(vec![http(
        "500 Internal Server Error",
        "",
        &fixture("sources/app-service/error-500.json"),
    )]);
    let endpoint = server.url("/MSI/token/");
    let out = mitoken(
        &[
            "token",
            "--source",
            "app-service",
            "--resource",
            "https://vault.azure.net",
            "--no-retry",
        ],
        &[
            ("IDENTITY_ENDPOINT", &endpoint),
            ("IDENTITY_HEADER", SECRET),
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("HTTP 500: An unexpected error occured"),
        "{err}"
    );
    assert!(
        err.contains("correlation id 7e7e4a3c-3b41-4c2e-9b7a-2d0b6c1e5f10"),
        "{err}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn app_service_2017_reads_the_localized_expiry() {
    for (body, expires_on) in [
        ("app-service-2017/token-windows.json", "1578643288"),
        ("app-service-2017/token-linux.json", "1560999478"),
        ("app-service-2017/token-iso8601.json", "1729281097"),
    ] {
        let server = Server::start(vec![ok(body)]);
        let endpoint = server.url("/MSI/token");
        let out = mitoken(
            &[
                "token",
                "--resource",
                "https://vault.azure.net",
                "--client-id",
                "b9c48cb0-1720-400e-8ca8-2984fcb042d9",
                "--explain",
            ],
            &[("MSI_ENDPOINT", &endpoint), ("MSI_SECRET", SECRET)],
        );
        let json = stdout_json(&out);
        assert_eq!(json["expires_on"], expires_on, "{body}");
        let r = &server.requests()[0];
        assert!(
            r.starts_with("GET /MSI/token?api-version=2017-09-01&resource=https%3A%2F%2Fvault.azure.net&clientid=b9c48cb0-1720-400e-8ca8-2984fcb042d9 HTTP/1.1\r\n"),
            "{r}"
        );
        assert!(r.contains(&format!("\r\nsecret: {SECRET}\r\n")), "{r}");
        let err = stderr(&out);
        assert!(err.contains("source: app-service-2017 (auto)"), "{err}");
        assert!(err.contains("MSI_SECRET=<set, 36 bytes>"), "{err}");
        assert!(!err.contains(SECRET));
    }
}

#[test]
fn app_service_2017_named_without_a_selector_sends_no_clientid() {
    let server = Server::start(vec![ok("app-service-2017/token-doc-sample.json")]);
    let endpoint = server.url("/MSI/token");
    let out = mitoken(
        &[
            "token",
            "--source",
            "app-service-2017",
            "--resource",
            "https://vault.azure.net",
        ],
        &[
            ("MSI_ENDPOINT", &endpoint),
            ("MSI_SECRET", SECRET),
            // Named explicitly: no Azure ML default identity is added.
            (
                "DEFAULT_IDENTITY_CLIENT_ID",
                "0f6c8a2e-3b1d-4c5e-9f7a-8b9c0d1e2f3a",
            ),
        ],
    );
    // The documented "00:00:00 PM" reads as noon.
    assert_eq!(stdout_json(&out)["expires_on"], "1505390400");
    let r = &server.requests()[0];
    assert!(
        r.starts_with("GET /MSI/token?api-version=2017-09-01&resource=https%3A%2F%2Fvault.azure.net HTTP/1.1\r\n"),
        "{r}"
    );
    // Without its secret variable the named source is refused before anything is sent.
    let out = mitoken(
        &[
            "token",
            "--source",
            "app-service-2017",
            "--resource",
            "https://x",
        ],
        &[("MSI_ENDPOINT", "http://127.0.0.1:9/t")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("MSI_SECRET is not set"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn azure_ml_always_sends_clientid() {
    const DEFAULT_ID: &str = "0f6c8a2e-3b1d-4c5e-9f7a-8b9c0d1e2f3a";
    for source in [None, Some("azure-ml")] {
        let server = Server::start(vec![ok("azure-ml/token.json")]);
        let endpoint = server.url("/MSI/token");
        let mut args = vec![
            "token",
            "--resource",
            "https://management.core.windows.net/",
        ];
        if let Some(s) = source {
            args.extend(["--source", s]);
        }
        let out = mitoken(
            &args,
            &[
                ("MSI_ENDPOINT", &endpoint),
                ("MSI_SECRET", SECRET),
                ("DEFAULT_IDENTITY_CLIENT_ID", DEFAULT_ID),
            ],
        );
        let json = stdout_json(&out);
        assert_eq!(json["expires_on"], "1697818980");
        let r = &server.requests()[0];
        assert!(
            r.starts_with(&format!("GET /MSI/token?api-version=2017-09-01&resource=https%3A%2F%2Fmanagement.core.windows.net%2F&clientid={DEFAULT_ID} HTTP/1.1\r\n")),
            "{r}"
        );
    }
    // Named without a default identity and without --client-id: refused, nothing sent.
    let out = mitoken(
        &["token", "--source", "azure-ml", "--resource", "https://x"],
        &[
            ("MSI_ENDPOINT", "http://127.0.0.1:9/t"),
            ("MSI_SECRET", SECRET),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("client id"), "{}", stderr(&out));
}

#[test]
fn cloud_shell_posts_a_form_and_refuses_selectors() {
    let server = Server::start(vec![ok("cloud-shell/token-no-resource.json")]);
    let endpoint = server.url("/oauth2/token");
    let out = mitoken(
        &[
            "token",
            "--resource",
            "https://management.azure.com/",
            "--explain",
        ],
        &[("MSI_ENDPOINT", &endpoint)],
    );
    let json = stdout_json(&out);
    assert_eq!(json["resource"], "https://management.azure.com/");
    let r = &server.requests()[0];
    assert!(r.starts_with("POST /oauth2/token HTTP/1.1\r\n"), "{r}");
    assert!(r.contains("\r\nMetadata: true\r\n"), "{r}");
    assert!(
        r.contains("\r\nContent-Type: application/x-www-form-urlencoded\r\n"),
        "{r}"
    );
    assert!(
        r.ends_with("\r\n\r\nresource=https%3A%2F%2Fmanagement.azure.com%2F"),
        "{r}"
    );
    assert!(stderr(&out).contains("source: cloud-shell (auto)"));

    let out = mitoken(
        &[
            "token",
            "--resource",
            "https://management.azure.com/",
            "--client-id",
            "b9c48cb0-1720-400e-8ca8-2984fcb042d9",
        ],
        &[("MSI_ENDPOINT", "http://127.0.0.1:9/oauth2/token")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cloud-shell does not accept"),
        "{}",
        stderr(&out)
    );
}

fn arc_challenge(key_path: &str) -> Vec<u8> {
    http(
        "401 Unauthorized",
        &format!("WWW-Authenticate: Basic realm={key_path}\r\n"),
        b"",
    )
}

#[test]
fn arc_answers_the_challenge_with_the_key_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key_path = dir.path().join("4c2e9b7a.key");
    std::fs::write(&key_path, "9f2b7c1d4e5a6b8c").expect("write key");
    let key_path = key_path.to_str().expect("utf-8 path");
    let server = Server::start(vec![arc_challenge(key_path), ok("arc/token.json")]);
    let endpoint = server.url("/metadata/identity/oauth2/token");
    let imds = server.url("");
    let out = mitoken(
        &[
            "token",
            "--resource",
            "https://management.azure.com",
            "--arc-tokens-dir",
            dir.path().to_str().expect("utf-8"),
            "--explain",
        ],
        &[("IDENTITY_ENDPOINT", &endpoint), ("IMDS_ENDPOINT", &imds)],
    );
    let json = stdout_json(&out);
    assert_eq!(json["expires_on"], "1730812345");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    for r in &requests {
        assert!(
            r.starts_with("GET /metadata/identity/oauth2/token?api-version=2020-06-01&resource=https%3A%2F%2Fmanagement.azure.com HTTP/1.1\r\n"),
            "{r}"
        );
        assert!(r.contains("\r\nMetadata: true\r\n"), "{r}");
    }
    assert!(!requests[0].contains("Authorization"), "{}", requests[0]);
    assert!(
        requests[1].contains("\r\nAuthorization: Basic 9f2b7c1d4e5a6b8c\r\n"),
        "{}",
        requests[1]
    );
    let err = stderr(&out);
    assert!(err.contains("source: arc (auto)"), "{err}");
    assert!(!err.contains("9f2b7c1d4e5a6b8c"), "key printed: {err}");
}

#[test]
fn arc_refuses_a_key_outside_the_tokens_directory_and_sends_nothing_more() {
    let dir = tempfile::tempdir().expect("temp dir");
    let other = tempfile::tempdir().expect("temp dir");
    let outside = other.path().join("stolen.key");
    std::fs::write(&outside, "secret-of-someone-else").expect("write");
    let link = dir.path().join("link.key");
    std::os::unix::fs::symlink(&outside, &link).expect("symlink");
    for realm in [outside.to_str().unwrap(), link.to_str().unwrap()] {
        let server = Server::start_with(
            vec![arc_challenge(realm), ok("arc/token.json")],
            Duration::from_secs(3),
        );
        let endpoint = server.url("/metadata/identity/oauth2/token");
        let out = mitoken(
            &[
                "token",
                "--source",
                "arc",
                "--resource",
                "https://management.azure.com",
                "--arc-tokens-dir",
                dir.path().to_str().unwrap(),
            ],
            &[("IDENTITY_ENDPOINT", &endpoint)],
        );
        assert_eq!(out.status.code(), Some(2), "{realm}: {}", stderr(&out));
        assert!(stderr(&out).contains("Arc key file"), "{}", stderr(&out));
        assert!(!stderr(&out).contains("secret-of-someone-else"));
        // Only the challenged request reached the server; the key was never sent. (The server
        // waits 3 s for a second connection that never comes.)
        let requests = server.requests();
        assert_eq!(requests.len(), 1, "{realm}");
    }
}

#[test]
fn arc_user_assigned_token_must_echo_the_identity() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key_path = dir.path().join("k.key");
    std::fs::write(&key_path, "k3y").expect("write key");
    let key_path = key_path.to_str().unwrap();
    // The agent answers with a token that names no identity: fail closed (exit 5).
    let server = Server::start(vec![arc_challenge(key_path), ok("arc/token.json")]);
    let endpoint = server.url("/metadata/identity/oauth2/token");
    let args = |client: &'static str| {
        vec![
            "token".to_owned(),
            "--source".to_owned(),
            "arc".to_owned(),
            "--resource".to_owned(),
            "https://management.azure.com".to_owned(),
            "--client-id".to_owned(),
            client.to_owned(),
            "--arc-tokens-dir".to_owned(),
            dir.path().to_str().unwrap().to_owned(),
        ]
    };
    let a = args("8a6e3f6c-53a5-4c2f-9f0e-0b5b1d1e7f21");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = mitoken(&a, &[("IDENTITY_ENDPOINT", &endpoint)]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("without naming the identity"),
        "{}",
        stderr(&out)
    );
    let requests = server.requests();
    assert!(requests[0].contains("&client_id=8a6e3f6c-53a5-4c2f-9f0e-0b5b1d1e7f21 "));
    // A token that echoes it (in another case) is accepted.
    let server = Server::start(vec![
        arc_challenge(key_path),
        ok("arc/token-uami-echo.json"),
    ]);
    let endpoint = server.url("/metadata/identity/oauth2/token");
    let a = args("8A6E3F6C-53A5-4C2F-9F0E-0B5B1D1E7F21");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = mitoken(&a, &[("IDENTITY_ENDPOINT", &endpoint)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn service_fabric_without_a_thumbprint_sends_nothing() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let endpoint = format!("https://127.0.0.1:{port}/metadata/identity/oauth2/token");
    let out = mitoken(
        &[
            "token",
            "--source",
            "service-fabric",
            "--resource",
            "https://vault.azure.net",
            "--explain",
        ],
        &[
            ("IDENTITY_ENDPOINT", &endpoint),
            ("IDENTITY_HEADER", SECRET),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("source: service-fabric (--source)"), "{err}");
    assert!(
        err.contains("IDENTITY_SERVER_THUMBPRINT is not set"),
        "{err}"
    );
    assert!(!err.contains(SECRET));
    assert!(listener.accept().is_err(), "nothing may connect");
}

#[test]
fn auto_without_variables_is_imds_as_before() {
    let server = Server::start(vec![
        std::fs::read(mitoken_tests::fixture_path("imds-token-response.http")).unwrap(),
    ]);
    let url = server.url("");
    let out = mitoken(
        &[
            "token",
            "--resource",
            "https://management.azure.com/",
            "--explain",
        ],
        &[("AZURE_POD_IDENTITY_AUTHORITY_HOST", &url)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let r = &server.requests()[0];
    assert!(
        r.starts_with("GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource="),
        "{r}"
    );
    assert!(r.contains("\r\nMetadata: true\r\n"));
    let err = stderr(&out);
    assert!(err.contains("source: imds (auto)"), "{err}");
    assert!(err.contains("AZURE_POD_IDENTITY_AUTHORITY_HOST="), "{err}");
}

#[test]
fn auto_refuses_a_half_configured_environment() {
    let out = mitoken(
        &["token", "--resource", "https://x"],
        &[
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:9/t"),
            ("MSI_ENDPOINT", "http://127.0.0.1:9/t"),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("IDENTITY_ENDPOINT is set but"),
        "{}",
        stderr(&out)
    );
    let out = mitoken(
        &["token", "--resource", "https://x"],
        &[
            ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com/"),
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/nonexistent"),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("workload identity"),
        "{}",
        stderr(&out)
    );
}
