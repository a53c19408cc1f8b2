//! HTTP/1.1 heads and bodies, both directions, in caller-lent buffers.
//!
//! Everything here is sans-I/O and heap-free:
//!
//! - [`ResponseParser`] and [`RequestParser`] parse a message head **incrementally**: feed them
//!   the same growing buffer after every read; they remember how far they validated (line by
//!   line) and resume there, answering [`Status::Partial`] or [`Status::Complete`] with the head
//!   and the number of bytes it took. Each line is validated once.
//! - [`BodyDecoder`] decodes a `Content-Length` or `chunked` body, chunked ones **in place**
//!   (the data is compacted over the chunk framing so the body ends up contiguous).
//! - [`ResponseReader`] combines both for clients: one buffer in, status, `Retry-After` and the
//!   body range out.
//! - [`write_request_line`], [`write_status_line`], [`write_header`] … write heads through a
//!   [`SliceWriter`](crate::write::SliceWriter) and refuse values that would break the framing.
//!
//! # Example: a client reading a response as it arrives
//!
//! ```
//! use mitoken_core::http::{ResponseReader, Status};
//!
//! let wire: &[&[u8]] = &[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhe", b"llo\r\n0\r\n\r\n"];
//! let mut buf = [0u8; 512];
//! let mut filled = 0;
//! let mut reader = ResponseReader::default();
//! for read in wire {
//!     // A socket read would append here.
//!     buf[filled..filled + read.len()].copy_from_slice(read);
//!     filled += read.len();
//!     if let Status::Complete { value, len } = reader.feed(&mut buf, filled)? {
//!         assert_eq!(value.status, 200);
//!         assert_eq!(value.body(&buf), b"hello");
//!         assert_eq!(len, filled);
//!     }
//! }
//! assert!(reader.is_complete());
//! # Ok::<(), mitoken_core::http::HttpError>(())
//! ```
//!
//! # Example: a server parsing pipelined requests
//!
//! ```
//! use mitoken_core::http::{BodyDecoder, Limits, Method, RequestParser, Status};
//!
//! let mut buf = *b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi";
//! let mut start = 0;
//! let mut parser = RequestParser::default();
//! while start < buf.len() {
//!     let Status::Complete { value: head, len } = parser.parse(&buf[start..])? else { break };
//!     let framing = head.framing;
//!     let (method, path) = (head.method, head.target.path);
//!     assert!(matches!((method, path), (Method::Get, "/a") | (Method::Post, "/b")));
//!     let body_at = start + len;
//!     let mut body = BodyDecoder::new(framing, Limits::default());
//!     let Status::Complete { value: body_len, len: body_used } = body.decode(&mut buf[body_at..])? else { break };
//!     assert!(body_len == 0 || &buf[body_at..body_at + body_len] == b"hi");
//!     start = body_at + body_used;
//!     parser.reset();
//! }
//! assert_eq!(start, buf.len());
//! # Ok::<(), mitoken_core::http::HttpError>(())
//! ```
//!
//! # Strictness
//!
//! The parsers refuse everything that could let two HTTP implementations disagree on where a
//! message ends (request smuggling): `Content-Length` together with `Transfer-Encoding`,
//! differing `Content-Length`s, any transfer coding other than exactly `chunked`, obs-fold,
//! bare CR, whitespace before a header colon, control characters in values. Each cause has its
//! own [`HttpError`] variant.
//!
//! Line endings: requests must use CRLF everywhere (a bare LF is [`HttpError::BareLf`]). In a
//! **response head** a lone LF is accepted as a line ending (RFC 9112 §2.2 allows recipients to),
//! because a client cannot be smuggled against by the server it asked. Chunked framing (size
//! lines, the CRLF after chunk data, trailers) always requires CRLF. A CR not followed by LF is
//! [`HttpError::BareCr`] everywhere.
//!
//! # Limits
//!
//! Every length is bounded by [`Limits`]: a line longer than [`Limits::max_line_len`] or a
//! header past [`Limits::max_headers`] is refused as soon as it is visible, without waiting for
//! the end of the line; a body past [`Limits::max_body`] as soon as its size is known.
//!
//! # Not supported
//!
//! Asterisk-form (`OPTIONS *`) and authority-form (`CONNECT`) request targets, transfer codings
//! other than `chunked`, obs-fold, `Retry-After` dates other than IMF-fixdate, and responses to
//! `HEAD` requests (the caller must know it sent `HEAD`; the parser would expect a body).
#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::todo
)]

mod body;
mod date;
mod error;
mod head;
mod headers;
mod line;
mod reader;
mod write;

pub use body::BodyDecoder;
pub use date::{RetryAfter, parse_http_date, write_http_date};
pub use error::{HttpError, WriteError};
pub use head::{Method, RequestHead, RequestParser, ResponseHead, ResponseParser, Target};
pub use headers::{GetAll, Header, HeaderIter, Headers};
pub use reader::{Response, ResponseReader};
pub use write::{
    end_head, reason_phrase, write_content_length, write_header, write_request_line,
    write_status_line,
};

/// Bounds on everything a peer controls. Start from [`Limits::default`] and adjust with the
/// `with_*` methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Longest line (start line, header field line, chunk-size line, trailer line), in bytes,
    /// not counting its CRLF. Default 8192.
    pub max_line_len: usize,
    /// Most header fields in a head (and, separately, trailer fields in a chunked body).
    /// Default 64.
    pub max_headers: usize,
    /// Largest body, in decoded bytes. Default 64 KiB.
    pub max_body: usize,
}

impl Limits {
    /// The defaults: 8192-byte lines, 64 headers, 64 KiB bodies.
    pub const DEFAULT: Self = Self {
        max_line_len: 8192,
        max_headers: 64,
        max_body: 64 * 1024,
    };

    /// Sets [`Limits::max_line_len`].
    #[must_use]
    pub const fn with_max_line_len(mut self, n: usize) -> Self {
        self.max_line_len = n;
        self
    }

    /// Sets [`Limits::max_headers`].
    #[must_use]
    pub const fn with_max_headers(mut self, n: usize) -> Self {
        self.max_headers = n;
        self
    }

    /// Sets [`Limits::max_body`].
    #[must_use]
    pub const fn with_max_body(mut self, n: usize) -> Self {
        self.max_body = n;
        self
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Outcome of feeding bytes to an incremental parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a parser result says whether more bytes are needed"]
pub enum Status<T> {
    /// More bytes are needed. Append them to the same buffer and call again.
    Partial,
    /// Done: `value` was parsed from the first `len` bytes of the buffer given.
    Complete {
        /// What was parsed.
        value: T,
        /// Bytes of the buffer it consumed; anything after them belongs to what follows.
        len: usize,
    },
}

impl<T> Status<T> {
    /// True for [`Status::Partial`].
    pub const fn is_partial(&self) -> bool {
        matches!(self, Self::Partial)
    }

    /// The completed value and length, if complete.
    pub fn complete(self) -> Option<(T, usize)> {
        match self {
            Self::Partial => None,
            Self::Complete { value, len } => Some((value, len)),
        }
    }
}

/// How the body of a message is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Framing {
    /// No body (requests without `Content-Length`/`Transfer-Encoding`; 1xx, 204 and 304
    /// responses).
    None,
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// A response without a length: the body ends when the connection closes.
    UntilClose,
}
