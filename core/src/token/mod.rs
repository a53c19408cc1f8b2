//! Token JSON in and out: [`Token`] and [`ServiceError`] parsing, expiry, redaction, and the
//! writers the server side uses ([`write_token_json`], [`write_error_json`]).
//!
//! # Parsing
//!
//! [`Token::parse`] reads the body of a `200 OK` from IMDS, the legacy VM extension or another
//! managed-identity source; [`ServiceError::parse`] reads an error body. Both take the complete
//! body and borrow every string from it. Numeric fields are accepted as JSON strings of digits
//! (what IMDS sends) or as JSON integers (Service Fabric). Unknown members, including nested
//! objects and arrays, are skipped. A member listed twice is an error, not "last one wins".
//!
//! JSON escapes: a string without backslashes is returned as a slice of the body. A string
//! with escapes (say `"https:\/\/vault.azure.net"`) is decoded into the caller's `scratch`
//! buffer, which then backs the returned `&str`. The decoded text is never longer than the
//! escaped one, so a scratch as long as the body always suffices; `&mut []` is fine for bodies
//! without escapes, and too small a scratch is [`JsonError::ScratchTooSmall`] with the exact
//! size. Escaped text is never returned as if it were decoded.
//!
//! The parser is a dedicated scanner (see `scan.rs`) rather than a serde derive: the
//! ~2 KB `access_token` dominates the cost and is scanned 16 bytes per step.

mod emit;
mod expiry;
pub(crate) mod scan;

pub use crate::secret::Secret;
use core::fmt;

pub use emit::{
    IMDS_EXT_EXPIRES_IN, Shape, TokenJson, write_error_json, write_json_string, write_token_json,
};
pub use expiry::parse_expires_on;
pub use scan::MAX_DEPTH;

use crate::request::Style;
use crate::write::{BufferTooSmall, SliceWriter};
use scan::{RawStr, Scanner, Value};

/// A member of a token or error body, named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Field {
    /// `access_token`
    AccessToken,
    /// `client_id`
    ClientId,
    /// `expires_in`
    ExpiresIn,
    /// `expires_on`
    ExpiresOn,
    /// `ext_expires_in`
    ExtExpiresIn,
    /// `not_before`
    NotBefore,
    /// `resource`
    Resource,
    /// `token_type`
    TokenType,
    /// `refresh_token`
    RefreshToken,
    /// `object_id`
    ObjectId,
    /// `msi_res_id`
    MsiResId,
    /// `mi_res_id` (Arc's echo may use App Service's spelling)
    MiResId,
    /// `error`
    Error,
    /// `error_description`
    ErrorDescription,
    /// `message` / `Message` (App Service and the 2017 shape)
    Message,
    /// `correlationId` / `CorrelationId`
    CorrelationId,
    /// `statusCode` / `StatusCode`
    StatusCode,
    /// `ErrorCode` (the 2017 Functions shape)
    ErrorCode,
    /// `ExceptionMessage` (the 2017 Functions shape)
    ExceptionMessage,
}

impl Field {
    /// The JSON key.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::ClientId => "client_id",
            Self::ExpiresIn => "expires_in",
            Self::ExpiresOn => "expires_on",
            Self::ExtExpiresIn => "ext_expires_in",
            Self::NotBefore => "not_before",
            Self::Resource => "resource",
            Self::TokenType => "token_type",
            Self::RefreshToken => "refresh_token",
            Self::ObjectId => "object_id",
            Self::MsiResId => "msi_res_id",
            Self::MiResId => "mi_res_id",
            Self::Error => "error",
            Self::ErrorDescription => "error_description",
            Self::Message => "message",
            Self::CorrelationId => "correlationId",
            Self::StatusCode => "statusCode",
            Self::ErrorCode => "ErrorCode",
            Self::ExceptionMessage => "ExceptionMessage",
        }
    }

    const fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a token or error body could not be parsed. Offsets are byte offsets in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonError {
    /// The body ends in the middle of the JSON value (a truncated or short read).
    Truncated,
    /// The body is not valid JSON at `offset`.
    Syntax {
        /// Where the unexpected byte is.
        offset: usize,
    },
    /// The body is JSON but not an object (`[…]`, a string, a number…).
    NotAnObject,
    /// Something other than whitespace follows the object at `offset`.
    TrailingData {
        /// Where the extra data starts.
        offset: usize,
    },
    /// The body is not UTF-8 from `offset` on.
    InvalidUtf8 {
        /// Length of the valid UTF-8 prefix.
        offset: usize,
    },
    /// A string contains a raw control character (JSON requires `\n`-style escapes).
    ControlCharacter {
        /// Where the control character is.
        offset: usize,
    },
    /// An invalid backslash escape, or a `\u` escape of a lone UTF-16 surrogate, at `offset`.
    InvalidEscape {
        /// Where the backslash is.
        offset: usize,
    },
    /// Objects/arrays nest deeper than [`MAX_DEPTH`] inside an ignored member.
    TooDeep {
        /// Where the limit was exceeded.
        offset: usize,
    },
    /// A required member is absent (or `null`).
    MissingField {
        /// The absent member.
        field: Field,
    },
    /// Neither `expires_on` nor `expires_in` is present: the token's lifetime is unknown.
    MissingExpiry,
    /// A member appears twice.
    DuplicateField {
        /// The repeated member.
        field: Field,
    },
    /// A member has the wrong JSON type (e.g. an object where a string belongs).
    InvalidType {
        /// The member.
        field: Field,
    },
    /// A numeric member is not a non-negative integer (digits only, as a string or a number).
    InvalidNumber {
        /// The member.
        field: Field,
    },
    /// A numeric member does not fit in a `u64`.
    NumberOverflow {
        /// The member.
        field: Field,
    },
    /// A value that goes into an HTTP header (`access_token`, `token_type`) decodes to text
    /// with a control character (an escaped CR, LF, …, or a raw DEL, which JSON allows).
    ControlInHeaderValue {
        /// The member.
        field: Field,
    },
    /// The scratch buffer cannot hold the decoded escaped strings; `required` bytes would.
    ScratchTooSmall {
        /// Total bytes the decoded strings need.
        required: usize,
    },
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("JSON body ends early (truncated response?)"),
            Self::Syntax { offset } => write!(f, "invalid JSON at byte {offset}"),
            Self::NotAnObject => f.write_str("JSON body is not an object"),
            Self::TrailingData { offset } => {
                write!(f, "unexpected data after the JSON object at byte {offset}")
            }
            Self::InvalidUtf8 { offset } => write!(f, "JSON body is not UTF-8 at byte {offset}"),
            Self::ControlCharacter { offset } => {
                write!(f, "raw control character in a JSON string at byte {offset}")
            }
            Self::InvalidEscape { offset } => {
                write!(f, "invalid escape in a JSON string at byte {offset}")
            }
            Self::TooDeep { offset } => write!(
                f,
                "JSON nests deeper than {MAX_DEPTH} levels at byte {offset}"
            ),
            Self::MissingField { field } => write!(f, "JSON member \"{field}\" is missing"),
            Self::MissingExpiry => {
                f.write_str("token has neither \"expires_on\" nor \"expires_in\"")
            }
            Self::DuplicateField { field } => {
                write!(f, "JSON member \"{field}\" appears more than once")
            }
            Self::InvalidType { field } => {
                write!(f, "JSON member \"{field}\" has the wrong type")
            }
            Self::InvalidNumber { field } => write!(
                f,
                "JSON member \"{field}\" is not a non-negative integer (digits only)"
            ),
            Self::NumberOverflow { field } => {
                write!(
                    f,
                    "JSON member \"{field}\" is too large for a 64-bit integer"
                )
            }
            Self::ControlInHeaderValue { field } => write!(
                f,
                "JSON member \"{field}\" contains a control character and cannot be sent in a header"
            ),
            Self::ScratchTooSmall { required } => write!(
                f,
                "scratch buffer too small to decode escaped JSON strings: {required} bytes required"
            ),
        }
    }
}

impl core::error::Error for JsonError {}

/// A successful token response (protocol §1.7). Times are Unix epoch seconds; durations are
/// seconds. `Debug` shows everything except the secrets.
///
/// Required: `access_token`, `resource`, `token_type`, and at least one of `expires_on` /
/// `expires_in` (IMDS always sends both; App Service sends only `expires_on`). Everything else
/// is optional so the same parser serves the extension and other managed-identity sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Token<'a> {
    /// The bearer token.
    pub access_token: Secret<'a>,
    /// Client ID of the identity that was used (modern IMDS).
    pub client_id: Option<&'a str>,
    /// Seconds until expiry, counted from when the response was sent.
    pub expires_in: Option<u64>,
    /// Expiry time (the JWT's `exp`).
    pub expires_on: Option<u64>,
    /// "Extended" lifetime in seconds (modern IMDS: `86399`).
    pub ext_expires_in: Option<u64>,
    /// Start of validity (the JWT's `nbf`).
    pub not_before: Option<u64>,
    /// Echo of the requested resource.
    pub resource: &'a str,
    /// Token type, `Bearer`.
    pub token_type: &'a str,
    /// Legacy responses' refresh token (always empty in practice).
    pub refresh_token: Option<Secret<'a>>,
    /// Object ID of the identity, if the source reports it.
    pub object_id: Option<&'a str>,
    /// ARM resource ID of the identity, if the source reports it.
    pub msi_res_id: Option<&'a str>,
    /// The same under App Service's name `mi_res_id` (an Arc agent's echo may use it).
    pub mi_res_id: Option<&'a str>,
}

/// Decodes escaped strings into consecutive parts of the caller's scratch buffer.
struct Scratch<'a> {
    rest: &'a mut [u8],
    required: usize,
    short: bool,
}

impl<'a> Scratch<'a> {
    fn new(buf: &'a mut [u8]) -> Self {
        Self {
            rest: buf,
            required: 0,
            short: false,
        }
    }

    /// The decoded text of `s`: borrowed from the body when it has no escapes.
    fn text(&mut self, s: RawStr<'a>) -> Result<&'a str, JsonError> {
        if !s.escaped {
            return Ok(s.raw);
        }
        let mut w = SliceWriter::new(&mut *self.rest);
        scan::unescape(s, &mut w)?;
        match w.finish() {
            Ok(n) => {
                self.required = self.required.saturating_add(n);
                let buf = core::mem::take(&mut self.rest);
                let Some((head, tail)) = buf.split_at_mut_checked(n) else {
                    self.short = true;
                    return Ok("");
                };
                self.rest = tail;
                let head: &'a [u8] = head;
                core::str::from_utf8(head)
                    .map_err(|_| JsonError::InvalidEscape { offset: s.offset })
            }
            Err(BufferTooSmall { required }) => {
                self.required = self.required.saturating_add(required);
                self.short = true;
                Ok("")
            }
        }
    }

    fn string(&mut self, v: Value<'a>, field: Field) -> Result<Option<&'a str>, JsonError> {
        match v {
            Value::Str(s) => self.text(s).map(Some),
            Value::Null => Ok(None),
            _ => Err(JsonError::InvalidType { field }),
        }
    }

    fn finish(&self) -> Result<(), JsonError> {
        if self.short {
            Err(JsonError::ScratchTooSmall {
                required: self.required,
            })
        } else {
            Ok(())
        }
    }
}

/// Digits only, checked: the value of a numeric member.
fn digits(text: &[u8], field: Field) -> Result<u64, JsonError> {
    if text.is_empty() {
        return Err(JsonError::InvalidNumber { field });
    }
    let mut n: u64 = 0;
    for &b in text {
        if !b.is_ascii_digit() {
            return Err(JsonError::InvalidNumber { field });
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(JsonError::NumberOverflow { field })?;
    }
    Ok(n)
}

/// A numeric member given as a JSON integer or a string of digits; `null` is absent.
fn number(v: Value<'_>, field: Field) -> Result<Option<u64>, JsonError> {
    match v {
        Value::Null => Ok(None),
        Value::Num(n) => digits(n.as_bytes(), field).map(Some),
        Value::Str(s) if !s.escaped => digits(s.raw.as_bytes(), field).map(Some),
        Value::Str(s) => {
            // Escaped digits (`"\u0031"`) are legal JSON; decode into a small stack buffer.
            let mut buf = [0u8; 32];
            let mut w = SliceWriter::new(&mut buf);
            scan::unescape(s, &mut w)?;
            let n = w.finish().map_err(|_| JsonError::InvalidNumber { field })?;
            digits(buf.get(..n).unwrap_or_default(), field).map(Some)
        }
        _ => Err(JsonError::InvalidType { field }),
    }
}

/// `expires_on`: a number as [`number`] reads it, or a date string ([`parse_expires_on`]).
fn expires_on(v: Value<'_>) -> Result<Option<u64>, JsonError> {
    let field = Field::ExpiresOn;
    // Without the `sources` feature only IMDS's and the extension's epoch forms are read.
    let Value::Str(s) = v else {
        return number(v, field);
    };
    if !cfg!(feature = "sources") {
        return number(v, field);
    }
    if !s.escaped {
        return epoch_or_date(s.raw);
    }
    let mut buf = [0u8; 64];
    let mut w = SliceWriter::new(&mut buf);
    scan::unescape(s, &mut w)?;
    let n = w.finish().map_err(|_| JsonError::InvalidNumber { field })?;
    let text = core::str::from_utf8(buf.get(..n).unwrap_or_default())
        .map_err(|_| JsonError::InvalidNumber { field })?;
    epoch_or_date(text)
}

/// An `expires_on` text: epoch digits (IMDS's form, read in one pass), else a date.
fn epoch_or_date(text: &str) -> Result<Option<u64>, JsonError> {
    let field = Field::ExpiresOn;
    match digits(text.as_bytes(), field) {
        Ok(n) => Ok(Some(n)),
        // Not all digits (a date), or digits past u64 followed by more text: try a date.
        Err(JsonError::InvalidNumber { .. } | JsonError::NumberOverflow { .. })
            if !text.bytes().all(|b| b.is_ascii_digit()) =>
        {
            parse_expires_on(text)
                .map(Some)
                .ok_or(JsonError::InvalidNumber { field })
        }
        Err(e) => Err(e),
    }
}

/// Resolves a key to a known field; escaped keys are decoded into `buf`.
fn field_of(
    key: RawStr<'_>,
    buf: &mut [u8; 24],
    table: fn(&[u8]) -> Option<Field>,
) -> Option<Field> {
    if !key.escaped {
        return table(key.raw.as_bytes());
    }
    let mut w = SliceWriter::new(buf);
    scan::unescape(key, &mut w).ok()?;
    let n = w.finish().ok()?;
    table(buf.get(..n)?)
}

/// The members of a token body, looked up by [`token_field`].
const TOKEN_FIELDS: [Field; 12] = [
    Field::AccessToken,
    Field::ClientId,
    Field::ExpiresIn,
    Field::ExpiresOn,
    Field::ExtExpiresIn,
    Field::NotBefore,
    Field::Resource,
    Field::TokenType,
    Field::RefreshToken,
    Field::ObjectId,
    Field::MsiResId,
    Field::MiResId,
];

/// With the `small-code` feature, a loop over a table: a `match` on byte strings compiles to
/// a comparison tree of about 1 KB of firmware `.text`.
#[cfg(feature = "small-code")]
fn token_field(key: &[u8]) -> Option<Field> {
    TOKEN_FIELDS
        .into_iter()
        .find(|f| f.as_str().as_bytes() == key)
}

/// Without `small-code` (hosts), a `match`: the key's length picks one or two candidates,
/// where the table loop called `memcmp` for each entry (`cargo xtask bench`, parse).
#[cfg(not(feature = "small-code"))]
fn token_field(key: &[u8]) -> Option<Field> {
    let field = match key {
        b"access_token" => Field::AccessToken,
        b"client_id" => Field::ClientId,
        b"expires_in" => Field::ExpiresIn,
        b"expires_on" => Field::ExpiresOn,
        b"ext_expires_in" => Field::ExtExpiresIn,
        b"not_before" => Field::NotBefore,
        b"resource" => Field::Resource,
        b"token_type" => Field::TokenType,
        b"refresh_token" => Field::RefreshToken,
        b"object_id" => Field::ObjectId,
        b"msi_res_id" => Field::MsiResId,
        b"mi_res_id" => Field::MiResId,
        _ => return None,
    };
    debug_assert!(TOKEN_FIELDS.contains(&field));
    Some(field)
}

/// Records `field` as seen; a second sighting is an error.
fn mark(seen: &mut u32, field: Field) -> Result<(), JsonError> {
    if *seen & field.bit() != 0 {
        return Err(JsonError::DuplicateField { field });
    }
    *seen |= field.bit();
    Ok(())
}

fn header_safe(s: &str, field: Field) -> Result<&str, JsonError> {
    if s.bytes().any(|b| b < 0x20 || b == 0x7F) {
        Err(JsonError::ControlInHeaderValue { field })
    } else {
        Ok(s)
    }
}

/// True if `bytes` holds a DEL (0x7F). A branch-free OR-fold over 64-byte blocks, which LLVM
/// vectorises: `<[u8]>::contains` scans a word at a time and cost the whole-response parse ~25%
/// more instructions on a 2.3 KB token (`cargo xtask bench`).
fn has_del(bytes: &[u8]) -> bool {
    let (blocks, rest) = bytes.as_chunks::<64>();
    blocks
        .iter()
        .any(|b| b.iter().fold(0u8, |acc, &c| acc | u8::from(c == 0x7F)) != 0)
        || rest.contains(&0x7F)
}

impl<'a> Token<'a> {
    /// Parses a token body. `scratch` backs strings that contain JSON escapes (see the module
    /// docs); pass `&mut []` to require that there are none.
    pub fn parse(body: &'a [u8], scratch: &'a mut [u8]) -> Result<Self, JsonError> {
        Self::parse_inner(body, scratch, true)
    }

    /// Parses a token body from an endpoint speaking `style`: as [`Token::parse`], except
    /// that Cloud Shell's body may omit `resource` (no SDK reads it there and no recorded
    /// body shows it), which then parses as `""`. Every other source must echo it.
    pub fn parse_for(
        style: Style,
        body: &'a [u8],
        scratch: &'a mut [u8],
    ) -> Result<Self, JsonError> {
        Self::parse_inner(
            body,
            scratch,
            !cfg!(feature = "sources") || style != Style::CloudShell,
        )
    }

    #[allow(clippy::similar_names)] // expires_in / expires_on are the protocol's names
    fn parse_inner(
        body: &'a [u8],
        scratch: &'a mut [u8],
        need_resource: bool,
    ) -> Result<Self, JsonError> {
        let mut sc = Scratch::new(scratch);
        let mut seen = 0u32;
        let mut access_token = None;
        let mut access_escaped = false;
        let mut client_id = None;
        let mut expires_in = None;
        let mut expires_on = None;
        let mut ext_expires_in = None;
        let mut not_before = None;
        let mut resource = None;
        let mut token_type = None;
        let mut refresh_token = None;
        let mut object_id = None;
        let mut msi_res_id = None;
        let mut mi_res_id = None;
        let mut keybuf = [0u8; 24];
        Scanner::new(body)?.top_object(|key, value| {
            let Some(field) = field_of(key, &mut keybuf, token_field) else {
                return Ok(());
            };
            mark(&mut seen, field)?;
            match field {
                Field::AccessToken => {
                    access_escaped = matches!(value, Value::Str(s) if s.escaped);
                    access_token = sc.string(value, field)?;
                }
                Field::ClientId => client_id = sc.string(value, field)?,
                Field::ExpiresIn => expires_in = number(value, field)?,
                Field::ExpiresOn => expires_on = self::expires_on(value)?,
                Field::ExtExpiresIn => ext_expires_in = number(value, field)?,
                Field::NotBefore => not_before = number(value, field)?,
                Field::Resource => resource = sc.string(value, field)?,
                Field::TokenType => token_type = sc.string(value, field)?,
                Field::RefreshToken => refresh_token = sc.string(value, field)?,
                Field::ObjectId => object_id = sc.string(value, field)?,
                Field::MsiResId => msi_res_id = sc.string(value, field)?,
                Field::MiResId if cfg!(feature = "sources") => {
                    mi_res_id = sc.string(value, field)?;
                }
                _ => {}
            }
            Ok(())
        })?;
        sc.finish()?;
        let access_token = access_token.ok_or(JsonError::MissingField {
            field: Field::AccessToken,
        })?;
        if access_escaped {
            header_safe(access_token, Field::AccessToken)?;
        } else if has_del(access_token.as_bytes()) {
            // The scanner refuses raw C0 controls in strings, but a raw DEL is valid JSON.
            return Err(JsonError::ControlInHeaderValue {
                field: Field::AccessToken,
            });
        }
        let token_type = header_safe(
            token_type.ok_or(JsonError::MissingField {
                field: Field::TokenType,
            })?,
            Field::TokenType,
        )?;
        let resource = match resource {
            Some(r) => r,
            None if !need_resource => "",
            None => {
                return Err(JsonError::MissingField {
                    field: Field::Resource,
                });
            }
        };
        if expires_on.is_none() && expires_in.is_none() {
            return Err(JsonError::MissingExpiry);
        }
        Ok(Self {
            access_token: Secret::new(access_token),
            client_id,
            expires_in,
            expires_on,
            ext_expires_in,
            not_before,
            resource,
            token_type,
            refresh_token: refresh_token.map(Secret::new),
            object_id,
            msi_res_id,
            mi_res_id,
        })
    }

    /// When the token expires, in Unix seconds: `expires_on` if present, otherwise
    /// `now + expires_in` (pass the time the response was received). A token with neither
    /// (which [`Token::parse`] never returns) expires at `now`.
    pub fn expires_at(&self, now: u64) -> u64 {
        match (self.expires_on, self.expires_in) {
            (Some(on), _) => on,
            (None, Some(secs)) => now.saturating_add(secs),
            (None, None) => now,
        }
    }
}

/// An error answer from the token endpoint: HTTP status, `Retry-After` (both from the HTTP
/// layer) and what the body says, in one shape for every source.
///
/// | body | `error` | `description` | `correlation_id` |
/// |---|---|---|---|
/// | IMDS `{"error":"…","error_description":"…"}` (and `{"error":"Not found"}`) | `error` | `error_description` | — |
/// | nested `{"error":{"code":…,"message":…,"correlationId":…}}` (Service Fabric, Cloud Shell, `UnsupportedApiVersion`) | `code` | `message` | `correlationId` |
/// | App Service `{"statusCode":…,"message":…,"correlationId":…}` | `""` | `message` | `correlationId` |
/// | 2017 Functions `{"ExceptionMessage":…,"ErrorCode":…,"StatusCode":…,"Message":…,"CorrelationId":…}` | `ErrorCode` | `Message`, else `ExceptionMessage` | `CorrelationId` |
///
/// An empty `message` / `Message` / `ExceptionMessage` / correlation id counts as absent (the
/// 2017 shape sends `"ExceptionMessage":""` and `"Message":null`). A body with none of
/// `error`, `ErrorCode`, `message`/`Message`, `ExceptionMessage`, `statusCode`/`StatusCode` is
/// not an error body ([`JsonError::MissingField`] naming `error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceError<'a> {
    /// HTTP status code.
    pub status: u16,
    /// The error code, e.g. `invalid_request`; empty when the body has none (App Service).
    /// Branch on this, not on the description.
    pub error: &'a str,
    /// Human text; may change at any time.
    pub description: Option<&'a str>,
    /// `Retry-After` in seconds, if the response had one.
    pub retry_after: Option<u64>,
    /// The service's correlation id, if the body has one (quote it to Azure support).
    pub correlation_id: Option<&'a str>,
}

fn error_field(key: &[u8]) -> Option<Field> {
    match key {
        b"error" => Some(Field::Error),
        b"error_description" => Some(Field::ErrorDescription),
        // The other sources' shapes (App Service, 2017) are read with the `sources` feature.
        _ if !cfg!(feature = "sources") => None,
        b"message" | b"Message" => Some(Field::Message),
        b"correlationId" | b"CorrelationId" => Some(Field::CorrelationId),
        b"statusCode" | b"StatusCode" => Some(Field::StatusCode),
        b"ErrorCode" => Some(Field::ErrorCode),
        b"ExceptionMessage" => Some(Field::ExceptionMessage),
        _ => None,
    }
}

fn nested_error_field(key: &[u8]) -> Option<Field> {
    match key {
        b"code" => Some(Field::Error),
        b"message" => Some(Field::ErrorDescription),
        b"correlationId" => Some(Field::CorrelationId),
        _ => None,
    }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

impl<'a> ServiceError<'a> {
    /// A service error from its parts (e.g. one a shell kept from an earlier answer).
    pub const fn new(
        status: u16,
        error: &'a str,
        description: Option<&'a str>,
        retry_after: Option<u64>,
    ) -> Self {
        Self {
            status,
            error,
            description,
            retry_after,
            correlation_id: None,
        }
    }

    /// With a correlation id.
    #[must_use]
    pub const fn with_correlation_id(mut self, id: Option<&'a str>) -> Self {
        self.correlation_id = id;
        self
    }

    /// Parses an error body; `status` and `retry_after` come from the HTTP head. `scratch`
    /// works as for [`Token::parse`].
    pub fn parse(
        status: u16,
        retry_after: Option<u64>,
        body: &'a [u8],
        scratch: &'a mut [u8],
    ) -> Result<Self, JsonError> {
        let mut sc = Scratch::new(scratch);
        let mut seen = 0u32;
        let mut error = None;
        let mut error_code = None;
        let mut description = None;
        let mut nested_description = None;
        let mut message = None;
        let mut exception_message = None;
        let mut correlation_id = None;
        let mut nested_correlation_id = None;
        let mut keybuf = [0u8; 24];
        Scanner::new(body)?.top_object(|key, value| {
            let Some(field) = field_of(key, &mut keybuf, error_field) else {
                return Ok(());
            };
            mark(&mut seen, field)?;
            match (field, value) {
                // The nested shape is the other sources' (App Service, Service Fabric, Cloud
                // Shell); IMDS-only builds leave it out.
                (Field::Error, Value::Object(text, offset)) if cfg!(feature = "sources") => {
                    let mut inner_seen = 0u32;
                    let mut inner_buf = [0u8; 24];
                    scan::nested_object(text, offset, |k, v| {
                        let Some(f) = field_of(k, &mut inner_buf, nested_error_field) else {
                            return Ok(());
                        };
                        mark(&mut inner_seen, f)?;
                        match f {
                            Field::Error => error = sc.string(v, f)?,
                            Field::CorrelationId => nested_correlation_id = sc.string(v, f)?,
                            _ => nested_description = sc.string(v, f)?,
                        }
                        Ok(())
                    })?;
                    // The nested shape always names its code; without one it is not that shape.
                    if error.is_none() {
                        return Err(JsonError::MissingField {
                            field: Field::Error,
                        });
                    }
                }
                (Field::Error, v) => error = sc.string(v, field)?,
                // IMDS-only builds read `error` and `error_description` alone.
                (f, _) if !cfg!(feature = "sources") && f != Field::ErrorDescription => {}
                (Field::ErrorCode, v) => error_code = sc.string(v, field)?,
                (Field::Message, v) => message = sc.string(v, field)?,
                (Field::ExceptionMessage, v) => exception_message = sc.string(v, field)?,
                (Field::CorrelationId, v) => correlation_id = sc.string(v, field)?,
                // Any JSON value: the HTTP status is the one that counts.
                (Field::StatusCode, _) => {}
                (_, v) => description = sc.string(v, field)?,
            }
            Ok(())
        })?;
        sc.finish()?;
        let marker = [
            Field::Error,
            Field::ErrorCode,
            Field::Message,
            Field::ExceptionMessage,
            Field::StatusCode,
        ]
        .iter()
        .any(|f| seen & f.bit() != 0);
        if !marker {
            return Err(JsonError::MissingField {
                field: Field::Error,
            });
        }
        Ok(Self {
            status,
            error: error.or(error_code).unwrap_or(""),
            description: description
                .or(nested_description)
                .or(non_empty(message))
                .or(non_empty(exception_message)),
            retry_after,
            correlation_id: non_empty(correlation_id).or(non_empty(nested_correlation_id)),
        })
    }
}

impl fmt::Display for ServiceError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if !self.error.is_empty() {
            write!(f, " {}", self.error)?;
        }
        if let Some(d) = self.description {
            write!(f, ": {d}")?;
        }
        if let Some(c) = self.correlation_id {
            write!(f, " (correlation id {c})")?;
        }
        if let Some(s) = self.retry_after {
            write!(f, " (retry after {s} s)")?;
        }
        Ok(())
    }
}

impl core::error::Error for ServiceError<'_> {}

#[cfg(test)]
mod tests {
    use super::{Field, TOKEN_FIELDS, has_del, token_field};

    #[test]
    fn every_token_field_is_found_by_its_name_and_nothing_else_is() {
        for f in TOKEN_FIELDS {
            assert_eq!(token_field(f.as_str().as_bytes()), Some(f), "{f:?}");
        }
        for other in [
            &b""[..],
            b"error",
            b"access_tokenx",
            b"Access_Token",
            b"expires",
        ] {
            assert_eq!(token_field(other), None);
        }
        assert_eq!(token_field(b"mi_res_id"), Some(Field::MiResId));
    }

    #[test]
    fn has_del_at_every_position() {
        for len in [0usize, 1, 63, 64, 65, 130, 200] {
            let clean = [b'a'; 200];
            assert!(!has_del(&clean[..len]));
            for at in 0..len {
                let mut b = clean;
                b[at] = 0x7F;
                assert!(has_del(&b[..len]), "len {len} at {at}");
            }
        }
    }
}
