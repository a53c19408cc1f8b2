//! Error messages formatted into a caller buffer, NUL-terminated, never truncated.

use core::fmt::{self, Display, Write};

use crate::result::mitoken_result;

/// Writes into a slice, counting every byte offered even when it no longer fits.
struct Counting<'a> {
    out: &'a mut [u8],
    len: usize,
}

impl Write for Counting<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.saturating_add(s.len());
        if let Some(dst) = self.out.get_mut(self.len..end) {
            dst.copy_from_slice(s.as_bytes());
        }
        self.len = end;
        Ok(())
    }
}

/// Writes `message` and a NUL into `out`. Returns the text's length (without the NUL); when
/// `out` cannot hold text + NUL, returns `BufferTooSmall` with that length, and `out` holds an
/// empty string (if it has room for the NUL) rather than a truncated message.
pub fn write(out: &mut [u8], message: impl Display) -> (mitoken_result, usize) {
    let mut w = Counting { out, len: 0 };
    // `Counting` never fails; a `Display` impl that does is a bug we report as an empty text.
    let _ = write!(w, "{message}");
    let len = w.len;
    let out = w.out;
    if let Some(nul) = out.get_mut(len) {
        *nul = 0;
        return (mitoken_result::Ok, len);
    }
    if let Some(first) = out.first_mut() {
        *first = 0;
    }
    (mitoken_result::BufferTooSmall, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_or_refuses_whole() {
        let mut buf = [0xFFu8; 6];
        assert_eq!(write(&mut buf, "hello"), (mitoken_result::Ok, 5));
        assert_eq!(&buf, b"hello\0");
        let mut small = [0xFFu8; 5];
        assert_eq!(
            write(&mut small, "hello"),
            (mitoken_result::BufferTooSmall, 5)
        );
        assert_eq!(small[0], 0);
        assert_eq!(write(&mut [], "x"), (mitoken_result::BufferTooSmall, 1));
    }
}
