//! TEMPORARY stand-in for `crate::query` (H2), same signatures; deleted when it lands on main.
#![allow(dead_code, missing_docs, clippy::pedantic)]

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryError {
    MalformedEscape { offset: usize },
    InvalidUtf8,
    BufferTooSmall { required: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plus {
    Literal,
    Space,
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

pub fn decode_into<'o, S>(src: &S, out: &'o mut [u8], plus: Plus) -> Result<&'o str, QueryError>
where
    S: AsRef<[u8]> + ?Sized,
{
    let src = src.as_ref();
    let mut w = crate::write::SliceWriter::new(out);
    let mut i = 0usize;
    while let Some(&b) = src.get(i) {
        if b == b'%' {
            let hi = src.get(i + 1).copied().and_then(hex_val);
            let lo = src.get(i + 2).copied().and_then(hex_val);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(QueryError::MalformedEscape { offset: i });
            };
            w.put_byte((hi << 4) | lo);
            i += 3;
        } else {
            w.put_byte(if b == b'+' && plus == Plus::Space { b' ' } else { b });
            i += 1;
        }
    }
    let len = w
        .finish()
        .map_err(|e| QueryError::BufferTooSmall { required: e.required })?;
    let d = out.get(..len).ok_or(QueryError::InvalidUtf8)?;
    core::str::from_utf8(d).map_err(|_| QueryError::InvalidUtf8)
}

#[derive(Debug, Clone)]
pub struct Pairs<'a> {
    rest: &'a [u8],
}

impl<'a> Pairs<'a> {
    pub fn new<S: AsRef<[u8]> + ?Sized>(query: &'a S) -> Self {
        Self { rest: query.as_ref() }
    }
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a [u8], &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let mut it = self.rest.splitn(2, |&b| b == b'&');
            let seg = it.next().unwrap_or(&[]);
            self.rest = it.next().unwrap_or(&[]);
            if seg.is_empty() {
                continue;
            }
            let mut kv = seg.splitn(2, |&b| b == b'=');
            return Some((kv.next().unwrap_or(&[]), kv.next().unwrap_or(&[])));
        }
    }
}
