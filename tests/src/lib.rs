//! Helpers shared by mitoken's end-to-end tests: locating (and building once) the real `mitoken`
//! binary, and reading the IMDS fixtures (`fixtures/`).
#![forbid(unsafe_code)]

pub mod hostile;
pub mod sources;
pub mod tls_sources;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Path of a file in the repository's `fixtures/` folder.
pub fn fixture_path(name: &str) -> PathBuf {
    workspace_root().join("fixtures").join(name)
}

/// Bytes of a fixture in `fixtures/`.
///
/// # Panics
/// If the fixture cannot be read (a broken test setup).
pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixture_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// Path of the `mitoken` binary, built once per test process with the same profile as the
/// tests (`cargo build -p mitoken-host --bin mitoken`).
///
/// # Panics
/// If the build fails.
pub fn mitoken_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(workspace_root())
            .args(["build", "--quiet", "-p", "mitoken-host", "--bin", "mitoken"])
            .status()
            .expect("start cargo build");
        assert!(status.success(), "cargo build of mitoken failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| workspace_root().join("target"), PathBuf::from);
        target.join("debug").join("mitoken")
    })
}

/// Runs `command` to completion with its output captured, killing it if it is still running after
/// `within`: a test that expects a quick exit fails instead of hanging the suite.
///
/// # Panics
/// If the command cannot start, or it outlives `within` (it is killed first).
pub fn output_within(command: &mut Command, within: std::time::Duration) -> std::process::Output {
    use std::io::Read as _;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the command");
    // Drained while it runs: a child filling a pipe would otherwise block and look hung.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = std::time::Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the command") {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = stderr.join().unwrap_or_default();
            panic!(
                "{command:?} still running after {within:?}; stderr: {}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// The pinned Python packages of the end-to-end tests and the compatibility matrix.
pub const PYTHON_REQUIREMENTS: &str = "tests/compat/python/requirements.txt";

/// A Python interpreter with the pinned `azure-identity`, `msal` and `PyJWT[crypto]` of
/// [`PYTHON_REQUIREMENTS`] installed: a virtual environment under `target/py-venv`, created (from
/// the Python package index) on first use and reinstalled when the requirements change.
/// `MITOKEN_PYTHON` overrides it with an interpreter that already has them.
///
/// # Panics
/// If the environment cannot be created (no `python3`, no network to the package index).
pub fn python_with_azure_identity() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        if let Some(p) = std::env::var_os("MITOKEN_PYTHON") {
            return PathBuf::from(p);
        }
        let requirements = workspace_root().join(PYTHON_REQUIREMENTS);
        let wanted = std::fs::read_to_string(&requirements).expect("read the Python requirements");
        let venv = workspace_root().join("target/py-venv");
        let python = venv.join("bin/python");
        let stamp = venv.join("mitoken-requirements.txt");
        let ready = std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted)
            && Command::new(&python)
                .args(["-c", "import azure.identity, msal, jwt, cryptography"])
                .status()
                .is_ok_and(|s| s.success());
        if !ready {
            let made = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .expect("start python3 -m venv");
            assert!(made.success(), "python3 -m venv {} failed", venv.display());
            let pip = Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(&requirements)
                .status()
                .expect("start pip");
            assert!(
                pip.success(),
                "pip install -r {} failed",
                requirements.display()
            );
            std::fs::write(&stamp, &wanted).expect("write the requirements stamp");
        }
        python
    })
}

/// A `mitoken emulate` process on an ephemeral loopback port, killed when dropped.
#[derive(Debug)]
pub struct EmulatorProcess {
    child: std::process::Child,
    /// `127.0.0.1:PORT`, read from the first line the emulator printed.
    pub addr: String,
    /// The start-up banner (every line up to and including the identities).
    pub banner: Vec<String>,
    stderr_path: PathBuf,
}

/// One HTTP response, as read by [`read_response`].
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// Header fields, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpReply {
    /// The first header field called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    ///
    /// # Panics
    /// If it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Reads one HTTP/1.1 response (head, then a `Content-Length` body) from `reader`; `None` when
/// the connection closes before a complete head.
///
/// # Panics
/// On a malformed head.
pub fn read_response(reader: &mut impl std::io::BufRead) -> Option<HttpReply> {
    let mut status_line = String::new();
    if reader.read_line(&mut status_line).ok()? == 0 {
        return None;
    }
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (n, v) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("bad header {line:?}"));
        headers.push((n.to_owned(), v.trim().to_owned()));
    }
    let len = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(HttpReply {
        status,
        headers,
        body,
    })
}

/// `GET <target>` with `Metadata: true` (when `metadata`), as request text.
pub fn get_request(target: &str, metadata: bool) -> String {
    let md = if metadata { "Metadata: true\r\n" } else { "" };
    format!("GET {target} HTTP/1.1\r\nHost: 169.254.169.254\r\n{md}\r\n")
}

/// The IMDS token path with `api-version=2018-02-01`, `resource` and extra query text (`&…`).
pub fn token_target(resource: &str, extra: &str) -> String {
    format!("/metadata/identity/oauth2/token?api-version=2018-02-01&resource={resource}{extra}")
}

impl EmulatorProcess {
    /// Starts `mitoken emulate --listen 127.0.0.1:0 <args>` and waits for its banner.
    ///
    /// # Panics
    /// If it does not start or print its address.
    pub fn spawn(args: &[&str]) -> Self {
        let mut full = vec!["emulate", "--listen", "127.0.0.1:0"];
        full.extend_from_slice(args);
        let (child, addr, banner, stderr_path) = spawn_listening(&full, "emulate", |line| {
            line.ends_with("identities:") || line == "no identities" || line == "ready"
        });
        Self {
            child,
            addr,
            banner,
            stderr_path,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A new connection to the emulator.
    ///
    /// # Panics
    /// If it cannot connect.
    pub fn connect(&self) -> std::net::TcpStream {
        let s = std::net::TcpStream::connect(&self.addr).expect("connect to the emulator");
        s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .expect("timeout");
        s
    }

    /// Sends `raw` on a new connection and reads one response.
    ///
    /// # Panics
    /// If there is no response.
    pub fn send(&self, raw: &str) -> HttpReply {
        use std::io::Write as _;
        let mut s = self.connect();
        s.write_all(raw.as_bytes()).expect("send");
        read_response(&mut std::io::BufReader::new(s)).expect("a response")
    }

    /// `GET <target>` with `Metadata: true` on a new connection.
    pub fn get(&self, target: &str) -> HttpReply {
        self.send(&get_request(target, true))
    }

    /// An admin request (`/mitoken/admin/<name>`), answered 200 with JSON.
    ///
    /// # Panics
    /// If the answer is not 200.
    pub fn admin(&self, method: &str, name: &str, body: &str) -> serde_json::Value {
        let raw = format!(
            "{method} /mitoken/admin/{name} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let reply = self.send(&raw);
        assert_eq!(
            reply.status,
            200,
            "admin {method} {name}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        reply.json()
    }

    /// The emulator's stderr so far (its logs).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits (at most 10 s) for the exit status.
    ///
    /// # Panics
    /// If it does not exit in time.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        terminate_child(&mut self.child)
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

/// The identities of `mitoken emulate`'s built-in VM (no `--config`): `(client_id, object_id)`.
pub mod builtin {
    /// The system-assigned identity.
    pub const SAMI: (&str, &str) = (
        "20000000-0000-4000-8000-000000000001",
        "30000000-0000-4000-8000-000000000001",
    );
    /// User-assigned identity `uami-1`.
    pub const UA1: (&str, &str) = (
        "20000000-0000-4000-8000-000000000002",
        "30000000-0000-4000-8000-000000000002",
    );
    /// User-assigned identity `uami-2`.
    pub const UA2: (&str, &str) = (
        "20000000-0000-4000-8000-000000000003",
        "30000000-0000-4000-8000-000000000003",
    );
    /// `uami-2`'s ARM resource id.
    pub const UA2_RES: &str = "/subscriptions/40000000-0000-4000-8000-000000000000/resourceGroups/mitoken-emulator/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uami-2";
}

/// Starts `mitoken <args>` with `MITOKEN_LOG=info` (stderr to a temporary log file), reads its
/// stdout banner up to the line `last` accepts, and keeps draining stdout. Returns the child,
/// the `host:port` of the first line (`listening on http://ADDR`), the banner and the log path.
///
/// # Panics
/// If it does not start or print its address.
fn spawn_listening(
    args: &[&str],
    name: &str,
    last: impl Fn(&str) -> bool,
) -> (std::process::Child, String, Vec<String>, PathBuf) {
    use std::io::BufRead as _;
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let stderr_path =
        std::env::temp_dir().join(format!("mitoken-{name}-{}-{n}.log", std::process::id()));
    let stderr = std::fs::File::create(&stderr_path).expect("create stderr log");
    let mut child = Command::new(mitoken_bin())
        .args(args)
        .env("MITOKEN_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("start mitoken {name}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let mut banner = Vec::new();
    for line in lines.by_ref() {
        let Ok(line) = line else { break };
        let done = last(&line);
        banner.push(line);
        if done {
            break;
        }
    }
    // Keep draining stdout so the process never blocks on it.
    std::thread::spawn(move || lines.for_each(drop));
    let addr = banner
        .first()
        .and_then(|l| {
            l.strip_prefix("listening on http://")
                .or_else(|| l.strip_prefix("listening on https://"))
        })
        .map_or_else(
            || {
                let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                panic!("mitoken {name} did not print its address; stdout {banner:?}, stderr {log}")
            },
            str::to_owned,
        );
    (child, addr, banner, stderr_path)
}

/// Sends SIGTERM to `child` and waits (at most 10 s) for its exit status.
///
/// # Panics
/// If it does not exit in time.
fn terminate_child(child: &mut std::process::Child) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -TERM failed");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "process did not stop after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A `mitoken bridge` process on an ephemeral loopback port, killed when dropped.
#[derive(Debug)]
pub struct BridgeProcess {
    child: std::process::Child,
    /// `127.0.0.1:PORT`, read from the first line the bridge printed.
    pub addr: String,
    /// The start-up banner.
    pub banner: Vec<String>,
    stderr_path: PathBuf,
}

impl BridgeProcess {
    /// Starts `mitoken bridge --listen 127.0.0.1:0 --upstream <upstream> <args>` (without the
    /// `--listen` when `args` have one) and waits for its banner.
    ///
    /// # Panics
    /// If it does not start or print its address.
    pub fn spawn(upstream: &str, args: &[&str]) -> Self {
        let mut full = vec!["bridge", "--upstream", upstream];
        if !args.contains(&"--listen") {
            full.extend(["--listen", "127.0.0.1:0"]);
        }
        full.extend_from_slice(args);
        let (child, addr, banner, stderr_path) =
            spawn_listening(&full, "bridge", |line| line.starts_with("mitoken bridge:"));
        Self {
            child,
            addr,
            banner,
            stderr_path,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/oauth2/token`: the legacy extension's token URL.
    pub fn token_url(&self) -> String {
        format!("http://{}/oauth2/token", self.addr)
    }

    /// A new connection to the bridge (2 min read timeout: the bridge may be retrying).
    ///
    /// # Panics
    /// If it cannot connect.
    pub fn connect(&self) -> std::net::TcpStream {
        let s = std::net::TcpStream::connect(&self.addr).expect("connect to the bridge");
        s.set_read_timeout(Some(std::time::Duration::from_mins(2)))
            .expect("timeout");
        s
    }

    /// Sends `raw` on a new connection and reads one response (`None` when the bridge closes
    /// the connection without one).
    ///
    /// # Panics
    /// If it cannot connect or send.
    pub fn send(&self, raw: &str) -> Option<HttpReply> {
        use std::io::Write as _;
        let mut s = self.connect();
        s.write_all(raw.as_bytes()).expect("send");
        read_response(&mut std::io::BufReader::new(s))
    }

    /// The bridge's stderr so far (its logs).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (at most 10 s) for the exit status.
    ///
    /// # Panics
    /// If it does not exit in time.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        terminate_child(&mut self.child)
    }
}

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

/// A legacy extension request: `GET /oauth2/token?<query>` with `Metadata: true`, as text.
pub fn legacy_get(query: &str) -> String {
    format!(
        "GET /oauth2/token?{query} HTTP/1.1\r\nHost: localhost:50342\r\nMetadata: true\r\nConnection: close\r\n\r\n"
    )
}

/// A legacy extension request as msrestazure sent it: a form `POST /oauth2/token` with
/// `Metadata: true`, as text.
pub fn legacy_post(form: &str) -> String {
    format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: localhost:50342\r\nMetadata: true\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    )
}

/// The claims of a JWT (its middle part, base64url-decoded and parsed).
///
/// # Panics
/// If `jwt` is not a JWT with a JSON payload.
pub fn jwt_claims(jwt: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .expect("JWT payload is base64url");
    serde_json::from_slice(&bytes).expect("JWT payload is JSON")
}
