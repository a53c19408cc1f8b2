//! A small, strict JSON scanner for flat objects (the token and error bodies).
//!
//! It walks one object, hands each member to a callback as a raw key and a [`Value`], and skips
//! nested objects and arrays iteratively (no recursion; nesting is bounded by [`MAX_DEPTH`]).
//! It accepts exactly RFC 8259 JSON: whitespace anywhere, any member order, every escape,
//! numbers by the full grammar, `true`/`false`/`null`. The whole body is checked to be UTF-8
//! once, up front, so every string is handed out as a `&str` slice of it without copying.
//!
//! Strings are scanned for the first byte that is `"`, `\` or below `0x23` (controls, space,
//! `!`, `"`; space and `!` are false positives that cost one step of the slow path): 64 bytes
//! per step with a byte predicate the compiler vectorises, then 8 bytes per step with SWAR
//! (SIMD within a register) arithmetic on a `u64`, then byte by byte. No `unsafe`, no
//! intrinsics.
//!
//! Index arithmetic: every index is at most `bytes.len()` plus a small constant, and slice
//! lengths are at most `isize::MAX`, so `+` on indices cannot overflow.

use super::JsonError;
use crate::write::SliceWriter;

/// Deepest nesting of skipped values (objects/arrays inside the top-level object).
pub const MAX_DEPTH: u32 = 128;

/// A JSON string as it appears in the body (between the quotes, escapes not yet decoded).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawStr<'a> {
    /// Text between the quotes.
    pub raw: &'a str,
    /// True if `raw` contains at least one backslash escape.
    pub escaped: bool,
    /// Offset of `raw` in the body.
    pub offset: usize,
}

/// A member value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    /// A string.
    Str(RawStr<'a>),
    /// A number, as written (validated against the JSON grammar).
    Num(&'a str),
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool,
    /// An object, skipped; its full text (braces included) and offset.
    Object(&'a str, usize),
    /// An array, skipped; its full text (brackets included) and offset (`""` and 0 without the
    /// `sources` feature, whose readers are the only ones that look inside).
    #[cfg_attr(not(feature = "sources"), allow(dead_code))]
    Array(&'a str, usize),
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = ONES << 7;

/// High bit set in each byte of `w` that is `"`, `\` or below `0x23`; exact for the lowest
/// flagged byte (borrows only create false flags above a true one).
#[inline]
const fn special(w: u64) -> u64 {
    let below = w.wrapping_sub(ONES * 0x23) & !w;
    let x = w ^ (ONES * 0x5C);
    let bs = x.wrapping_sub(ONES) & !x;
    (below | bs) & HIGH
}

/// Index of the first byte at or after `i` that is `"`, `\` or below `0x23`, or `bytes.len()`.
#[inline]
fn skip_plain(bytes: &[u8], mut i: usize) -> usize {
    // Long runs (the token): 64 bytes per step. The per-byte predicate OR-folded over a
    // fixed-size block is what LLVM vectorises (SSE2 `pminub`/`pcmpeqb`/`pmovmskb` on x86_64,
    // plain word ops elsewhere); a block with a hit falls through to the word loop below,
    // which pinpoints the byte.
    while let Some(block) = bytes.get(i..).and_then(<[u8]>::first_chunk::<64>) {
        let hit = block.iter().fold(0u8, |acc, &b| {
            acc | u8::from(b < 0x23) | u8::from(b == b'\\')
        });
        if hit != 0 {
            break;
        }
        i += 64;
    }
    while let Some(block) = bytes.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        let m = special(u64::from_le_bytes(*block));
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if b < 0x23 || b == b'\\' {
            return i;
        }
        i += 1;
    }
    i.min(bytes.len())
}

const fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn hex_val(b: u8) -> Option<u16> {
    match b {
        b'0'..=b'9' => Some(u16::from(b - b'0')),
        b'a'..=b'f' => Some(u16::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u16::from(b - b'A' + 10)),
        _ => None,
    }
}

/// The four hex digits at `bytes[i..i + 4]` as a UTF-16 code unit.
fn hex4(bytes: &[u8], i: usize) -> Result<u16, Option<usize>> {
    let quad = bytes.get(i..i + 4).ok_or(None)?;
    let mut v = 0u16;
    for &b in quad {
        v = (v << 4) | hex_val(b).ok_or(Some(i))?;
    }
    Ok(v)
}

/// The callback that receives each member of an object, behind `dyn` (`small-code`).
#[cfg(feature = "small-code")]
type Member<'a, 'f> = dyn FnMut(RawStr<'a>, Value<'a>) -> Result<(), JsonError> + 'f;

/// Scanner over one complete JSON text.
pub(crate) struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// Added to offsets in errors (for sub-scanners over a slice of a larger body).
    base: usize,
}

impl<'a> Scanner<'a> {
    /// Checks that `body` is UTF-8 and starts scanning it.
    pub fn new(body: &'a [u8]) -> Result<Self, JsonError> {
        let text = core::str::from_utf8(body).map_err(|e| JsonError::InvalidUtf8 {
            offset: e.valid_up_to(),
        })?;
        Ok(Self::from_str(text, 0))
    }

    /// Scans `text`, which starts at offset `base` of the body.
    pub fn from_str(text: &'a str, base: usize) -> Self {
        Self {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            base,
        }
    }

    fn offset(&self, i: usize) -> usize {
        self.base.saturating_add(i)
    }

    fn syntax(&self) -> JsonError {
        if self.pos >= self.bytes.len() {
            JsonError::Truncated
        } else {
            JsonError::Syntax {
                offset: self.offset(self.pos),
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// With the `small-code` feature never inlined: called between every two tokens, and one
    /// shared copy is much smaller than one per call site (firmware `.text`).
    #[cfg_attr(feature = "small-code", inline(never))]
    fn skip_ws(&mut self) -> Option<u8> {
        while let Some(b) = self.peek() {
            if !is_ws(b) {
                return Some(b);
            }
            self.pos += 1;
        }
        None
    }

    fn expect(&mut self, b: u8) -> Result<(), JsonError> {
        if self.skip_ws() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.syntax())
        }
    }

    fn slice(&self, start: usize, end: usize) -> Result<&'a str, JsonError> {
        // Boundaries are always next to ASCII delimiters, so this cannot fail on a UTF-8 text.
        self.text.get(start..end).ok_or(JsonError::Syntax {
            offset: self.offset(start),
        })
    }

    /// Parses the single top-level object, calling `member` for each key/value, then checks
    /// that only whitespace follows.
    ///
    /// With the `small-code` feature the callback goes behind `dyn`: one copy of the object walk
    /// however many callbacks there are (the firmware image keeps one walker instead of one per
    /// parser). Hosts get a walker per callback, with the callback inlined into it.
    pub fn top_object<F>(self, mut member: F) -> Result<(), JsonError>
    where
        F: FnMut(RawStr<'a>, Value<'a>) -> Result<(), JsonError>,
    {
        #[cfg(feature = "small-code")]
        let member: &mut Member<'a, '_> = &mut member;
        #[cfg(not(feature = "small-code"))]
        let member = &mut member;
        self.walk_top(member)
    }

    fn walk_top<M>(mut self, member: &mut M) -> Result<(), JsonError>
    where
        M: FnMut(RawStr<'a>, Value<'a>) -> Result<(), JsonError> + ?Sized,
    {
        match self.skip_ws() {
            Some(b'{') => {}
            Some(_) => return Err(JsonError::NotAnObject),
            None => return Err(JsonError::Truncated),
        }
        self.object(member)?;
        if self.skip_ws().is_some() {
            return Err(JsonError::TrailingData {
                offset: self.offset(self.pos),
            });
        }
        Ok(())
    }

    /// Parses an object starting at `{` at the current position.
    fn object<M>(&mut self, member: &mut M) -> Result<(), JsonError>
    where
        M: FnMut(RawStr<'a>, Value<'a>) -> Result<(), JsonError> + ?Sized,
    {
        self.expect(b'{')?;
        if self.skip_ws() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            if self.skip_ws() != Some(b'"') {
                return Err(self.syntax());
            }
            let key = self.string()?;
            self.expect(b':')?;
            let value = self.value()?;
            member(key, value)?;
            match self.skip_ws() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.syntax()),
            }
        }
    }

    /// Scans a string whose opening quote is at the current position.
    fn string(&mut self) -> Result<RawStr<'a>, JsonError> {
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            i = skip_plain(self.bytes, i);
            match self.bytes.get(i) {
                None => return Err(JsonError::Truncated),
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    i = self.escape(i)?;
                }
                Some(&c) if c < 0x20 => {
                    return Err(JsonError::ControlCharacter {
                        offset: self.offset(i),
                    });
                }
                Some(_) => i += 1,
            }
        }
        let raw = self.slice(start, i)?;
        self.pos = i + 1;
        Ok(RawStr {
            raw,
            escaped,
            offset: self.offset(start),
        })
    }

    /// Validates the escape whose backslash is at `i`; returns the index after it.
    fn escape(&self, i: usize) -> Result<usize, JsonError> {
        match self.bytes.get(i + 1) {
            None => Err(JsonError::Truncated),
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(i + 2),
            Some(b'u') => match hex4(self.bytes, i + 2) {
                Ok(_) => Ok(i + 6),
                Err(None) => Err(JsonError::Truncated),
                Err(Some(_)) => Err(JsonError::InvalidEscape {
                    offset: self.offset(i),
                }),
            },
            Some(_) => Err(JsonError::InvalidEscape {
                offset: self.offset(i),
            }),
        }
    }

    /// Scans a number at the current position (JSON grammar); returns its text.
    fn number(&mut self) -> Result<&'a str, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.syntax()),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.syntax());
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.syntax());
            }
            self.digits();
        }
        self.slice(start, self.pos)
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), JsonError> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        if rest.starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else if word.starts_with(rest) {
            Err(JsonError::Truncated)
        } else {
            Err(JsonError::Syntax {
                offset: self.offset(self.pos),
            })
        }
    }

    /// Scans any value at the current position (after whitespace).
    fn value(&mut self) -> Result<Value<'a>, JsonError> {
        match self.skip_ws() {
            Some(b'"') => self.string().map(Value::Str),
            Some(b'-' | b'0'..=b'9') => self.number().map(Value::Num),
            Some(b't') => self.literal(b"true").map(|()| Value::Bool),
            Some(b'f') => self.literal(b"false").map(|()| Value::Bool),
            Some(b'n') => self.literal(b"null").map(|()| Value::Null),
            Some(b'{') => {
                let start = self.pos;
                self.skip_compound()?;
                Ok(Value::Object(
                    self.slice(start, self.pos)?,
                    self.offset(start),
                ))
            }
            // Only the `sources` feature's readers (workload identity) look inside arrays.
            Some(b'[') if !cfg!(feature = "sources") => {
                self.skip_compound().map(|()| Value::Array("", 0))
            }
            Some(b'[') => {
                let start = self.pos;
                self.skip_compound()?;
                Ok(Value::Array(
                    self.slice(start, self.pos)?,
                    self.offset(start),
                ))
            }
            _ => Err(self.syntax()),
        }
    }

    /// Skips the object or array at the current position, iteratively.
    fn skip_compound(&mut self) -> Result<(), JsonError> {
        // Bit i of `stack` is 1 if nesting level i is an object, 0 for an array.
        let mut stack: u128 = 0;
        let mut depth: u32 = 0;
        'value: loop {
            let Some(open) = self.skip_ws() else {
                return Err(JsonError::Truncated);
            };
            match open {
                b'{' | b'[' => {
                    if depth >= MAX_DEPTH {
                        return Err(JsonError::TooDeep {
                            offset: self.offset(self.pos),
                        });
                    }
                    let is_object = open == b'{';
                    stack = (stack << 1) | u128::from(is_object);
                    depth += 1;
                    self.pos += 1;
                    let close = if is_object { b'}' } else { b']' };
                    if self.skip_ws() == Some(close) {
                        self.pos += 1;
                        stack >>= 1;
                        depth -= 1;
                    } else {
                        if is_object {
                            self.key_colon()?;
                        }
                        continue 'value;
                    }
                }
                b'"' => {
                    self.string()?;
                }
                b'-' | b'0'..=b'9' => {
                    self.number()?;
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                _ => return Err(self.syntax()),
            }
            // After a complete value: close containers or move to the next element.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                let in_object = stack & 1 == 1;
                match self.skip_ws() {
                    Some(b',') => {
                        self.pos += 1;
                        if in_object {
                            self.key_colon()?;
                        }
                        continue 'value;
                    }
                    Some(b'}') if in_object => {}
                    Some(b']') if !in_object => {}
                    _ => return Err(self.syntax()),
                }
                self.pos += 1;
                stack >>= 1;
                depth -= 1;
            }
        }
    }

    fn key_colon(&mut self) -> Result<(), JsonError> {
        if self.skip_ws() != Some(b'"') {
            return Err(self.syntax());
        }
        self.string()?;
        self.expect(b':')
    }
}

/// Parses the object `text` (a [`Value::Object`] at body offset `base`).
pub(crate) fn nested_object<'a, F>(text: &'a str, base: usize, member: F) -> Result<(), JsonError>
where
    F: FnMut(RawStr<'a>, Value<'a>) -> Result<(), JsonError>,
{
    Scanner::from_str(text, base).top_object(member)
}

#[cfg(feature = "sources")]
/// Calls `item` for each element of the array `text` (a [`Value::Array`] at body offset
/// `base`); nested elements arrive as skipped [`Value::Object`] / [`Value::Array`] values.
pub(crate) fn array_items<'a, F>(text: &'a str, base: usize, mut item: F) -> Result<(), JsonError>
where
    F: FnMut(Value<'a>) -> Result<(), JsonError>,
{
    let mut s = Scanner::from_str(text, base);
    s.expect(b'[')?;
    if s.skip_ws() == Some(b']') {
        s.pos += 1;
    } else {
        loop {
            let v = s.value()?;
            item(v)?;
            match s.skip_ws() {
                Some(b',') => s.pos += 1,
                Some(b']') => {
                    s.pos += 1;
                    break;
                }
                _ => return Err(s.syntax()),
            }
        }
    }
    if s.skip_ws().is_some() {
        return Err(JsonError::TrailingData {
            offset: s.offset(s.pos),
        });
    }
    Ok(())
}

/// Writes the unescaped form of `s` (validated by the scanner) to `w`.
///
/// A `\u` escape of a lone UTF-16 surrogate cannot be represented in UTF-8 and is
/// [`JsonError::InvalidEscape`].
pub(crate) fn unescape(s: RawStr<'_>, w: &mut SliceWriter<'_>) -> Result<(), JsonError> {
    let bytes = s.raw.as_bytes();
    let mut i = 0usize;
    let err = |i: usize| JsonError::InvalidEscape {
        offset: s.offset.saturating_add(i),
    };
    loop {
        let run = bytes
            .get(i..)
            .and_then(|r| r.iter().position(|&b| b == b'\\'))
            .map_or(bytes.len(), |p| i + p);
        w.put(bytes.get(i..run).unwrap_or_default());
        if run >= bytes.len() {
            return Ok(());
        }
        let byte = match bytes.get(run + 1) {
            Some(b'"') => b'"',
            Some(b'\\') => b'\\',
            Some(b'/') => b'/',
            Some(b'b') => 0x08,
            Some(b'f') => 0x0C,
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'u') => {
                let hi = hex4(bytes, run + 2).map_err(|_| err(run))?;
                let (code, next) = match hi {
                    0xD800..=0xDBFF => {
                        if bytes.get(run + 6..run + 8) != Some(b"\\u") {
                            return Err(err(run));
                        }
                        let lo = hex4(bytes, run + 8).map_err(|_| err(run))?;
                        if !(0xDC00..=0xDFFF).contains(&lo) {
                            return Err(err(run));
                        }
                        let c =
                            0x1_0000 + ((u32::from(hi) - 0xD800) << 10) + (u32::from(lo) - 0xDC00);
                        (c, run + 12)
                    }
                    0xDC00..=0xDFFF => return Err(err(run)),
                    c => (u32::from(c), run + 6),
                };
                let ch = char::from_u32(code).ok_or(err(run))?;
                let mut enc = [0u8; 4];
                w.put(ch.encode_utf8(&mut enc).as_bytes());
                i = next;
                continue;
            }
            _ => return Err(err(run)),
        };
        w.put_byte(byte);
        i = run + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_finds_first() {
        for pos in 0..8 {
            for b in [b'"', b'\\', 0u8, 0x1F, b' ', b'!'] {
                let mut a = *b"abcdefgh";
                a[pos] = b;
                let m = special(u64::from_le_bytes(a));
                assert_eq!(m.trailing_zeros() as usize / 8, pos, "byte {b:#x} at {pos}");
            }
        }
        assert_eq!(special(u64::from_le_bytes(*b"a#$~\x7f\xff\x80Z")), 0);
    }

    #[test]
    fn skip_plain_every_position() {
        let base = [b'a'; 200];
        for pos in 0..200 {
            for b in [b'"', b'\\', b'\n', b' '] {
                let mut s = base;
                s[pos] = b;
                assert_eq!(skip_plain(&s, 0), pos);
                assert_eq!(skip_plain(&s, pos), pos);
                for start in 0..pos {
                    assert_eq!(skip_plain(&s, start), pos);
                }
            }
        }
        for start in 0..=200 {
            assert_eq!(skip_plain(&base, start), 200);
        }
        assert_eq!(skip_plain(&base, 500), 200);
    }
}
