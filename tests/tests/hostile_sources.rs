//! Hostile clients against the source listeners of `mitoken emulate --source S` (App Service
//! 2019 and 2017, Azure ML, Cloud Shell, Arc), real processes on loopback: malformed HTTP,
//! forged and oversized secrets, injected header values, smuggling, bad encodings, wrong
//! methods and bodies, pipelines mixing good and bad requests. Every hostile request gets an
//! error answer (a JSON body) or a close, never a token; afterwards the server still serves a
//! good request, the process is alive, and its log holds neither the secret nor a token.
//! Faults and the throttle answer in each source's error shape.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use mitoken_tests::{EmulatorProcess, HttpReply, read_response};

/// A started source emulator, its secret (or Arc key directory) and its token path.
struct Source {
    name: &'static str,
    emu: EmulatorProcess,
    env: Vec<(String, String)>,
    dir: PathBuf,
}

impl Source {
    fn start(name: &'static str, extra: &[&str]) -> Self {
        // One directory per test (tests of one binary run in parallel, in one process).
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("mitoken-hostile-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let env_file = dir.join("env");
        let tokens = dir.join("tokens");
        let mut args = vec![
            "--source",
            name,
            "--env-file",
            env_file.to_str().expect("utf-8 path"),
            "--arc-tokens-dir",
            tokens.to_str().expect("utf-8 path"),
        ];
        args.extend_from_slice(extra);
        let emu = EmulatorProcess::spawn(&args);
        let env = std::fs::read_to_string(&env_file)
            .expect("the env file")
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Self {
            name,
            emu,
            env,
            dir,
        }
    }

    fn var(&self, key: &str) -> String {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// The secret header line (or Arc's `Authorization` with the current key).
    fn credential(&self) -> String {
        match self.name {
            "app-service" => format!("X-IDENTITY-HEADER: {}\r\n", self.var("IDENTITY_HEADER")),
            "app-service-2017" | "azure-ml" => format!("secret: {}\r\n", self.var("MSI_SECRET")),
            "arc" => {
                let key = std::fs::read_dir(self.dir.join("tokens"))
                    .expect("the key directory")
                    .filter_map(Result::ok)
                    .find(|e| e.path().extension().is_some_and(|x| x == "key"))
                    .map(|e| std::fs::read_to_string(e.path()).expect("read the key"))
                    .expect("a key file");
                format!("Metadata: true\r\nAuthorization: Basic {key}\r\n")
            }
            _ => "Metadata: true\r\n".to_owned(),
        }
    }

    /// A good token request (with the credential).
    fn good(&self) -> String {
        let cred = self.credential();
        match self.name {
            "cloud-shell" => {
                let body = "resource=https%3A%2F%2Fmanagement.azure.com";
                format!(
                    "POST /oauth2/token HTTP/1.1\r\nHost: localhost\r\n{cred}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
            }
            "arc" => format!(
                "GET /metadata/identity/oauth2/token?api-version=2020-06-01&resource=https%3A%2F%2Fmanagement.azure.com HTTP/1.1\r\nHost: localhost\r\n{cred}\r\n"
            ),
            "app-service" => format!(
                "GET /MSI/token?api-version=2019-08-01&resource=https%3A%2F%2Fvault.azure.net HTTP/1.1\r\nHost: localhost\r\n{cred}\r\n"
            ),
            "azure-ml" => format!(
                "GET /MSI/token?api-version=2017-09-01&resource=https%3A%2F%2Fvault.azure.net&clientid={} HTTP/1.1\r\nHost: localhost\r\n{cred}\r\n",
                self.var("DEFAULT_IDENTITY_CLIENT_ID")
            ),
            _ => format!(
                "GET /MSI/token?api-version=2017-09-01&resource=https%3A%2F%2Fvault.azure.net HTTP/1.1\r\nHost: localhost\r\n{cred}\r\n"
            ),
        }
    }

    /// The hostile requests for this source: each must be refused.
    fn hostile(&self) -> Vec<Vec<u8>> {
        let good = self.good();
        let (target, method) = match self.name {
            "cloud-shell" => ("/oauth2/token".to_owned(), "POST"),
            "arc" => (
                "/metadata/identity/oauth2/token?api-version=2020-06-01&resource=r".to_owned(),
                "GET",
            ),
            "app-service" => (
                "/MSI/token?api-version=2019-08-01&resource=r".to_owned(),
                "GET",
            ),
            _ => (
                "/MSI/token?api-version=2017-09-01&resource=r".to_owned(),
                "GET",
            ),
        };
        let line = |headers: &str| {
            format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n").into_bytes()
        };
        let secret = self
            .credential()
            .lines()
            .last()
            .and_then(|l| l.split_once(": "))
            .map(|(_, v)| v.to_owned())
            .unwrap_or_default();
        let mut all: Vec<Vec<u8>> = vec![
            b"\x00\x01\x02garbage\xff\xfe\r\n\r\n".to_vec(),
            format!("{method} {target} HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n", "a".repeat(20_000)).into_bytes(),
            format!("{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").into_bytes(),
            // No credential, an empty one, a wrong one, one byte off, the secret twice, the
            // secret with a CR/LF injected, a huge one.
            line("Metadata: true\r\n"),
            line("X-IDENTITY-HEADER: \r\nsecret: \r\nAuthorization: Basic \r\nMetadata: true\r\n"),
            line(&format!(
                "X-IDENTITY-HEADER: {secret}x\r\nsecret: {secret}x\r\nAuthorization: Basic {secret}x\r\nMetadata: true\r\n"
            )),
            line(&format!(
                "X-IDENTITY-HEADER: {s}\r\n secret: {s}\r\nMetadata: true\r\n",
                s = &secret[..secret.len().saturating_sub(1)]
            )),
            line(&format!(
                "X-IDENTITY-HEADER: {}\r\nsecret: x\r\nAuthorization: Basic {}\r\nMetadata: true\r\n",
                "A".repeat(7000),
                "B".repeat(7000)
            )),
            line("Authorization: Bearer x\r\nMetadata: true\r\n"),
            line("Authorization: Basic ../../../../etc/passwd\r\nMetadata: true\r\n"),
            format!("DELETE {target} HTTP/1.1\r\nHost: x\r\n{}\r\n", self.credential()).into_bytes(),
            format!("GET /other/path?{} HTTP/1.1\r\nHost: x\r\n{}\r\n", "x=1&".repeat(10), self.credential()).into_bytes(),
        ];
        if self.name == "cloud-shell" {
            let cred = self.credential();
            for (ct, body) in [
                (
                    "application/json",
                    "{\"resource\":\"https://management.azure.com\"}",
                ),
                ("application/x-www-form-urlencoded", "resource=%zz"),
                ("application/x-www-form-urlencoded", "resource=a&resource=b"),
                (
                    "application/x-www-form-urlencoded",
                    "resource=https%3A%2F%2Fevil.example",
                ),
            ] {
                all.push(format!(
                    "POST /oauth2/token HTTP/1.1\r\nHost: x\r\n{cred}Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                ).into_bytes());
            }
        } else {
            let cred = self.credential();
            let path = target.split('?').next().unwrap_or_default();
            let q = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
            for query in [
                format!("{q}&resource=again"),
                format!("{q}&client_id=%G0"),
                // Every selector name at once (App Service 2017 has one name only, and answers an
                // unknown `clientid` with the system-assigned identity: not hostile there).
                if self.name == "app-service-2017" {
                    format!("{q}&clientid=u&api-version=again")
                } else {
                    format!(
                        "{q}&client_id=x&object_id=y&principal_id=z&mi_res_id=w&msi_res_id=v&clientid=u"
                    )
                },
                "resource=r".to_owned(),
                format!("{q}&clientid=a&clientid=b"),
            ] {
                all.push(
                    format!("GET {path}?{query} HTTP/1.1\r\nHost: x\r\n{cred}\r\n").into_bytes(),
                );
            }
        }
        // The good request with its credential cut in half by the end of the connection.
        let mut torn = good.into_bytes();
        torn.truncate(torn.len() / 2);
        all.push(torn);
        all
    }
}

/// Sends `raw` on a fresh connection, half-closes, and reads every answer until the close.
fn exchange(emu: &EmulatorProcess, raw: &[u8]) -> (Vec<HttpReply>, bool) {
    let mut s = emu.connect();
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let _ = s.write_all(raw);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut bytes = Vec::new();
    let _ = s.read_to_end(&mut bytes);
    let mut reader = std::io::BufReader::new(&bytes[..]);
    let mut replies = Vec::new();
    while let Some(r) = read_response(&mut reader) {
        replies.push(r);
    }
    (replies, bytes.is_empty())
}

fn attack(name: &'static str) {
    let src = Source::start(name, &[]);
    for (i, raw) in src.hostile().iter().enumerate() {
        let (replies, closed_silently) = exchange(&src.emu, raw);
        assert!(
            replies.len() <= 1,
            "{name} #{i}: {} answers to one hostile request",
            replies.len()
        );
        for r in &replies {
            assert!(
                r.status >= 400,
                "{name} #{i}: hostile request answered {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
            let body = r.json();
            assert!(body.is_object(), "{name} #{i}: {body}");
            assert!(body.get("access_token").is_none(), "{name} #{i}: a token");
        }
        assert!(
            !replies.is_empty() || closed_silently,
            "{name} #{i}: neither an answer nor a clean close"
        );
    }
    // Still serving: a good request, and a pipeline of good / bad / good on one connection.
    let good = src.good();
    let (replies, _) = exchange(&src.emu, good.as_bytes());
    assert_eq!(
        replies.len(),
        1,
        "{name}: the good request after the attacks"
    );
    assert_eq!(replies[0].status, 200, "{name}: {:?}", replies[0].json());
    assert!(replies[0].json()["access_token"].is_string());
    let bad = if name == "cloud-shell" {
        "POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_owned()
    } else {
        "GET /MSI/token?api-version=2019-08-01&resource=r HTTP/1.1\r\nHost: x\r\n\r\n".to_owned()
    };
    let pipeline = format!("{good}{bad}{good}");
    let (replies, _) = exchange(&src.emu, pipeline.as_bytes());
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses.len(), 3, "{name}: pipeline answered {statuses:?}");
    assert_eq!(statuses[0], 200, "{name}");
    assert!(statuses[1] >= 400, "{name}: {statuses:?}");
    assert_eq!(statuses[2], 200, "{name}");
    let logs = src.emu.logs();
    let secret = src.var("IDENTITY_HEADER") + &src.var("MSI_SECRET");
    if !secret.is_empty() {
        assert!(!logs.contains(&secret), "{name}: the secret is in the log");
    }
    assert!(!logs.contains("eyJ"), "{name}: a token is in the log");
    assert!(!logs.contains("panicked"), "{name}: {logs}");
    let status = src.emu.terminate();
    assert!(status.success(), "{name}: exit {status:?}");
    let _ = std::fs::remove_dir_all(&src.dir);
}

#[test]
fn app_service_survives_hostile_requests() {
    attack("app-service");
}

#[test]
fn app_service_2017_survives_hostile_requests() {
    attack("app-service-2017");
}

#[test]
fn azure_ml_survives_hostile_requests() {
    attack("azure-ml");
}

#[test]
fn cloud_shell_survives_hostile_requests() {
    attack("cloud-shell");
}

#[test]
fn arc_survives_hostile_requests() {
    attack("arc");
}

#[test]
fn faults_and_throttle_answer_in_the_source_shape() {
    let src = Source::start(
        "app-service",
        &["--fault", "status=503,count=1", "--throttle"],
    );
    let good = src.good();
    let (replies, _) = exchange(&src.emu, good.as_bytes());
    assert_eq!(replies[0].status, 503);
    assert!(replies[0].header("Retry-After").is_some());
    let body = replies[0].json();
    assert_eq!(body["statusCode"], 503, "{body}");
    assert!(body["correlationId"].is_string(), "{body}");
    assert_eq!(replies[0].header("Server"), Some("Kestrel"));
    // Over IMDS's 20 requests/s: some answers are 429 in App Service's shape.
    let burst = good.repeat(40);
    let (replies, _) = exchange(&src.emu, burst.as_bytes());
    let throttled: Vec<&HttpReply> = replies.iter().filter(|r| r.status == 429).collect();
    assert!(
        !throttled.is_empty(),
        "no 429 in {:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(throttled[0].json()["statusCode"], 429);
    assert!(replies.iter().any(|r| r.status == 200));
    let _ = std::fs::remove_dir_all(&src.dir);
}

#[test]
fn arc_keys_rotate_and_the_old_key_is_refused() {
    let src = Source::start("arc", &["--arc-key-lifetime", "1"]);
    let first = src.good();
    let (replies, _) = exchange(&src.emu, first.as_bytes());
    assert_eq!(replies[0].status, 200, "{:?}", replies[0].json());
    std::thread::sleep(Duration::from_millis(1200));
    // The next request rotates the key (its challenge names a new file); the old key fails.
    let (replies, _) = exchange(&src.emu, first.as_bytes());
    assert_eq!(replies[0].status, 401);
    let realm = replies[0]
        .header("WWW-Authenticate")
        .expect("a challenge")
        .to_owned();
    let path = realm.strip_prefix("Basic realm=").expect("unquoted realm");
    let keys: Vec<PathBuf> = std::fs::read_dir(src.dir.join("tokens"))
        .expect("key dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    assert_eq!(keys.len(), 1, "the old key file is deleted: {keys:?}");
    assert_eq!(keys[0].to_str(), Some(path));
    let (replies, _) = exchange(&src.emu, src.good().as_bytes());
    assert_eq!(replies[0].status, 200);
    drop(src.emu);
    let _ = std::fs::remove_dir_all(&src.dir);
}
