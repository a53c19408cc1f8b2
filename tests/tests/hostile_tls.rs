//! Bad input on the HTTPS sources' listeners (`mitoken emulate --source service-fabric` and
//! `--source workload-identity`): what is not TLS, TLS that stops mid-handshake, HTTP inside
//! TLS that does not parse, oversized heads, malformed exchange forms and assertions, more
//! stalled handshakes than connection slots. After each, a well-formed request is answered:
//! the listener keeps serving. Also: the projected token is rewritten before it expires.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mitoken_tests::mitoken_bin;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};

/// A running HTTPS emulator, killed when dropped.
struct Tls {
    child: Child,
    addr: String,
    dir: PathBuf,
    env: String,
    config: Arc<rustls::ClientConfig>,
}

impl Tls {
    fn start(source: &str, extra: &[&str]) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "mitoken-hostile-tls-{source}-{}-{n}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("state dir");
        let mut child = Command::new(mitoken_bin())
            .args([
                "emulate",
                "--source",
                source,
                "--listen",
                "127.0.0.1:0",
                "--state-dir",
            ])
            .arg(&dir)
            .arg("--env-file")
            .arg(dir.join("env"))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mitoken emulate");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut addr = None;
        for line in lines.by_ref() {
            let line = line.expect("banner");
            if let Some(a) = line.strip_prefix("listening on https://") {
                addr = Some(a.to_owned());
            }
            if line == "ready" {
                break;
            }
        }
        let addr = addr.expect("the banner names the address");
        let trust = if source == "service-fabric" {
            "server.pem"
        } else {
            "ca.pem"
        };
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(dir.join(trust)).expect("the trust file");
        for cert in CertificateDer::pem_slice_iter(&pem) {
            roots.add(cert.expect("PEM")).expect("a root");
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            #[allow(deprecated)] // ring, as the host uses
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let env = std::fs::read_to_string(dir.join("env")).expect("env file");
        Self {
            child,
            addr,
            dir,
            env,
            config: Arc::new(config),
        }
    }

    fn var(&self, name: &str) -> String {
        self.env
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_default()
            .to_owned()
    }

    fn tcp(&self) -> TcpStream {
        let s = TcpStream::connect(&self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        s
    }

    /// Sends `raw` inside TLS (to `localhost`) and reads until the server closes; `None` when
    /// the TLS session fails or the server closes without answering.
    fn exchange(&self, raw: &[u8]) -> Option<String> {
        let conn = rustls::ClientConnection::new(
            Arc::clone(&self.config),
            ServerName::try_from("localhost").expect("name"),
        )
        .expect("client");
        let mut tls = rustls::StreamOwned::new(conn, self.tcp());
        tls.write_all(raw).ok()?;
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out);
        (!out.is_empty()).then(|| String::from_utf8_lossy(&out).into_owned())
    }

    /// Asserts a well-formed request is answered `status`.
    fn answers(&self, raw: &str, status: u16, after: &str) {
        let reply = self
            .exchange(raw.as_bytes())
            .unwrap_or_else(|| panic!("no answer after {after}"));
        assert!(
            reply.starts_with(&format!("HTTP/1.1 {status} ")),
            "after {after}: {reply}"
        );
    }
}

impl Drop for Tls {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes `bytes` in the clear and expects the server to close (or reset) without an HTTP answer.
fn closes_on(t: &Tls, bytes: &[u8]) {
    let mut s = t.tcp();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(
        !String::from_utf8_lossy(&out).starts_with("HTTP/"),
        "an HTTP answer to non-TLS bytes"
    );
}

fn hostile_cases(t: &Tls, good: &str) {
    t.answers(good, 200, "start");
    closes_on(t, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    t.answers(good, 200, "plain HTTP on the TLS port");
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes()[2])
        .collect();
    closes_on(t, &garbage);
    t.answers(good, 200, "random bytes");
    // A TLS record header announcing a large ClientHello, then most of nothing.
    closes_on(
        t,
        &[
            0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00, 0x3f, 0xfc, 0x03, 0x03,
        ],
    );
    t.answers(good, 200, "a truncated ClientHello");
    // Inside TLS: HTTP that does not parse, and a head far over the limits.
    for (what, raw) in [
        (
            "a bare-LF request",
            "GET / HTTP/1.1\nHost: x\n\n".to_owned(),
        ),
        ("a request line without version", "GET /\r\n\r\n".to_owned()),
        (
            "Content-Length with chunked",
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned(),
        ),
        (
            "an 80 KiB header",
            format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(80 * 1024)),
        ),
        (
            "a 1 MiB body",
            format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", 1 << 20),
        ),
    ] {
        let reply = t.exchange(raw.as_bytes()).unwrap_or_default();
        assert!(
            reply.is_empty() || reply.starts_with("HTTP/1.1 400 "),
            "{what}: {reply}"
        );
        t.answers(good, 200, what);
    }
    // A session that ends mid-request.
    {
        let conn = rustls::ClientConnection::new(
            Arc::clone(&t.config),
            ServerName::try_from("localhost").expect("name"),
        )
        .expect("client");
        let mut tls = rustls::StreamOwned::new(conn, t.tcp());
        let _ = tls.write_all(b"GET /x HTTP/1.1\r\nHost: ");
        let _ = tls.flush();
    }
    t.answers(good, 200, "a session closed mid-request");
}

#[test]
fn workload_identity_listener_survives_bad_input() {
    let t = Tls::start(
        "workload-identity",
        &[
            "--request-timeout",
            "1",
            "--idle-timeout",
            "2",
            "--max-connections",
            "8",
        ],
    );
    let good = "GET /common/discovery/instance?api-version=1.1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    hostile_cases(&t, good);
    // Malformed exchanges get Entra's error shapes.
    let tenant = t.var("AZURE_TENANT_ID");
    let client = t.var("AZURE_CLIENT_ID");
    let post = |form: &str| {
        format!(
            "POST /{tenant}/oauth2/v2.0/token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
            form.len()
        )
    };
    let base = format!(
        "grant_type=client_credentials&client_id={client}&scope=https%3A%2F%2Fvault.azure.net%2F.default&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
    );
    let forged_claims = URL_SAFE_NO_PAD
        .encode(br#"{"aud":["api://AzureADTokenExchange"],"iss":"x","sub":"y","exp":99999999999}"#);
    for (what, form, code) in [
        ("a bad escape", "client_id=%zz".to_owned(), "9002313"),
        (
            "a duplicate field",
            format!("{base}&client_id=a"),
            "9002313",
        ),
        ("no grant type", format!("client_id={client}"), "900144"),
        ("no assertion", base.clone(), "7000218"),
        (
            "a non-JWT assertion",
            format!("{base}&client_assertion=abc"),
            "50027",
        ),
        (
            "a JWT of garbage",
            format!("{base}&client_assertion=a.b.c"),
            "50027",
        ),
        (
            "claims from another issuer",
            format!("{base}&client_assertion=eyJhbGciOiJSUzI1NiJ9.{forged_claims}.c2ln"),
            "70021",
        ),
    ] {
        let reply = t.exchange(post(&form).as_bytes()).unwrap_or_default();
        assert!(reply.starts_with("HTTP/1.1 40"), "{what}: {reply}");
        assert!(
            reply.contains(&format!("\"error_codes\":[{code}]")),
            "{what}: {reply}"
        );
    }
    // A forged assertion with the right claims but another key: signature refused.
    let token =
        std::fs::read_to_string(t.dir.join("azure-identity-token")).expect("projected token");
    let mut parts: Vec<&str> = token.split('.').collect();
    let bad_sig = URL_SAFE_NO_PAD.encode([7u8; 256]);
    parts[2] = &bad_sig;
    let reply = t
        .exchange(post(&format!("{base}&client_assertion={}", parts.join("."))).as_bytes())
        .unwrap_or_default();
    assert!(reply.contains("\"error_codes\":[700027]"), "{reply}");
    // More stalled handshakes than connection slots: once they time out, service resumes.
    let stalled: Vec<TcpStream> = (0..20).map(|_| t.tcp()).collect();
    std::thread::sleep(Duration::from_millis(1500));
    t.answers(good, 200, "20 stalled handshakes");
    drop(stalled);
    t.answers(good, 200, "the stalled connections closed");
}

#[test]
fn service_fabric_listener_survives_bad_input() {
    let t = Tls::start(
        "service-fabric",
        &["--request-timeout", "1", "--idle-timeout", "2"],
    );
    let secret = t.var("IDENTITY_HEADER");
    let good = format!(
        "GET /metadata/identity/oauth2/token?api-version=2019-07-01-preview&resource=https%3A%2F%2Fvault.azure.net HTTP/1.1\r\nHost: localhost\r\nSecret: {secret}\r\nConnection: close\r\n\r\n"
    );
    hostile_cases(&t, &good);
    for (what, raw, status) in [
        (
            "no secret",
            good.replace(&format!("Secret: {secret}\r\n"), ""),
            401,
        ),
        (
            "a percent-escape that is not one",
            good.replace("vault.azure.net", "%zz"),
            400,
        ),
        (
            "two resources",
            good.replace("&resource=", "&resource=a&resource="),
            400,
        ),
        (
            "a selector",
            good.replace("&resource=", "&client_id=x&resource="),
            404,
        ),
        ("POST", good.replacen("GET", "POST", 1), 405),
    ] {
        t.answers(&raw, status, what);
        t.answers(&good, 200, what);
    }
}

fn claims(jwt: &str) -> serde_json::Value {
    let payload = jwt.trim().split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}

fn read_token(path: &Path) -> String {
    std::fs::read_to_string(path).expect("the projected token")
}

#[test]
fn the_projected_token_is_rotated_before_it_expires() {
    let t = Tls::start("workload-identity", &["--token-lifetime", "10"]);
    let path = PathBuf::from(t.var("AZURE_FEDERATED_TOKEN_FILE"));
    let first = read_token(&path);
    let c1 = claims(&first);
    assert_eq!(c1["aud"], serde_json::json!(["api://AzureADTokenExchange"]));
    assert_eq!(c1["sub"], "system:serviceaccount:default:workload");
    let deadline = Instant::now() + Duration::from_secs(15);
    let second = loop {
        let now = read_token(&path);
        if now != first {
            break now;
        }
        assert!(Instant::now() < deadline, "not rewritten within 15 s");
        std::thread::sleep(Duration::from_millis(200));
    };
    let c2 = claims(&second);
    let (exp1, exp2) = (
        c1["exp"].as_u64().unwrap_or(0),
        c2["exp"].as_u64().unwrap_or(0),
    );
    assert!(exp2 > exp1, "{exp1} then {exp2}");
    // Rewritten at 80% of the life: before the first one expired.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    assert!(now <= exp1 + 1, "rewritten after expiry ({now} > {exp1})");
}

#[test]
fn faults_and_throttle_apply_to_the_https_sources() {
    let t = Tls::start("service-fabric", &["--fault", "status=500,count=1"]);
    let secret = t.var("IDENTITY_HEADER");
    let good = format!(
        "GET /metadata/identity/oauth2/token?api-version=2019-07-01-preview&resource=https%3A%2F%2Fvault.azure.net HTTP/1.1\r\nHost: localhost\r\nSecret: {secret}\r\nConnection: close\r\n\r\n"
    );
    let first = t.exchange(good.as_bytes()).unwrap_or_default();
    assert!(first.starts_with("HTTP/1.1 500 "), "{first}");
    assert!(
        first.contains("{\"error\":{\"correlationId\":"),
        "nested shape: {first}"
    );
    t.answers(&good, 200, "the one 500");

    let w = Tls::start(
        "workload-identity",
        &["--fault", "status=429,retry_after=3,count=1"],
    );
    let raw =
        "GET /common/discovery/instance HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let first = w.exchange(raw.as_bytes()).unwrap_or_default();
    assert!(first.starts_with("HTTP/1.1 429 "), "{first}");
    assert!(first.contains("\r\nRetry-After: 3\r\n"), "{first}");
    w.answers(raw, 200, "the one 429");
}
