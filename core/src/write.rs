//! A bounded writer over a caller-lent `&mut [u8]`.
//!
//! Every writer in mitoken-core (request heads, response heads, JSON bodies) goes through
//! [`SliceWriter`]. It never truncates silently: once the buffer is full it keeps *counting* what
//! would have been written, so [`SliceWriter::finish`] can answer
//! [`BufferTooSmall`] with the exact number of bytes the caller must provide.

use core::fmt;

/// The caller's buffer cannot hold the output; `required` bytes would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(Hash))]
pub struct BufferTooSmall {
    /// Total bytes the output needs.
    pub required: usize,
}

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "buffer too small: {} bytes required", self.required)
    }
}

impl core::error::Error for BufferTooSmall {}

/// Writes bytes into a borrowed buffer, counting (not writing) what does not fit.
#[derive(Debug)]
pub struct SliceWriter<'a> {
    buf: &'a mut [u8],
    /// Bytes the output needs so far; may exceed `buf.len()`.
    len: usize,
}

impl<'a> SliceWriter<'a> {
    /// Starts writing at the beginning of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Appends `bytes`; if they do not fit, only the count grows.
    ///
    /// With the `small-code` feature never inlined: request and response heads are dozens of
    /// `put`s, and one shared copy keeps the bounds checks and the copy out of each call site
    /// (firmware `.text`). Without it the compiler inlines it (faster request building).
    #[cfg_attr(feature = "small-code", inline(never))]
    pub fn put(&mut self, bytes: &[u8]) {
        let end = self.len.saturating_add(bytes.len());
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            dst.copy_from_slice(bytes);
        }
        self.len = end;
    }

    /// Appends a string.
    pub fn put_str(&mut self, s: &str) {
        self.put(s.as_bytes());
    }

    /// Appends one byte.
    pub fn put_byte(&mut self, b: u8) {
        if let Some(dst) = self.buf.get_mut(self.len) {
            *dst = b;
        }
        self.len = self.len.saturating_add(1);
    }

    /// Appends the decimal form of `n`.
    pub fn put_u64(&mut self, n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut rest = n;
        loop {
            i -= 1;
            // `rest % 10` < 10, so the cast cannot truncate.
            #[allow(clippy::cast_possible_truncation)]
            let d = (rest % 10) as u8;
            if let Some(slot) = digits.get_mut(i) {
                *slot = b'0' + d;
            }
            rest /= 10;
            if rest == 0 || i == 0 {
                break;
            }
        }
        self.put(digits.get(i..).unwrap_or(&[]));
    }

    /// Bytes the output needs so far (may exceed the buffer's length).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True while everything written so far fits in the buffer.
    pub fn fits(&self) -> bool {
        self.len <= self.buf.len()
    }

    /// Ends writing: the number of bytes written, or how many the output needs.
    pub fn finish(self) -> Result<usize, BufferTooSmall> {
        if self.fits() {
            Ok(self.len)
        } else {
            Err(BufferTooSmall { required: self.len })
        }
    }
}

impl fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.put_str(s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_counts() {
        let mut buf = [0u8; 8];
        let mut w = SliceWriter::new(&mut buf);
        w.put_str("abc");
        w.put_u64(0);
        w.put_u64(1234);
        assert_eq!(w.finish(), Ok(8));
        assert_eq!(&buf, b"abc01234");
    }

    #[test]
    fn overflow_reports_required() {
        let mut buf = [0u8; 4];
        let mut w = SliceWriter::new(&mut buf);
        w.put_str("hello");
        w.put_byte(b'!');
        w.put_u64(u64::MAX);
        assert_eq!(w.finish(), Err(BufferTooSmall { required: 26 }));
    }
}
