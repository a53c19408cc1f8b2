//! The retired managed-identity VM extension: who listens on its port, its files on disk, and
//! the running bridge's migration report.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use tokio::net::TcpStream;

use super::{Check, Status};
use crate::bridge::report::{FetchReportError, default_status_socket, fetch_report};
use crate::procnet;

/// The extension's address.
pub const LEGACY_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 50342);
/// Where the Azure Linux agent unpacks extensions.
const WAAGENT_DIR: &str = "/var/lib/waagent";
/// The extension's directory name prefix there.
const EXTENSION_PREFIX: &str = "Microsoft.ManagedIdentity.ManagedIdentityExtensionForLinux";

/// Who listens on the legacy port.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Listener {
    /// `mitoken bridge`.
    Bridge(String),
    /// The VM extension.
    Extension(String),
    /// Something else, or a process `/proc` would not show.
    Other(String),
}

fn identify() -> Listener {
    let Some(socket) = procnet::listener(LEGACY_ADDR) else {
        return Listener::Other("a listener not found in /proc/net/tcp".to_owned());
    };
    let owner = procnet::owner_of(&socket, &[], &[]);
    let Some(pid) = owner.pid else {
        return Listener::Other(format!(
            "a process of uid {} (its pid is hidden; run as root to see it)",
            owner.uid
        ));
    };
    let exe = owner
        .exe
        .as_ref()
        .map_or_else(|| "?".to_owned(), |e| e.display().to_string());
    let cmdline = owner.cmdline.unwrap_or_default();
    let who = format!("pid {pid} {exe}");
    let is_mitoken = owner
        .exe
        .as_ref()
        .and_then(|e| e.file_name())
        .is_some_and(|n| n == "mitoken");
    if is_mitoken && cmdline.split_whitespace().nth(1) == Some("bridge") {
        Listener::Bridge(who)
    } else if exe.contains("ManagedIdentity") || cmdline.contains("ManagedIdentity") {
        Listener::Extension(who)
    } else {
        Listener::Other(format!("{who} ({cmdline})"))
    }
}

async fn listener_check(timeout: Duration) -> (Check, bool) {
    let connected = matches!(
        tokio::time::timeout(timeout, TcpStream::connect(LEGACY_ADDR)).await,
        Ok(Ok(_))
    );
    if !connected {
        return (
            Check::ok(
                "legacy.listener",
                format!(
                    "nothing listens on {LEGACY_ADDR}: the VM extension is gone (applications \
                     hard-wired to it would fail; `mitoken bridge` serves them)"
                ),
            ),
            false,
        );
    }
    match tokio::task::spawn_blocking(identify)
        .await
        .unwrap_or_else(|_| Listener::Other("?".to_owned()))
    {
        Listener::Bridge(who) => (
            Check::ok(
                "legacy.listener",
                format!("mitoken bridge ({who}) serves {LEGACY_ADDR} from IMDS"),
            ),
            true,
        ),
        Listener::Extension(who) => (
            Check::with_fix(
                "legacy.listener",
                Status::Warn,
                format!(
                    "the retired managed-identity VM extension ({who}) listens on {LEGACY_ADDR}"
                ),
                "remove the extension (az vm extension delete -g RG --vm-name VM -n \
                 ManagedIdentityExtensionForLinux) and install the mitoken-bridge service for \
                 applications that still call it",
            ),
            false,
        ),
        Listener::Other(who) => (
            Check::with_fix(
                "legacy.listener",
                Status::Warn,
                format!(
                    "{LEGACY_ADDR} is held by something that is not mitoken bridge: {who}; if it \
                     is the retired VM extension, its tokens stop when it is retired"
                ),
                "if it is the VM extension, remove it and enable mitoken-bridge.service; \
                 otherwise move that program off port 50342",
            ),
            false,
        ),
    }
}

fn files_check() -> Check {
    let found: Vec<String> = std::fs::read_dir(WAAGENT_DIR)
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(EXTENSION_PREFIX)
                })
                .map(|e| e.path().display().to_string())
                .collect()
        })
        .unwrap_or_default();
    if found.is_empty() {
        Check::ok(
            "legacy.files",
            format!("no VM extension files in {WAAGENT_DIR}"),
        )
    } else {
        Check::with_fix(
            "legacy.files",
            Status::Warn,
            format!("VM extension files on disk: {}", found.join(", ")),
            "remove the extension from the VM (az vm extension delete … -n \
             ManagedIdentityExtensionForLinux); the agent then deletes its files",
        )
    }
}

async fn report_check(socket: Option<&Path>, bridge_listening: bool) -> Option<Check> {
    let path = socket.map_or_else(default_status_socket, Path::to_path_buf);
    if !bridge_listening && !path.exists() {
        return None;
    }
    Some(match fetch_report(&path).await {
        Ok(report) if report.clients.is_empty() && report.unattributed_requests == 0 => Check::ok(
            "legacy.clients",
            "no application has called the bridge since it started: it can be removed once \
             that has held for a full business cycle",
        ),
        Ok(report) => {
            let names: Vec<String> = report
                .clients
                .iter()
                .map(|c| format!("{} ({} request(s))", c.name(), c.requests))
                .collect();
            let mut detail = format!(
                "{} client(s) still call the legacy endpoint: {}",
                report.clients.len(),
                names.join("; ")
            );
            if report.unattributed_requests > 0 {
                let _ = write!(
                    detail,
                    "; {} request(s) from clients that could not be told",
                    report.unattributed_requests
                );
            }
            Check::with_fix(
                "legacy.clients",
                Status::Warn,
                detail,
                "move each to IMDS (an SDK's ManagedIdentityCredential, or \
                 http://169.254.169.254/metadata/identity/oauth2/token); `mitoken bridge status` \
                 lists what each asks for",
            )
        }
        // A socket left behind by a bridge that is gone: nothing to report.
        Err(FetchReportError::Connect { source, .. })
            if !bridge_listening
                && matches!(
                    source.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
                ) =>
        {
            return None;
        }
        Err(e) => Check::with_fix(
            "legacy.clients",
            Status::Warn,
            format!("the bridge's migration report is unavailable: {e}"),
            "run the doctor as root or as the bridge's user, or pass --bridge-socket",
        ),
    })
}

/// The legacy-extension checks.
pub async fn checks(timeout: Duration, bridge_socket: Option<&Path>) -> Vec<Check> {
    let (listener, is_bridge) = listener_check(timeout.min(Duration::from_secs(2))).await;
    let mut out = vec![listener, files_check()];
    out.extend(report_check(bridge_socket, is_bridge).await);
    out
}
