//! The shipped unit `host/dist/mitoken-bridge.service`: `systemd-analyze verify` accepts it
//! (no warnings) with `ExecStart` pointing at the built binary, it keeps its hardening, and its
//! command line is one the binary accepts.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mitoken_tests::{EmulatorProcess, mitoken_bin, read_response, workspace_root};

fn unit_text() -> String {
    let path = workspace_root().join("host/dist/mitoken-bridge.service");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `ExecStart=` line's arguments after the binary.
fn exec_args(unit: &str) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    let mut words = line.split_whitespace();
    assert_eq!(
        words.next(),
        Some("/usr/local/bin/mitoken"),
        "documented install path"
    );
    words.map(str::to_owned).collect()
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("SKIP: systemd-analyze is not installed; the unit was not verified");
        return;
    };
    assert!(version.status.success());
    let unit = unit_text();
    let bin = mitoken_bin();
    let dir = std::env::temp_dir().join(format!("mitoken-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("mitoken-bridge.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/mitoken", &bin.display().to_string()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .expect("run systemd-analyze");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed: {stderr}"
    );
    // Unknown or unparsable settings are warnings with a zero exit status: refuse them too.
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze verify warned: {stderr}"
    );
}

#[test]
fn the_unit_keeps_its_hardening() {
    let unit = unit_text();
    for setting in [
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "RuntimeDirectoryMode=0700",
        "IPAddressDeny=any",
        "IPAddressAllow=localhost 169.254.169.254/32",
        "SocketBindAllow=tcp:50342",
        "SocketBindDeny=any",
        "MemoryDenyWriteExecute=yes",
        "SystemCallFilter=@system-service",
        "Restart=on-failure",
    ] {
        assert!(
            unit.lines().any(|l| l.trim() == setting),
            "missing `{setting}`"
        );
    }
    let args = exec_args(&unit);
    assert_eq!(
        args,
        [
            "bridge",
            "--listen",
            "127.0.0.1:50342",
            "--upstream",
            "http://169.254.169.254"
        ]
    );
}

#[test]
fn the_units_command_line_runs() {
    // The unit's own arguments, with the port and upstream swapped for test ones.
    let emu = EmulatorProcess::spawn(&[]);
    let args: Vec<String> = exec_args(&unit_text())
        .into_iter()
        .map(|a| match a.as_str() {
            "127.0.0.1:50342" => "127.0.0.1:0".to_owned(),
            "http://169.254.169.254" => emu.base_url(),
            _ => a,
        })
        .collect();
    let mut child = Command::new(mitoken_bin())
        .args(&args)
        .env("MITOKEN_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on http://")
        .expect(&first)
        .to_owned();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    std::io::Write::write_all(
        &mut s,
        mitoken_tests::legacy_get("resource=https%3A%2F%2Fvault.azure.net").as_bytes(),
    )
    .unwrap();
    let reply = read_response(&mut std::io::BufReader::new(s)).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(reply.status, 200);
    assert!(Path::new(mitoken_bin()).exists());
}
