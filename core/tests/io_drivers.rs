//! The blocking and async drivers over in-memory transports that deliver the response in small
//! pieces and record what was sent.

use core::convert::Infallible;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use mitoken_core::client::{ClientError, Outcome};
use mitoken_core::io::{FetchError, fetch_token, fetch_token_async};
use mitoken_core::request::{Endpoint, Selector, TokenRequest};

const OK_CHUNKED: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/imds-token-response-chunked.http"
));

/// Accepts writes of at most `write_step` bytes; answers reads with at most `read_step` bytes.
struct Script {
    response: &'static [u8],
    at: usize,
    read_step: usize,
    write_step: usize,
    sent: Vec<u8>,
}

impl Script {
    fn new(response: &'static [u8], read_step: usize, write_step: usize) -> Self {
        Self {
            response,
            at: 0,
            read_step,
            write_step,
            sent: Vec::new(),
        }
    }

    fn read_into(&mut self, buf: &mut [u8]) -> usize {
        let n = buf
            .len()
            .min(self.read_step)
            .min(self.response.len() - self.at);
        buf[..n].copy_from_slice(&self.response[self.at..self.at + n]);
        self.at += n;
        n
    }

    fn write_from(&mut self, buf: &[u8]) -> usize {
        let n = buf.len().min(self.write_step);
        self.sent.extend_from_slice(&buf[..n]);
        n
    }
}

impl embedded_io::ErrorType for Script {
    type Error = Infallible;
}

impl embedded_io::Read for Script {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        Ok(self.read_into(buf))
    }
}

impl embedded_io::Write for Script {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        Ok(self.write_from(buf))
    }
    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

impl embedded_io_async::Read for Script {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        Ok(self.read_into(buf))
    }
}

impl embedded_io_async::Write for Script {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        Ok(self.write_from(buf))
    }
    async fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

fn request() -> TokenRequest<'static> {
    TokenRequest::new("https://management.azure.com/")
        .with_selector(Selector::ClientId("11111111-2222-3333-4444-555555555555"))
}

fn assert_token(outcome: &Outcome<'_>) {
    let Outcome::Token(t) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(t.resource, "https://management.azure.com/");
    assert!(t.access_token.expose().len() > 1000);
}

#[test]
fn blocking_driver_fetches_a_token_in_small_pieces() {
    for (read_step, write_step) in [(1, 1), (3, 5), (100, 17), (8192, 8192)] {
        let mut io = Script::new(OK_CHUNKED, read_step, write_step);
        let mut buf = [0u8; 8192];
        let outcome = fetch_token(&mut io, &request(), &Endpoint::Imds, &mut buf, 0).unwrap();
        assert_token(&outcome);
        let sent = String::from_utf8(io.sent).unwrap();
        assert!(sent.starts_with("GET /metadata/identity/oauth2/token?api-version=2018-02-01"));
        assert!(sent.contains("&client_id=11111111-2222-3333-4444-555555555555"));
        assert!(sent.ends_with("\r\n\r\n"));
    }
}

#[test]
fn async_driver_fetches_the_same_token() {
    let mut io = Script::new(OK_CHUNKED, 13, 11);
    let mut buf = [0u8; 8192];
    let outcome = block_on(fetch_token_async(
        &mut io,
        &request(),
        &Endpoint::Imds,
        &mut buf,
        0,
    ))
    .unwrap();
    assert_token(&outcome);
}

#[test]
fn transport_closing_mid_response_is_an_error() {
    static CUT: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"access";
    let mut io = Script::new(CUT, 4, 64);
    let mut buf = [0u8; 1024];
    let err = fetch_token(&mut io, &request(), &Endpoint::Imds, &mut buf, 0).unwrap_err();
    assert_eq!(err, FetchError::Client(ClientError::ClosedEarly));
}

#[test]
fn transport_refusing_writes_is_write_zero() {
    let mut io = Script::new(b"", 1, 0);
    let mut buf = [0u8; 1024];
    let err = fetch_token(&mut io, &request(), &Endpoint::Imds, &mut buf, 0).unwrap_err();
    assert_eq!(err, FetchError::WriteZero);
}
