//! Line splitting and the character classes and field-line grammar shared by heads and
//! trailers.

use nom::Parser;
use nom::bytes::complete::take_while;

use super::HttpError;

/// nom result with a unit error: we classify failures ourselves into precise [`HttpError`]s.
pub(crate) type PResult<'a, T> = nom::IResult<&'a [u8], T, ()>;

/// `tchar` of RFC 9110 §5.6.2, as a 256-entry table (one load per byte on the hot path).
const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0usize;
    while b < 256 {
        #[allow(clippy::cast_possible_truncation)] // b < 256
        let c = b as u8;
        #[allow(clippy::indexing_slicing)] // b < 256 == table.len()
        let slot = &mut table[b];
        *slot = matches!(c,
            b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
            | b'`' | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z');
        b += 1;
    }
    table
};

/// `tchar` of RFC 9110 §5.6.2.
#[inline]
pub(crate) const fn is_tchar(b: u8) -> bool {
    #[allow(clippy::indexing_slicing)] // a u8 is always < 256 == TCHAR.len()
    TCHAR[b as usize]
}

/// True when every byte of `s` is a field byte. Checks all bytes without branching per byte,
/// so the compiler can vectorize it.
#[inline]
pub(crate) fn all_field_bytes(s: &[u8]) -> bool {
    s.iter().fold(true, |ok, &b| ok & is_field_byte(b))
}

/// Index of the first CR or LF in `s`, scanning 16 bytes per step.
#[inline]
#[allow(clippy::needless_bitwise_bool)] // branch-free on purpose: it vectorizes
fn find_cr_or_lf(s: &[u8]) -> Option<usize> {
    let mut chunks = s.chunks_exact(16);
    let mut base = 0usize;
    for chunk in &mut chunks {
        let hit = chunk
            .iter()
            .fold(false, |hit, &b| hit | (b == b'\r') | (b == b'\n'));
        if hit {
            return chunk
                .iter()
                .position(|&b| b == b'\r' || b == b'\n')
                .map(|p| base.saturating_add(p));
        }
        base = base.saturating_add(16);
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .map(|p| base.saturating_add(p))
}

/// A byte allowed in a field value or reason phrase: HTAB, SP, VCHAR, obs-text.
pub(crate) const fn is_field_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

/// Optional whitespace: SP or HTAB.
pub(crate) const fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `s` without leading and trailing SP/HTAB.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ows(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// One complete line found by [`next_line`]: its content is `start..end`, the next line starts
/// at `next`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line {
    pub start: usize,
    pub end: usize,
    pub next: usize,
}

/// Finds the line starting at `start`, resuming the search for its end at `*scan` (bytes before
/// it were already checked). Returns `Ok(None)` when the line is not complete yet, with `*scan`
/// advanced. Refuses a line whose content exceeds `max_len` as soon as it does, a CR not
/// followed by LF, and (unless `lf_ok`) a lone LF.
pub(crate) fn next_line(
    buf: &[u8],
    start: usize,
    scan: &mut usize,
    max_len: usize,
    lf_ok: bool,
) -> Result<Option<Line>, HttpError> {
    let from = (*scan).max(start);
    let rest = buf.get(from..).ok_or(HttpError::BufferMismatch)?;
    // Content bytes may sit at indices start..start + max_len; the byte at start + max_len may
    // only be the terminator. Search no further than that.
    let last = start.saturating_add(max_len);
    let window_len = last.saturating_sub(from).saturating_add(1).min(rest.len());
    let window = rest.get(..window_len).unwrap_or(rest);
    let Some(pos) = find_cr_or_lf(window) else {
        let end = from.saturating_add(window_len);
        if end > last {
            return Err(HttpError::LineTooLong);
        }
        *scan = end;
        return Ok(None);
    };
    let i = from.saturating_add(pos);
    if buf.get(i) == Some(&b'\n') {
        if !lf_ok {
            return Err(HttpError::BareLf);
        }
        return Ok(Some(Line {
            start,
            end: i,
            next: i.saturating_add(1),
        }));
    }
    let after = i.saturating_add(1);
    match buf.get(after) {
        None => {
            *scan = i;
            Ok(None)
        }
        Some(b'\n') => Ok(Some(Line {
            start,
            end: i,
            next: after.saturating_add(1),
        })),
        Some(_) => Err(HttpError::BareCr),
    }
}

/// A validated field line (header or trailer): name is a non-empty token, value is trimmed of
/// OWS and free of control characters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
}

/// Validates `name ":" OWS value OWS` (the line's content, without its line ending).
pub(crate) fn parse_field(line: &[u8]) -> Result<Field<'_>, HttpError> {
    match line.first() {
        Some(b' ' | b'\t') => return Err(HttpError::ObsFold),
        Some(b':') => return Err(HttpError::EmptyHeaderName),
        _ => {}
    }
    let Ok((rest, name)) = take_while::<_, _, ()>(is_tchar).parse(line) else {
        return Err(HttpError::InvalidHeaderName);
    };
    let value = match rest.split_first() {
        Some((b':', value)) if !name.is_empty() => value,
        _ if !rest.contains(&b':') => return Err(HttpError::MissingColon),
        Some((b' ' | b'\t', _)) if !name.is_empty() && trim_ows(rest).first() == Some(&b':') => {
            return Err(HttpError::WhitespaceBeforeColon);
        }
        _ => return Err(HttpError::InvalidHeaderName),
    };
    if !all_field_bytes(value) {
        return Err(HttpError::InvalidHeaderValue);
    }
    Ok(Field {
        name,
        value: trim_ows(value),
    })
}

/// Splits an already-validated field line at its first colon, trimming the value.
pub(crate) fn split_field(line: &[u8]) -> (&[u8], &[u8]) {
    match line.iter().position(|&b| b == b':') {
        Some(colon) => {
            let (name, rest) = line.split_at_checked(colon).unwrap_or((line, &[]));
            (name, trim_ows(rest.get(1..).unwrap_or(&[])))
        }
        None => (line, &[]),
    }
}

/// Parses `1*DIGIT` into a `u64`: `Ok(None)` on overflow, `Err(())` if not all digits.
pub(crate) fn parse_decimal(s: &[u8]) -> Result<Option<u64>, ()> {
    if s.is_empty() {
        return Err(());
    }
    let mut n: u64 = 0;
    let mut overflow = false;
    for &b in s {
        if !b.is_ascii_digit() {
            return Err(());
        }
        match n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b.wrapping_sub(b'0'))))
        {
            Some(v) => n = v,
            None => overflow = true,
        }
    }
    Ok(if overflow { None } else { Some(n) })
}

/// Iterates over the comma-separated elements of a list-valued field, each trimmed of OWS.
pub(crate) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim_ows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(buf: &[u8], lf_ok: bool) -> Result<Option<(usize, usize)>, HttpError> {
        let mut scan = 0;
        next_line(buf, 0, &mut scan, 8, lf_ok).map(|l| l.map(|l| (l.end, l.next)))
    }

    #[test]
    fn splits_lines() {
        assert_eq!(lines(b"abc\r\nx", false), Ok(Some((3, 5))));
        assert_eq!(lines(b"abc\nx", true), Ok(Some((3, 4))));
        assert_eq!(lines(b"abc\nx", false), Err(HttpError::BareLf));
        assert_eq!(lines(b"abc\rx", true), Err(HttpError::BareCr));
        assert_eq!(lines(b"abc\r", true), Ok(None));
        assert_eq!(lines(b"12345678\r\n", true), Ok(Some((8, 10))));
        assert_eq!(lines(b"123456789", true), Err(HttpError::LineTooLong));
        assert_eq!(lines(b"12345678", true), Ok(None));
    }

    #[test]
    fn fields() {
        let f = parse_field(b"Name: \tvalue x \t").map(|f| (f.name, f.value));
        assert_eq!(f, Ok((&b"Name"[..], &b"value x"[..])));
        assert_eq!(parse_field(b"Name:").map(|f| f.value), Ok(&b""[..]));
        assert_eq!(parse_field(b" N: v").err(), Some(HttpError::ObsFold));
        assert_eq!(parse_field(b": v").err(), Some(HttpError::EmptyHeaderName));
        assert_eq!(
            parse_field(b"N : v").err(),
            Some(HttpError::WhitespaceBeforeColon)
        );
        assert_eq!(
            parse_field(b"N \t: v").err(),
            Some(HttpError::WhitespaceBeforeColon)
        );
        assert_eq!(parse_field(b"N v").err(), Some(HttpError::MissingColon));
        assert_eq!(
            parse_field(b"N v: x").err(),
            Some(HttpError::InvalidHeaderName)
        );
        assert_eq!(parse_field(b"N").err(), Some(HttpError::MissingColon));
        assert_eq!(
            parse_field(b"N(: v").err(),
            Some(HttpError::InvalidHeaderName)
        );
        assert_eq!(
            parse_field(b"N: a\x00b").err(),
            Some(HttpError::InvalidHeaderValue)
        );
        assert_eq!(
            parse_field(b"N: a\x7fb").err(),
            Some(HttpError::InvalidHeaderValue)
        );
        assert_eq!(
            parse_field(b"N: a\x0c").err(),
            Some(HttpError::InvalidHeaderValue)
        );
        assert!(parse_field(b"N: a\tb\xff").is_ok());
        assert_eq!(split_field(b"N:  v "), (&b"N"[..], &b"v"[..]));
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal(b"0"), Ok(Some(0)));
        assert_eq!(parse_decimal(b"18446744073709551615"), Ok(Some(u64::MAX)));
        assert_eq!(parse_decimal(b"18446744073709551616"), Ok(None));
        assert_eq!(parse_decimal(b""), Err(()));
        assert_eq!(parse_decimal(b"1a"), Err(()));
        assert_eq!(parse_decimal(b"+1"), Err(()));
    }
}
