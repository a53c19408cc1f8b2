//! Helpers for the hostile-client suite (`tests/tests/hostile_*.rs`): a [`Target`] — a real
//! `mitoken emulate` process, or a real `mitoken bridge` process with a `mitoken emulate` as its
//! upstream — plus raw-socket tools to attack it and the checks that follow every attack: the
//! process is still alive, it answers a normal request correctly, and its resident memory
//! (`VmRSS`) stayed within a bound.
//!
//! Only loopback addresses are ever used.

use std::io::{BufRead as _, BufReader, ErrorKind, Read as _, Write as _};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::{HttpReply, jwt_claims};

/// The `mitoken` binary attacked: `MITOKEN_HOSTILE_BIN` when set (to attack another build, e.g.
/// a release build), else the workspace's debug build ([`crate::mitoken_bin`]).
pub fn mitoken_bin() -> PathBuf {
    std::env::var_os("MITOKEN_HOSTILE_BIN")
        .map_or_else(|| crate::mitoken_bin().to_owned(), PathBuf::from)
}

/// The resource every normal request asks a token for.
pub const RESOURCE: &str = "https://vault.azure.net";
/// Client id of the built-in VM's system-assigned identity (the default identity).
pub const SAMI_CLIENT: &str = "20000000-0000-4000-8000-000000000001";
/// Client id of the built-in VM's first user-assigned identity.
pub const UA1_CLIENT: &str = "20000000-0000-4000-8000-000000000002";

/// Resident memory a target may gain over its warmed-up baseline during an attack: 32 MiB.
///
/// Why this figure: measured growth is at most ~3 MiB for most attacks (1024 idle connections
/// held open cost ~2.4 KiB each: a task and its socket; the 1,000-identity run caches 1,000
/// tokens); ~20 MiB for 10,000 connections churned through a full cap (`hostile_flood.rs`,
/// `ten_thousand_idle_connections`: the allocator keeps what the churn used, and a second flood
/// does not add to it). A
/// connection with a request in progress holds ~40 KiB of buffers (16 KiB work, 16 KiB output,
/// 8 KiB+ input), so 32 MiB still admits ~800 such connections at once, while a leak per request
/// or per connection does not fit: before the fix that made idle connections hold no buffers,
/// 1024 idle connections alone took the emulator from 11 MiB to 73 MiB.
pub const RSS_HEADROOM_KIB: u64 = 32 * 1024;

/// Which program is attacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `mitoken emulate` (IMDS flavor, the built-in VM unless a config is given).
    Emulate,
    /// `mitoken bridge` (legacy-extension requests in, IMDS requests out) in front of a
    /// `mitoken emulate` upstream.
    Bridge,
}

impl Kind {
    /// `emulate` or `bridge`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Emulate => "emulate",
            Kind::Bridge => "bridge",
        }
    }
}

/// How a [`Target`] is started.
#[derive(Clone, Debug)]
pub struct Options {
    /// `--idle-timeout` in seconds (also the time a request may take to arrive completely).
    pub idle_timeout_secs: u32,
    /// `--max-connections`; `None` keeps the default (1024).
    pub max_connections: Option<u32>,
    /// `--config FILE` for the emulator (the upstream's, for the bridge).
    pub config: Option<PathBuf>,
    /// `--request-timeout` in seconds; `None` keeps the default (10 s).
    pub request_timeout_secs: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            idle_timeout_secs: 2,
            max_connections: None,
            config: None,
            request_timeout_secs: None,
        }
    }
}

/// A `mitoken` server process on an ephemeral loopback port, killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    name: String,
    child: Mutex<Child>,
    pid: u32,
    /// `127.0.0.1:PORT` from the first line it printed (`listening on http://ADDR`).
    pub addr: String,
    /// Everything printed on stdout up to and including the `listening on` line.
    pub banner: Vec<String>,
    stderr_path: PathBuf,
}

impl ServerProcess {
    /// Starts `mitoken <args>` with `envs` and waits for its `listening on http://ADDR` line.
    ///
    /// # Panics
    /// If it does not start or print its address within 60 s.
    pub fn spawn(name: &str, args: &[String], envs: &[(&str, &str)]) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stderr_path = std::env::temp_dir().join(format!(
            "mitoken-hostile-{name}-{}-{n}.log",
            std::process::id()
        ));
        let stderr = std::fs::File::create(&stderr_path).expect("create stderr log");
        let mut cmd = Command::new(mitoken_bin());
        cmd.args(args)
            .env("MITOKEN_LOG", "info")
            .env_remove("AZURE_POD_IDENTITY_AUTHORITY_HOST")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start mitoken {args:?}: {e}"));
        let pid = child.id();
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let mut banner = Vec::new();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                let done = line.starts_with("listening on http://");
                banner.push(line);
                if done {
                    break;
                }
            }
            let _ = tx.send(banner);
            // Keep draining stdout so the server never blocks on it.
            lines.for_each(drop);
        });
        let banner = rx.recv_timeout(Duration::from_mins(1)).unwrap_or_default();
        let addr = banner
            .last()
            .and_then(|l| l.strip_prefix("listening on http://"))
            .map(str::to_owned);
        let process = Self {
            name: name.to_owned(),
            child: Mutex::new(child),
            pid,
            addr: addr.clone().unwrap_or_default(),
            banner: banner.clone(),
            stderr_path,
        };
        assert!(
            addr.is_some(),
            "{name} did not print its address; stdout {banner:?}, stderr {}",
            process.logs()
        );
        process
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its stderr so far (its logs).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Resident memory in KiB (`VmRSS` from `/proc/<pid>/status`).
    ///
    /// # Panics
    /// If the process is gone.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .unwrap_or_else(|e| panic!("{}: /proc status: {e}", self.name));
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{}: no VmRSS in {status}", self.name))
    }

    /// Open file descriptors (sockets included), from `/proc/<pid>/fd`.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid)).map_or(0, Iterator::count)
    }

    /// Panics, with its logs, if the process has exited (crashed) or logged a panic.
    ///
    /// # Panics
    /// As described.
    pub fn assert_alive(&self, context: &str) {
        let exited = self
            .child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .try_wait()
            .expect("try_wait");
        let logs = self.logs();
        assert!(
            exited.is_none(),
            "{} exited ({exited:?}) during {context}; logs:\n{logs}",
            self.name
        );
        assert!(
            !logs.contains("panicked"),
            "{} panicked during {context}; logs:\n{logs}",
            self.name
        );
    }

    /// Sends SIGTERM and waits (at most 15 s) for the exit status; asserts a clean exit (0).
    ///
    /// # Panics
    /// If it does not exit in time or exits non-zero.
    pub fn terminate(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {} failed", self.name);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let status = self
                .child
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .try_wait()
                .expect("wait");
            if let Some(status) = status {
                assert!(
                    status.success(),
                    "{} exited with {status} after SIGTERM; logs:\n{}",
                    self.name,
                    self.logs()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop after SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(PoisonError::into_inner);
        if child.try_wait().ok().flatten().is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

/// The program under attack, with its upstream when it is the bridge.
#[derive(Debug)]
pub struct Target {
    /// Which program.
    pub kind: Kind,
    /// The attacked process.
    pub server: ServerProcess,
    /// The bridge's upstream emulator (`None` for [`Kind::Emulate`]).
    pub upstream: Option<ServerProcess>,
    /// The options it was started with.
    pub options: Options,
    /// `VmRSS` after start-up and a few normal requests, in KiB.
    pub baseline_rss_kib: u64,
    /// The largest `VmRSS` seen by [`Target::check_healthy`] so far, in KiB.
    peak_rss_kib: Mutex<u64>,
}

fn emulate_args(options: &Options) -> Vec<String> {
    let mut args: Vec<String> = ["emulate", "--listen", "127.0.0.1:0", "--idle-timeout"]
        .map(str::to_owned)
        .into();
    args.push(options.idle_timeout_secs.to_string());
    if let Some(n) = options.max_connections {
        args.extend(["--max-connections".to_owned(), n.to_string()]);
    }
    if let Some(n) = options.request_timeout_secs {
        args.extend(["--request-timeout".to_owned(), n.to_string()]);
    }
    if let Some(config) = &options.config {
        args.extend(["--config".to_owned(), config.display().to_string()]);
    }
    args
}

/// The command line of `mitoken bridge` in front of `upstream` (an `http://127.0.0.1:PORT`
/// emulator).
fn bridge_args(options: &Options, upstream: &str) -> Vec<String> {
    let mut args: Vec<String> = ["bridge", "--listen", "127.0.0.1:0", "--upstream"]
        .map(str::to_owned)
        .into();
    args.push(upstream.to_owned());
    args.extend([
        "--idle-timeout".to_owned(),
        options.idle_timeout_secs.to_string(),
    ]);
    if let Some(n) = options.max_connections {
        args.extend(["--max-connections".to_owned(), n.to_string()]);
    }
    if let Some(n) = options.request_timeout_secs {
        args.extend(["--request-timeout".to_owned(), n.to_string()]);
    }
    args
}

impl Target {
    /// Starts the target, warms it up with a few normal requests and records its baseline RSS.
    ///
    /// # Panics
    /// If it does not start or does not answer normal requests.
    pub fn start(kind: Kind, options: Options) -> Self {
        let (server, upstream) = match kind {
            Kind::Emulate => (
                ServerProcess::spawn("emulate", &emulate_args(&options), &[]),
                None,
            ),
            Kind::Bridge => {
                // The upstream keeps the default (generous) limits: only the bridge is attacked.
                let upstream_options = Options {
                    idle_timeout_secs: 60,
                    max_connections: None,
                    config: options.config.clone(),
                    request_timeout_secs: None,
                };
                let upstream =
                    ServerProcess::spawn("upstream", &emulate_args(&upstream_options), &[]);
                let url = format!("http://{}", upstream.addr);
                let bridge = ServerProcess::spawn("bridge", &bridge_args(&options, &url), &[]);
                (bridge, Some(upstream))
            }
        };
        let mut target = Self {
            kind,
            server,
            upstream,
            options,
            baseline_rss_kib: 0,
            peak_rss_kib: Mutex::new(0),
        };
        for _ in 0..3 {
            target.assert_normal_request("warm-up");
        }
        target.baseline_rss_kib = target.server.rss_kib();
        target
    }

    /// `127.0.0.1:PORT` of the attacked process.
    pub fn addr(&self) -> &str {
        &self.server.addr
    }

    /// A new connection with 10 s read and write timeouts.
    ///
    /// # Panics
    /// If it cannot connect.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr())
            .unwrap_or_else(|e| panic!("connect to {} ({}): {e}", self.kind.name(), self.addr()));
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        s.set_write_timeout(Some(Duration::from_secs(10)))
            .expect("write timeout");
        s
    }

    /// The path of the token endpoint it serves: IMDS's, or the legacy extension's.
    pub fn token_path(&self) -> &'static str {
        match self.kind {
            Kind::Emulate => "/metadata/identity/oauth2/token",
            Kind::Bridge => "/oauth2/token",
        }
    }

    /// A token request target (path and query) for `resource` with `extra` query text (`&…`,
    /// inserted as is).
    pub fn token_target(&self, resource: &str, extra: &str) -> String {
        match self.kind {
            Kind::Emulate => format!(
                "{}?api-version=2018-02-01&resource={resource}{extra}",
                self.token_path()
            ),
            Kind::Bridge => format!("{}?resource={resource}{extra}", self.token_path()),
        }
    }

    /// A complete `GET <target>` request with `Host` and `Metadata: true` and `headers`
    /// (each line ending in CRLF) added.
    pub fn get_request(&self, target: &str, headers: &str) -> String {
        let host = match self.kind {
            Kind::Emulate => "169.254.169.254",
            Kind::Bridge => "localhost:50342",
        };
        format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nMetadata: true\r\n{headers}\r\n")
    }

    /// The normal token request for `resource` with `extra` query text.
    pub fn normal_request(&self, extra: &str) -> String {
        self.get_request(&self.token_target(RESOURCE, extra), "")
    }

    /// Checks `reply` is a correct token answer for [`RESOURCE`] and (when given) `client_id`:
    /// status 200, a JWT whose `aud` is the resource and whose `appid` is the client id.
    ///
    /// # Panics
    /// If it is not.
    pub fn assert_token_reply(&self, reply: &HttpReply, client_id: Option<&str>, context: &str) {
        assert_eq!(
            reply.status,
            200,
            "{} {context}: {}",
            self.kind.name(),
            String::from_utf8_lossy(&reply.body)
        );
        let v = reply.json();
        let token = v["access_token"].as_str().unwrap_or_default();
        assert_eq!(
            token.split('.').count(),
            3,
            "{} {context}: access_token is a JWT: {v}",
            self.kind.name()
        );
        assert_eq!(v["resource"], RESOURCE, "{} {context}", self.kind.name());
        let claims = jwt_claims(token);
        assert_eq!(claims["aud"], RESOURCE, "{} {context}", self.kind.name());
        if let Some(id) = client_id {
            // The token is the identity's (the bridge's legacy shape has no `client_id`).
            assert_eq!(claims["appid"], id, "{} {context}", self.kind.name());
            if self.kind == Kind::Emulate {
                assert_eq!(v["client_id"], id, "{} {context}", self.kind.name());
            }
        }
    }

    /// A normal request on a new connection; asserts a correct token for the default identity
    /// arrives within 10 s.
    ///
    /// # Panics
    /// If it does not.
    pub fn assert_normal_request(&self, context: &str) -> Duration {
        let t0 = Instant::now();
        let mut s = self.connect();
        s.write_all(self.normal_request("").as_bytes())
            .unwrap_or_else(|e| panic!("{} {context}: send: {e}", self.kind.name()));
        let reply = crate::read_response(&mut BufReader::new(s)).unwrap_or_else(|| {
            panic!(
                "{} {context}: no answer to a normal request; logs:\n{}",
                self.kind.name(),
                self.server.logs()
            )
        });
        self.assert_token_reply(&reply, Some(SAMI_CLIENT), context);
        t0.elapsed()
    }

    /// After an attack: the process (and its upstream) is alive, answers a normal request
    /// correctly, and its RSS is within [`RSS_HEADROOM_KIB`] of the baseline. Returns the RSS
    /// in KiB (also printed, for the record).
    ///
    /// # Panics
    /// If any of that fails.
    pub fn check_healthy(&self, attack: &str) -> u64 {
        self.server.assert_alive(attack);
        if let Some(up) = &self.upstream {
            up.assert_alive(attack);
        }
        let latency = self.assert_normal_request(&format!("normal request after {attack}"));
        let rss = self.server.rss_kib();
        self.note_rss(rss);
        println!(
            "hostile[{}] {attack}: alive, normal request answered in {latency:.1?}, RSS {} KiB (baseline {} KiB, peak {} KiB)",
            self.kind.name(),
            rss,
            self.baseline_rss_kib,
            self.peak_rss_kib()
        );
        self.assert_rss_bounded(attack);
        rss
    }

    /// Records an RSS sample (for the peak).
    pub fn note_rss(&self, rss_kib: u64) {
        let mut peak = self
            .peak_rss_kib
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *peak = (*peak).max(rss_kib);
    }

    /// Samples the RSS now, records it and returns it.
    pub fn sample_rss(&self) -> u64 {
        let rss = self.server.rss_kib();
        self.note_rss(rss);
        rss
    }

    /// The largest RSS recorded so far, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        *self
            .peak_rss_kib
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Asserts the peak RSS stayed within [`RSS_HEADROOM_KIB`] of the baseline.
    ///
    /// # Panics
    /// If it did not.
    pub fn assert_rss_bounded(&self, attack: &str) {
        let peak = self.peak_rss_kib();
        assert!(
            peak <= self.baseline_rss_kib + RSS_HEADROOM_KIB,
            "{} {attack}: RSS peaked at {peak} KiB, over baseline {} KiB + {} KiB",
            self.kind.name(),
            self.baseline_rss_kib,
            RSS_HEADROOM_KIB
        );
    }

    /// Final check: healthy, then a clean exit 0 on SIGTERM (bridge first, then its upstream).
    ///
    /// # Panics
    /// If not.
    pub fn finish(self, attack: &str) {
        self.check_healthy(attack);
        self.server.terminate();
        if let Some(up) = &self.upstream {
            up.terminate();
        }
    }
}

/// `GET /mitoken/admin/<name>` on the emulator at `addr` (`127.0.0.1:PORT`), as JSON.
///
/// # Panics
/// If it does not answer 200 with JSON.
pub fn admin_get(addr: &str, name: &str) -> serde_json::Value {
    let mut s = TcpStream::connect(addr).expect("connect to the emulator");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET /mitoken/admin/{name} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let reply = crate::read_response(&mut BufReader::new(s)).expect("an answer");
    assert_eq!(reply.status, 200, "admin {name}");
    reply.json()
}

/// How reading a connection to its end went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The server closed it (FIN).
    Closed,
    /// The server reset it (RST), e.g. closing with unread request bytes.
    Reset,
    /// Still open when the time was up.
    Open,
}

/// What came back on one connection.
#[derive(Debug)]
pub struct Exchange {
    /// The responses, in order.
    pub replies: Vec<HttpReply>,
    /// How it ended.
    pub end: End,
    /// Bytes after the last complete response (a torn response; should be empty).
    pub trailing: Vec<u8>,
}

impl Exchange {
    /// Statuses of the responses.
    pub fn statuses(&self) -> Vec<u16> {
        self.replies.iter().map(|r| r.status).collect()
    }
}

/// Parses every complete response in `bytes`; returns them and what is left.
///
/// # Panics
/// On a malformed response head.
pub fn parse_responses(bytes: &[u8]) -> (Vec<HttpReply>, Vec<u8>) {
    let mut replies = Vec::new();
    let mut rest = bytes;
    while let Some(head_end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(rest.get(..head_end).unwrap_or_default()).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad header line {l:?}"));
                (n.to_owned(), v.trim().to_owned())
            })
            .collect();
        let len = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        let body_start = head_end + 4;
        let Some(body) = rest.get(body_start..body_start + len) else {
            break;
        };
        replies.push(HttpReply {
            status,
            headers,
            body: body.to_vec(),
        });
        rest = rest.get(body_start + len..).unwrap_or_default();
    }
    (replies, rest.to_vec())
}

/// Reads `stream` until the server closes it or `within` passes; parses the responses.
pub fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Exchange {
    let deadline = Instant::now() + within;
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let end = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break End::Open;
        }
        let _ = stream.set_read_timeout(Some(left.min(Duration::from_millis(250))));
        match stream.read(&mut buf) {
            Ok(0) => break End::Closed,
            Ok(n) => bytes.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break End::Reset,
        }
    };
    let (replies, trailing) = parse_responses(&bytes);
    Exchange {
        replies,
        end,
        trailing,
    }
}

/// Reads exactly `n` responses (or fewer if the connection ends / `within` passes).
pub fn read_replies(stream: &mut TcpStream, n: usize, within: Duration) -> Exchange {
    let deadline = Instant::now() + within;
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (replies, trailing) = parse_responses(&bytes);
        if replies.len() >= n {
            return Exchange {
                replies,
                end: End::Open,
                trailing,
            };
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let end = if left.is_zero() {
            Some(End::Open)
        } else {
            let _ = stream.set_read_timeout(Some(left.min(Duration::from_millis(250))));
            match stream.read(&mut buf) {
                Ok(0) => Some(End::Closed),
                Ok(k) => {
                    bytes.extend_from_slice(buf.get(..k).unwrap_or_default());
                    None
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    None
                }
                Err(_) => Some(End::Reset),
            }
        };
        if let Some(end) = end {
            let (replies, trailing) = parse_responses(&bytes);
            return Exchange {
                replies,
                end,
                trailing,
            };
        }
    }
}

/// Sends `raw` on a new connection (tolerating the server closing early), half-closes the
/// writing side when `half_close`, and reads until the server closes or `within` passes.
pub fn exchange(target: &Target, raw: &[u8], half_close: bool, within: Duration) -> Exchange {
    let mut s = target.connect();
    // A server that refuses early may reset while we are still writing: that is allowed.
    let _ = s.write_all(raw);
    if half_close {
        let _ = s.shutdown(Shutdown::Write);
    }
    read_until_closed(&mut s, within)
}

/// A small deterministic generator (xorshift64*), so failures can be replayed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (a zero seed is replaced).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % (n.max(1) as u64)).unwrap_or(0)
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64().to_le_bytes()[3]).collect()
    }
}

/// Makes sure this process may open at least `n` file descriptors (raising the soft limit with
/// `prlimit`, which the spawned servers then inherit). Returns the soft limit in force.
///
/// # Panics
/// If the limit stays below `n`.
pub fn ensure_open_files(n: u64) -> u64 {
    fn soft_hard() -> (u64, u64) {
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap_or_default();
        let nums: Vec<u64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        (
            nums.first().copied().unwrap_or(0),
            nums.get(1).copied().unwrap_or(0),
        )
    }
    let (soft, hard) = soft_hard();
    if soft >= n {
        return soft;
    }
    let _ = Command::new("prlimit")
        .arg("--pid")
        .arg(std::process::id().to_string())
        .arg(format!("--nofile={n}:{}", hard.max(n)))
        .status();
    let (soft, _) = soft_hard();
    assert!(
        soft >= n,
        "need {n} open files for this test but the limit is {soft} (raise `ulimit -n`)"
    );
    soft
}

/// The start of a request head that never ends: what each connection of a half-open flood
/// sends before going silent.
pub const HALF_HEAD: &[u8] = b"GET / HTTP/1.1\r\nHo";

/// A half-open flood: `n` connections to `addr`, each sent [`HALF_HEAD`] and nothing more,
/// returned still open (the attacker holds them), with how many could not connect within 2 s.
///
/// # Panics
/// If `addr` is not a socket address.
pub fn half_open_flood(addr: &str, n: usize) -> (Vec<TcpStream>, usize) {
    let addr: std::net::SocketAddr = addr.parse().expect("a socket address");
    let mut held = Vec::with_capacity(n);
    let mut failed = 0;
    for _ in 0..n {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(mut s) => {
                // The server may already have closed it (evicted): the attacker does not care.
                let _ = s.write_all(HALF_HEAD);
                held.push(s);
            }
            Err(_) => failed += 1,
        }
    }
    (held, failed)
}

/// How many of `conns` the server still holds open (a read would block), without reading
/// anything the server did not send.
pub fn still_open(conns: &[TcpStream]) -> usize {
    let mut buf = [0u8; 1];
    conns
        .iter()
        .filter(|s| {
            let _ = s.set_nonblocking(true);
            let open = matches!(s.peek(&mut buf), Err(e) if e.kind() == ErrorKind::WouldBlock);
            let _ = s.set_nonblocking(false);
            open
        })
        .count()
}

/// Configuration files written so far (for unique names).
static CONFIGS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Writes a VM configuration with a system-assigned identity and `n` user-assigned identities
/// (client ids `21000000-0000-4000-8000-<i:012>`) to a temporary file.
///
/// # Panics
/// If the file cannot be written.
pub fn many_identities_config(n: usize) -> PathBuf {
    use std::fmt::Write as _;
    let mut text = format!(
        "[system_assigned]\nclient_id = \"{SAMI_CLIENT}\"\nobject_id = \"30000000-0000-4000-8000-000000000001\"\n"
    );
    for i in 0..n {
        let _ = write!(
            text,
            "\n[[user_assigned]]\nclient_id = \"{}\"\nobject_id = \"31000000-0000-4000-8000-{i:012}\"\nresource_id = \"/subscriptions/40000000-0000-4000-8000-000000000000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id{i}\"\n",
            many_client_id(i)
        );
    }
    let k = CONFIGS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "mitoken-hostile-vm-{n}-{}-{k}.toml",
        std::process::id()
    ));
    std::fs::write(&path, text).expect("write config");
    path
}

/// Client id of the `i`-th identity of [`many_identities_config`].
pub fn many_client_id(i: usize) -> String {
    format!("21000000-0000-4000-8000-{i:012}")
}

/// Declares one `#[test]` per attack and kind: `emulate::<attack>` and `bridge::<attack>`,
/// each calling `<attack>(Kind::…)` from the invoking module (which must have `Kind` in scope).
#[macro_export]
macro_rules! hostile_tests {
    ($($attack:ident),* $(,)?) => {
        mod emulate {
            $(
                #[test]
                fn $attack() {
                    super::$attack(super::Kind::Emulate);
                }
            )*
        }
        mod bridge {
            $(
                #[test]
                fn $attack() {
                    super::$attack(super::Kind::Bridge);
                }
            )*
        }
    };
}
