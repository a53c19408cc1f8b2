//! Issue #14.3: the bridge's migration report names the real client processes of the legacy
//! endpoint (a `curl` and a Python script: their pids and executables, what they asked for,
//! how often), `mitoken bridge status` reads it over the private status socket, and another
//! user cannot.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use mitoken_tests::{BridgeProcess, EmulatorProcess, mitoken_bin};

/// The emulator's first user-assigned identity (its built-in configuration).
const USER_ASSIGNED: &str = "20000000-0000-4000-8000-000000000002";

/// A Python client: two legacy requests for a user-assigned identity, then prints its pid.
const PYTHON_CLIENT: &str = r"
import os, sys, urllib.request
for _ in range(2):
    req = urllib.request.Request(sys.argv[1], headers={'Metadata': 'true'})
    assert urllib.request.urlopen(req, timeout=30).status == 200
print(os.getpid())
";

fn status_dir() -> PathBuf {
    std::env::temp_dir().join(format!("mitoken-report-{}", std::process::id()))
}

fn bridge_status(socket: &Path, json: bool) -> Output {
    let mut cmd = Command::new(mitoken_bin());
    cmd.args(["bridge", "status", "--socket"]).arg(socket);
    if json {
        cmd.arg("--json");
    }
    cmd.output().expect("run mitoken bridge status")
}

fn file_name(exe: &serde_json::Value) -> String {
    Path::new(exe.as_str().unwrap_or_default())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn the_report_names_curl_and_a_python_script_with_their_requests() {
    let dir = status_dir();
    let _ = std::fs::remove_dir_all(&dir);
    let socket = dir.join("status.sock");
    let emu = EmulatorProcess::spawn(&[]);
    let bridge = BridgeProcess::spawn(
        &emu.base_url(),
        &["--status-socket", socket.to_str().unwrap()],
    );

    // Before any client: an empty report.
    let empty = bridge_status(&socket, false);
    assert!(empty.status.success(), "{empty:?}");
    assert!(String::from_utf8_lossy(&empty.stdout).contains("none: no application"));

    let curl = Command::new("curl")
        .args(["-sS", "-f", "-H", "Metadata: true"])
        .arg(format!(
            "{}?resource=https%3A%2F%2Fvault.azure.net",
            bridge.token_url()
        ))
        .stdout(Stdio::null())
        .spawn()
        .expect("curl is installed");
    let curl_pid = curl.id();
    let curl_out = curl.wait_with_output().unwrap();
    assert!(curl_out.status.success(), "curl failed: {curl_out:?}");

    let python = Command::new("python3")
        .args(["-c", PYTHON_CLIENT])
        .arg(format!(
            "{}?resource=https%3A%2F%2Fstorage.azure.com%2F&client_id={USER_ASSIGNED}",
            bridge.token_url()
        ))
        .output()
        .expect("python3 is installed");
    assert!(python.status.success(), "python failed: {python:?}");
    let python_pid: u32 = String::from_utf8_lossy(&python.stdout)
        .trim()
        .parse()
        .unwrap();

    let out = bridge_status(&socket, true);
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let clients = report["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 2, "{report:#}");
    let by_pid = |pid: u32| {
        clients
            .iter()
            .find(|c| c["pid"] == pid)
            .unwrap_or_else(|| panic!("no client with pid {pid}: {report:#}"))
    };
    let c = by_pid(curl_pid);
    assert_eq!(file_name(&c["exe"]), "curl", "{c:#}");
    assert_eq!(c["requests"], 1);
    assert_eq!(c["asked"][0]["identity"], "default");
    assert_eq!(c["asked"][0]["resource"], "https://vault.azure.net");
    let p = by_pid(python_pid);
    assert!(file_name(&p["exe"]).starts_with("python"), "{p:#}");
    assert_eq!(p["requests"], 2);
    assert_eq!(
        p["asked"][0]["identity"],
        format!("client_id={USER_ASSIGNED}")
    );
    assert_eq!(p["asked"][0]["resource"], "https://storage.azure.com/");
    assert_eq!(p["asked"][0]["requests"], 2);
    for client in [c, p] {
        assert!(client["first_seen"].as_u64() <= client["last_seen"].as_u64());
        assert!(client["first_seen"].as_u64() >= report["since"].as_u64());
    }
    assert_eq!(report["unattributed_requests"], 0);

    // The text form names both, and the bridge logged each new client once at info.
    let text = String::from_utf8_lossy(&bridge_status(&socket, false).stdout).into_owned();
    assert!(text.contains(&format!("pid {curl_pid} ")), "{text}");
    assert!(text.contains(&format!("pid {python_pid} ")), "{text}");
    let logs = bridge.logs();
    assert_eq!(
        logs.matches("new client of the legacy endpoint").count(),
        2,
        "{logs}"
    );
    assert!(!logs.contains("eyJ"), "a token in the logs");

    // Only the bridge's user (and root) can enter the directory.
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let as_nobody = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(mitoken_bin())
        .args(["bridge", "status", "--socket"])
        .arg(&socket)
        .output();
    match as_nobody {
        Ok(o) if is_root() => {
            assert!(!o.status.success(), "another user read the report: {o:?}");
            assert!(
                String::from_utf8_lossy(&o.stderr).contains("Permission denied"),
                "{o:?}"
            );
        }
        _ => eprintln!("SKIP: not root (or no setpriv): the other-user check did not run"),
    }

    assert!(bridge.terminate().success());
    assert!(!socket.exists(), "the socket is removed at shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn a_status_directory_open_to_others_is_refused_and_the_bridge_still_serves() {
    let dir = std::env::temp_dir().join(format!("mitoken-report-open-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let socket = dir.join("status.sock");
    let emu = EmulatorProcess::spawn(&[]);
    let bridge = BridgeProcess::spawn(
        &emu.base_url(),
        &["--status-socket", socket.to_str().unwrap()],
    );
    let reply = bridge
        .send(&mitoken_tests::legacy_get(
            "resource=https%3A%2F%2Fvault.azure.net",
        ))
        .unwrap();
    assert_eq!(reply.status, 200);
    assert!(!socket.exists());
    assert!(bridge.logs().contains("migration report not served"));
    let _ = std::fs::remove_dir_all(&dir);
}
