//! Starting and stopping the emulator many times does not grow the process: the identity table
//! and its strings belong to the running emulator and are freed when it stops (nothing is
//! leaked at start).
//!
//! Its own test binary, so no other test allocates meanwhile.

use std::sync::Arc;

use mitoken_core::identity::{Flavor, IMDS_MAX_USER_ASSIGNED};
use mitoken_host::emulate::config::{EmulatorConfig, Guid, IdentityConfig, IdentityKind};
use mitoken_host::emulate::serve::{Emulator, EmulatorOptions};
use mitoken_host::emulate::signing::SigningKey;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A VM at IMDS's limit: a system-assigned identity and 1000 user-assigned ones.
fn full_vm() -> EmulatorConfig {
    let guid = |kind: u128, n: usize| Guid((kind << 120) | (0x4000_8000 << 48) | n as u128);
    let user_assigned = (1..=IMDS_MAX_USER_ASSIGNED)
        .map(|n| IdentityConfig {
            client_id: guid(0x20, n),
            object_id: guid(0x30, n),
            kind: IdentityKind::UserAssigned {
                resource_id: format!(
                    "/subscriptions/40000000-0000-4000-8000-000000000000/resourceGroups/restarts/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uami-{n:04}"
                )
                .parse()
                .expect("a valid resource id"),
            },
        })
        .collect();
    EmulatorConfig {
        tenant_id: EmulatorConfig::DEFAULT_TENANT_ID,
        system_assigned: Some(IdentityConfig {
            client_id: guid(0x20, 0),
            object_id: guid(0x30, 0),
            kind: IdentityKind::SystemAssigned,
        }),
        user_assigned,
    }
}

/// Restarts measured after the warm-up.
const CYCLES: u64 = 150;

/// Resident set size of this process, in bytes (Linux `/proc/self/statm`).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("statm's resident field");
    pages * 4096
}

/// Starts the emulator, asks it for a token of the last user-assigned identity (so the table
/// is used), and stops it.
async fn cycle(config: &EmulatorConfig, key: &Arc<SigningKey>) {
    let options = EmulatorOptions {
        signing_key: Some(Arc::clone(key)),
        ..EmulatorOptions::new(Flavor::Imds, config.clone())
    };
    let emulator = Emulator::start(options).await.expect("start");
    let mut stream = TcpStream::connect(emulator.local_addr())
        .await
        .expect("connect");
    let request = "GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net&client_id=20000000-0000-4000-8000-0000000003e8 HTTP/1.1\r\nMetadata: true\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(
        answer.contains("\"client_id\":\"20000000-0000-4000-8000-0000000003e8\""),
        "{answer}"
    );
    emulator.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn restarts_do_not_grow_the_process() {
    let key = Arc::new(
        tokio::task::spawn_blocking(SigningKey::generate)
            .await
            .expect("key task")
            .expect("key"),
    );
    let config = full_vm();
    // Warm up: the allocator's arenas, tokio's and the key's lazily built state.
    for _ in 0..10 {
        cycle(&config, &key).await;
    }
    let before = rss_bytes();
    for _ in 0..CYCLES {
        cycle(&config, &key).await;
    }
    let grown = rss_bytes().saturating_sub(before);
    // A table of 1001 identities with its strings is about 200 KB: leaking it at every start
    // would grow the process by ~30 MB over these cycles.
    assert!(
        grown < 8 * 1024 * 1024,
        "{CYCLES} restarts grew the process by {grown} bytes"
    );
    eprintln!("{CYCLES} restarts: RSS grew by {} KiB", grown / 1024);
}
