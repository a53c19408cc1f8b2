//! A zero-copy view of a validated header block.

use super::line::split_field;

/// The header fields of a parsed head: a zero-copy view over the bytes the parser already
/// validated. Iterating re-splits the lines (cheap, no validation); there is no fixed array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headers<'a> {
    /// The header lines, each ending in CRLF (or LF in a response), without the blank line.
    block: &'a [u8],
    count: usize,
}

/// One header field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// Field name as sent (a token: ASCII, case preserved).
    pub name: &'a str,
    /// Field value without surrounding whitespace. May contain obs-text (bytes ≥ 0x80), so it
    /// is bytes; see [`Header::value_str`].
    pub value: &'a [u8],
}

impl<'a> Header<'a> {
    /// The value as `&str`, if it is UTF-8.
    pub fn value_str(&self) -> Option<&'a str> {
        core::str::from_utf8(self.value).ok()
    }
}

impl<'a> Headers<'a> {
    /// Wraps a block the head parser validated, holding `count` field lines.
    pub(crate) const fn new(block: &'a [u8], count: usize) -> Self {
        Self { block, count }
    }

    /// No header fields.
    pub const EMPTY: Headers<'static> = Headers {
        block: &[],
        count: 0,
    };

    /// Number of header fields.
    pub const fn len(&self) -> usize {
        self.count
    }

    /// True if there are no header fields.
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The raw header block (field lines with their line endings).
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.block
    }

    /// Iterates over the fields in order.
    pub fn iter(&self) -> HeaderIter<'a> {
        HeaderIter { rest: self.block }
    }

    /// The value of the first field named `name` (ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.get_all(name).next()
    }

    /// The value of the first field named `name`, if it is UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&'a str> {
        self.get(name).and_then(|v| core::str::from_utf8(v).ok())
    }

    /// The values of every field named `name` (ASCII case-insensitive), in order.
    pub fn get_all<'n>(&self, name: &'n str) -> GetAll<'a, 'n> {
        GetAll {
            inner: self.fields(),
            name,
        }
    }

    /// The fields as raw `(name, value)` bytes, with no text conversion: for one pass that
    /// looks for several names at once.
    pub(crate) const fn fields(&self) -> Fields<'a> {
        Fields { rest: self.block }
    }
}

impl<'a> IntoIterator for Headers<'a> {
    type Item = Header<'a>;
    type IntoIter = HeaderIter<'a>;

    fn into_iter(self) -> HeaderIter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &Headers<'a> {
    type Item = Header<'a>;
    type IntoIter = HeaderIter<'a>;

    fn into_iter(self) -> HeaderIter<'a> {
        self.iter()
    }
}

/// Iterator over [`Headers`].
#[derive(Debug, Clone)]
pub struct HeaderIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        let (name, value) = Fields { rest: self.rest }.next_and_rest(&mut self.rest)?;
        Some(Header {
            // The parser only admits token characters (ASCII) in names.
            name: core::str::from_utf8(name).unwrap_or(""),
            value,
        })
    }
}

/// Iterator over the raw `(name, value)` bytes of the fields; see [`Headers::fields`].
#[derive(Debug, Clone)]
pub(crate) struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    /// The next field of `self`, storing what follows it in `rest`.
    fn next_and_rest(self, rest: &mut &'a [u8]) -> Option<(&'a [u8], &'a [u8])> {
        if self.rest.is_empty() {
            return None;
        }
        let (line, after) = match self.rest.iter().position(|&b| b == b'\n') {
            Some(lf) => {
                let (line, after) = self.rest.split_at_checked(lf).unwrap_or((self.rest, &[]));
                (line, after.get(1..).unwrap_or(&[]))
            }
            None => (self.rest, &[][..]),
        };
        *rest = after;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        Some(split_field(line))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        Fields { rest: self.rest }.next_and_rest(&mut self.rest)
    }
}

/// Iterator over the values of the fields with one name; see [`Headers::get_all`].
#[derive(Debug, Clone)]
pub struct GetAll<'a, 'n> {
    inner: Fields<'a>,
    name: &'n str,
}

impl<'a> Iterator for GetAll<'a, '_> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let name = self.name.as_bytes();
        self.inner
            .by_ref()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterates_and_looks_up() {
        let h = Headers::new(b"A: 1\r\nb:2 \r\nA:  3\n", 3);
        let names: [&str; 3] = {
            let mut it = h.iter().map(|h| h.name);
            [
                it.next().unwrap_or(""),
                it.next().unwrap_or(""),
                it.next().unwrap_or(""),
            ]
        };
        assert_eq!(names, ["A", "b", "A"]);
        assert_eq!(h.iter().count(), 3);
        assert_eq!(h.get("a"), Some(&b"1"[..]));
        assert_eq!(h.get_str("B"), Some("2"));
        assert_eq!(h.get("c"), None);
        let mut all = h.get_all("A");
        assert_eq!(all.next(), Some(&b"1"[..]));
        assert_eq!(all.next(), Some(&b"3"[..]));
        assert_eq!(all.next(), None);
        assert!(Headers::EMPTY.iter().next().is_none());
    }
}
