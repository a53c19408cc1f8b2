//! A hostile environment for the client: proxy variables pointing at a listener of ours must
//! never be used to reach IMDS (the IMDS documentation requires bypassing proxies; a proxy would
//! see every token). `mitoken token` gets its token straight from the emulator and the "proxy"
//! sees no connection.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use mitoken_tests::builtin::SAMI;
use mitoken_tests::{EmulatorProcess, mitoken_bin};

const PROXY_VARS: [&str; 6] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];

#[test]
fn token_never_goes_through_a_proxy() {
    let emu = EmulatorProcess::spawn(&[]);
    let proxy = TcpListener::bind("127.0.0.1:0").expect("bind the fake proxy");
    let proxy_url = format!("http://{}", proxy.local_addr().expect("addr"));
    proxy.set_nonblocking(true).expect("nonblocking");
    let hits = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (hits, stop) = (Arc::clone(&hits), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if proxy.accept().is_ok() {
                    hits.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    // The endpoint given on the command line, and through AZURE_POD_IDENTITY_AUTHORITY_HOST.
    for via_env in [false, true] {
        let mut cmd = std::process::Command::new(mitoken_bin());
        cmd.args([
            "token",
            "--resource",
            "https://vault.azure.net",
            "--timeout",
            "10",
        ]);
        if via_env {
            cmd.env("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.base_url());
        } else {
            cmd.args(["--endpoint", &emu.base_url()])
                .env_remove("AZURE_POD_IDENTITY_AUTHORITY_HOST");
        }
        for var in PROXY_VARS {
            cmd.env(var, &proxy_url);
        }
        cmd.env_remove("NO_PROXY").env_remove("no_proxy");
        let out = cmd.output().expect("run mitoken token");
        assert_eq!(
            out.status.code(),
            Some(0),
            "stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON token");
        assert_eq!(v["client_id"], SAMI.0, "the token came from the emulator");
    }
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    watcher.join().expect("proxy thread");
    assert_eq!(
        hits.load(Ordering::Relaxed),
        0,
        "mitoken token connected to the proxy named in the environment"
    );
    let counters = emu.admin("GET", "counters", "");
    assert_eq!(counters["total"], 2, "both requests reached IMDS directly");
}
