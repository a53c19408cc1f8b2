//! The connection plumbing shared by the tokio shells around the core server (`mitoken
//! emulate`) and the core relay (`mitoken bridge`): the accept loop with its connection limit,
//! peer check and graceful shutdown, and the per-connection read step with its idle timeout.
//!
//! The HTTP itself is never here: each connection's bytes go to the core
//! (`Server::handle` / `Relay::handle`), which parses, validates and writes the answers.

use core::future::Future;
use core::net::SocketAddr;
use core::time::Duration;
use std::sync::Arc;

use mitoken_core::http::Limits;
use mitoken_core::identity::Flavor;
use mitoken_core::server::Config;
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// Bounds on connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once; more are answered 503 and closed. Default 1024.
    pub max_connections: usize,
    /// A connection with no complete request for this long is closed. Default 60 s.
    pub idle_timeout: Duration,
    /// On shutdown, how long answers in progress may take before their connections are dropped.
    /// Default 5 s.
    pub shutdown_grace: Duration,
    /// Request heads and bodies (the core's limits): 8 KiB lines, 64 headers, 8 KiB bodies.
    pub http: Limits,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            idle_timeout: Duration::from_mins(1),
            shutdown_grace: Duration::from_secs(5),
            http: Config::new(Flavor::Imds).limits,
        }
    }
}

/// Largest response or work buffer a connection grows to.
pub const MAX_BUFFER: usize = 1 << 20;
/// Room reserved for one socket read.
pub const READ_CHUNK: usize = 8192;

/// The most request bytes a connection buffers: the core refuses longer heads and bodies well
/// before this, so reaching it means something is wrong; the connection is closed.
pub fn max_input(limits: &Limits) -> usize {
    limits
        .max_line_len
        .saturating_add(2)
        .saturating_mul(limits.max_headers.saturating_add(2))
        .saturating_add(limits.max_body.saturating_mul(2))
        .saturating_add(READ_CHUNK)
}

/// True for a loopback peer, IPv4-mapped IPv6 loopback (`::ffff:127.0.0.1`) included.
pub fn is_loopback_peer(peer: SocketAddr) -> bool {
    peer.ip().to_canonical().is_loopback()
}

/// Resolves when shutdown is asked for (or every sender is gone).
pub async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// How [`accept_loop`] treats connections.
#[derive(Clone, Debug)]
pub struct AcceptPolicy {
    /// Connection bounds.
    pub limits: ConnectionLimits,
    /// The complete answer written (best effort) to a connection over the limit, e.g. a 503.
    pub refusal: Arc<[u8]>,
    /// Serve peers that are not on loopback; without it they are closed unanswered.
    pub allow_non_loopback: bool,
    /// Name for logs (`emulator`, `bridge`).
    pub name: &'static str,
}

/// Accepts connections until shutdown is asked for, each served by `serve` in its own task;
/// then stops listening and waits up to the shutdown grace for the connections, aborting the
/// rest.
///
/// A connection from a non-loopback peer is closed at once unless the policy allows it; one
/// over the connection limit gets the refusal bytes and is closed.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    policy: AcceptPolicy,
    mut rx: watch::Receiver<bool>,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let name = policy.name;
    let slots = Arc::new(Semaphore::new(policy.limits.max_connections.max(1)));
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            () = shutdown_requested(&mut rx) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if !policy.allow_non_loopback && !is_loopback_peer(peer) {
                        tracing::warn!(%peer, "{name}: non-loopback peer refused (closed)");
                        drop(stream);
                        continue;
                    }
                    let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                        tracing::warn!(%peer, "{name}: connection limit reached; refusing");
                        // Best effort, without waiting: a full socket buffer just loses it.
                        let _ = stream.try_write(&policy.refusal);
                        continue;
                    };
                    let connection = serve(stream, peer, rx.clone());
                    tasks.spawn(async move {
                        connection.await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!("{name}: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(listener);
    tracing::info!(connections = tasks.len(), "{name} shutting down");
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(policy.limits.shutdown_grace, drain)
        .await
        .is_err()
    {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

/// What [`read_more`] got.
#[derive(Debug)]
pub enum ReadOutcome {
    /// Bytes were appended to the input.
    Data,
    /// The peer closed its side.
    Eof,
    /// Shutdown was asked for while waiting.
    Shutdown,
    /// Nothing arrived within the idle timeout.
    Idle,
    /// The read failed.
    Failed(std::io::Error),
}

/// Reads what the peer sends next, appending it to `input` (at most [`READ_CHUNK`] bytes per
/// call, into the vector's spare room: no copy, no allocation once the vector has grown).
pub async fn read_more(
    stream: &mut TcpStream,
    input: &mut Vec<u8>,
    idle_timeout: Duration,
    rx: &mut watch::Receiver<bool>,
) -> ReadOutcome {
    input.reserve(READ_CHUNK);
    let read = tokio::select! {
        () = shutdown_requested(rx) => return ReadOutcome::Shutdown,
        r = tokio::time::timeout(idle_timeout, stream.read_buf(input)) => r,
    };
    match read {
        Ok(Ok(0)) => ReadOutcome::Eof,
        Ok(Ok(_)) => ReadOutcome::Data,
        Ok(Err(e)) => ReadOutcome::Failed(e),
        Err(_) => ReadOutcome::Idle,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_peers() {
        for (addr, loopback) in [
            ("127.0.0.1:1", true),
            ("127.8.9.10:1", true),
            ("[::1]:1", true),
            ("[::ffff:127.0.0.1]:1", true),
            ("10.0.0.1:1", false),
            ("169.254.169.254:80", false),
            ("[::ffff:10.0.0.1]:1", false),
            ("[fe80::1]:1", false),
        ] {
            let peer: SocketAddr = addr.parse().unwrap();
            assert_eq!(is_loopback_peer(peer), loopback, "{addr}");
        }
    }
}
