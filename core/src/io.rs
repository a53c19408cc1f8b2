//! Thin drivers that run a [`client::Exchange`](crate::client::Exchange) over a transport:
//! blocking over [`embedded_io::Read`] + [`embedded_io::Write`], async over
//! [`embedded_io_async::Read`] + [`embedded_io_async::Write`]. One call each fetches a token.
//!
//! The drivers open nothing and retry nothing: the caller connects (to
//! [`Endpoint::connect_addr`](crate::request::Endpoint::connect_addr)), passes the stream and a
//! buffer, and applies its own timeouts and retry policy around the call.

use core::fmt;

use crate::client::{ClientError, Exchange, Outcome, Progress};
use crate::http::Limits;
use crate::request::{Endpoint, TokenRequest};

/// A failed fetch: the transport's error, or the exchange's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchError<E> {
    /// The transport failed while sending or receiving.
    Io(E),
    /// The transport accepted no more bytes while the request was being sent.
    WriteZero,
    /// The request, the response or their sizes were wrong.
    Client(ClientError),
}

impl<E: fmt::Debug> fmt::Display for FetchError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "transport error: {e:?}"),
            Self::WriteZero => f.write_str("transport accepted no more bytes"),
            Self::Client(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for FetchError<E> {}

impl<E> From<ClientError> for FetchError<E> {
    fn from(e: ClientError) -> Self {
        Self::Client(e)
    }
}

/// Sends `request` for `endpoint` over `io` and reads the answer into `buf` (blocking).
///
/// `now` (Unix seconds) only turns a `Retry-After` date into seconds. The returned
/// [`Outcome`] borrows from `buf`.
pub fn fetch_token<'b, T>(
    io: &mut T,
    request: &TokenRequest<'_>,
    endpoint: &Endpoint<'_>,
    buf: &'b mut [u8],
    now: u64,
) -> Result<Outcome<'b>, FetchError<T::Error>>
where
    T: embedded_io::Read + embedded_io::Write,
{
    let mut wire = Adapter { io, error: None };
    let result = drive(&mut wire, request, endpoint, buf, now);
    result.map_err(|stop| match (stop, wire.error) {
        (Stop::Client(e), _) => FetchError::Client(e),
        (Stop::Transport, Some(e)) => FetchError::Io(e),
        // `Transport` only follows a failed call, whose error the adapter kept.
        (Stop::WriteZero | Stop::Transport, _) => FetchError::WriteZero,
    })
}

/// Why [`drive`] stopped: a [`FetchError`] without the transport's error type (the
/// [`Adapter`] keeps that).
enum Stop {
    Transport,
    WriteZero,
    Client(ClientError),
}

impl From<ClientError> for Stop {
    fn from(e: ClientError) -> Self {
        Self::Client(e)
    }
}

/// The blocking transport as [`drive`] sees it: `None` when the call failed.
trait Wire {
    fn write(&mut self, bytes: &[u8]) -> Option<usize>;
    fn flush(&mut self) -> Option<()>;
    fn read(&mut self, buf: &mut [u8]) -> Option<usize>;
}

/// A transport whose first error is kept for [`fetch_token`] to return.
struct Adapter<'t, T: embedded_io::ErrorType> {
    io: &'t mut T,
    error: Option<T::Error>,
}

impl<T: embedded_io::ErrorType> Adapter<'_, T> {
    fn keep<V>(&mut self, r: Result<V, T::Error>) -> Option<V> {
        r.map_err(|e| self.error = Some(e)).ok()
    }
}

impl<T: embedded_io::Read + embedded_io::Write> Wire for Adapter<'_, T> {
    fn write(&mut self, bytes: &[u8]) -> Option<usize> {
        let r = self.io.write(bytes);
        self.keep(r)
    }
    fn flush(&mut self) -> Option<()> {
        let r = self.io.flush();
        self.keep(r)
    }
    fn read(&mut self, buf: &mut [u8]) -> Option<usize> {
        let r = self.io.read(buf);
        self.keep(r)
    }
}

/// The blocking exchange, once for every transport type (`dyn`): the generic
/// [`fetch_token`] only adapts the transport and its error.
fn drive<'b>(
    wire: &mut dyn Wire,
    request: &TokenRequest<'_>,
    endpoint: &Endpoint<'_>,
    buf: &'b mut [u8],
    now: u64,
) -> Result<Outcome<'b>, Stop> {
    let mut ex = Exchange::new(request, endpoint, buf, Limits::default())?;
    while !ex.request_sent() {
        let n = wire.write(ex.to_send()).ok_or(Stop::Transport)?;
        if n == 0 {
            return Err(Stop::WriteZero);
        }
        ex.sent(n);
    }
    wire.flush().ok_or(Stop::Transport)?;
    loop {
        let n = wire.read(ex.receive_buf()?).ok_or(Stop::Transport)?;
        let progress = if n == 0 { ex.eof()? } else { ex.received(n)? };
        if progress == Progress::Complete {
            return Ok(ex.finish(now)?);
        }
    }
}

/// Sends `request` for `endpoint` over `io` and reads the answer into `buf` (async).
///
/// Same contract as [`fetch_token`].
pub async fn fetch_token_async<'b, T>(
    io: &mut T,
    request: &TokenRequest<'_>,
    endpoint: &Endpoint<'_>,
    buf: &'b mut [u8],
    now: u64,
) -> Result<Outcome<'b>, FetchError<T::Error>>
where
    T: embedded_io_async::Read + embedded_io_async::Write,
{
    let mut ex = Exchange::new(request, endpoint, buf, Limits::default())?;
    while !ex.request_sent() {
        let n = io.write(ex.to_send()).await.map_err(FetchError::Io)?;
        if n == 0 {
            return Err(FetchError::WriteZero);
        }
        ex.sent(n);
    }
    io.flush().await.map_err(FetchError::Io)?;
    loop {
        let n = io.read(ex.receive_buf()?).await.map_err(FetchError::Io)?;
        let progress = if n == 0 { ex.eof()? } else { ex.received(n)? };
        if progress == Progress::Complete {
            return Ok(ex.finish(now)?);
        }
    }
}
