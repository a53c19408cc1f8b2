//! Thin drivers that run a [`client::Exchange`](crate::client::Exchange) over a transport:
//! blocking over [`embedded_io::Read`] + [`embedded_io::Write`], async over
//! [`embedded_io_async::Read`] + [`embedded_io_async::Write`]. One call each fetches a token.
//!
//! The drivers open nothing and retry nothing: the caller connects (to
//! [`Endpoint::connect_addr`](crate::request::Endpoint::connect_addr)), passes the stream and a
//! buffer, and applies its own timeouts and retry policy around the call.

use core::fmt;

use crate::client::{ClientError, Exchange, Outcome, Progress, check_outcome};
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
    let mut ex = Exchange::new(request, endpoint, buf, Limits::default())?;
    while !ex.request_sent() {
        let n = io.write(ex.to_send()).map_err(FetchError::Io)?;
        if n == 0 {
            return Err(FetchError::WriteZero);
        }
        ex.sent(n);
    }
    io.flush().map_err(FetchError::Io)?;
    loop {
        let n = io.read(ex.receive_buf()?).map_err(FetchError::Io)?;
        let progress = if n == 0 { ex.eof()? } else { ex.received(n)? };
        if progress == Progress::Complete {
            let outcome = ex.finish(now)?;
            check_outcome(&outcome, request, endpoint)?;
            return Ok(outcome);
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
            let outcome = ex.finish(now)?;
            check_outcome(&outcome, request, endpoint)?;
            return Ok(outcome);
        }
    }
}
