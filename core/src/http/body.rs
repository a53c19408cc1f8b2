//! Incremental body decoding: `Content-Length`, `chunked` (in place) and until-close.

use nom::Parser;
use nom::bytes::complete::take_while1;

use super::line::{PResult, is_field_byte, next_line, parse_field, trim_ows};
use super::{Framing, HttpError, Limits, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    UntilClose,
    /// Expecting a chunk-size line at `read`; its end was searched up to `scan`.
    ChunkSize {
        scan: usize,
    },
    ChunkData {
        remaining: u64,
    },
    /// Expecting the CRLF after chunk data.
    ChunkEnd,
    Trailer {
        scan: usize,
    },
    Done {
        body: usize,
        consumed: usize,
    },
}

/// Incremental decoder of one message body.
///
/// Give [`decode`](Self::decode) the bytes that follow the head — the same buffer every time,
/// grown at its end. A `chunked` body is decoded **in place**: chunk data is moved down over the
/// chunk framing, so the decoded body is always `buf[..decoded_len]`. The decoder only writes
/// below its read position (bytes it has consumed); bytes it has not consumed are never
/// touched, so pipelined bytes after the body survive. It resumes where it stopped and never
/// re-scans decoded data.
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    limits: Limits,
    state: State,
    /// Raw bytes consumed.
    read: usize,
    /// Decoded bytes at the start of the buffer.
    write: usize,
    trailers: usize,
}

impl BodyDecoder {
    /// A decoder for a body delimited by `framing`.
    pub const fn new(framing: Framing, limits: Limits) -> Self {
        let state = match framing {
            Framing::None => State::Done {
                body: 0,
                consumed: 0,
            },
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize { scan: 0 },
            Framing::UntilClose => State::UntilClose,
        };
        Self {
            limits,
            state,
            read: 0,
            write: 0,
            trailers: 0,
        }
    }

    /// Decodes what arrived since the last call. On [`Status::Complete`], `value` is the body
    /// length (the body is `buf[..value]`) and `len` the bytes of `buf` the body took,
    /// framing included; bytes after `len` belong to the next message.
    ///
    /// An until-close body never completes here; call [`finish_eof`](Self::finish_eof) when
    /// the peer closes.
    pub fn decode(&mut self, buf: &mut [u8]) -> Result<Status<usize>, HttpError> {
        if buf.len() < self.read {
            return Err(HttpError::BufferMismatch);
        }
        loop {
            let progressed = match self.state {
                State::Done { body, consumed } => {
                    return Ok(Status::Complete {
                        value: body,
                        len: consumed,
                    });
                }
                State::Length(n) => self.length(buf.len(), n)?,
                State::UntilClose => {
                    if buf.len() > self.limits.max_body {
                        return Err(HttpError::BodyTooLarge);
                    }
                    self.read = buf.len();
                    self.write = self.read;
                    false
                }
                State::ChunkSize { scan } => self.chunk_size_line(buf, scan)?,
                State::ChunkData { remaining } => self.chunk_data(buf, remaining)?,
                State::ChunkEnd => {
                    let second = self.read.saturating_add(1);
                    match (buf.get(self.read), buf.get(second)) {
                        (Some(b'\r'), Some(b'\n')) => {
                            self.read = second.saturating_add(1);
                            self.state = State::ChunkSize { scan: self.read };
                            true
                        }
                        (None, _) | (Some(b'\r'), None) => false,
                        _ => return Err(HttpError::MissingChunkCrlf),
                    }
                }
                State::Trailer { scan } => self.trailer_line(buf, scan)?,
            };
            if !progressed {
                return Ok(Status::Partial);
            }
        }
    }

    /// `Length(n)` with `available` bytes: true once complete.
    fn length(&mut self, available: usize, n: u64) -> Result<bool, HttpError> {
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.limits.max_body)
            .ok_or(HttpError::BodyTooLarge)?;
        self.read = available.min(n);
        self.write = self.read;
        if available < n {
            return Ok(false);
        }
        self.state = State::Done {
            body: n,
            consumed: n,
        };
        Ok(true)
    }

    /// A chunk-size line at `self.read`: true once it is complete and consumed.
    fn chunk_size_line(&mut self, buf: &[u8], mut scan: usize) -> Result<bool, HttpError> {
        let line = next_line(buf, self.read, &mut scan, self.limits.max_line_len, false)?;
        let Some(line) = line else {
            self.state = State::ChunkSize { scan };
            return Ok(false);
        };
        let size = chunk_size(buf.get(line.start..line.end).unwrap_or(&[]))?;
        let total = u64::try_from(self.write)
            .ok()
            .and_then(|w| w.checked_add(size));
        let max = u64::try_from(self.limits.max_body).unwrap_or(u64::MAX);
        if total.is_none_or(|t| t > max) {
            return Err(HttpError::BodyTooLarge);
        }
        self.read = line.next;
        self.state = if size == 0 {
            State::Trailer { scan: line.next }
        } else {
            State::ChunkData { remaining: size }
        };
        Ok(true)
    }

    /// Moves available chunk data down to `self.write`: true once the chunk is complete.
    fn chunk_data(&mut self, buf: &mut [u8], remaining: u64) -> Result<bool, HttpError> {
        let avail = buf.len().saturating_sub(self.read);
        let n = usize::try_from(remaining).map_or(avail, |r| r.min(avail));
        let end = self
            .read
            .checked_add(n)
            .filter(|&e| e <= buf.len() && self.write <= self.read)
            .ok_or(HttpError::BufferMismatch)?;
        if self.write < self.read {
            // In bounds: `self.read..end` was checked above and `self.write < self.read`.
            buf.copy_within(self.read..end, self.write);
        }
        self.read = end;
        self.write = self.write.saturating_add(n);
        let left = remaining.saturating_sub(u64::try_from(n).unwrap_or(u64::MAX));
        if left > 0 {
            self.state = State::ChunkData { remaining: left };
            return Ok(false);
        }
        self.state = State::ChunkEnd;
        Ok(true)
    }

    /// A trailer line (or the final blank line): true once it is complete and consumed.
    fn trailer_line(&mut self, buf: &[u8], mut scan: usize) -> Result<bool, HttpError> {
        if self.trailers >= self.limits.max_headers
            && buf
                .get(self.read)
                .is_some_and(|&b| b != b'\r' && b != b'\n')
        {
            return Err(HttpError::TooManyHeaders);
        }
        let line = next_line(buf, self.read, &mut scan, self.limits.max_line_len, false)?;
        let Some(line) = line else {
            self.state = State::Trailer { scan };
            return Ok(false);
        };
        let content = buf.get(line.start..line.end).unwrap_or(&[]);
        if content.is_empty() {
            self.state = State::Done {
                body: self.write,
                consumed: line.next,
            };
        } else {
            // Trailer fields are validated like headers, then dropped.
            parse_field(content)?;
            self.trailers = self.trailers.saturating_add(1);
            if self.trailers > self.limits.max_headers {
                return Err(HttpError::TooManyHeaders);
            }
            self.state = State::Trailer { scan: line.next };
        }
        self.read = line.next;
        Ok(true)
    }

    /// The peer closed the connection and `buf` holds everything it sent after the head.
    /// Returns (body length, bytes consumed): an until-close body ends here; a length or
    /// chunked body that is not complete is [`HttpError::TruncatedBody`].
    pub fn finish_eof(&mut self, buf: &mut [u8]) -> Result<(usize, usize), HttpError> {
        if let Status::Complete { value, len } = self.decode(buf)? {
            return Ok((value, len));
        }
        if self.state == State::UntilClose {
            self.state = State::Done {
                body: buf.len(),
                consumed: buf.len(),
            };
            return Ok((buf.len(), buf.len()));
        }
        Err(HttpError::TruncatedBody)
    }

    /// Bytes of body decoded so far, at the start of the buffer.
    pub const fn decoded_len(&self) -> usize {
        self.write
    }

    /// Bytes of the buffer consumed so far; bytes from here on are untouched.
    pub const fn consumed(&self) -> usize {
        self.read
    }

    /// True once the body is complete.
    pub const fn is_complete(&self) -> bool {
        matches!(self.state, State::Done { .. })
    }
}

/// Parses a chunk-size line: `1*HEXDIG [ BWS ";" chunk-ext ]`. Extensions are skipped after
/// checking they hold no control characters.
fn chunk_size(line: &[u8]) -> Result<u64, HttpError> {
    let parsed: PResult<'_, &[u8]> = take_while1(|b: u8| b.is_ascii_hexdigit()).parse(line);
    let Ok((rest, hex)) = parsed else {
        return Err(HttpError::InvalidChunkSize);
    };
    if hex.len() > 16 {
        return Err(HttpError::ChunkSizeTooLarge);
    }
    if !rest.is_empty() {
        let ext = trim_ows(rest);
        if ext.first() != Some(&b';') || !rest.iter().all(|&b| is_field_byte(b)) {
            return Err(HttpError::InvalidChunkSize);
        }
    }
    let mut n: u64 = 0;
    for &b in hex {
        let d = match b {
            b'0'..=b'9' => b.wrapping_sub(b'0'),
            b'a'..=b'f' => b.wrapping_sub(b'a').wrapping_add(10),
            _ => b.wrapping_sub(b'A').wrapping_add(10),
        };
        // At most 16 hex digits: never overflows.
        n = (n << 4) | u64::from(d);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunk_size(b"0"), Ok(0));
        assert_eq!(chunk_size(b"1e1"), Ok(0x1e1));
        assert_eq!(chunk_size(b"FfFf"), Ok(0xffff));
        assert_eq!(chunk_size(b"ffffffffffffffff"), Ok(u64::MAX));
        assert_eq!(
            chunk_size(b"00000000000000001"),
            Err(HttpError::ChunkSizeTooLarge)
        );
        assert_eq!(chunk_size(b"a;x=y"), Ok(10));
        assert_eq!(chunk_size(b"a ; x=\"y\""), Ok(10));
        assert_eq!(chunk_size(b"a "), Err(HttpError::InvalidChunkSize));
        assert_eq!(chunk_size(b"a x"), Err(HttpError::InvalidChunkSize));
        assert_eq!(chunk_size(b"a;\x01"), Err(HttpError::InvalidChunkSize));
        assert_eq!(chunk_size(b""), Err(HttpError::InvalidChunkSize));
        assert_eq!(chunk_size(b"-1"), Err(HttpError::InvalidChunkSize));
        assert_eq!(chunk_size(b"0x10"), Err(HttpError::InvalidChunkSize));
    }
}
