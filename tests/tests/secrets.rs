//! Secrets never reach a log line or an error message.
//!
//! Every command runs at `trace` (`--log trace`, `MITOKEN_LOG=trace`, `RUST_LOG=trace`) with
//! `IDENTITY_HEADER` (and `MSI_SECRET`) set to a random secret in its environment, through its
//! success and failure paths; every line it prints on stdout and stderr is collected. Then:
//!
//! - no access token issued in the run appears anywhere but in `mitoken token`'s designated
//!   output (stdout, in the `-o json` / `-o raw` / `-o az` shape), and no JWT-shaped string at
//!   all appears in any other line;
//! - no part of the emulator's signing key appears: not the exported PEM's base64 lines, not its
//!   private exponent, primes or modulus (hex, base64, base64url or decimal), not a `PRIVATE KEY`
//!   armour;
//! - the `IDENTITY_HEADER` secret appears nowhere, not even on stdout.

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use mitoken_tests::builtin::{SAMI, UA1, UA2, UA2_RES};
use mitoken_tests::mitoken_bin;

const ARM: &str = "https://management.azure.com/";

/// `n` random bytes from the kernel, as hex.
fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    hex(&bytes)
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut acc, b| {
        let _ = write!(acc, "{b:02x}");
        acc
    })
}

/// A fresh temporary directory.
fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mitoken-secrets-{tag}-{}-{}",
        std::process::id(),
        random_hex(4)
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// The environment secrets and log settings given to every command.
struct Env {
    identity_header: String,
}

impl Env {
    fn new() -> Self {
        Self {
            identity_header: format!("idh-{}", random_hex(24)),
        }
    }

    fn apply(&self, cmd: &mut Command) {
        cmd.env("IDENTITY_HEADER", &self.identity_header)
            .env("MSI_SECRET", &self.identity_header)
            .env("MITOKEN_LOG", "trace")
            .env("RUST_LOG", "trace")
            .env_remove("AZURE_POD_IDENTITY_AUTHORITY_HOST")
            .env_remove("IDENTITY_ENDPOINT")
            .env_remove("MSI_ENDPOINT");
    }
}

/// One command's captured output.
struct Run {
    what: String,
    output: Output,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
}

fn mitoken(env: &Env, what: &str, args: &[&str]) -> Run {
    let mut cmd = Command::new(mitoken_bin());
    cmd.args(args)
        .arg("--log")
        .arg("trace")
        .stdin(Stdio::null());
    env.apply(&mut cmd);
    let output = cmd.output().expect("run mitoken");
    Run {
        what: what.to_owned(),
        output,
    }
}

/// A `mitoken emulate` or `mitoken bridge` at `--log trace` whose stdout and stderr go to files.
struct Emulator {
    child: Child,
    addr: String,
    dir: PathBuf,
    name: &'static str,
}

impl Emulator {
    fn start(env: &Env, dir: &Path, extra: &[&str]) -> Self {
        Self::start_command(env, dir, "emulate", extra)
    }

    fn start_command(env: &Env, dir: &Path, name: &'static str, extra: &[&str]) -> Self {
        let stdout = dir.join(format!("{name}.stdout"));
        let mut cmd = Command::new(mitoken_bin());
        cmd.args([name, "--listen", "127.0.0.1:0", "--log", "trace"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(
                std::fs::File::create(dir.join(format!("{name}.stderr"))).expect("stderr file"),
            );
        env.apply(&mut cmd);
        let child = cmd.spawn().expect("start mitoken");
        let deadline = Instant::now() + Duration::from_mins(1);
        let addr = loop {
            let out = std::fs::read_to_string(&stdout).unwrap_or_default();
            if let Some(addr) = out
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("listening on http://"))
            {
                break addr.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "mitoken {name} did not start: {out}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Self {
            child,
            addr,
            dir: dir.to_owned(),
            name,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// One raw HTTP exchange (`Connection: close`); returns the response text.
    fn http(&self, method: &str, target: &str, headers: &str, body: &str) -> String {
        let mut s = TcpStream::connect(&self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        write!(
            s,
            "{method} {target} HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("send");
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text
    }

    /// SIGTERM, wait, and return (stdout, stderr).
    fn stop(mut self) -> (String, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.child.try_wait().expect("wait").is_none() {
            assert!(
                Instant::now() < deadline,
                "mitoken {} did not stop",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        (
            std::fs::read_to_string(self.dir.join(format!("{}.stdout", self.name)))
                .unwrap_or_default(),
            std::fs::read_to_string(self.dir.join(format!("{}.stderr", self.name)))
                .unwrap_or_default(),
        )
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The `access_token` in a JSON response text (after its head).
fn token_in_http(response: &str) -> String {
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {response}"));
    v["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {response}"))
        .to_owned()
}

/// Every JWT-shaped string in `text`: `eyJ…` base64url, a dot, base64url, a dot, base64url.
fn jwt_like(text: &str) -> Vec<String> {
    let b64 = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while let Some(at) = text.get(i..).and_then(|t| t.find("eyJ")) {
        let start = i + at;
        let mut j = start;
        let mut segments = 0;
        loop {
            let seg_start = j;
            while bytes.get(j).copied().is_some_and(b64) {
                j += 1;
            }
            if j - seg_start < 4 {
                break;
            }
            segments += 1;
            if segments == 3 || bytes.get(j) != Some(&b'.') {
                break;
            }
            j += 1;
        }
        if segments == 3 {
            found.push(text.get(start..j).unwrap_or_default().to_owned());
        }
        i = start + 3;
    }
    found
}

// ---- the signing key, taken apart without a crypto crate ----

/// Base64 (standard or URL alphabet, no padding) of `bytes`.
fn base64(bytes: &[u8], url: bool) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    if url {
        URL_SAFE_NO_PAD.encode(bytes)
    } else {
        STANDARD_NO_PAD.encode(bytes)
    }
}

/// The bytes of standard base64 `text` (a PEM body).
fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .expect("base64")
}

/// Reads one DER TLV at `at`: (tag, content range, next offset).
fn der(bytes: &[u8], at: usize) -> (u8, std::ops::Range<usize>, usize) {
    let tag = bytes[at];
    let first = bytes[at + 1];
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        let len = bytes[at + 2..at + 2 + n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, 2 + n)
    };
    let start = at + header;
    (tag, start..start + len, start + len)
}

/// The integers of the PKCS#8 RSA key in `pem`: n, e, d, p, q, dp, dq, qinv (big-endian, no
/// leading zero).
fn rsa_integers(pem: &str) -> Vec<Vec<u8>> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der_bytes = base64_decode(&body);
    // PrivateKeyInfo ::= SEQUENCE { version, algorithm, privateKey OCTET STRING }
    let (_, info, _) = der(&der_bytes, 0);
    let (_, _, after_version) = der(&der_bytes, info.start);
    let (_, _, after_algorithm) = der(&der_bytes, after_version);
    let (tag, octets, _) = der(&der_bytes, after_algorithm);
    assert_eq!(tag, 0x04, "PKCS#8 privateKey is an OCTET STRING");
    let (_, seq, _) = der(&der_bytes, octets.start);
    let mut at = seq.start;
    let mut ints = Vec::new();
    while at < seq.end {
        let (tag, content, next) = der(&der_bytes, at);
        assert_eq!(tag, 0x02, "RSAPrivateKey holds INTEGERs");
        let mut v = der_bytes[content].to_vec();
        while v.first() == Some(&0) && v.len() > 1 {
            v.remove(0);
        }
        ints.push(v);
        at = next;
    }
    assert_eq!(ints.len(), 9, "version + 8 integers");
    ints.remove(0);
    ints
}

/// Decimal digits of a big-endian unsigned integer.
fn decimal(bytes: &[u8]) -> String {
    let mut n = bytes.to_vec();
    let mut digits = Vec::new();
    while n.iter().any(|&b| b != 0) {
        let mut rem = 0u32;
        for b in &mut n {
            let cur = (rem << 8) | u32::from(*b);
            *b = u8::try_from(cur / 10).unwrap_or(0);
            rem = cur % 10;
        }
        digits.push(char::from(b'0' + u8::try_from(rem).unwrap_or(0)));
    }
    digits.iter().rev().collect()
}

/// Substrings that would show some of the key: each base64 line of its PEM, and the start, middle
/// and end of each big integer (not the public exponent) in hex, base64, base64url and decimal.
fn key_needles(pem: &str) -> Vec<(String, String)> {
    let mut needles: Vec<(String, String)> = pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(|l| ("PEM line".to_owned(), l.to_owned()))
        .collect();
    let names = ["n", "e", "d", "p", "q", "dp", "dq", "qinv"];
    for (name, int) in names.iter().zip(rsa_integers(pem)) {
        if *name == "e" {
            continue;
        }
        let hex = hex(&int);
        let forms = [
            ("hex", hex.clone()),
            ("HEX", hex.to_uppercase()),
            ("base64", base64(&int, false)),
            ("base64url", base64(&int, true)),
            ("decimal", decimal(&int)),
        ];
        for (form, text) in forms {
            let len = text.len();
            for (part, at) in [("start", 0), ("middle", len / 2 - 12), ("end", len - 24)] {
                needles.push((
                    format!("{name} ({form}, {part})"),
                    text.get(at..at + 24).unwrap_or_default().to_owned(),
                ));
            }
        }
    }
    needles
}

/// Asserts no needle occurs in `text` (where `what` says whose line it is).
fn assert_absent(what: &str, text: &str, needles: &[(String, String)]) {
    for (name, needle) in needles {
        if let Some(line) = text.lines().find(|l| l.contains(needle.as_str())) {
            panic!("{what}: {name} leaked in: {line}");
        }
    }
}

/// Asserts `text` (a log or error stream) holds no secret of any kind.
fn assert_clean(what: &str, text: &str, tokens: &[String], key: &[(String, String)], env: &Env) {
    let token_needles: Vec<(String, String)> = tokens
        .iter()
        .flat_map(|t| {
            // The whole token, and its signature alone.
            let sig = t.rsplit('.').next().unwrap_or_default().to_owned();
            [
                ("access token".to_owned(), t.clone()),
                ("token signature".to_owned(), sig),
            ]
        })
        .collect();
    assert_absent(what, text, &token_needles);
    assert_absent(what, text, key);
    assert!(
        !text.contains(&env.identity_header),
        "{what}: the IDENTITY_HEADER value leaked:\n{text}"
    );
    assert!(
        !text.contains("PRIVATE KEY"),
        "{what}: key armour in:\n{text}"
    );
    let jwts = jwt_like(text);
    assert!(
        jwts.is_empty(),
        "{what}: JWT-shaped strings {jwts:?} in:\n{text}"
    );
}

/// The token in a successful `mitoken token` run's stdout, in the shape of `format`; asserts the
/// stdout is exactly the designated output.
fn designated_token(run: &Run, format: &str) -> String {
    assert_eq!(
        run.output.status.code(),
        Some(0),
        "{}: {}",
        run.what,
        run.stderr()
    );
    let stdout = run.stdout();
    if format == "raw" {
        let token = stdout.trim_end_matches('\n');
        assert!(!token.contains('\n'), "{}: raw is one line", run.what);
        assert_eq!(token.split('.').count(), 3, "{}: {stdout}", run.what);
        return token.to_owned();
    }
    let v: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{}: stdout is not JSON ({e}): {stdout}", run.what));
    let field = if format == "az" {
        "accessToken"
    } else {
        "access_token"
    };
    let token = v[field].as_str().expect("token field").to_owned();
    assert_eq!(
        stdout.matches(token.as_str()).count(),
        1,
        "{}: the token appears once, in `{field}`",
        run.what
    );
    token
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one scenario: success and failure paths, then checks"
)]
fn emulate_and_token_at_trace_never_log_a_token_key_or_identity_header() {
    let env = Env::new();
    let dir = temp_dir("emulate");
    let key_path = dir.join("key.pem");
    let emu = Emulator::start(
        &env,
        &dir,
        &[
            "--export-signing-key",
            key_path.to_str().expect("utf-8 path"),
        ],
    );
    let pem = std::fs::read_to_string(&key_path).expect("exported key");
    let key = key_needles(&pem);
    let url = emu.url();
    let mut tokens = Vec::new();
    let mut runs = Vec::new();

    // Success paths, every output format and selector.
    for (format, selector) in [
        ("json", vec![]),
        ("raw", vec!["--client-id", UA1.0]),
        ("az", vec!["--object-id", UA2.1]),
        ("json", vec!["--resource-id", UA2_RES, "--bypass-cache"]),
        ("raw", vec!["--bypass-cache"]),
    ] {
        let mut args = vec!["token", "--endpoint", &url, "--resource", ARM, "-o", format];
        args.extend(selector.iter().copied());
        let run = mitoken(&env, &format!("mitoken {}", args.join(" ")), &args);
        tokens.push(designated_token(&run, format));
        runs.push(run);
    }
    // Raw requests, cached and freshly minted, and the documents and admin paths.
    let imds = "/metadata/identity/oauth2/token?api-version=2018-02-01";
    for q in ["", "&bypass_cache=true", &format!("&client_id={}", SAMI.0)] {
        let r = emu.http(
            "GET",
            &format!("{imds}&resource=https://vault.azure.net{q}"),
            "Metadata: true\r\n",
            "",
        );
        tokens.push(token_in_http(&r));
    }
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
        "/mitoken/admin/counters",
    ] {
        assert!(emu.http("GET", path, "", "").starts_with("HTTP/1.1 200"));
    }
    // Failure paths: IMDS's errors, injected faults, retries, a closed connection, throttling,
    // bad input; each at trace.
    let fault = |rule: &str| {
        let r = emu.http(
            "POST",
            "/mitoken/admin/faults",
            "Content-Type: application/json\r\n",
            rule,
        );
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    };
    let selector_ff = ["--client-id", "20000000-0000-4000-8000-0000000000ff"];
    let failing: Vec<(&str, Vec<&str>, Option<&str>)> = vec![
        ("identity not found", selector_ff.to_vec(), None),
        (
            "500 fault",
            vec!["--no-retry"],
            Some(r#"{"status":500,"count":1}"#),
        ),
        (
            "429 fault",
            vec!["--no-retry"],
            Some(r#"{"status":429,"retry_after":1,"count":1}"#),
        ),
        (
            "closed without answer",
            vec!["--no-retry"],
            Some(r#"{"close":true,"count":1}"#),
        ),
        (
            "retried 503 then success",
            vec![],
            Some(r#"{"status":503,"retry_after":1,"count":1}"#),
        ),
        ("bad api-version", vec!["--api-version", "2018\r\n02"], None),
    ];
    for (what, extra, rule) in failing {
        if let Some(rule) = rule {
            fault(rule);
        }
        let mut args = vec![
            "token",
            "--endpoint",
            &url,
            "--resource",
            ARM,
            "--timeout",
            "8",
        ];
        args.extend(extra.iter().copied());
        let run = mitoken(&env, &format!("mitoken token ({what})"), &args);
        if run.output.status.success() {
            tokens.push(designated_token(&run, "json"));
        } else {
            assert!(
                run.output.stdout.is_empty(),
                "{what}: nothing on stdout on failure"
            );
            assert!(!run.stderr().is_empty(), "{what}: an error message");
        }
        runs.push(run);
    }
    // Bad input, refused before sending.
    for (what, args) in [
        (
            "bad resource",
            vec![
                "token",
                "--endpoint",
                url.as_str(),
                "--resource",
                "https://x/\u{7f}",
            ],
        ),
        (
            "bad endpoint",
            vec!["token", "--endpoint", "ftp://127.0.0.1/", "--resource", ARM],
        ),
    ] {
        let run = mitoken(&env, &format!("mitoken token ({what})"), &args);
        assert_eq!(
            run.output.status.code(),
            Some(2),
            "{what}: {}",
            run.stderr()
        );
        runs.push(run);
    }
    // Nothing listening.
    let closed_port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let run = mitoken(
        &env,
        "mitoken token (connection refused)",
        &[
            "token",
            "--endpoint",
            &format!("http://127.0.0.1:{closed_port}"),
            "--resource",
            ARM,
            "--timeout",
            "2",
        ],
    );
    assert_eq!(run.output.status.code(), Some(4), "{}", run.stderr());
    runs.push(run);

    let (emu_stdout, emu_stderr) = emu.stop();
    assert!(
        emu_stderr.lines().count() > 20,
        "trace logs were written:\n{emu_stderr}"
    );
    assert!(tokens.len() >= 9, "tokens issued: {}", tokens.len());
    tokens.sort();
    tokens.dedup();
    for run in &runs {
        assert_clean(
            &format!("{} stderr", run.what),
            &run.stderr(),
            &tokens,
            &key,
            &env,
        );
        let stdout = run.stdout();
        // stdout is the designated output: the run's own token may be there, nothing else.
        assert_absent(&format!("{} stdout", run.what), &stdout, &key);
        assert!(
            !stdout.contains(&env.identity_header),
            "{} stdout",
            run.what
        );
        let own: Vec<String> = jwt_like(&stdout);
        assert!(own.len() <= 1, "{} stdout: {own:?}", run.what);
    }
    assert_clean("mitoken emulate stdout", &emu_stdout, &tokens, &key, &env);
    assert_clean("mitoken emulate stderr", &emu_stderr, &tokens, &key, &env);
    println!(
        "secrets: {} commands and the emulator at trace ({} log lines), {} tokens, {} key fragments, IDENTITY_HEADER: none leaked",
        runs.len(),
        emu_stderr.lines().count()
            + runs
                .iter()
                .map(|r| r.stderr().lines().count())
                .sum::<usize>(),
        tokens.len(),
        key.len()
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bridge_at_trace_never_logs_a_token_key_or_identity_header() {
    let env = Env::new();
    let dir = temp_dir("bridge");
    let key_path = dir.join("key.pem");
    let emu = Emulator::start(
        &env,
        &dir,
        &[
            "--export-signing-key",
            key_path.to_str().expect("utf-8 path"),
        ],
    );
    let key = key_needles(&std::fs::read_to_string(&key_path).expect("exported key"));
    let upstream = emu.url();
    let bridge = Emulator::start_command(&env, &dir, "bridge", &["--upstream", &upstream]);
    let mut tokens = Vec::new();
    let legacy = "/oauth2/token?resource=https://vault.azure.net";
    // Success: fetched, cached, another identity, a form POST, bypass_cache.
    for (method, target, body) in [
        ("GET", legacy.to_owned(), String::new()),
        ("GET", legacy.to_owned(), String::new()),
        (
            "GET",
            format!("{legacy}&client_id={}", UA1.0),
            String::new(),
        ),
        (
            "POST",
            "/oauth2/token".to_owned(),
            format!("resource=https://vault.azure.net&object_id={}", UA2.1),
        ),
        ("GET", format!("{legacy}&bypass_cache=true"), String::new()),
    ] {
        let headers = if method == "POST" {
            "Metadata: true\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        } else {
            "Metadata: true\r\n"
        };
        let r = bridge.http(method, &target, headers, &body);
        tokens.push(token_in_http(&r));
    }
    // Failures: an identity the VM lacks, upstream faults, no Metadata, a malformed request.
    let fault = |rule: &str| {
        let r = emu.http(
            "POST",
            "/mitoken/admin/faults",
            "Content-Type: application/json\r\n",
            rule,
        );
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    };
    let missing = format!("{legacy}&client_id=20000000-0000-4000-8000-0000000000ff");
    assert!(
        !bridge
            .http("GET", &missing, "Metadata: true\r\n", "")
            .starts_with("HTTP/1.1 200")
    );
    fault(r#"{"status":400,"count":1}"#);
    let other = format!("{legacy}&client_id={}", UA2.0);
    assert!(
        !bridge
            .http("GET", &other, "Metadata: true\r\n", "")
            .starts_with("HTTP/1.1 200")
    );
    assert!(
        bridge
            .http("GET", legacy, "", "")
            .starts_with("HTTP/1.1 400")
    );
    assert!(
        bridge
            .http(
                "GET",
                "/oauth2/token?resource=x%0Ay",
                "Metadata: true\r\n",
                ""
            )
            .starts_with("HTTP/1.1 ")
    );
    let (bridge_out, bridge_err) = bridge.stop();
    let (emu_out, emu_err) = emu.stop();
    tokens.sort();
    tokens.dedup();
    assert!(tokens.len() >= 4, "tokens issued: {}", tokens.len());
    assert!(bridge_err.lines().count() > 10, "trace logs: {bridge_err}");
    for (what, text) in [
        ("mitoken bridge stdout", &bridge_out),
        ("mitoken bridge stderr", &bridge_err),
        ("mitoken emulate stdout", &emu_out),
        ("mitoken emulate stderr", &emu_err),
    ] {
        assert_clean(what, text, &tokens, &key, &env);
    }
    println!(
        "secrets: mitoken bridge at trace ({} log lines), {} tokens: none leaked",
        bridge_err.lines().count(),
        tokens.len()
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A server that answers every connection with `response` (after reading the request head),
/// until dropped.
struct Canned {
    addr: String,
}

impl Canned {
    fn start(response: Vec<u8>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                let mut stream = stream;
                let _ = stream.write_all(&response);
                let _ = stream.flush();
                if response.is_empty() {
                    // Hold the connection open without answering (a timeout case).
                    std::thread::sleep(Duration::from_secs(5));
                }
            }
        });
        Self { addr }
    }
}

#[test]
#[expect(clippy::too_many_lines, reason = "a table of malformed responses")]
fn token_failure_paths_never_echo_the_token_they_received() {
    let env = Env::new();
    // A JWT-shaped secret the client must never repeat, whatever is wrong around it.
    let secret = format!(
        "eyJhbGciOiJSUzI1NiJ9.eyJzZWNyZXQiOiJ{}.{}",
        random_hex(20),
        random_hex(40)
    );
    let json = |rest: &str| format!(r#"{{"access_token":"{secret}"{rest}"#);
    let respond =
        |head: &str, body: &str| format!("{head}Content-Length: {}\r\n\r\n{body}", body.len());
    let cases: Vec<(&str, String)> = vec![
        (
            "bad expires_in",
            respond(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n",
                &json(
                    r#","expires_in":"soon","expires_on":"x","resource":"r","token_type":"Bearer"}"#,
                ),
            ),
        ),
        (
            "truncated JSON",
            respond(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n",
                &json(r#","expires_in":"#),
            ),
        ),
        (
            "garbage after the token",
            respond("HTTP/1.1 200 OK\r\n", &json(" GARBAGE GARBAGE")),
        ),
        (
            "short body",
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n{}",
                json(r#","expires_in":"86400""#)
            ),
        ),
        (
            "DEL in the token",
            respond(
                "HTTP/1.1 200 OK\r\n",
                &format!(
                    r#"{{"access_token":"{secret}\u007f","expires_in":"86400","expires_on":"1","resource":"r","token_type":"Bearer"}}"#
                ),
            ),
        ),
        (
            "token in a malformed header",
            format!("HTTP/1.1 200 OK\r\nX-Token: {secret}\r\nBroken header line\r\n\r\n"),
        ),
        (
            "token in a bad status line",
            format!("HTTP/1.1 2OO {secret}\r\nContent-Length: 0\r\n\r\n"),
        ),
        (
            "token in a 500 header",
            respond(
                &format!("HTTP/1.1 500 Internal Server Error\r\nX-Token: {secret}\r\n"),
                r#"{"error":"server_error","error_description":"boom"}"#,
            ),
        ),
        ("no answer (timeout)", String::new()),
    ];
    let mut lines = 0;
    for (what, response) in cases {
        let server = Canned::start(response.into_bytes());
        let run = mitoken(
            &env,
            &format!("mitoken token ({what})"),
            &[
                "token",
                "--endpoint",
                &format!("http://{}", server.addr),
                "--resource",
                ARM,
                "--no-retry",
                "--timeout",
                "2",
            ],
        );
        assert!(!run.output.status.success(), "{what}: fails");
        assert!(run.output.stdout.is_empty(), "{what}: nothing on stdout");
        let stderr = run.stderr();
        assert!(!stderr.is_empty(), "{what}: says why");
        lines += stderr.lines().count();
        assert_clean(
            &format!("{} stderr", run.what),
            &stderr,
            std::slice::from_ref(&secret),
            &[],
            &env,
        );
        for part in secret.split('.') {
            assert!(
                !stderr.contains(part) || part.len() < 16,
                "{what}: part of the token in: {stderr}"
            );
        }
    }
    println!(
        "secrets: 9 malformed token responses at trace ({lines} stderr lines): the token never echoed"
    );
}

#[test]
fn demo_at_trace_never_logs_a_token_or_key() {
    let env = Env::new();
    let run = mitoken(&env, "mitoken demo", &["demo"]);
    assert_eq!(
        run.output.status.code(),
        Some(0),
        "demo: {}\n{}",
        run.stdout(),
        run.stderr()
    );
    // The demo's tokens and key live in its own process: any JWT or key armour is a leak.
    assert_clean("mitoken demo stdout", &run.stdout(), &[], &[], &env);
    assert_clean("mitoken demo stderr", &run.stderr(), &[], &[], &env);
    assert!(
        run.stderr().lines().count() > 10,
        "trace logs were written: {}",
        run.stderr()
    );
}

#[test]
fn jwt_detector_and_key_parser_work() {
    // The checks above can fail: a JWT is found, and the key parser reads a real key.
    assert_eq!(
        jwt_like("x eyJhbGc.eyJzdWIi.c2lnbmF0dXJl y"),
        vec!["eyJhbGc.eyJzdWIi.c2lnbmF0dXJl".to_owned()]
    );
    assert!(jwt_like("kid=eyJabc no dots").is_empty());
    assert_eq!(decimal(&[0x01, 0x00]), "256");
    assert_eq!(base64(b"any carnal pleas", false), "YW55IGNhcm5hbCBwbGVhcw");
    assert_eq!(
        base64_decode("YW55IGNhcm5hbCBwbGVhcw=="),
        b"any carnal pleas"
    );
}
