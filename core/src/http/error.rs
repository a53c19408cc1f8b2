//! Errors of the HTTP/1.1 layer.

use core::fmt;

/// Why an HTTP/1.1 head or body was refused.
///
/// Every variant is a distinct cause; none of them is retried by feeding more bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HttpError {
    /// The buffer is shorter than the bytes already parsed, or `filled` exceeds its length:
    /// the caller must pass the same (growing) buffer every time.
    BufferMismatch,
    /// A line is longer than [`Limits::max_line_len`](super::Limits::max_line_len).
    LineTooLong,
    /// More header (or trailer) fields than [`Limits::max_headers`](super::Limits::max_headers).
    TooManyHeaders,
    /// The body is larger than [`Limits::max_body`](super::Limits::max_body).
    BodyTooLarge,
    /// A CR not immediately followed by LF.
    BareCr,
    /// A line ended with LF alone where CRLF is required.
    BareLf,
    /// The response status line is not `HTTP/1.x SP 3DIGIT SP reason`.
    InvalidStatusLine,
    /// The status code is not three digits from 100 to 999.
    InvalidStatusCode,
    /// The request line is not `method SP request-target SP HTTP-version`.
    InvalidRequestLine,
    /// The method contains characters that are not allowed in a token.
    InvalidMethod,
    /// The request target is neither origin-form (`/path?query`) nor absolute-form
    /// (`http://host[:port]/path?query`), or contains characters not allowed in a URI.
    InvalidTarget,
    /// The HTTP version is well-formed but not HTTP/1.0 or HTTP/1.1 (requests) or HTTP/1.x
    /// (responses).
    UnsupportedVersion,
    /// A header line starts with whitespace (obsolete line folding), which is refused.
    ObsFold,
    /// A header line has no colon.
    MissingColon,
    /// A header line starts with a colon: the field name is empty.
    EmptyHeaderName,
    /// Whitespace between a header name and its colon.
    WhitespaceBeforeColon,
    /// A header name contains a character that is not allowed in a token.
    InvalidHeaderName,
    /// A header value contains a control character or DEL.
    InvalidHeaderValue,
    /// Both `Content-Length` and `Transfer-Encoding` are present.
    ContentLengthWithTransferEncoding,
    /// Several `Content-Length` values that differ.
    ConflictingContentLength,
    /// `Content-Length` is not a list of decimal digits.
    InvalidContentLength,
    /// `Content-Length` does not fit in 64 bits.
    ContentLengthOverflow,
    /// `Transfer-Encoding` is anything other than exactly `chunked`.
    UnsupportedTransferEncoding,
    /// `Transfer-Encoding` in an HTTP/1.0 message, which HTTP/1.0 does not define.
    TransferEncodingInHttp10,
    /// More than one `Host` header in a request.
    DuplicateHost,
    /// A chunk-size line is not `1*HEXDIG [ chunk-ext ]`.
    InvalidChunkSize,
    /// A chunk size has more than 16 hex digits.
    ChunkSizeTooLarge,
    /// Chunk data is not followed by CRLF.
    MissingChunkCrlf,
    /// The connection closed before the head was complete.
    TruncatedHead,
    /// The connection closed before the body was complete.
    TruncatedBody,
    /// The text is not an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) or names a date that
    /// does not exist or lies before 1970.
    InvalidDate,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::BufferMismatch => {
                "buffer shorter than the bytes already parsed; pass the same growing buffer"
            }
            Self::LineTooLong => "HTTP line longer than Limits::max_line_len",
            Self::TooManyHeaders => "more HTTP header fields than Limits::max_headers",
            Self::BodyTooLarge => "HTTP body larger than Limits::max_body",
            Self::BareCr => "CR not followed by LF in HTTP message",
            Self::BareLf => "line ends with LF alone where CRLF is required",
            Self::InvalidStatusLine => "malformed HTTP status line",
            Self::InvalidStatusCode => "HTTP status code is not three digits from 100 to 999",
            Self::InvalidRequestLine => "malformed HTTP request line",
            Self::InvalidMethod => "HTTP method contains non-token characters",
            Self::InvalidTarget => "request target is neither origin-form nor absolute-form",
            Self::UnsupportedVersion => "unsupported HTTP version",
            Self::ObsFold => "header line starts with whitespace (obs-fold is refused)",
            Self::MissingColon => "header line has no colon",
            Self::EmptyHeaderName => "header line has an empty field name",
            Self::WhitespaceBeforeColon => "whitespace between header name and colon",
            Self::InvalidHeaderName => "header name contains non-token characters",
            Self::InvalidHeaderValue => "header value contains a control character",
            Self::ContentLengthWithTransferEncoding => {
                "both Content-Length and Transfer-Encoding present"
            }
            Self::ConflictingContentLength => "differing Content-Length values",
            Self::InvalidContentLength => "Content-Length is not a decimal number",
            Self::ContentLengthOverflow => "Content-Length does not fit in 64 bits",
            Self::UnsupportedTransferEncoding => "Transfer-Encoding other than exactly chunked",
            Self::TransferEncodingInHttp10 => "Transfer-Encoding in an HTTP/1.0 message",
            Self::DuplicateHost => "more than one Host header",
            Self::InvalidChunkSize => "malformed chunk-size line",
            Self::ChunkSizeTooLarge => "chunk size has more than 16 hex digits",
            Self::MissingChunkCrlf => "chunk data not followed by CRLF",
            Self::TruncatedHead => "connection closed before the HTTP head was complete",
            Self::TruncatedBody => "connection closed before the HTTP body was complete",
            Self::InvalidDate => "not an IMF-fixdate on or after 1970",
        };
        f.write_str(s)
    }
}

impl core::error::Error for HttpError {}

/// Why an HTTP head writer refused its input. (A full buffer is not an error here: the
/// [`SliceWriter`](crate::write::SliceWriter) counts it and reports it from `finish`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WriteError {
    /// The method is empty or contains non-token characters.
    InvalidMethod,
    /// The request target is empty or contains whitespace or control characters.
    InvalidTarget,
    /// The status code is outside 100..=999.
    InvalidStatus,
    /// The reason phrase contains CR, LF or another control character.
    InvalidReason,
    /// The header name is empty or contains non-token characters.
    InvalidHeaderName,
    /// The header value contains CR, LF or another control character (HTAB is allowed).
    InvalidHeaderValue,
    /// The date lies after 9999-12-31 and cannot be written as an IMF-fixdate.
    DateOutOfRange,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::InvalidMethod => "HTTP method is empty or contains non-token characters",
            Self::InvalidTarget => "request target is empty or contains whitespace or controls",
            Self::InvalidStatus => "HTTP status code outside 100..=999",
            Self::InvalidReason => "reason phrase contains a control character",
            Self::InvalidHeaderName => "header name is empty or contains non-token characters",
            Self::InvalidHeaderValue => "header value contains CR, LF or a control character",
            Self::DateOutOfRange => "date after 9999-12-31 cannot be written as an HTTP date",
        };
        f.write_str(s)
    }
}

impl core::error::Error for WriteError {}
