//! HTTP dates (IMF-fixdate only) and `Retry-After`.
//!
//! The calendar arithmetic below runs on validated, bounded values (years 1970..=9999, months
//! 1..=12, days 1..=31, …), far from any integer limit, so it uses plain operators.
#![allow(clippy::arithmetic_side_effects)]

use nom::Parser;
use nom::bytes::complete::{tag, take, take_while_m_n};

use super::line::{PResult, parse_decimal};
use super::{HttpError, WriteError};
use crate::write::SliceWriter;

/// When a server asks to be retried (`Retry-After`, RFC 9110 §10.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryAfter {
    /// After this many seconds (values past `u32::MAX` saturate).
    Seconds(u32),
    /// At this time, in Unix seconds (from an IMF-fixdate).
    At(u64),
}

impl RetryAfter {
    /// Parses a `Retry-After` value: `1*DIGIT` or an IMF-fixdate. Anything else is
    /// [`HttpError::InvalidDate`].
    pub fn parse(value: &[u8]) -> Result<Self, HttpError> {
        match parse_decimal(value) {
            Ok(Some(n)) => Ok(Self::Seconds(u32::try_from(n).unwrap_or(u32::MAX))),
            Ok(None) => Ok(Self::Seconds(u32::MAX)),
            Err(()) => parse_http_date(value).map(Self::At),
        }
    }

    /// Seconds to wait counted from `now` (Unix seconds); zero for a date in the past.
    pub fn delay_from(&self, now: u64) -> u64 {
        match *self {
            Self::Seconds(s) => u64::from(s),
            Self::At(at) => at.saturating_sub(now),
        }
    }
}

const DAY_NAMES: [&[u8; 3]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
const MONTH_NAMES: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];
/// Days before the first of each month in a common year.
const DAYS_BEFORE_MONTH: [u64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
const SECS_PER_DAY: u64 = 86_400;
/// 9999-12-31T23:59:59Z, the last instant an IMF-fixdate can name.
const MAX_UNIX: u64 = 253_402_300_799;

const fn is_leap(y: u64) -> bool {
    y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400))
}

/// Leap years in 1..=y.
const fn leaps_through(y: u64) -> u64 {
    y / 4 - y / 100 + y / 400
}

/// Days from 1970-01-01 to January 1st of `y` (`y` ≥ 1970).
const fn days_before_year(y: u64) -> u64 {
    365 * (y - 1970) + leaps_through(y - 1) - leaps_through(1969)
}

fn days_in_month(y: u64, m: usize) -> u64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Monday = 0 … Sunday = 6; 1970-01-01 was a Thursday.
const fn weekday(days: u64) -> usize {
    ((days + 3) % 7) as usize
}

fn digits(n: usize) -> impl FnMut(&[u8]) -> PResult<'_, u64> {
    move |i| {
        let (rest, d) = take_while_m_n(n, n, |b: u8| b.is_ascii_digit()).parse(i)?;
        match parse_decimal(d) {
            Ok(Some(v)) => Ok((rest, v)),
            _ => Err(nom::Err::Error(())),
        }
    }
}

fn name_index<'a>(table: &'a [&'a [u8; 3]]) -> impl FnMut(&'a [u8]) -> PResult<'a, usize> {
    move |i| {
        let (rest, s) = take(3usize).parse(i)?;
        match table.iter().position(|n| n.as_slice() == s) {
            Some(idx) => Ok((rest, idx)),
            None => Err(nom::Err::Error(())),
        }
    }
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7) into Unix seconds.
/// The weekday must match the date. The obsolete RFC 850 and asctime forms are refused, as are
/// dates before 1970.
pub fn parse_http_date(s: &[u8]) -> Result<u64, HttpError> {
    let parsed = (
        name_index(&DAY_NAMES),
        tag(", "),
        digits(2),
        tag(" "),
        name_index(&MONTH_NAMES),
        tag(" "),
        digits(4),
        tag(" "),
        digits(2),
        tag(":"),
        digits(2),
        tag(":"),
        digits(2),
        tag(" GMT"),
    )
        .parse(s);
    let Ok((rest, (wd, _, day, _, month0, _, year, _, h, _, mi, _, sec, _))) = parsed else {
        return Err(HttpError::InvalidDate);
    };
    let month = month0 + 1;
    if !rest.is_empty()
        || year < 1970
        || day == 0
        || day > days_in_month(year, month)
        || h > 23
        || mi > 59
        || sec > 60
    {
        return Err(HttpError::InvalidDate);
    }
    let before_month = DAYS_BEFORE_MONTH.get(month0).copied().unwrap_or(0);
    let leap_day = u64::from(month > 2 && is_leap(year));
    let days = days_before_year(year) + before_month + leap_day + day - 1;
    if weekday(days) != wd {
        return Err(HttpError::InvalidDate);
    }
    Ok(days * SECS_PER_DAY + h * 3600 + mi * 60 + sec)
}

/// Writes `unix` (seconds) as an IMF-fixdate, e.g. for `Date` or `Retry-After` headers.
/// Dates after 9999-12-31 are [`WriteError::DateOutOfRange`].
pub fn write_http_date(w: &mut SliceWriter<'_>, unix: u64) -> Result<(), WriteError> {
    if unix > MAX_UNIX {
        return Err(WriteError::DateOutOfRange);
    }
    let days = unix / SECS_PER_DAY;
    let secs = unix % SECS_PER_DAY;
    // 1970 + days/365 is never below the real year and at most a few years above it.
    let mut year = 1970 + days / 365;
    while days_before_year(year) > days {
        year -= 1;
    }
    let mut rest = days - days_before_year(year);
    let mut month = 1;
    while month < 12 && rest >= days_in_month(year, month) {
        rest -= days_in_month(year, month);
        month += 1;
    }
    let two = |w: &mut SliceWriter<'_>, n: u64| {
        if n < 10 {
            w.put_byte(b'0');
        }
        w.put_u64(n);
    };
    w.put(
        DAY_NAMES
            .get(weekday(days))
            .map_or(&b"Mon"[..], |n| n.as_slice()),
    );
    w.put(b", ");
    two(w, rest + 1);
    w.put_byte(b' ');
    w.put(
        MONTH_NAMES
            .get(month - 1)
            .map_or(&b"Jan"[..], |n| n.as_slice()),
    );
    w.put_byte(b' ');
    w.put_u64(year);
    w.put_byte(b' ');
    two(w, secs / 3600);
    w.put_byte(b':');
    two(w, secs / 60 % 60);
    w.put_byte(b':');
    two(w, secs % 60);
    w.put(b" GMT");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(unix: u64) -> ([u8; 29], Result<usize, crate::write::BufferTooSmall>) {
        let mut buf = [0u8; 29];
        let mut w = SliceWriter::new(&mut buf);
        let r = write_http_date(&mut w, unix);
        assert_eq!(r, Ok(()));
        let n = w.finish();
        (buf, n)
    }

    #[test]
    fn known_dates() {
        assert_eq!(parse_http_date(b"Thu, 01 Jan 1970 00:00:00 GMT"), Ok(0));
        assert_eq!(
            parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"),
            Ok(784_111_777)
        );
        assert_eq!(
            parse_http_date(b"Tue, 29 Feb 2000 12:00:00 GMT"),
            Ok(951_825_600)
        );
        assert_eq!(
            parse_http_date(b"Mon, 30 Nov 2026 01:00:00 GMT"),
            Ok(1_796_000_400)
        );
        assert_eq!(
            parse_http_date(b"Fri, 31 Dec 9999 23:59:59 GMT"),
            Ok(MAX_UNIX)
        );
    }

    #[test]
    fn refuses_bad_dates() {
        for bad in [
            &b"Wed, 06 Nov 1994 08:49:37 GMT"[..], // wrong weekday
            b"Thu, 29 Feb 1900 00:00:00 GMT",      // 1900 is not leap
            b"Sat, 31 Apr 2000 00:00:00 GMT",
            b"Sun, 06 Nov 1994 24:00:00 GMT",
            b"Sun, 06 Nov 1994 08:60:00 GMT",
            b"Sun, 06 Nov 1994 08:49:37 UTC",
            b"Sun, 06 Nov 1994 08:49:37 GMT ",
            b"Sunday, 06-Nov-94 08:49:37 GMT",
            b"Sun Nov  6 08:49:37 1994",
            b"Wed, 31 Dec 1969 23:59:59 GMT",
            b"sun, 06 nov 1994 08:49:37 GMT",
            b"Sun, 6 Nov 1994 08:49:37 GMT",
            b"",
        ] {
            assert_eq!(parse_http_date(bad), Err(HttpError::InvalidDate), "{bad:?}");
        }
    }

    #[test]
    fn round_trips() {
        for unix in [
            0,
            59,
            86_399,
            86_400,
            784_111_777,
            951_782_400,
            951_868_799,
            1_796_000_400,
            4_107_542_400, // 2100-03-01, after a non-leap century Feb
            MAX_UNIX,
        ] {
            let (buf, n) = fmt(unix);
            assert_eq!(n, Ok(29));
            assert_eq!(parse_http_date(&buf), Ok(unix), "{unix}");
        }
        let (buf, _) = fmt(784_111_777);
        assert_eq!(&buf, b"Sun, 06 Nov 1994 08:49:37 GMT");
        let mut small = [0u8; 4];
        let mut w = SliceWriter::new(&mut small);
        assert_eq!(
            write_http_date(&mut w, MAX_UNIX + 1),
            Err(WriteError::DateOutOfRange)
        );
    }

    #[test]
    fn every_day_round_trips() {
        // Every day from 1970 to 2400 at 12:34:56, through parse and format.
        let mut buf = [0u8; 29];
        for day in 0..157_000u64 {
            let unix = day * SECS_PER_DAY + 45_296;
            let mut w = SliceWriter::new(&mut buf);
            assert_eq!(write_http_date(&mut w, unix), Ok(()));
            assert_eq!(w.finish(), Ok(29));
            assert_eq!(parse_http_date(&buf), Ok(unix));
        }
    }

    #[test]
    fn retry_after() {
        assert_eq!(RetryAfter::parse(b"5"), Ok(RetryAfter::Seconds(5)));
        assert_eq!(
            RetryAfter::parse(b"99999999999"),
            Ok(RetryAfter::Seconds(u32::MAX))
        );
        assert_eq!(
            RetryAfter::parse(b"99999999999999999999999"),
            Ok(RetryAfter::Seconds(u32::MAX))
        );
        assert_eq!(
            RetryAfter::parse(b"Sun, 06 Nov 1994 08:49:37 GMT"),
            Ok(RetryAfter::At(784_111_777))
        );
        assert_eq!(RetryAfter::parse(b"-1"), Err(HttpError::InvalidDate));
        assert_eq!(RetryAfter::parse(b""), Err(HttpError::InvalidDate));
        assert_eq!(RetryAfter::At(100).delay_from(40), 60);
        assert_eq!(RetryAfter::At(100).delay_from(400), 0);
        assert_eq!(RetryAfter::Seconds(7).delay_from(400), 7);
    }
}
