//! The one connection loop of the emulator and the bridge: read → hand the bytes to the core →
//! grow a buffer the core finds too small → answer → keep-alive, close or deadline.
//!
//! What differs between the two servers is an [`Answerer`]: the emulator calls
//! `Server::handle` with its `Issuer`, the bridge calls `Relay::handle` and answers from its
//! token client. The loop owns the socket, the buffers, the deadlines and the connection's
//! [`Slot`] (when it may be evicted at the connection cap).

use core::future::Future;
use core::net::SocketAddr;
use core::time::Duration;
use std::time::Instant;

use mitoken_core::server::HandleError;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::slots::Slot;
use super::{Buffers, ConnectionLimits, grow_for, max_input, read_more, write_answer};

/// What an [`Answerer`] did with the bytes at the start of the input.
#[derive(Debug)]
pub enum Step {
    /// The request is not complete: read more and call again with the same bytes grown.
    Partial,
    /// The core needs a larger work or output buffer: the loop grows it (up to
    /// [`MAX_BUFFER`](super::MAX_BUFFER)) and calls again with the same bytes.
    Grow(HandleError),
    /// The request was answered through the [`Reply`] (or deliberately left unanswered).
    Done {
        /// Bytes of the input the request took.
        consumed: usize,
        /// Serve the next request on this connection.
        keep_alive: bool,
    },
    /// The connection must close now (the answer could not be produced or written).
    Close,
}

/// Where an [`Answerer`] writes its answer: the connection's socket, with the write deadline.
#[derive(Debug)]
pub struct Reply<'s> {
    stream: &'s mut TcpStream,
    limit: Duration,
}

impl Reply<'_> {
    /// Writes `bytes` within the connection's write deadline; false when the client did not
    /// take them (the connection is then closed).
    pub async fn send(&mut self, bytes: &[u8]) -> bool {
        write_answer(self.stream, bytes, self.limit).await
    }
}

/// One call of [`Answerer::answer`]: the connection's buffers and socket.
#[derive(Debug)]
pub struct Exchange<'a> {
    /// The request bytes not consumed yet (the request starts at the front).
    pub input: &'a mut [u8],
    /// The core's work area.
    pub work: &'a mut Vec<u8>,
    /// Where the core writes the answer.
    pub out: &'a mut Vec<u8>,
    /// Where the answer is sent.
    pub reply: Reply<'a>,
    /// When the request's first bytes arrived (for latency logs).
    pub started: Instant,
}

/// The part of a connection that differs between servers: hands the request bytes to the core
/// and answers.
pub trait Answerer {
    /// Hands the bytes at the start of the input to the core; when it makes an answer, sends
    /// it with the exchange's [`Reply`] and returns [`Step::Done`].
    fn answer(&mut self, exchange: Exchange<'_>) -> impl Future<Output = Step> + Send;
}

/// Initial size of a connection's work and output buffers (grown for unusual requests or
/// tokens).
pub const BUFFER: usize = 16 * 1024;

/// What the connection loop gets besides the socket.
#[derive(Debug)]
pub struct Context {
    /// The peer (for logs).
    pub peer: SocketAddr,
    /// Connection bounds (its `http` limits must be the core's, for the input bound).
    pub limits: ConnectionLimits,
    /// Shutdown notice.
    pub shutdown: watch::Receiver<bool>,
    /// The connection's slot under the cap.
    pub slot: Slot,
}

/// Why a connection stopped waiting for bytes.
enum Wait {
    Data,
    Closed,
}

/// Serves one connection until it closes, idles out, errs, is evicted or shutdown is asked for.
pub async fn serve<A: Answerer>(mut answerer: A, mut stream: TcpStream, mut ctx: Context) {
    let peer = ctx.peer;
    let _ = stream.set_nodelay(true);
    tracing::debug!(%peer, "connection opened");
    let mut buffers = Buffers::default();
    let limit = max_input(&ctx.limits.http);
    // When the next request must be complete: the idle timeout from the opening or the last
    // answer, shortened to the request timeout once the request's first bytes arrive.
    let mut deadline = idle_deadline(&ctx.limits);
    let mut started: Option<Instant> = None;
    'conn: loop {
        buffers.ready(BUFFER);
        let Buffers {
            input, work, out, ..
        } = &mut buffers;
        // Answer every complete (pipelined) request in the buffer.
        while !input.is_empty() {
            let request_started = *started.get_or_insert_with(Instant::now);
            let exchange = Exchange {
                input,
                work,
                out,
                reply: Reply {
                    stream: &mut stream,
                    limit: ctx.limits.idle_timeout,
                },
                started: request_started,
            };
            match answerer.answer(exchange).await {
                Step::Partial => break,
                Step::Grow(e) => {
                    if grow_for(e, out, work) {
                        continue;
                    }
                    tracing::error!(%peer, "cannot answer: {e}");
                    break 'conn;
                }
                Step::Close => break 'conn,
                Step::Done {
                    consumed,
                    keep_alive,
                } => {
                    ctx.slot.prove();
                    started = None;
                    deadline = idle_deadline(&ctx.limits);
                    input.drain(..consumed.min(input.len()));
                    if !keep_alive || *ctx.shutdown.borrow() {
                        break 'conn;
                    }
                }
            }
        }
        if input.len() >= limit {
            tracing::warn!(%peer, "request larger than the limits allow; closing");
            break;
        }
        buffers.park();
        let had_input = !buffers.input.is_empty();
        match wait_for_bytes(&mut stream, &mut buffers.input, deadline, &mut ctx).await {
            Wait::Data => {}
            Wait::Closed => break,
        }
        if !had_input {
            // A request's first bytes: it now has the request timeout to complete.
            deadline = deadline.min(tokio::time::Instant::now() + ctx.limits.request_timeout);
        }
    }
    let _ = stream.shutdown().await;
    tracing::debug!(%peer, "connection closed");
}

/// The idle deadline from now (the opening or the last answer).
fn idle_deadline(limits: &ConnectionLimits) -> tokio::time::Instant {
    tokio::time::Instant::now() + limits.idle_timeout
}

/// Reads what the peer sends next, evictable meanwhile if the connection never completed a
/// request; logs why it ends otherwise.
async fn wait_for_bytes(
    stream: &mut TcpStream,
    input: &mut Vec<u8>,
    deadline: tokio::time::Instant,
    ctx: &mut Context,
) -> Wait {
    let peer = ctx.peer;
    ctx.slot.waiting();
    let outcome = tokio::select! {
        // Bytes already there win over an eviction notice: a request that has arrived is
        // handled (and the connection stays if it completes one).
        biased;
        outcome = read_more(stream, input, deadline, &mut ctx.shutdown) => outcome,
        () = ctx.slot.evicted() => {
            tracing::debug!(%peer, "evicted at the connection cap (no complete request yet)");
            return Wait::Closed;
        }
    };
    ctx.slot.busy();
    match outcome {
        super::ReadOutcome::Data => Wait::Data,
        super::ReadOutcome::Eof | super::ReadOutcome::Shutdown => Wait::Closed,
        super::ReadOutcome::Failed(e) => {
            tracing::debug!(%peer, "read failed: {e}");
            Wait::Closed
        }
        super::ReadOutcome::Idle => {
            tracing::debug!(%peer, "request timeout");
            Wait::Closed
        }
    }
}
