//! The connection plumbing shared by the tokio shells around the core server (`mitoken
//! emulate`) and the core relay (`mitoken bridge`): the accept loop with its connection cap
//! (where connections that never completed a request give way: [`slots`]), peer check and
//! graceful shutdown, and the one connection loop ([`connection`]) with its deadlines.
//!
//! The HTTP itself is never here: each connection's bytes go to the core
//! (`Server::handle` / `Relay::handle`), which parses, validates and writes the answers.

pub mod connection;
pub mod slots;

use core::net::SocketAddr;
use core::time::Duration;
use std::sync::Arc;

use mitoken_core::http::Limits;
use mitoken_core::identity::Flavor;
use mitoken_core::server::{Config, HandleError, Response};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Bounds on connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once. At the cap, the oldest connection that never completed a
    /// request gives way to the new one; when there is none, the new one is answered 503 and
    /// closed. Default 1024.
    pub max_connections: usize,
    /// A connection with no complete request for this long is closed, counted from its opening
    /// or its last answer (a request trickling in byte by byte is closed too); also the longest
    /// an answer may wait to be written to a client that does not read. Default 60 s.
    pub idle_timeout: Duration,
    /// A request must be complete this long after its first bytes arrived (or by the idle
    /// deadline, if that comes first), like nginx's `client_header_timeout`: half-sent
    /// requests do not hold a connection for the whole idle timeout. Default 10 s.
    pub request_timeout: Duration,
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
            request_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
            http: Config::new(Flavor::Imds).limits,
        }
    }
}

/// Pending connections the kernel queues for `accept`: tokio's `TcpListener::bind` asks for
/// 128, which a burst of clients overflows (dropped SYNs stall each client ≥ 1 s; seen by the
/// hostile suite's 10,000-connection attack). 4096 absorbs a flood while the server is not
/// scheduled for a moment on a busy machine (it drains 4096 in well under a second when it
/// runs); the kernel caps it at `net.core.somaxconn` (4096 by default since Linux 5.4).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` (with `SO_REUSEADDR`, as `TcpListener::bind` does) and listens with
/// [`LISTEN_BACKLOG`].
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// A connection's buffers: taken when request bytes arrive, given back while it waits for
/// bytes (idle, or with a partial request, which keeps only its bytes), so a waiting connection
/// costs its task and socket only (1024 idle connections: ~2.5 MiB, not the ~60 MiB of buffers
/// allocated up front; `tests/tests/hostile_load.rs`, `tests/tests/hostile_flood.rs`).
///
/// The work and output buffers given back go to a small per-thread [pool](POOLED) that the
/// next connection with bytes to handle takes them from: a busy keep-alive connection does not
/// allocate and zero 2 × 16 KiB for every request (that `calloc` was half of the emulator's
/// instructions per request; `docs/benchmarks.md`).
#[derive(Debug, Default)]
pub struct Buffers {
    /// Request bytes not yet consumed.
    pub input: Vec<u8>,
    /// The core's work area.
    pub work: Vec<u8>,
    /// The response being written.
    pub out: Vec<u8>,
    /// The size `work` and `out` were given (a grown pair is not pooled).
    size: usize,
}

/// Work and output buffer pairs, and empty input buffers, kept per thread for reuse, at most
/// (each); more are freed. Bounds the pools' memory by `POOLED` × (2 × [`connection::BUFFER`]
/// + 4 × [`READ_CHUNK`]) per runtime thread.
pub const POOLED: usize = 64;

std::thread_local! {
    /// Work and output buffers of the standard size that waiting connections gave back.
    static POOL: core::cell::RefCell<Vec<(Vec<u8>, Vec<u8>)>> =
        const { core::cell::RefCell::new(Vec::new()) };
    /// Empty input buffers (room for a read or a few) that waiting connections gave back.
    static INPUTS: core::cell::RefCell<Vec<Vec<u8>>> =
        const { core::cell::RefCell::new(Vec::new()) };
}

/// An input buffer with room for [`READ_CHUNK`] bytes from the pool, if there is one.
fn pooled_input() -> Option<Vec<u8>> {
    INPUTS.with(|p| p.borrow_mut().pop())
}

impl Buffers {
    /// Gives `work` and `out` `size` bytes if there is input to handle and they have none:
    /// a pooled pair of that size, else new zeroed ones.
    pub fn ready(&mut self, size: usize) {
        if !self.input.is_empty() && self.out.is_empty() {
            let pooled = POOL.with(|p| {
                let mut pool = p.borrow_mut();
                let at = pool
                    .iter()
                    .rposition(|(w, o)| w.len() == size && o.len() == size)?;
                Some(pool.swap_remove(at))
            });
            // `vec!` of zeros is a zeroed allocation (no byte-by-byte fill).
            (self.work, self.out) = pooled.unwrap_or_else(|| (vec![0; size], vec![0; size]));
            self.size = size;
        }
    }

    /// Before waiting for bytes: gives the work and output buffers back (the core needs them
    /// only to answer; a pair still of the size it was given goes to the pool) and an empty
    /// input buffer too, or frees the input's spare room, so a connection waiting with a
    /// partial request holds only the bytes it sent.
    pub fn park(&mut self) {
        let work = core::mem::take(&mut self.work);
        let out = core::mem::take(&mut self.out);
        if self.size > 0 && work.len() == self.size && out.len() == self.size {
            POOL.with(|p| {
                let mut pool = p.borrow_mut();
                if pool.len() < POOLED {
                    pool.push((work, out));
                }
            });
        }
        if self.input.is_empty() {
            let input = core::mem::take(&mut self.input);
            if (READ_CHUNK..=4 * READ_CHUNK).contains(&input.capacity()) {
                INPUTS.with(|p| {
                    let mut pool = p.borrow_mut();
                    if pool.len() < POOLED {
                        pool.push(input);
                    }
                });
            }
        } else {
            self.input.shrink_to_fit();
        }
    }
}

/// Writes an answer within `limit`; false if it failed or the client did not take it in time
/// (a client that never reads cannot hold its connection forever).
pub async fn write_answer(stream: &mut TcpStream, bytes: &[u8], limit: Duration) -> bool {
    matches!(
        tokio::time::timeout(limit, stream.write_all(bytes)).await,
        Ok(Ok(()))
    )
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

/// Evicted connections not yet closed beyond which [`accept_loop`] yields to them before its
/// next accept.
pub const CLOSING_SLACK: usize = 32;

/// How [`accept_loop`] treats connections.
#[derive(Clone, Debug)]
pub struct AcceptPolicy {
    /// Connection bounds.
    pub limits: ConnectionLimits,
    /// The complete answer written (best effort) to a connection refused at the cap, e.g. a
    /// 503.
    pub refusal: Arc<[u8]>,
    /// Serve peers that are not on loopback; without it they are closed unanswered.
    pub allow_non_loopback: bool,
    /// Name for logs (`emulator`, `bridge`).
    pub name: &'static str,
}

/// Accepts connections until shutdown is asked for, each served by the [one connection
/// loop](connection::serve) in its own task with the [`connection::Answerer`] that `answerer`
/// makes for it from the peer's and the connection's local address; then stops listening and waits up to the shutdown grace for the connections,
/// aborting the rest.
///
/// It never stops accepting (so the kernel's backlog does not fill behind a full server). A connection from a
/// non-loopback peer is closed at once unless the policy allows it. At the connection cap the
/// oldest connection that never completed a request is evicted for the new one ([`slots`]);
/// when there is none, the new one gets the refusal bytes and is closed.
pub async fn accept_loop<A, F>(
    listener: TcpListener,
    policy: AcceptPolicy,
    mut rx: watch::Receiver<bool>,
    answerer: F,
) where
    A: connection::Answerer + Send + 'static,
    F: Fn(SocketAddr, Option<SocketAddr>) -> A,
{
    let name = policy.name;
    let slots = slots::Slots::new(policy.limits.max_connections);
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
                    let admitted = match slots.admit() {
                        Ok(admitted) => admitted,
                        Err(full) => {
                            tracing::warn!(%peer, "{name}: connection limit reached ({full}); refusing");
                            // Best effort, without waiting: a full socket buffer just loses it.
                            let _ = stream.try_write(&policy.refusal);
                            continue;
                        }
                    };
                    if admitted.evicted {
                        tracing::debug!(%peer, "{name}: connection limit reached; evicted the oldest connection without a request");
                    }
                    let context = connection::Context {
                        peer,
                        limits: policy.limits,
                        shutdown: rx.clone(),
                        slot: admitted.slot,
                    };
                    // Collect every finished connection first: during a flood the accept
                    // branch is always ready, and a finished task's memory is only freed once
                    // it is joined.
                    while tasks.try_join_next().is_some() {}
                    let local = stream.local_addr().ok();
                    tasks.spawn(connection::serve(answerer(peer, local), stream, context));
                    if slots.open() > slots.max().saturating_add(CLOSING_SLACK) {
                        // Evicted connections have not closed yet: let them run before the
                        // next accept, so the descriptors stay near the cap in a flood.
                        tokio::task::yield_now().await;
                    }
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
    /// The request was not complete by its deadline (or nothing arrived).
    Idle,
    /// The read failed.
    Failed(std::io::Error),
}

/// Waits for what the peer sends next (until `deadline`: the request must be complete by then,
/// however slowly it trickles in) and appends it to `input`, reserving [`READ_CHUNK`] bytes only
/// once there is something to read.
///
/// The read goes through tokio's `AsyncRead`, which takes a short read as proof that the socket
/// is drained: the next wait goes straight to epoll instead of first trying a read that can
/// only fail with `EAGAIN` (`try_read_buf` keeps the socket marked readable: one wasted
/// `recvfrom` per request).
pub async fn read_more(
    stream: &mut TcpStream,
    input: &mut Vec<u8>,
    deadline: tokio::time::Instant,
    rx: &mut watch::Receiver<bool>,
) -> ReadOutcome {
    let readable = tokio::select! {
        () = shutdown_requested(rx) => return ReadOutcome::Shutdown,
        r = tokio::time::timeout_at(deadline, stream.readable()) => r,
    };
    match readable {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return ReadOutcome::Failed(e),
        Err(_) => return ReadOutcome::Idle,
    }
    if input.capacity() == 0
        && let Some(pooled) = pooled_input()
    {
        *input = pooled;
    }
    input.reserve(READ_CHUNK);
    // Readable: this read completes at once unless the readiness was spurious; then it waits
    // like the readiness did.
    let read = tokio::select! {
        () = shutdown_requested(rx) => return ReadOutcome::Shutdown,
        r = tokio::time::timeout_at(deadline, stream.read_buf(input)) => r,
    };
    match read {
        Ok(Ok(0)) => ReadOutcome::Eof,
        Ok(Ok(_)) => ReadOutcome::Data,
        Ok(Err(e)) => ReadOutcome::Failed(e),
        Err(_) => ReadOutcome::Idle,
    }
}

/// Grows the buffer a [`HandleError`] names to the size it asks for, up to [`MAX_BUFFER`];
/// false when it asks for more (the connection cannot be answered). The core consumed nothing,
/// so the caller handles the same bytes again.
pub fn grow_for(e: HandleError, out: &mut Vec<u8>, work: &mut Vec<u8>) -> bool {
    let (buf, required) = match e {
        HandleError::OutputTooSmall { required } => (out, required),
        HandleError::WorkTooSmall { required } => (work, required),
        _ => return false,
    };
    if required > MAX_BUFFER {
        return false;
    }
    buf.resize(required, 0);
    true
}

/// Writes an answer with `write`, growing `out` (up to [`MAX_BUFFER`]) when it is too small
/// and writing again: the answer is already decided, only its bytes are redone. `None` when it
/// cannot be written.
pub fn write_growing<'a>(
    out: &mut Vec<u8>,
    mut write: impl FnMut(&mut [u8]) -> Result<Response<'a>, HandleError>,
) -> Option<Response<'a>> {
    loop {
        match write(out) {
            Ok(r) => return Some(r),
            Err(HandleError::OutputTooSmall { required })
                if required <= MAX_BUFFER && required > out.len() =>
            {
                out.resize(required, 0);
            }
            Err(e) => {
                tracing::error!("cannot write the answer: {e}");
                return None;
            }
        }
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
