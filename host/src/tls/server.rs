//! An HTTPS listener for the emulated HTTPS sources: accepts TCP, completes the TLS handshake
//! (bounded in time), reads each request with the core's parsers, hands it to a [`Handler`],
//! writes the answer with the core's writers, and keeps the connection for the next request.
//!
//! A malformed handshake or request costs its own connection only: it is logged at debug
//! level, answered `400` when it is HTTP that cannot be parsed, and closed; the listener keeps
//! serving.

use core::net::SocketAddr;
use core::time::Duration;
use std::sync::Arc;

use mitoken_core::http::{
    BodyDecoder, Headers, HttpError, Limits, RequestParser, Status, end_head, write_content_length,
    write_header, write_status_line,
};
use mitoken_core::write::SliceWriter;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// Bounds on the listener's connections.
#[derive(Debug, Clone, Copy)]
pub struct TlsLimits {
    /// Connections served at once; more are closed at accept.
    pub max_connections: usize,
    /// A TLS handshake must finish within this.
    pub handshake_timeout: Duration,
    /// A connection with no complete request for this long is closed.
    pub idle_timeout: Duration,
    /// Request heads and bodies.
    pub http: Limits,
}

impl Default for TlsLimits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_mins(1),
            http: Limits::default()
                .with_max_body(32 * 1024)
                .with_max_line_len(8192),
        }
    }
}

/// One parsed request, borrowed from the connection's buffer.
#[derive(Debug)]
pub struct Request<'a> {
    /// The method as sent.
    pub method: &'a str,
    /// The path (still percent-encoded).
    pub path: &'a str,
    /// The raw query (empty when there is none).
    pub query: &'a str,
    /// The header fields.
    pub headers: Headers<'a>,
    /// The decoded body.
    pub body: &'a [u8],
    /// The client's address.
    pub peer: SocketAddr,
}

/// An answer: status, extra headers, body; optionally after a delay, or no answer at all.
#[derive(Debug, Default)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Header fields besides `Content-Length` (added from the body).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Close the connection instead of answering (a fault).
    pub close: bool,
    /// Held until the answer is written (a throttle permit).
    pub hold: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl Answer {
    /// A JSON answer.
    pub fn json(status: u16, body: Vec<u8>) -> Self {
        Self {
            status,
            headers: vec![("Content-Type", "application/json; charset=utf-8".to_owned())],
            body,
            ..Self::default()
        }
    }

    /// Adds a header field.
    #[must_use]
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// What answers requests.
pub trait Handler: Send + Sync + 'static {
    /// The answer to `request`.
    fn handle(&self, request: &Request<'_>) -> Answer;
}

/// A listener; dropping it does not stop it, [`TlsServer::shutdown`] does.
#[derive(Debug)]
pub struct TlsServer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    listener: Option<tokio::net::TcpListener>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TlsServer {
    /// Binds `listen` (connections wait in the backlog until [`TlsServer::serve`]).
    pub fn bind(listen: SocketAddr) -> std::io::Result<Self> {
        let listener = crate::serve_loop::bind(listen)?;
        let local_addr = listener.local_addr()?;
        let (stop, _) = watch::channel(false);
        Ok(Self {
            local_addr,
            stop,
            listener: Some(listener),
            task: None,
        })
    }

    /// Starts serving `handler` over TLS with `config` (once; later calls do nothing).
    pub fn serve(
        &mut self,
        config: Arc<rustls::ServerConfig>,
        handler: Arc<dyn Handler>,
        limits: TlsLimits,
    ) {
        if let Some(listener) = self.listener.take() {
            let acceptor = TlsAcceptor::from(config);
            let stopped = self.stop.subscribe();
            self.task = Some(tokio::spawn(accept_loop(
                listener, acceptor, handler, limits, stopped,
            )));
        }
    }

    /// Binds `listen` and serves `handler` over TLS with `config`.
    pub fn start(
        listen: SocketAddr,
        config: Arc<rustls::ServerConfig>,
        handler: Arc<dyn Handler>,
        limits: TlsLimits,
    ) -> std::io::Result<Self> {
        let mut server = Self::bind(listen)?;
        server.serve(config, handler, limits);
        Ok(server)
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, closes every connection and waits for the tasks.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task {
            let _ = task.await;
        }
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    acceptor: TlsAcceptor,
    handler: Arc<dyn Handler>,
    limits: TlsLimits,
    mut stopped: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut tasks = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped.changed() => break,
        };
        while tasks.try_join_next().is_some() {}
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!(%peer, "connection limit reached; closing");
            continue;
        };
        let acceptor = acceptor.clone();
        let handler = Arc::clone(&handler);
        let mut stop = stopped.clone();
        tasks.spawn(async move {
            tokio::select! {
                () = serve_connection(tcp, peer, acceptor, handler, limits) => {}
                _ = stop.changed() => {}
            }
            drop(permit);
        });
    }
    tasks.shutdown().await;
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    handler: Arc<dyn Handler>,
    limits: TlsLimits,
) {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    if let Err(e) = serve_requests(tls, peer, &*handler, limits).await {
        tracing::debug!(%peer, "connection closed: {e}");
    }
}

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
enum ConnectionEnd {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("idle timeout")]
    Idle,
    #[error("malformed request: {0}")]
    Http(HttpError),
}

async fn serve_requests<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    handler: &dyn Handler,
    limits: TlsLimits,
) -> Result<(), ConnectionEnd> {
    let cap = limits
        .http
        .max_line_len
        .saturating_mul(2)
        .saturating_add(limits.http.max_body)
        .saturating_add(16 * 1024);
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    loop {
        // Read one request: head, then body.
        let mut parser = RequestParser::new(limits.http);
        let (head_len, framing) = loop {
            match parser.parse(&buf) {
                Ok(Status::Complete { value, len }) => break (len, value.framing),
                Ok(Status::Partial) => {}
                Err(e) => return reject(&mut stream, e).await,
            }
            if !read_more(&mut stream, &mut buf, cap, limits.idle_timeout).await? {
                return Ok(());
            }
        };
        let mut decoder = BodyDecoder::new(framing, limits.http);
        let (body_len, body_used) = loop {
            let mut tail = buf.split_off(head_len);
            let status = decoder.decode(&mut tail);
            buf.append(&mut tail);
            match status {
                Ok(Status::Complete { value, len }) => break (value, len),
                Ok(Status::Partial) => {}
                Err(e) => return reject(&mut stream, e).await,
            }
            if !read_more(&mut stream, &mut buf, cap, limits.idle_timeout).await? {
                return Ok(());
            }
        };
        let Some(head) = parser.head(&buf) else {
            return Ok(());
        };
        let keep_alive = head.keep_alive;
        let body = buf.get(head_len..head_len + body_len).unwrap_or_default();
        let request = Request {
            method: head.method.as_str(),
            path: head.target.path,
            query: head.target.query.unwrap_or(""),
            headers: head.headers,
            body,
            peer,
        };
        let answer = handler.handle(&request);
        if !answer.delay.is_zero() {
            tokio::time::sleep(answer.delay).await;
        }
        if answer.close {
            return Ok(());
        }
        write_answer(&mut stream, &answer, keep_alive).await?;
        drop(answer);
        buf.drain(..head_len + body_used);
        if !keep_alive {
            let _ = stream.shutdown().await;
            return Ok(());
        }
    }
}

/// Reads more bytes into `buf`; `false` on a clean end of stream before any byte of a request.
async fn read_more<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    cap: usize,
    idle: Duration,
) -> Result<bool, ConnectionEnd> {
    if buf.len() >= cap {
        return Err(ConnectionEnd::Http(HttpError::BodyTooLarge));
    }
    let mut chunk = [0u8; 8192];
    let want = chunk.len().min(cap - buf.len());
    let n = tokio::time::timeout(idle, stream.read(&mut chunk[..want]))
        .await
        .map_err(|_| ConnectionEnd::Idle)??;
    if n == 0 {
        if buf.is_empty() {
            return Ok(false);
        }
        return Err(ConnectionEnd::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(true)
}

async fn reject<S: AsyncWrite + Unpin>(stream: &mut S, e: HttpError) -> Result<(), ConnectionEnd> {
    let answer = Answer {
        status: 400,
        headers: vec![("Content-Type", "text/plain; charset=utf-8".to_owned())],
        body: b"Bad Request\n".to_vec(),
        ..Answer::default()
    };
    write_answer(stream, &answer, false).await?;
    let _ = stream.shutdown().await;
    Err(ConnectionEnd::Http(e))
}

async fn write_answer<S: AsyncWrite + Unpin>(
    stream: &mut S,
    answer: &Answer,
    keep_alive: bool,
) -> std::io::Result<()> {
    let mut head = vec![
        0u8;
        1024 + answer
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum::<usize>()
    ];
    let mut w = SliceWriter::new(&mut head);
    let written = write_status_line(
        &mut w,
        answer.status,
        mitoken_core::http::reason_phrase(answer.status),
    )
    .and_then(|()| {
        answer
            .headers
            .iter()
            .try_for_each(|(name, value)| write_header(&mut w, name, value))
    })
    .and_then(|()| {
        if keep_alive {
            Ok(())
        } else {
            write_header(&mut w, "Connection", "close")
        }
    });
    if let Err(e) = written {
        return Err(std::io::Error::other(e.to_string()));
    }
    write_content_length(&mut w, answer.body.len() as u64);
    end_head(&mut w);
    let n = w
        .finish()
        .map_err(|e| std::io::Error::other(format!("response head: {e:?}")))?;
    head.truncate(n);
    head.extend_from_slice(&answer.body);
    stream.write_all(&head).await?;
    stream.flush().await
}
