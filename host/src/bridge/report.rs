//! The bridge's migration report: which local processes still call the legacy endpoint, for
//! which identities and resources, how often, first and last seen.
//!
//! **Attribution** (best effort, never failing a request): on a connection's first request the
//! bridge looks its client socket up in `/proc/net/tcp` (owner uid, inode) and the inode in
//! `/proc/<pid>/fd` (pid; then `/proc/<pid>/exe` and `cmdline`), pids of known clients first.
//! Reading another user's `fd` directory needs `CAP_SYS_PTRACE`, which the shipped unit does
//! not grant, so there a client is named by its uid alone. At most one lookup runs at a time;
//! connections arriving meanwhile count as unattributed, so a flood costs one lookup at a time.
//!
//! **Status channel**: a Unix socket ([`serving_status_socket`], or `--status-socket`) in a
//! directory only the
//! bridge's user can enter (created 0700, refused if group or others have any access), and each
//! connection's `SO_PEERCRED` uid must be the bridge's or root's: other users can neither reach
//! nor read it. A connection gets the report as one JSON document and is closed.
//! `mitoken bridge status` and `mitoken doctor` read it ([`fetch_report`]).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mitoken_core::identity::Selector;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, watch};

use crate::client::unix_now;
use crate::procnet::{self, SocketOwner};

/// Most distinct clients tracked; more are counted as unattributed.
pub const MAX_CLIENTS: usize = 1024;
/// Most distinct (identity, resource) pairs tracked per client.
pub const MAX_ASKED: usize = 64;
/// Largest report accepted by [`fetch_report`].
const MAX_REPORT_BYTES: u64 = 16 * 1024 * 1024;

/// One (identity, resource) a client asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asked {
    /// `default`, or `client_id=…`, `object_id=…`, `msi_res_id=…`.
    pub identity: String,
    /// The resource.
    pub resource: String,
    /// Requests for it.
    pub requests: u64,
}

/// One client process of the legacy endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    /// The client socket's owner uid (`None`: not found in `/proc/net/tcp`, or a remote peer).
    pub uid: Option<u32>,
    /// Its process id, when `/proc` showed it.
    pub pid: Option<u32>,
    /// Its executable, when `/proc` showed it.
    pub exe: Option<String>,
    /// Its command line, when `/proc` showed it.
    pub cmdline: Option<String>,
    /// The peer IP, for peers that are not on this machine (`--allow-non-loopback`).
    pub remote: Option<String>,
    /// Requests it made.
    pub requests: u64,
    /// First request, Unix seconds.
    pub first_seen: u64,
    /// Latest request, Unix seconds.
    pub last_seen: u64,
    /// What it asked for.
    pub asked: Vec<Asked>,
}

/// The report `mitoken bridge status` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationReport {
    /// When the bridge started, Unix seconds.
    pub since: u64,
    /// The clients, most requests first.
    pub clients: Vec<ClientRecord>,
    /// Requests whose client could not be told (lookup busy, or too many clients).
    pub unattributed_requests: u64,
}

/// Who a connection's client is: the key of its record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    uid: Option<u32>,
    pid: Option<u32>,
    exe: Option<String>,
    remote: Option<String>,
}

/// The longest a request's answer waits for its client's `/proc` lookup.
pub const LOOKUP_WAIT: Duration = Duration::from_millis(100);

/// A connection's attribution: looked up once, by the first of its requests, and shared with
/// the later ones.
pub type ConnectionAttribution = Arc<tokio::sync::OnceCell<Attribution>>;

/// Who a connection's client turned out to be.
#[derive(Debug, Clone)]
pub enum Attribution {
    /// Could not be told.
    Unattributed,
    /// This client.
    Client(ClientKey, Option<String>),
}

/// The counts behind the report, shared by every connection.
#[derive(Debug)]
pub struct Tracker {
    since: u64,
    state: Mutex<State>,
    lookups: Semaphore,
}

#[derive(Debug, Default)]
struct State {
    clients: HashMap<ClientKey, ClientRecord>,
    unattributed: u64,
}

fn identity_text(selector: &Selector<'_>) -> String {
    match selector {
        Selector::ClientId(id) => format!("client_id={id}"),
        Selector::ObjectId(id) => format!("object_id={id}"),
        Selector::ResourceId(id) => format!("msi_res_id={id}"),
        _ => "default".to_owned(),
    }
}

impl Default for Tracker {
    fn default() -> Self {
        Self::new()
    }
}

impl Tracker {
    /// An empty tracker starting now.
    pub fn new() -> Self {
        Self {
            since: unix_now(),
            state: Mutex::new(State::default()),
            lookups: Semaphore::new(1),
        }
    }

    /// Pids of known clients: the likely owners of a new connection.
    fn known_pids(&self) -> Vec<u32> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.clients.keys().filter_map(|k| k.pid).collect()
    }

    /// Finds who is at the other end of `peer` → `local` (blocking `/proc` reads on the
    /// blocking pool; at most one at a time, else unattributed).
    async fn attribute(&self, peer: SocketAddr, local: SocketAddr) -> Attribution {
        if !peer.ip().is_loopback() {
            let key = ClientKey {
                uid: None,
                pid: None,
                exe: None,
                remote: Some(peer.ip().to_string()),
            };
            return Attribution::Client(key, None);
        }
        let Ok(_permit) = self.lookups.try_acquire() else {
            return Attribution::Unattributed;
        };
        let likely = self.known_pids();
        let started = std::time::Instant::now();
        let found = tokio::task::spawn_blocking(move || {
            let me = [std::process::id()];
            procnet::connection(peer, local).map(|s| procnet::owner_of(&s, &likely, &me))
        })
        .await
        .ok()
        .flatten();
        tracing::debug!(
            %peer,
            took = ?started.elapsed(),
            pid = ?found.as_ref().and_then(|o| o.pid),
            "client lookup in /proc"
        );
        match found {
            Some(SocketOwner {
                uid,
                pid,
                exe,
                cmdline,
            }) => Attribution::Client(
                ClientKey {
                    uid: Some(uid),
                    pid,
                    exe: exe.map(|e| e.display().to_string()),
                    remote: None,
                },
                cmdline,
            ),
            None => Attribution::Unattributed,
        }
    }

    /// Counts one request on a connection from `peer` to `local`. The connection's client is
    /// looked up in `/proc` once, on its first request, in a task of its own. The answer waits
    /// for it at most [`LOOKUP_WAIT`] (a short-lived client such as `curl` is gone soon after
    /// its answer, so the lookup should see it first), never longer: a client holding
    /// thousands of descriptors makes a lookup slow, and it then finishes in the background.
    pub async fn record(
        self: &Arc<Self>,
        attribution: &ConnectionAttribution,
        peer: SocketAddr,
        local: SocketAddr,
        selector: &Selector<'_>,
        resource: &str,
    ) {
        let identity = identity_text(selector);
        if let Some(known) = attribution.get() {
            self.count(known, identity, resource);
            return;
        }
        let (tracker, cell, resource) = (
            Arc::clone(self),
            Arc::clone(attribution),
            resource.to_owned(),
        );
        let lookup = tokio::spawn(async move {
            let known = cell.get_or_init(|| tracker.attribute(peer, local)).await;
            tracker.count(known, identity, &resource);
        });
        let _ = tokio::time::timeout(LOOKUP_WAIT, lookup).await;
    }

    /// Adds one request of the client `attribution` names (for `identity` and `resource`).
    fn count(&self, attribution: &Attribution, identity: String, resource: &str) {
        let now = unix_now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let Attribution::Client(key, cmdline) = attribution else {
            state.unattributed += 1;
            return;
        };
        let full = state.clients.len() >= MAX_CLIENTS;
        let record = match state.clients.entry(key.clone()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(_) if full => {
                state.unattributed += 1;
                return;
            }
            Entry::Vacant(e) => {
                tracing::info!(
                    uid = ?key.uid,
                    pid = ?key.pid,
                    exe = key.exe.as_deref().unwrap_or("?"),
                    remote = ?key.remote,
                    "new client of the legacy endpoint"
                );
                e.insert(ClientRecord {
                    uid: key.uid,
                    pid: key.pid,
                    exe: key.exe.clone(),
                    cmdline: cmdline.clone(),
                    remote: key.remote.clone(),
                    requests: 0,
                    first_seen: now,
                    last_seen: now,
                    asked: Vec::new(),
                })
            }
        };
        record.requests += 1;
        record.last_seen = now;
        if let Some(a) = record
            .asked
            .iter_mut()
            .find(|a| a.identity == identity && a.resource == resource)
        {
            a.requests += 1;
        } else if record.asked.len() < MAX_ASKED {
            record.asked.push(Asked {
                identity,
                resource: resource.to_owned(),
                requests: 1,
            });
        }
    }

    /// The report now.
    pub fn report(&self) -> MigrationReport {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut clients: Vec<ClientRecord> = state.clients.values().cloned().collect();
        clients.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.pid.cmp(&b.pid)));
        MigrationReport {
            since: self.since,
            clients,
            unattributed_requests: state.unattributed,
        }
    }
}

/// The uid this process runs as.
pub fn own_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// Where systemd's `RuntimeDirectory=mitoken-bridge` puts the status socket.
pub const SYSTEMD_STATUS_SOCKET: &str = "/run/mitoken-bridge/status.sock";

/// Where the bridge serves its report unless told: `$RUNTIME_DIRECTORY/status.sock` when
/// systemd set a runtime directory (the shipped unit), else nowhere (`--status-socket` opts
/// in), so ad-hoc bridges never take over the service's socket.
pub fn serving_status_socket() -> Option<PathBuf> {
    let dir = std::env::var("RUNTIME_DIRECTORY").ok()?;
    // systemd lists several directories separated by ':'; ours is the first.
    let first = dir.split(':').next().filter(|d| !d.is_empty())?;
    Some(Path::new(first).join("status.sock"))
}

/// Where `mitoken bridge status` and `mitoken doctor` look unless told: as
/// [`serving_status_socket`], else [`SYSTEMD_STATUS_SOCKET`].
pub fn default_status_socket() -> PathBuf {
    serving_status_socket().unwrap_or_else(|| PathBuf::from(SYSTEMD_STATUS_SOCKET))
}

/// Why the status socket could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatusSocketError {
    /// The socket path has no parent directory.
    #[error("{0}: not a path inside a directory")]
    NoDirectory(PathBuf),
    /// The directory could not be created or inspected.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The directory is not private to the bridge's user.
    #[error(
        "{path}: must be a directory owned by uid {uid} with no group or other access (mode {mode:o})"
    )]
    NotPrivate {
        /// The directory.
        path: PathBuf,
        /// The bridge's uid.
        uid: u32,
        /// Its mode.
        mode: u32,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StatusSocketError + '_ {
    move |source| StatusSocketError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Binds the status socket at `path`, creating its directory 0700 when missing and refusing a
/// directory others can access.
pub fn bind_status_socket(path: &Path) -> Result<UnixListener, StatusSocketError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| StatusSocketError::NoDirectory(path.to_owned()))?;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error(dir))?;
    }
    let meta = std::fs::symlink_metadata(dir).map_err(io_error(dir))?;
    let uid = own_uid().unwrap_or(u32::MAX);
    let mode = meta.permissions().mode() & 0o7777;
    if !meta.is_dir() || meta.uid() != uid || mode & 0o077 != 0 {
        return Err(StatusSocketError::NotPrivate {
            path: dir.to_owned(),
            uid,
            mode,
        });
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(path)(e)),
    }
    UnixListener::bind(path).map_err(io_error(path))
}

/// Serves the report on `listener` until shutdown; removes the socket file at the end.
pub async fn serve_status(
    listener: UnixListener,
    path: PathBuf,
    tracker: Arc<Tracker>,
    mut shutdown: watch::Receiver<bool>,
) {
    let uid = own_uid();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = crate::serve_loop::shutdown_requested(&mut shutdown) => break,
        };
        let Ok((mut stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let peer_uid = stream.peer_cred().ok().map(|c| c.uid());
        if peer_uid.is_none() || (peer_uid != uid && peer_uid != Some(0)) {
            tracing::warn!(?peer_uid, "status socket: refused a client of another user");
            continue;
        }
        let mut json = serde_json::to_vec(&tracker.report()).unwrap_or_default();
        json.push(b'\n');
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(&json)).await;
            let _ = stream.shutdown().await;
        });
    }
    let _ = std::fs::remove_file(&path);
}

/// Why [`fetch_report`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchReportError {
    /// No socket path: neither given nor a default.
    #[error("no status socket path (give --socket; is the bridge running?)")]
    NoPath,
    /// Could not connect.
    #[error(
        "cannot connect to {path}: {source} (is mitoken bridge running, and are you its user or root?)"
    )]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Reading failed or took too long.
    #[error("reading {path}: {reason}")]
    Read {
        /// The socket.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The answer was not a report.
    #[error("{path} answered something that is not a migration report: {source}")]
    Json {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
}

/// Reads the running bridge's report from its status socket.
pub async fn fetch_report(path: &Path) -> Result<MigrationReport, FetchReportError> {
    let read = async {
        let stream =
            UnixStream::connect(path)
                .await
                .map_err(|source| FetchReportError::Connect {
                    path: path.to_owned(),
                    source,
                })?;
        let mut bytes = Vec::new();
        stream
            .take(MAX_REPORT_BYTES)
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| FetchReportError::Read {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        serde_json::from_slice(&bytes).map_err(|source| FetchReportError::Json {
            path: path.to_owned(),
            source,
        })
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .unwrap_or_else(|_| {
            Err(FetchReportError::Read {
                path: path.to_owned(),
                reason: "no answer within 5 s".to_owned(),
            })
        })
}

/// How long ago `then` was, in words.
fn ago(now: u64, then: u64) -> String {
    let secs = now.saturating_sub(then);
    match secs {
        0..60 => format!("{secs} s ago"),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

impl ClientRecord {
    /// `pid 1234 /usr/bin/curl (uid 1000)`-style name.
    pub fn name(&self) -> String {
        let mut parts = Vec::new();
        if let Some(remote) = &self.remote {
            parts.push(format!("remote {remote}"));
        }
        match (self.pid, &self.exe) {
            (Some(pid), Some(exe)) => parts.push(format!("pid {pid} {exe}")),
            (Some(pid), None) => parts.push(format!("pid {pid}")),
            _ if self.remote.is_none() => parts.push("unknown process".to_owned()),
            _ => {}
        }
        if let Some(uid) = self.uid {
            parts.push(format!("(uid {uid})"));
        }
        parts.join(" ")
    }
}

impl MigrationReport {
    /// The text `mitoken bridge status` prints.
    pub fn text(&self, now: u64) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "legacy endpoint clients since the bridge started ({}): {}",
            ago(now, self.since),
            self.clients.len()
        );
        for c in &self.clients {
            let _ = writeln!(
                out,
                "  {}: {} request(s), first {}, last {}",
                c.name(),
                c.requests,
                ago(now, c.first_seen),
                ago(now, c.last_seen)
            );
            if let Some(cmd) = &c.cmdline {
                let _ = writeln!(out, "      command: {cmd}");
            }
            for a in &c.asked {
                let _ = writeln!(
                    out,
                    "      {} for {}: {} request(s)",
                    a.identity, a.resource, a.requests
                );
            }
        }
        if self.unattributed_requests > 0 {
            let _ = writeln!(
                out,
                "  {} request(s) from clients that could not be told",
                self.unattributed_requests
            );
        }
        if self.clients.is_empty() && self.unattributed_requests == 0 {
            let _ = writeln!(out, "  none: no application uses the legacy endpoint");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_per_client_identity_and_resource() {
        let tracker = Arc::new(Tracker::new());
        let known = |a: Attribution| -> ConnectionAttribution {
            Arc::new(tokio::sync::OnceCell::new_with(Some(a)))
        };
        let conn = known(Attribution::Client(
            ClientKey {
                uid: Some(1000),
                pid: Some(42),
                exe: Some("/usr/bin/curl".into()),
                remote: None,
            },
            None,
        ));
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:50342".parse().unwrap();
        for _ in 0..2 {
            tracker
                .record(
                    &conn,
                    peer,
                    local,
                    &Selector::Default,
                    "https://vault.azure.net",
                )
                .await;
        }
        tracker
            .record(&conn, peer, local, &Selector::ClientId("abc"), "r")
            .await;
        let none = known(Attribution::Unattributed);
        tracker
            .record(&none, peer, local, &Selector::Default, "r")
            .await;
        let report = tracker.report();
        assert_eq!(report.unattributed_requests, 1);
        let c = &report.clients[0];
        assert_eq!((c.pid, c.requests, c.asked.len()), (Some(42), 3, 2));
        assert_eq!(c.asked[0].requests, 2);
        assert_eq!(c.asked[1].identity, "client_id=abc");
        assert!(
            report
                .text(report.since)
                .contains("pid 42 /usr/bin/curl (uid 1000): 3 request(s)")
        );
    }

    #[test]
    fn a_shared_directory_is_refused() {
        let dir = std::env::temp_dir().join(format!("mitoken-status-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let err = bind_status_socket(&dir.join("status.sock")).unwrap_err();
            assert!(matches!(err, StatusSocketError::NotPrivate { .. }), "{err}");
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
            assert!(bind_status_socket(&dir.join("status.sock")).is_ok());
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
}
