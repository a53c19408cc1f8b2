//! A whole response (head and body) over one buffer, for clients.

use core::ops::Range;

use super::{
    BodyDecoder, Framing, HttpError, Limits, ResponseHead, ResponseParser, RetryAfter, Status,
};

/// A complete response read by [`ResponseReader`]: the head's essentials and where the body
/// lies in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The `x` of `HTTP/1.x`.
    pub minor_version: u8,
    /// How the body was delimited.
    pub framing: Framing,
    /// Whether the connection may be reused (see [`ResponseHead::keep_alive`]).
    pub keep_alive: bool,
    /// The `Retry-After` header, if present and well-formed.
    pub retry_after: Option<RetryAfter>,
    /// Where the final head starts in the buffer (after any skipped 1xx interim responses).
    pub head_start: usize,
    body_start: usize,
    body_len: usize,
}

impl Response {
    /// Where the (decoded) body lies in the buffer.
    pub const fn body_range(&self) -> Range<usize> {
        self.body_start..self.body_start.saturating_add(self.body_len)
    }

    /// The decoded body inside `buf`, the buffer given to the reader (empty if `buf` is not
    /// that buffer and too short).
    pub fn body<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        buf.get(self.body_range()).unwrap_or(&[])
    }
}

/// Reads one response — head, then body — from one caller-lent buffer.
///
/// After each read, append the bytes to the buffer and call [`feed`](Self::feed) with the
/// buffer and how much of it is filled. Chunked bodies are decoded in place, so when the
/// response is complete the body is one contiguous range. Interim 1xx responses (other than
/// 101) are skipped. When the peer closes, call [`finish_eof`](Self::finish_eof).
#[derive(Debug, Clone)]
pub struct ResponseReader {
    limits: Limits,
    head: ResponseParser,
    head_start: usize,
    body: BodyDecoder,
    pending: Option<Response>,
    done: Option<(Response, usize)>,
}

impl ResponseReader {
    /// A reader for one response.
    pub const fn new(limits: Limits) -> Self {
        Self {
            limits,
            head: ResponseParser::new(limits),
            head_start: 0,
            body: BodyDecoder::new(Framing::None, limits),
            pending: None,
            done: None,
        }
    }

    /// Processes `buf[..filled]`. On [`Status::Complete`], `len` is the number of bytes the
    /// response took (anything after belongs to the next response).
    pub fn feed(&mut self, buf: &mut [u8], filled: usize) -> Result<Status<Response>, HttpError> {
        let buf = buf.get_mut(..filled).ok_or(HttpError::BufferMismatch)?;
        loop {
            if let Some((value, len)) = self.done {
                return Ok(Status::Complete { value, len });
            }
            if let Some(mut resp) = self.pending {
                let region = buf
                    .get_mut(resp.body_start..)
                    .ok_or(HttpError::BufferMismatch)?;
                match self.body.decode(region)? {
                    Status::Partial => return Ok(Status::Partial),
                    Status::Complete { value, len } => {
                        resp.body_len = value;
                        self.done = Some((resp, resp.body_start.saturating_add(len)));
                    }
                }
                continue;
            }
            let region = buf
                .get(self.head_start..)
                .ok_or(HttpError::BufferMismatch)?;
            let (head, len) = match self.head.parse(region)? {
                Status::Partial => return Ok(Status::Partial),
                Status::Complete { value, len } => (value, len),
            };
            if (100..200).contains(&head.status) && head.status != 101 {
                self.head_start = self.head_start.saturating_add(len);
                self.head.reset();
                continue;
            }
            self.body = BodyDecoder::new(head.framing, self.limits);
            self.pending = Some(Response {
                status: head.status,
                minor_version: head.minor_version,
                framing: head.framing,
                keep_alive: head.keep_alive,
                retry_after: head.retry_after,
                head_start: self.head_start,
                body_start: self.head_start.saturating_add(len),
                body_len: 0,
            });
        }
    }

    /// The peer closed the connection with `buf[..filled]` received. Returns the response and
    /// the bytes it took: an until-close body ends here; an incomplete head is
    /// [`HttpError::TruncatedHead`], an incomplete length or chunked body
    /// [`HttpError::TruncatedBody`].
    pub fn finish_eof(
        &mut self,
        buf: &mut [u8],
        filled: usize,
    ) -> Result<(Response, usize), HttpError> {
        if let Status::Complete { value, len } = self.feed(buf, filled)? {
            return Ok((value, len));
        }
        let Some(mut resp) = self.pending else {
            return Err(HttpError::TruncatedHead);
        };
        let region = buf
            .get_mut(resp.body_start..filled)
            .ok_or(HttpError::BufferMismatch)?;
        let (body_len, len) = self.body.finish_eof(region)?;
        resp.body_len = body_len;
        let total = resp.body_start.saturating_add(len);
        self.done = Some((resp, total));
        Ok((resp, total))
    }

    /// The final response head (headers included), rebuilt over `buf` once it is complete.
    pub fn head<'b>(&self, buf: &'b [u8]) -> Option<ResponseHead<'b>> {
        self.pending?;
        self.head.head(buf.get(self.head_start..)?)
    }

    /// True once the whole response has been read.
    pub const fn is_complete(&self) -> bool {
        self.done.is_some()
    }
}

impl Default for ResponseReader {
    fn default() -> Self {
        Self::new(Limits::DEFAULT)
    }
}
