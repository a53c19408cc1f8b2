//! `expires_on` in every form the managed-identity sources send, as Unix seconds.
//!
//! | form | example | who sends it |
//! |---|---|---|
//! | digits | `"1586984735"` or `1565244611` | IMDS, App Service 2019, Arc, Azure ML, Service Fabric |
//! | 2017, Windows | `"1/10/2020 8:01:28 AM +00:00"` | App Service 2017-09-01 on Windows |
//! | 2017, Linux | `"06/20/2019 02:57:58 +00:00"` | App Service 2017-09-01 on Linux |
//! | ISO 8601 | `"2024-10-18T19:51:37.0000000+00:00"` | .NET-formatted hosts |
//!
//! The 2017 form is month/day/year (one or two digits for month, day and hour), then
//! `H:MM:SS`, an optional `AM`/`PM`, and a `±HH:MM` offset. With `AM`/`PM` the hour is 0–12:
//! 12 AM is midnight, 12 PM noon, and hour 0 is read as a 24-hour clock would read it except
//! that `00 PM` is noon (the documented sample `"09/14/2017 00:00:00 PM +00:00"`; Go's
//! `time.Parse` reads it so, Python's `%I` refuses it). The ISO form takes any number of
//! fraction digits (dropped: the result is whole seconds) and `Z` or `±HH:MM`. An offset is
//! required in both: a time without one is ambiguous, and is refused rather than guessed.
//! Years 1970–9999; a date before the Unix epoch (after the offset) is refused.

/// The Unix time `text` names, or `None` if it is none of the forms above.
pub fn parse_expires_on(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if !b.is_empty() && b.iter().all(u8::is_ascii_digit) {
        return digits_u64(b);
    }
    let mut c = Cursor { b, i: 0 };
    let secs = if b.get(4) == Some(&b'-') {
        iso(&mut c)?
    } else {
        localized(&mut c)?
    };
    (c.i == b.len()).then_some(())?;
    u64::try_from(secs).ok()
}

fn digits_u64(b: &[u8]) -> Option<u64> {
    b.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.i += 1)
    }

    /// Between `min` and `max` ASCII digits, as a number.
    fn num(&mut self, min: usize, max: usize) -> Option<i64> {
        let start = self.i;
        let mut n = 0i64;
        while self.i - start < max {
            match self.peek() {
                Some(d @ b'0'..=b'9') => {
                    n = n * 10 + i64::from(d - b'0');
                    self.i += 1;
                }
                _ => break,
            }
        }
        (self.i - start >= min).then_some(n)
    }

    /// `±HH:MM` as seconds east of UTC.
    fn offset(&mut self) -> Option<i64> {
        let sign = match self.peek()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        self.i += 1;
        let h = self.num(2, 2)?;
        self.eat(b':')?;
        let m = self.num(2, 2)?;
        (h <= 23 && m <= 59).then_some(sign * (h * 3600 + m * 60))
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.f…](Z|±HH:MM)`.
fn iso(c: &mut Cursor<'_>) -> Option<i64> {
    let year = c.num(4, 4)?;
    c.eat(b'-')?;
    let month = c.num(2, 2)?;
    c.eat(b'-')?;
    let day = c.num(2, 2)?;
    c.eat(b'T')?;
    let hour = c.num(2, 2)?;
    c.eat(b':')?;
    let minute = c.num(2, 2)?;
    c.eat(b':')?;
    let second = c.num(2, 2)?;
    if c.eat(b'.').is_some() {
        // Any number of fraction digits, dropped (not accumulated: they may be many).
        let start = c.i;
        while c.peek().is_some_and(|b| b.is_ascii_digit()) {
            c.i += 1;
        }
        (c.i > start).then_some(())?;
    }
    let offset = if c.eat(b'Z').is_some() {
        0
    } else {
        c.offset()?
    };
    epoch(year, month, day, hour, minute, second, offset)
}

/// `M/D/YYYY H:MM:SS[ AM| PM] ±HH:MM`.
fn localized(c: &mut Cursor<'_>) -> Option<i64> {
    let month = c.num(1, 2)?;
    c.eat(b'/')?;
    let day = c.num(1, 2)?;
    c.eat(b'/')?;
    let year = c.num(4, 4)?;
    c.eat(b' ')?;
    let mut hour = c.num(1, 2)?;
    c.eat(b':')?;
    let minute = c.num(2, 2)?;
    c.eat(b':')?;
    let second = c.num(2, 2)?;
    c.eat(b' ')?;
    let meridiem = match (c.peek()?, c.b.get(c.i + 1).copied()) {
        (b'A', Some(b'M')) => Some(false),
        (b'P', Some(b'M')) => Some(true),
        _ => None,
    };
    if let Some(pm) = meridiem {
        c.i += 2;
        c.eat(b' ')?;
        if hour > 12 {
            return None;
        }
        hour = match (pm, hour) {
            (false, 12) => 0,
            (true, h) if h < 12 => h + 12,
            (_, h) => h,
        };
    }
    let offset = c.offset()?;
    epoch(year, month, day, hour, minute, second, offset)
}

/// Seconds since the Unix epoch of a civil UTC+`offset` time, if it is a valid one.
fn epoch(
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    offset: i64,
) -> Option<i64> {
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let secs =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    (secs >= 0).then_some(secs)
}

const fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

const fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to `y-m-d` in the proleptic Gregorian calendar (H. Hinnant's
/// `days_from_civil`; `y` ≥ 1 here, so every division is of non-negative numbers).
const fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse_expires_on as p;

    #[test]
    fn recorded_forms() {
        assert_eq!(p("1586984735"), Some(1_586_984_735));
        assert_eq!(p("1/10/2020 8:01:28 AM +00:00"), Some(1_578_643_288));
        assert_eq!(p("06/20/2019 02:57:58 +00:00"), Some(1_560_999_478));
        assert_eq!(p("1/16/2020 5:24:12 AM +00:00"), Some(1_579_152_252));
        assert_eq!(p("1/10/2020 12:01:28 AM +00:00"), Some(1_578_614_488));
        assert_eq!(p("1/10/2020 12:01:28 PM +00:00"), Some(1_578_657_688));
        assert_eq!(p("1/10/2020 9:01:28 AM +01:00"), Some(1_578_643_288));
        assert_eq!(p("2024-10-18T20:51:37Z"), Some(1_729_284_697));
        assert_eq!(p("09/14/2017 00:00:00 PM +00:00"), Some(1_505_390_400));
        assert_eq!(p("2024-10-18T19:51:37.0000000+00:00"), Some(1_729_281_097));
        assert_eq!(p("2024-10-18T21:51:37.5+02:00"), Some(1_729_281_097));
        let long = concat!(
            "2024-10-18T19:51:37.",
            "99999999999999999999999999999999999999999999999999",
            "99999999999999999999999999999999999999999999999999",
            "+00:00"
        );
        assert_eq!(p(long), Some(1_729_281_097));
    }

    #[test]
    fn refused() {
        for bad in [
            "",
            "-1",
            "1e9",
            "12.5",
            "1/10/2020 8:01:28 AM",
            "1/10/2020 8:01:28 AM +00:00 ",
            "1/10/2020 13:01:28 PM +00:00",
            "2/30/2020 8:01:28 +00:00",
            "2/29/2019 8:01:28 +00:00",
            "13/10/2020 8:01:28 +00:00",
            "1/10/2020 24:01:28 +00:00",
            "1/10/2020 8:60:28 +00:00",
            "1/10/2020 8:01:60 +00:00",
            "1/10/20 8:01:28 +00:00",
            "1/1/1970 00:00:00 +00:01",
            "2024-10-18T19:51:37",
            "2024-10-18T19:51:37.+00:00",
            "2024-10-18 19:51:37+00:00",
            "2024-10-18T19:51:37+24:00",
            "99999999999999999999999",
            // Found by the `expires_on` fuzz target: a long fraction once overflowed.
            "0024-10-18T19:51:37.00000000000000000000000000000000000000000000000000000000000",
        ] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
        assert_eq!(p("2/29/2020 8:01:28 +00:00"), Some(1_582_963_288));
        assert_eq!(p("1/1/1970 00:00:00 +00:00"), Some(0));
    }
}
