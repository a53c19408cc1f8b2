//! Incremental request and response head parsers.

use nom::Parser;
use nom::bytes::complete::{tag, take_while, take_while_m_n, take_while1};
use nom::character::complete::{char, satisfy};
use nom::combinator::opt;

use super::line::{
    PResult, is_field_byte, is_tchar, list_elements, next_line, parse_decimal, parse_field,
};
use super::{Framing, Headers, HttpError, Limits, RetryAfter, Status};

/// A byte range of the caller's buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    fn at(start: usize, len: usize) -> Self {
        Self {
            start,
            end: start.saturating_add(len),
        }
    }

    fn get(self, buf: &[u8]) -> &[u8] {
        buf.get(self.start..self.end).unwrap_or(&[])
    }

    /// The span as text; every span this module keeps covers validated ASCII.
    fn str(self, buf: &[u8]) -> &str {
        core::str::from_utf8(self.get(buf)).unwrap_or("")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Request,
    Response,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    StartLine,
    Headers,
    Done,
}

/// Which parser a [`Core`] method runs for: a const parameter (`true` for requests), so each
/// parser's copy holds only its own kind's code (the firmware links no request parsing).
const fn kind<const REQUEST: bool>() -> Kind {
    if REQUEST {
        Kind::Request
    } else {
        Kind::Response
    }
}

/// State shared by both parsers: where validation stopped and what the validated lines said.
#[derive(Debug, Clone)]
#[allow(clippy::struct_excessive_bools)] // independent facts gathered from independent headers
struct Core {
    limits: Limits,
    phase: Phase,
    /// Start of the next line to validate.
    pos: usize,
    /// Where to resume looking for the end of that line.
    scan: usize,
    skipped_blank: bool,
    /// Request method bytes are known to be token characters up to here.
    method_scan: usize,
    method_done: bool,
    minor: u8,
    status: u16,
    reason: Span,
    method: Span,
    authority: Option<Span>,
    path: Span,
    query: Option<Span>,
    block: Span,
    count: usize,
    content_length: Option<u64>,
    chunked: bool,
    conn_close: bool,
    conn_keep_alive: bool,
    hosts: usize,
    retry_after: Option<RetryAfter>,
    retry_after_seen: bool,
    framing: Framing,
    keep_alive: bool,
}

impl Core {
    const fn new(limits: Limits) -> Self {
        Self {
            limits,
            phase: Phase::StartLine,
            pos: 0,
            scan: 0,
            skipped_blank: false,
            method_scan: 0,
            method_done: false,
            minor: 0,
            status: 0,
            reason: Span { start: 0, end: 0 },
            method: Span { start: 0, end: 0 },
            authority: None,
            path: Span { start: 0, end: 0 },
            query: None,
            block: Span { start: 0, end: 0 },
            count: 0,
            content_length: None,
            chunked: false,
            conn_close: false,
            conn_keep_alive: false,
            hosts: 0,
            retry_after: None,
            retry_after_seen: false,
            framing: Framing::None,
            keep_alive: false,
        }
    }

    /// Validates complete lines from where the last call stopped. `Ok(true)` once the head is
    /// complete (`self.pos` is then its length).
    fn advance<const REQUEST: bool>(&mut self, buf: &[u8]) -> Result<bool, HttpError> {
        if buf.len() < self.pos {
            return Err(HttpError::BufferMismatch);
        }
        loop {
            match self.phase {
                Phase::Done => return Ok(true),
                // Another field line is starting: refuse without waiting for its end.
                Phase::Headers
                    if self.count >= self.limits.max_headers
                        && buf.get(self.pos).is_some_and(|&b| b != b'\r' && b != b'\n') =>
                {
                    return Err(HttpError::TooManyHeaders);
                }
                _ => {}
            }
            if self.phase == Phase::StartLine {
                // Refuse binary garbage (TLS, HTTP/2 to a client…) without waiting for a line.
                self.check_start_prefix::<REQUEST>(buf)?;
            }
            let lf_ok = kind::<REQUEST>() == Kind::Response;
            let Some(line) = next_line(
                buf,
                self.pos,
                &mut self.scan,
                self.limits.max_line_len,
                lf_ok,
            )?
            else {
                return Ok(false);
            };
            let content = buf
                .get(line.start..line.end)
                .ok_or(HttpError::BufferMismatch)?;
            match self.phase {
                Phase::StartLine => match kind::<REQUEST>() {
                    Kind::Response => {
                        self.status_line(content, line.start)?;
                        self.start_headers(line.next);
                    }
                    Kind::Request if content.is_empty() && !self.skipped_blank => {
                        // RFC 9112 §2.2: ignore one empty line before the request line.
                        self.skipped_blank = true;
                    }
                    Kind::Request => {
                        self.request_line(content, line.start)?;
                        self.start_headers(line.next);
                    }
                },
                Phase::Headers if content.is_empty() => {
                    self.block.end = line.start;
                    self.finish::<REQUEST>();
                    self.phase = Phase::Done;
                }
                Phase::Headers => self.field::<REQUEST>(content)?,
                Phase::Done => {}
            }
            self.pos = line.next;
            self.scan = line.next;
        }
    }

    /// Early check of an incomplete start line: a response must begin with `HTTP/`, a
    /// request with a token. Runs before the line is split so that the outcome does not depend
    /// on how the bytes were cut.
    fn check_start_prefix<const REQUEST: bool>(&mut self, buf: &[u8]) -> Result<(), HttpError> {
        // Only bytes a line may hold are looked at, so a too-long line is reported the same
        // way however the input was split.
        let end = buf
            .len()
            .min(self.pos.saturating_add(self.limits.max_line_len));
        let rest = buf.get(self.pos..end).ok_or(HttpError::BufferMismatch)?;
        match kind::<REQUEST>() {
            Kind::Response => {
                let n = rest.len().min(5);
                if rest.get(..n) != b"HTTP/".get(..n) {
                    return Err(HttpError::InvalidStatusLine);
                }
            }
            Kind::Request if !self.method_done => {
                let from = self.method_scan.max(self.pos);
                let mut i = from;
                for &b in buf.get(from..end).unwrap_or(&[]) {
                    match b {
                        b' ' => {
                            self.method_done = true;
                            return Ok(());
                        }
                        b'\r' | b'\n' => break,
                        b if is_tchar(b) => i = i.saturating_add(1),
                        _ => return Err(HttpError::InvalidMethod),
                    }
                }
                self.method_scan = i;
            }
            Kind::Request => {}
        }
        Ok(())
    }

    fn start_headers(&mut self, at: usize) {
        self.phase = Phase::Headers;
        self.block = Span { start: at, end: at };
    }

    fn status_line(&mut self, line: &[u8], at: usize) -> Result<(), HttpError> {
        let (rest, (major, minor)) =
            http_version(line).map_err(|_| HttpError::InvalidStatusLine)?;
        if major != 1 {
            return Err(HttpError::UnsupportedVersion);
        }
        self.minor = minor;
        let parsed: PResult<'_, (&[u8], Option<&[u8]>)> = (
            char(' '),
            take_while_m_n(3, 3, |b: u8| b.is_ascii_digit()),
            opt((char(' '), take_while(is_field_byte)).map(|(_, r)| r)),
        )
            .map(|(_, code, reason)| (code, reason))
            .parse(rest);
        let Ok((after, (code, reason))) = parsed else {
            return Err(HttpError::InvalidStatusCode);
        };
        if !after.is_empty() {
            // Either the code has more than three digits or the reason holds a control byte.
            return Err(if reason.is_some() {
                HttpError::InvalidStatusLine
            } else {
                HttpError::InvalidStatusCode
            });
        }
        self.status = match parse_decimal(code) {
            Ok(Some(n @ 100..=999)) => {
                u16::try_from(n).map_err(|_| HttpError::InvalidStatusCode)?
            }
            _ => return Err(HttpError::InvalidStatusCode),
        };
        let reason = reason.unwrap_or(&[]);
        self.reason = Span::at(
            at.saturating_add(line.len()).saturating_sub(reason.len()),
            reason.len(),
        );
        Ok(())
    }

    fn request_line(&mut self, line: &[u8], at: usize) -> Result<(), HttpError> {
        let parsed: PResult<'_, (&[u8], &[u8])> = (
            take_while1(is_tchar),
            char(' '),
            take_while1(|b: u8| b != b' '),
            char(' '),
        )
            .map(|(m, _, t, _)| (m, t))
            .parse(line);
        let Ok((version, (method, target))) = parsed else {
            let method_len = line.iter().take_while(|&&b| is_tchar(b)).count();
            return Err(match line.get(method_len) {
                Some(b' ') | None if method_len > 0 => HttpError::InvalidRequestLine,
                _ => HttpError::InvalidMethod,
            });
        };
        let (after, (major, minor)) =
            http_version(version).map_err(|_| HttpError::InvalidRequestLine)?;
        if !after.is_empty() {
            return Err(HttpError::InvalidRequestLine);
        }
        if major != 1 || minor > 1 {
            return Err(HttpError::UnsupportedVersion);
        }
        self.minor = minor;
        self.method = Span::at(at, method.len());
        let target_at = at.saturating_add(method.len()).saturating_add(1);
        let t = parse_target(target).ok_or(HttpError::InvalidTarget)?;
        self.authority = t
            .authority
            .map(|(s, n)| Span::at(target_at.saturating_add(s), n));
        self.path = Span::at(target_at.saturating_add(t.path.0), t.path.1);
        self.query = t
            .query
            .map(|(s, n)| Span::at(target_at.saturating_add(s), n));
        Ok(())
    }

    fn field<const REQUEST: bool>(&mut self, line: &[u8]) -> Result<(), HttpError> {
        let f = parse_field(line)?;
        self.count = self.count.saturating_add(1);
        if self.count > self.limits.max_headers {
            return Err(HttpError::TooManyHeaders);
        }
        let is = |n: &[u8]| f.name.eq_ignore_ascii_case(n);
        if is(b"content-length") {
            if self.chunked {
                return Err(HttpError::ContentLengthWithTransferEncoding);
            }
            for element in list_elements(f.value) {
                let n = match parse_decimal(element) {
                    Ok(Some(n)) => n,
                    Ok(None) => return Err(HttpError::ContentLengthOverflow),
                    Err(()) => return Err(HttpError::InvalidContentLength),
                };
                match self.content_length {
                    Some(prev) if prev != n => return Err(HttpError::ConflictingContentLength),
                    _ => self.content_length = Some(n),
                }
            }
        } else if is(b"transfer-encoding") {
            if self.content_length.is_some() {
                return Err(HttpError::ContentLengthWithTransferEncoding);
            }
            if self.minor == 0 {
                return Err(HttpError::TransferEncodingInHttp10);
            }
            for coding in list_elements(f.value) {
                if self.chunked || !coding.eq_ignore_ascii_case(b"chunked") {
                    return Err(HttpError::UnsupportedTransferEncoding);
                }
                self.chunked = true;
            }
        } else if is(b"connection") {
            for option in list_elements(f.value) {
                if option.eq_ignore_ascii_case(b"close") {
                    self.conn_close = true;
                } else if option.eq_ignore_ascii_case(b"keep-alive") {
                    self.conn_keep_alive = true;
                }
            }
        } else if REQUEST && is(b"host") {
            self.hosts = self.hosts.saturating_add(1);
            if self.hosts > 1 {
                return Err(HttpError::DuplicateHost);
            }
        } else if !REQUEST && is(b"retry-after") && !self.retry_after_seen {
            self.retry_after_seen = true;
            // A malformed Retry-After is ignored rather than failing the whole response.
            self.retry_after = RetryAfter::parse(f.value).ok();
        }
        Ok(())
    }

    fn finish<const REQUEST: bool>(&mut self) {
        let body_less = matches!(self.status, 100..=199 | 204 | 304);
        self.framing = match (kind::<REQUEST>(), self.chunked, self.content_length) {
            (Kind::Response, _, _) if body_less => Framing::None,
            (_, true, _) => Framing::Chunked,
            (_, false, Some(n)) => Framing::Length(n),
            (Kind::Request, false, None) => Framing::None,
            (Kind::Response, false, None) => Framing::UntilClose,
        };
        self.keep_alive = !self.conn_close
            && (self.minor >= 1 || self.conn_keep_alive)
            && self.framing != Framing::UntilClose;
    }

    fn headers<'b>(&self, buf: &'b [u8]) -> Headers<'b> {
        Headers::new(self.block.get(buf), self.count)
    }
}

/// `"HTTP/" DIGIT "." DIGIT`, as (major, minor).
fn http_version(i: &[u8]) -> PResult<'_, (u8, u8)> {
    let digit = || satisfy(|c| c.is_ascii_digit()).map(|c| u8::try_from(c).unwrap_or(0) & 0x0f);
    (tag("HTTP/"), digit(), char('.'), digit())
        .map(|(_, major, _, minor)| (major, minor))
        .parse(i)
}

/// Offsets (start, len) of a target's parts, relative to the target.
struct TargetParts {
    authority: Option<(usize, usize)>,
    path: (usize, usize),
    query: Option<(usize, usize)>,
}

/// A byte allowed in a URI path or query (RFC 3986 pchar plus `/` and `?`; `%` checked apart).
const fn is_uri_byte(b: u8) -> bool {
    matches!(b,
        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~'
        | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
        | b':' | b'@' | b'/' | b'?' | b'%')
}

/// A byte allowed in the authority of an absolute-form target (no userinfo).
const fn is_authority_byte(b: u8) -> bool {
    (is_uri_byte(b) && !matches!(b, b'@' | b'/' | b'?')) || matches!(b, b'[' | b']')
}

/// All bytes allowed and every `%` followed by two hex digits.
fn valid_uri_part(s: &[u8], allowed: fn(u8) -> bool) -> bool {
    let mut i = 0usize;
    while let Some(&b) = s.get(i) {
        if !allowed(b) {
            return false;
        }
        if b == b'%' {
            let hex = |k: usize| {
                s.get(i.saturating_add(k))
                    .is_some_and(u8::is_ascii_hexdigit)
            };
            if !(hex(1) && hex(2)) {
                return false;
            }
            i = i.saturating_add(2);
        }
        i = i.saturating_add(1);
    }
    true
}

fn parse_target(target: &[u8]) -> Option<TargetParts> {
    let (authority, path_at) = if target.first() == Some(&b'/') {
        (None, 0)
    } else {
        let scheme = target.get(..7)?;
        if !scheme.eq_ignore_ascii_case(b"http://") {
            return None;
        }
        let rest = target.get(7..)?;
        let len = rest
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .unwrap_or(rest.len());
        let auth = rest.get(..len)?;
        if auth.is_empty() || !valid_uri_part(auth, is_authority_byte) {
            return None;
        }
        (Some((7, len)), 7usize.saturating_add(len))
    };
    let rest = target.get(path_at..)?;
    if !valid_uri_part(rest, is_uri_byte) {
        return None;
    }
    let path_len = rest.iter().position(|&b| b == b'?').unwrap_or(rest.len());
    let query = (path_len < rest.len()).then(|| {
        let q = path_len.saturating_add(1);
        (path_at.saturating_add(q), rest.len().saturating_sub(q))
    });
    Some(TargetParts {
        authority,
        path: (path_at, path_len),
        query,
    })
}

/// A request method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method<'a> {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `OPTIONS`
    Options,
    /// Any other token (methods are case-sensitive: `get` lands here).
    Other(&'a str),
}

impl<'a> Method<'a> {
    /// Classifies a method token.
    pub fn from_token(token: &'a str) -> Self {
        match token {
            "GET" => Self::Get,
            "HEAD" => Self::Head,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "DELETE" => Self::Delete,
            "OPTIONS" => Self::Options,
            other => Self::Other(other),
        }
    }

    /// The method as sent.
    pub const fn as_str(&self) -> &'a str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
            Self::Options => "OPTIONS",
            Self::Other(s) => s,
        }
    }
}

/// A request target in origin-form or absolute-form, split but still percent-encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target<'a> {
    /// `host[:port]` of an absolute-form target (`http://host[:port]/…`), so a server can refuse
    /// other hosts; `None` in origin-form.
    pub authority: Option<&'a str>,
    /// The path, starting with `/` (an absolute-form target without a path gives `/`).
    pub path: &'a str,
    /// The raw query after `?`, if there was a `?`.
    pub query: Option<&'a str>,
}

/// A parsed response head. Borrowed from the buffer given to [`ResponseParser::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResponseHead<'a> {
    /// The `x` of `HTTP/1.x`.
    pub minor_version: u8,
    /// The status code, 100..=999.
    pub status: u16,
    /// The reason phrase (may be empty; may hold obs-text).
    pub reason: &'a [u8],
    /// The header fields.
    pub headers: Headers<'a>,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the connection may carry another request: HTTP/1.1 unless `Connection: close`,
    /// HTTP/1.0 only with `Connection: keep-alive`, never when the body runs until close.
    pub keep_alive: bool,
    /// The first `Retry-After` header, if present and well-formed (a malformed one is ignored).
    pub retry_after: Option<RetryAfter>,
}

/// A parsed request head. Borrowed from the buffer given to [`RequestParser::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestHead<'a> {
    /// The method.
    pub method: Method<'a>,
    /// The request target.
    pub target: Target<'a>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1 (other versions are refused).
    pub minor_version: u8,
    /// The header fields (at most one `Host`).
    pub headers: Headers<'a>,
    /// How the body is delimited: [`Framing::None`], [`Framing::Length`] or
    /// [`Framing::Chunked`].
    pub framing: Framing,
    /// Whether the connection stays open after the response: HTTP/1.1 unless
    /// `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
    pub keep_alive: bool,
}

/// Incremental parser of a response head.
///
/// Call [`parse`](Self::parse) with the same buffer each time, grown at its end by the bytes
/// just read (the bytes already given MUST NOT change). Each line is validated once; a call
/// after [`Status::Complete`] answers the same head again without re-validating.
#[derive(Debug, Clone)]
pub struct ResponseParser {
    core: Core,
}

impl ResponseParser {
    /// A parser for one response head.
    pub const fn new(limits: Limits) -> Self {
        Self {
            core: Core::new(limits),
        }
    }

    /// Validates what arrived since the last call; the head when the blank line is reached.
    pub fn parse<'b>(&mut self, buf: &'b [u8]) -> Result<Status<ResponseHead<'b>>, HttpError> {
        if !self.core.advance::<false>(buf)? {
            return Ok(Status::Partial);
        }
        Ok(self
            .head(buf)
            .map_or(Status::Partial, |value| Status::Complete {
                value,
                len: self.core.pos,
            }))
    }

    /// The completed head, rebuilt over `buf` (the buffer it was parsed from) without
    /// re-validating; `None` before completion.
    pub fn head<'b>(&self, buf: &'b [u8]) -> Option<ResponseHead<'b>> {
        let c = &self.core;
        (c.phase == Phase::Done).then(|| ResponseHead {
            minor_version: c.minor,
            status: c.status,
            reason: c.reason.get(buf),
            headers: c.headers(buf),
            framing: c.framing,
            keep_alive: c.keep_alive,
            retry_after: c.retry_after,
        })
    }

    /// True once a head has been completed.
    pub fn is_complete(&self) -> bool {
        self.core.phase == Phase::Done
    }

    /// Forgets everything, to parse a new head from the start of a buffer.
    pub fn reset(&mut self) {
        self.core = Core::new(self.core.limits);
    }
}

impl Default for ResponseParser {
    fn default() -> Self {
        Self::new(Limits::DEFAULT)
    }
}

/// Incremental parser of a request head (server side).
///
/// Same contract as [`ResponseParser`]. For pipelined requests, decode the body from the bytes
/// after the head's `len`, then [`reset`](Self::reset) and parse the next request from the
/// bytes after the body.
#[derive(Debug, Clone)]
pub struct RequestParser {
    core: Core,
}

impl RequestParser {
    /// A parser for one request head.
    pub const fn new(limits: Limits) -> Self {
        Self {
            core: Core::new(limits),
        }
    }

    /// [`parse`](Self::parse) answering only the head's framing (the server's first step,
    /// before it decodes the body in place and then asks for the [`head`](Self::head)): no
    /// head is built twice.
    pub(crate) fn parse_framing(&mut self, buf: &[u8]) -> Result<Status<Framing>, HttpError> {
        if !self.core.advance::<true>(buf)? || self.core.phase != Phase::Done {
            return Ok(Status::Partial);
        }
        Ok(Status::Complete {
            value: self.core.framing,
            len: self.core.pos,
        })
    }

    /// Validates what arrived since the last call; the head when the blank line is reached.
    pub fn parse<'b>(&mut self, buf: &'b [u8]) -> Result<Status<RequestHead<'b>>, HttpError> {
        if !self.core.advance::<true>(buf)? {
            return Ok(Status::Partial);
        }
        Ok(self
            .head(buf)
            .map_or(Status::Partial, |value| Status::Complete {
                value,
                len: self.core.pos,
            }))
    }

    /// The completed head, rebuilt over `buf` (the buffer it was parsed from) without
    /// re-validating; `None` before completion.
    pub fn head<'b>(&self, buf: &'b [u8]) -> Option<RequestHead<'b>> {
        let c = &self.core;
        (c.phase == Phase::Done).then(|| RequestHead {
            method: Method::from_token(c.method.str(buf)),
            target: Target {
                authority: c.authority.map(|s| s.str(buf)),
                path: if c.path.start == c.path.end {
                    "/"
                } else {
                    c.path.str(buf)
                },
                query: c.query.map(|s| s.str(buf)),
            },
            minor_version: c.minor,
            headers: c.headers(buf),
            framing: c.framing,
            keep_alive: c.keep_alive,
        })
    }

    /// True once a head has been completed.
    pub fn is_complete(&self) -> bool {
        self.core.phase == Phase::Done
    }

    /// Forgets everything, to parse a new head from the start of a buffer.
    pub fn reset(&mut self) {
        self.core = Core::new(self.core.limits);
    }
}

impl Default for RequestParser {
    fn default() -> Self {
        Self::new(Limits::DEFAULT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = |s: &[u8]| parse_target(s).map(|p| (p.authority, p.path, p.query));
        assert_eq!(t(b"/a?b"), Some((None, (0, 2), Some((3, 1)))));
        assert_eq!(t(b"/"), Some((None, (0, 1), None)));
        assert_eq!(t(b"/a?"), Some((None, (0, 2), Some((3, 0)))));
        assert_eq!(
            t(b"http://h:80/p?q"),
            Some((Some((7, 4)), (11, 2), Some((14, 1))))
        );
        assert_eq!(t(b"HTTP://h"), Some((Some((7, 1)), (8, 0), None)));
        assert_eq!(t(b"http://h?q"), Some((Some((7, 1)), (8, 0), Some((9, 1)))));
        assert_eq!(t(b"http://[::1]:80/"), Some((Some((7, 8)), (15, 1), None)));
        assert!(t(b"http://").is_none());
        assert!(t(b"http:///p").is_none());
        assert!(t(b"http://u@h/").is_none());
        assert!(t(b"https://h/").is_none());
        assert!(t(b"*").is_none());
        assert!(t(b"h:80").is_none());
        assert!(t(b"/a#f").is_none());
        assert!(t(b"/a%2").is_none());
        assert!(t(b"/a%zz").is_none());
        assert!(t(b"/a%2F").is_some());
        assert!(t(b"/a\"b").is_none());
        assert!(t(b"/a\x7f").is_none());
    }
}
