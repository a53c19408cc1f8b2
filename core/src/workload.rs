//! AKS workload identity, Entra's side of the federated-credential exchange: the token request's
//! form, the client assertion's claims, every check Entra makes on them and the `AADSTS` error
//! each failure gets, and the bytes of both answers.
//!
//! A pod holds a projected service-account token (a JWT from the cluster's issuer, `aud`
//! `api://AzureADTokenExchange`, `sub` `system:serviceaccount:<ns>:<sa>`) and posts it to
//! `{authority}/{tenant}/oauth2/v2.0/token` as `client_assertion` (form fields
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`, `client_id`,
//! `grant_type=client_credentials`, `scope=<resource>/.default`). Entra finds the application's
//! federated identity credential whose issuer, subject and audience match the assertion
//! (case-sensitively) and answers `{"token_type":"Bearer","expires_in":…,"ext_expires_in":…,
//! "access_token":…}`, or an error body with `error`, `error_description`, `error_codes`,
//! `timestamp`, `trace_id`, `correlation_id`, `error_uri`.
//!
//! The signature is the host's business (it holds the keys); everything else is decided here.
//!
//! ```
//! use mitoken_core::workload::{ExchangeForm, Aadsts};
//!
//! let body = b"grant_type=client_credentials&client_id=app&scope=https%3A%2F%2Fvault.azure.net%2F.default\
//! &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=a.b.c";
//! let mut scratch = [0u8; 512];
//! let form = ExchangeForm::parse(body, &mut scratch).unwrap();
//! let request = form.check().unwrap();
//! assert_eq!(request.resource, "https://vault.azure.net");
//! assert_eq!(request.assertion, "a.b.c");
//! ```
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use core::fmt;

use crate::query::{Pairs, Plus, QueryError, decode_into};
use crate::token::JsonError;
use crate::token::scan::{Scanner, Value, array_items, unescape};
use crate::token::write_json_string;
use crate::write::{BufferTooSmall, SliceWriter};

/// `client_assertion_type` of a JWT client assertion.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The audience Entra requires of a federated assertion.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";
/// The `expires_in` / `ext_expires_in` of an app token from the exchange (observed).
pub const TOKEN_LIFETIME_SECS: u64 = 86_399;
/// Clock skew Entra tolerates on an assertion's `nbf` / `exp`.
pub const CLOCK_SKEW_SECS: u64 = 300;
/// Most audiences an assertion may list.
pub const MAX_AUDIENCES: usize = 4;

/// Why a form body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormError {
    /// A field appears twice.
    Duplicate(&'static str),
    /// A field's value is not decodable (bad `%` escape or not UTF-8).
    Malformed(&'static str),
    /// The scratch buffer is too small for the decoded fields.
    ScratchTooSmall,
}

impl From<FormError> for Aadsts<'_> {
    fn from(_: FormError) -> Self {
        Self::MalformedRequest
    }
}

impl fmt::Display for FormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Duplicate(n) => write!(f, "form field '{n}' appears more than once"),
            Self::Malformed(n) => write!(f, "form field '{n}' is not valid percent-encoded UTF-8"),
            Self::ScratchTooSmall => f.write_str("form too large for the decode buffer"),
        }
    }
}

impl core::error::Error for FormError {}

/// The fields of a token request form, decoded (absent fields are `None`).
#[derive(Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExchangeForm<'a> {
    /// `grant_type`.
    pub grant_type: Option<&'a str>,
    /// `client_id`.
    pub client_id: Option<&'a str>,
    /// `scope`.
    pub scope: Option<&'a str>,
    /// `client_assertion_type`.
    pub client_assertion_type: Option<&'a str>,
    /// `client_assertion` (the projected token; never logged).
    pub client_assertion: Option<&'a str>,
    /// `client_secret` (refused: workload identity uses assertions).
    pub client_secret: bool,
}

impl fmt::Debug for ExchangeForm<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeForm")
            .field("grant_type", &self.grant_type)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .field("client_assertion_type", &self.client_assertion_type)
            .field(
                "client_assertion",
                &self.client_assertion.map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

const FORM_FIELDS: [&str; 5] = [
    "grant_type",
    "client_id",
    "scope",
    "client_assertion_type",
    "client_assertion",
];

impl<'a> ExchangeForm<'a> {
    /// Parses an `application/x-www-form-urlencoded` body; decoded values live in `scratch`.
    /// Unknown fields (`claims`, `client_info`…) are ignored.
    pub fn parse(body: &[u8], scratch: &'a mut [u8]) -> Result<Self, FormError> {
        let mut raw: [Option<&[u8]>; 5] = [None; 5];
        let mut client_secret = false;
        for (key, value) in Pairs::new(body) {
            if key == b"client_secret" {
                client_secret = true;
                continue;
            }
            let Some(i) = FORM_FIELDS.iter().position(|f| f.as_bytes() == key) else {
                continue;
            };
            let (Some(slot), Some(name)) = (raw.get_mut(i), FORM_FIELDS.get(i)) else {
                continue;
            };
            if slot.replace(value).is_some() {
                return Err(FormError::Duplicate(name));
            }
        }
        let mut rest: &'a mut [u8] = scratch;
        let mut out: [Option<&'a str>; 5] = [None; 5];
        for ((slot, value), name) in out.iter_mut().zip(raw).zip(FORM_FIELDS) {
            let Some(value) = value else { continue };
            let buf = core::mem::take(&mut rest);
            let n = match decode_into(value, buf, Plus::Space) {
                Ok(text) => text.len(),
                Err(QueryError::BufferTooSmall { .. }) => return Err(FormError::ScratchTooSmall),
                Err(_) => return Err(FormError::Malformed(name)),
            };
            let (head, tail) = buf.split_at_mut(n);
            rest = tail;
            let head: &'a [u8] = head;
            *slot = Some(core::str::from_utf8(head).map_err(|_| FormError::Malformed(name))?);
        }
        let [
            grant_type,
            client_id,
            scope,
            client_assertion_type,
            client_assertion,
        ] = out;
        Ok(Self {
            grant_type,
            client_id,
            scope,
            client_assertion_type,
            client_assertion,
            client_secret,
        })
    }

    /// Checks the form as Entra does before looking at the assertion: the grant, the client,
    /// the scope, the assertion's type. Returns what the exchange asks for.
    pub fn check(&self) -> Result<ExchangeRequest<'a>, Aadsts<'a>> {
        let grant = self
            .grant_type
            .ok_or(Aadsts::MissingParameter("grant_type"))?;
        if grant != "client_credentials" {
            return Err(Aadsts::UnsupportedGrantType);
        }
        let client_id = self
            .client_id
            .filter(|c| !c.is_empty())
            .ok_or(Aadsts::MissingParameter("client_id"))?;
        let scope = self.scope.ok_or(Aadsts::MissingParameter("scope"))?;
        let resource = scope
            .strip_suffix("/.default")
            .filter(|r| !r.is_empty() && !r.contains(' '))
            .ok_or(Aadsts::InvalidScope(scope))?;
        let assertion = match (self.client_assertion, self.client_assertion_type) {
            (Some(a), Some(JWT_BEARER)) if !a.is_empty() => a,
            (Some(_), Some(t)) if t != JWT_BEARER => return Err(Aadsts::InvalidAssertionType),
            _ if self.client_secret => return Err(Aadsts::InvalidClientSecret),
            _ => return Err(Aadsts::MissingCredential),
        };
        Ok(ExchangeRequest {
            client_id,
            resource,
            assertion,
        })
    }
}

/// A token request that passed [`ExchangeForm::check`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ExchangeRequest<'a> {
    /// The application asked for.
    pub client_id: &'a str,
    /// The scope without `/.default`: the token's audience.
    pub resource: &'a str,
    /// The compact JWT presented (never logged).
    pub assertion: &'a str,
}

impl fmt::Debug for ExchangeRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeRequest")
            .field("client_id", &self.client_id)
            .field("resource", &self.resource)
            .field("assertion", &"<redacted>")
            .finish()
    }
}

/// Splits a compact JWS into its three base64url parts (header, payload, signature).
pub fn split_jws(jwt: &str) -> Result<(&str, &str, &str), Aadsts<'static>> {
    let mut parts = jwt.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Aadsts::MalformedAssertion);
    };
    let b64url = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if b64url(h) && b64url(p) && b64url(s) {
        Ok((h, p, s))
    } else {
        Err(Aadsts::MalformedAssertion)
    }
}

/// Why an assertion's claims could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClaimsError {
    /// The payload is not a JSON object.
    Json(JsonError),
    /// A claim has the wrong JSON type (or a number that is not a whole, non-negative u64).
    InvalidType(&'static str),
    /// A claim appears twice.
    Duplicate(&'static str),
    /// `aud` lists more than [`MAX_AUDIENCES`] values.
    TooManyAudiences,
    /// The scratch buffer cannot hold the escaped strings.
    ScratchTooSmall,
}

impl From<JsonError> for ClaimsError {
    fn from(e: JsonError) -> Self {
        Self::Json(e)
    }
}

impl fmt::Display for ClaimsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(e) => write!(f, "assertion payload: {e}"),
            Self::InvalidType(c) => write!(f, "assertion claim '{c}' has the wrong type"),
            Self::Duplicate(c) => write!(f, "assertion claim '{c}' appears twice"),
            Self::TooManyAudiences => {
                write!(f, "assertion lists more than {MAX_AUDIENCES} audiences")
            }
            Self::ScratchTooSmall => {
                f.write_str("assertion claims too large for the decode buffer")
            }
        }
    }
}

impl core::error::Error for ClaimsError {}

/// The claims of a client assertion that Entra checks. Absent claims are `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AssertionClaims<'a> {
    /// `iss`.
    pub iss: Option<&'a str>,
    /// `sub`.
    pub sub: Option<&'a str>,
    /// `aud`: a string or an array of strings.
    pub aud: [Option<&'a str>; MAX_AUDIENCES],
    /// `exp`, Unix seconds.
    pub exp: Option<u64>,
    /// `nbf`, Unix seconds.
    pub nbf: Option<u64>,
}

/// Strings with escapes, decoded into consecutive parts of a scratch buffer.
struct Strings<'a> {
    rest: &'a mut [u8],
}

impl<'a> Strings<'a> {
    fn text(&mut self, v: Value<'a>, name: &'static str) -> Result<&'a str, ClaimsError> {
        let Value::Str(s) = v else {
            return Err(ClaimsError::InvalidType(name));
        };
        if !s.escaped {
            return Ok(s.raw);
        }
        let buf = core::mem::take(&mut self.rest);
        let mut w = SliceWriter::new(&mut *buf);
        unescape(s, &mut w)?;
        let n = w.finish().map_err(|_| ClaimsError::ScratchTooSmall)?;
        let (head, tail) = buf.split_at_mut(n);
        self.rest = tail;
        let head: &'a [u8] = head;
        core::str::from_utf8(head).map_err(|_| ClaimsError::InvalidType(name))
    }
}

fn whole_number(v: Value<'_>, name: &'static str) -> Result<u64, ClaimsError> {
    match v {
        Value::Num(n) => n.parse::<u64>().map_err(|_| ClaimsError::InvalidType(name)),
        _ => Err(ClaimsError::InvalidType(name)),
    }
}

impl<'a> AssertionClaims<'a> {
    /// Parses the JSON payload of an assertion; strings with escapes are decoded into
    /// `scratch`. Unknown claims are skipped; a claim listed twice is an error.
    pub fn parse(payload: &'a [u8], scratch: &'a mut [u8]) -> Result<Self, ClaimsError> {
        let mut claims = Self::default();
        let mut strings = Strings { rest: scratch };
        let mut seen = 0u8;
        let mut error: Option<ClaimsError> = None;
        let result = Scanner::new(payload)?.top_object(|key, value| {
            let mut member = || -> Result<(), ClaimsError> {
                let (bit, name) = match key.raw {
                    _ if key.escaped => return Ok(()),
                    "iss" => (1, "iss"),
                    "sub" => (2, "sub"),
                    "exp" => (4, "exp"),
                    "nbf" => (8, "nbf"),
                    "aud" => (16, "aud"),
                    _ => return Ok(()),
                };
                if seen & bit != 0 {
                    return Err(ClaimsError::Duplicate(name));
                }
                seen |= bit;
                match (name, value) {
                    ("iss", v) => claims.iss = Some(strings.text(v, name)?),
                    ("sub", v) => claims.sub = Some(strings.text(v, name)?),
                    ("exp", v) => claims.exp = Some(whole_number(v, name)?),
                    ("nbf", v) => claims.nbf = Some(whole_number(v, name)?),
                    (_, Value::Array(text, base)) => {
                        let mut slots = claims.aud.iter_mut();
                        let mut inner: Option<ClaimsError> = None;
                        array_items(text, base, |item| {
                            let r = strings.text(item, "aud").and_then(|a| {
                                let slot = slots.next().ok_or(ClaimsError::TooManyAudiences)?;
                                *slot = Some(a);
                                Ok(())
                            });
                            r.map_err(|e| {
                                inner = Some(e);
                                JsonError::NotAnObject
                            })
                        })
                        .map_err(|e| inner.take().unwrap_or(ClaimsError::Json(e)))?;
                    }
                    (_, v) => {
                        if let Some(slot) = claims.aud.first_mut() {
                            *slot = Some(strings.text(v, name)?);
                        }
                    }
                }
                Ok(())
            };
            member().map_err(|e| {
                error = Some(e);
                JsonError::NotAnObject
            })
        });
        match (result, error) {
            (_, Some(e)) => Err(e),
            (Err(e), None) => Err(ClaimsError::Json(e)),
            (Ok(()), None) => Ok(claims),
        }
    }

    /// The audiences listed, in order.
    pub fn audiences(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.aud.iter().filter_map(|a| *a)
    }
}

/// An application's federated identity credential: what an assertion must match, exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FederatedCredential<'a> {
    /// The cluster's OIDC issuer URL.
    pub issuer: &'a str,
    /// `system:serviceaccount:<namespace>:<service account>`.
    pub subject: &'a str,
    /// Normally [`TOKEN_EXCHANGE_AUDIENCE`].
    pub audience: &'a str,
}

/// Checks an assertion's claims against the application's credential at `now` (Unix seconds),
/// in Entra's order: the time window, then issuer, subject and audience, each matched
/// case-sensitively (a match that differs only in case is its own error).
pub fn check_assertion<'a>(
    claims: &AssertionClaims<'a>,
    credential: &FederatedCredential<'_>,
    now: u64,
) -> Result<(), Aadsts<'a>> {
    let (Some(iss), Some(sub), Some(exp)) = (claims.iss, claims.sub, claims.exp) else {
        return Err(Aadsts::MalformedAssertion);
    };
    let nbf = claims.nbf.unwrap_or(0);
    if now.saturating_add(CLOCK_SKEW_SECS) < nbf || now >= exp.saturating_add(CLOCK_SKEW_SECS) {
        return Err(Aadsts::AssertionNotInValidTime { now, nbf, exp });
    }
    let aud = claims.audiences().next().unwrap_or("");
    let aud_exact = claims.audiences().any(|a| a == credential.audience);
    let aud_folded = claims
        .audiences()
        .any(|a| a.eq_ignore_ascii_case(credential.audience));
    let exact = iss == credential.issuer && sub == credential.subject && aud_exact;
    if exact {
        return Ok(());
    }
    let folded = iss.eq_ignore_ascii_case(credential.issuer)
        && sub.eq_ignore_ascii_case(credential.subject)
        && aud_folded;
    if folded {
        return Err(Aadsts::CaseMismatch { iss, sub, aud });
    }
    if iss != credential.issuer {
        return Err(Aadsts::NoMatchingCredential { iss, sub, aud });
    }
    if !aud_exact {
        return Err(Aadsts::AudienceMismatch { aud });
    }
    Err(Aadsts::SubjectMismatch { sub })
}

/// An Entra error: its `AADSTS` number, OAuth `error`, status and description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Aadsts<'a> {
    /// 900144: a required form parameter is missing.
    MissingParameter(&'static str),
    /// 9002313: the form is malformed (a field twice, a bad escape, not UTF-8).
    MalformedRequest,
    /// 70003: `grant_type` is not `client_credentials`.
    UnsupportedGrantType,
    /// 1002012: `scope` is not one `<resource>/.default`.
    InvalidScope(&'a str),
    /// 7000218: neither an assertion nor a secret.
    MissingCredential,
    /// 7000215: a client secret was sent (the application has none).
    InvalidClientSecret,
    /// 700025 (emulated text): `client_assertion_type` is not jwt-bearer.
    InvalidAssertionType,
    /// 90002: the tenant in the path does not exist.
    TenantNotFound(&'a str),
    /// 700016: no application with this client id in the tenant.
    ApplicationNotFound(&'a str),
    /// 50027: the assertion is not a well-formed JWT with `iss`, `sub`, `aud`, `exp`.
    MalformedAssertion,
    /// 700027: the signature does not verify with the issuer's keys.
    InvalidSignature,
    /// 700024: `now` is outside `nbf`..`exp` (with 5 minutes' skew).
    AssertionNotInValidTime {
        /// Now, Unix seconds.
        now: u64,
        /// The assertion's `nbf`.
        nbf: u64,
        /// The assertion's `exp`.
        exp: u64,
    },
    /// 70021: no federated credential with this issuer.
    NoMatchingCredential {
        /// The assertion's issuer.
        iss: &'a str,
        /// The assertion's subject.
        sub: &'a str,
        /// The assertion's (first) audience.
        aud: &'a str,
    },
    /// 700212: the issuer matches but the audience does not.
    AudienceMismatch {
        /// The assertion's (first) audience.
        aud: &'a str,
    },
    /// 700213: issuer and audience match but the subject does not.
    SubjectMismatch {
        /// The assertion's subject.
        sub: &'a str,
    },
    /// 7002138: issuer, subject and audience match only when case is ignored.
    CaseMismatch {
        /// The assertion's issuer.
        iss: &'a str,
        /// The assertion's subject.
        sub: &'a str,
        /// The assertion's (first) audience.
        aud: &'a str,
    },
}

impl Aadsts<'_> {
    /// The `AADSTS` number (`error_codes[0]`).
    pub const fn code(&self) -> u32 {
        match self {
            Self::MissingParameter(_) => 900_144,
            Self::MalformedRequest => 9_002_313,
            Self::UnsupportedGrantType => 70_003,
            Self::InvalidScope(_) => 1_002_012,
            Self::MissingCredential => 7_000_218,
            Self::InvalidClientSecret => 7_000_215,
            Self::InvalidAssertionType => 700_025,
            Self::TenantNotFound(_) => 90_002,
            Self::ApplicationNotFound(_) => 700_016,
            Self::MalformedAssertion => 50_027,
            Self::InvalidSignature => 700_027,
            Self::AssertionNotInValidTime { .. } => 700_024,
            Self::NoMatchingCredential { .. } => 70_021,
            Self::AudienceMismatch { .. } => 700_212,
            Self::SubjectMismatch { .. } => 700_213,
            Self::CaseMismatch { .. } => 7_002_138,
        }
    }

    /// The OAuth `error`.
    pub const fn error(&self) -> &'static str {
        match self {
            Self::MissingParameter(_)
            | Self::MalformedRequest
            | Self::TenantNotFound(_)
            | Self::MalformedAssertion
            | Self::InvalidAssertionType => "invalid_request",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope(_) => "invalid_scope",
            Self::ApplicationNotFound(_) => "unauthorized_client",
            Self::MissingCredential
            | Self::InvalidClientSecret
            | Self::InvalidSignature
            | Self::AssertionNotInValidTime { .. }
            | Self::NoMatchingCredential { .. }
            | Self::AudienceMismatch { .. }
            | Self::SubjectMismatch { .. }
            | Self::CaseMismatch { .. } => "invalid_client",
        }
    }

    /// The HTTP status: 401 for `invalid_client`, 400 otherwise.
    pub fn status(&self) -> u16 {
        if self.error() == "invalid_client" {
            401
        } else {
            400
        }
    }

    /// Writes the description's text after `AADSTSnnn: ` (unquoted).
    fn write_text(&self, w: &mut SliceWriter<'_>) {
        const FIC_HINT: &str = " Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation";
        match self {
            Self::MissingParameter(p) => {
                w.put_str("The request body must contain the following parameter: '");
                w.put_str(p);
                w.put_str("'.");
            }
            Self::MalformedRequest => w.put_str("Invalid request. Request is malformed or invalid."),
            Self::UnsupportedGrantType => w.put_str(
                "The app requested an unsupported grant type. The grant type must be client_credentials.",
            ),
            Self::InvalidScope(s) => {
                w.put_str("The provided value for scope ");
                w.put_str(s);
                w.put_str(" is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).");
            }
            Self::MissingCredential => w.put_str(
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ),
            Self::InvalidClientSecret => {
                w.put_str("Invalid client secret provided. The application has no client secrets.");
            }
            Self::InvalidAssertionType => w.put_str(
                "The client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
            ),
            Self::TenantNotFound(t) => {
                w.put_str("Tenant '");
                w.put_str(t);
                w.put_str("' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.");
            }
            Self::ApplicationNotFound(c) => {
                w.put_str("Application with identifier '");
                w.put_str(c);
                w.put_str("' was not found in the directory. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.");
            }
            Self::MalformedAssertion => w.put_str("JWT token is invalid or malformed."),
            Self::InvalidSignature => w.put_str("Client assertion failed signature validation."),
            Self::AssertionNotInValidTime { now, nbf, exp } => {
                w.put_str("Client assertion is not within its valid time range. Current time: ");
                write_iso(*now, w);
                w.put_str(", assertion valid from ");
                write_iso(*nbf, w);
                w.put_str(", expiry time of assertion ");
                write_iso(*exp, w);
                w.put_str(".");
            }
            Self::NoMatchingCredential { iss, sub, aud } => {
                w.put_str("No matching federated identity record found for presented assertion. Assertion Issuer: '");
                w.put_str(iss);
                w.put_str("'. Assertion Subject: '");
                w.put_str(sub);
                w.put_str("'. Assertion Audience: '");
                w.put_str(aud);
                w.put_str("'.");
                w.put_str(FIC_HINT);
            }
            Self::AudienceMismatch { aud } => {
                w.put_str("No matching federated identity record found for presented assertion audience '");
                w.put_str(aud);
                w.put_str("'.");
                w.put_str(FIC_HINT);
            }
            Self::SubjectMismatch { sub } => {
                w.put_str("No matching federated identity record found for presented assertion subject '");
                w.put_str(sub);
                w.put_str("'.");
                w.put_str(FIC_HINT);
            }
            Self::CaseMismatch { iss, sub, aud } => {
                w.put_str("No matching federated identity record found for presented assertion. Federated identity credential matching is case-sensitive; a credential matches only when case is ignored. Assertion Issuer: '");
                w.put_str(iss);
                w.put_str("'. Assertion Subject: '");
                w.put_str(sub);
                w.put_str("'. Assertion Audience: '");
                w.put_str(aud);
                w.put_str("'.");
            }
        }
    }
}

impl fmt::Display for Aadsts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 1024];
        let mut w = SliceWriter::new(&mut buf);
        self.write_text(&mut w);
        let n = w.len().min(1024);
        let text = buf
            .get(..n)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("");
        write!(f, "AADSTS{}: {text}", self.code())
    }
}

/// Writes Unix seconds as `YYYY-MM-DD HH:MM:SSZ` (Entra's `timestamp`).
pub fn write_timestamp(unix: u64, w: &mut SliceWriter<'_>) {
    write_datetime(unix, b' ', w);
    w.put_byte(b'Z');
}

/// Writes Unix seconds as `YYYY-MM-DDTHH:MM:SS.0000000Z` (Entra's times in descriptions).
fn write_iso(unix: u64, w: &mut SliceWriter<'_>) {
    write_datetime(unix, b'T', w);
    w.put_str(".0000000Z");
}

fn write_datetime(unix: u64, sep: u8, w: &mut SliceWriter<'_>) {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (y, m, d) = civil_from_days(days);
    let two = |w: &mut SliceWriter<'_>, n: u64| {
        if n < 10 {
            w.put_byte(b'0');
        }
        w.put_u64(n);
    };
    w.put_u64(y);
    w.put_byte(b'-');
    two(w, m);
    w.put_byte(b'-');
    two(w, d);
    w.put_byte(sep);
    two(w, secs / 3600);
    w.put_byte(b':');
    two(w, secs % 3600 / 60);
    w.put_byte(b':');
    two(w, secs % 60);
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian; Howard Hinnant's
/// algorithm, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days.saturating_add(719_468);
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// What an error body carries besides the error itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorContext<'a> {
    /// Now, Unix seconds (`timestamp`).
    pub now: u64,
    /// `trace_id` (a GUID).
    pub trace_id: &'a str,
    /// `correlation_id` (a GUID; the client's `client-request-id` when it sent one).
    pub correlation_id: &'a str,
    /// The authority's base URL (`https://host:port`), for `error_uri`.
    pub authority: &'a str,
}

/// Writes an Entra error body for `error`.
pub fn write_error_body(
    error: &Aadsts<'_>,
    ctx: &ErrorContext<'_>,
    out: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    let mut text = [0u8; 2048];
    let mut tw = SliceWriter::new(&mut text);
    tw.put_str("AADSTS");
    tw.put_u64(u64::from(error.code()));
    tw.put_str(": ");
    error.write_text(&mut tw);
    tw.put_str(" Trace ID: ");
    tw.put_str(ctx.trace_id);
    tw.put_str(" Correlation ID: ");
    tw.put_str(ctx.correlation_id);
    tw.put_str(" Timestamp: ");
    write_timestamp(ctx.now, &mut tw);
    let n = tw.finish()?;
    let description = text
        .get(..n)
        .and_then(|b| core::str::from_utf8(b).ok())
        .unwrap_or("");
    let mut w = SliceWriter::new(out);
    w.put_str("{\"error\":");
    write_json_string(error.error(), &mut w);
    w.put_str(",\"error_description\":");
    write_json_string(description, &mut w);
    w.put_str(",\"error_codes\":[");
    w.put_u64(u64::from(error.code()));
    w.put_str("],\"timestamp\":\"");
    write_timestamp(ctx.now, &mut w);
    w.put_str("\",\"trace_id\":");
    write_json_string(ctx.trace_id, &mut w);
    w.put_str(",\"correlation_id\":");
    write_json_string(ctx.correlation_id, &mut w);
    w.put_str(",\"error_uri\":\"");
    w.put_str(ctx.authority.trim_end_matches('/'));
    w.put_str("/error?code=");
    w.put_u64(u64::from(error.code()));
    w.put_str("\"}");
    w.finish()
}

/// Writes the success body `{"token_type":"Bearer","expires_in":N,"ext_expires_in":N,
/// "access_token":…}` (JSON integers).
pub fn write_token_body(
    access_token: &str,
    expires_in: u64,
    out: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    let mut w = SliceWriter::new(out);
    w.put_str("{\"token_type\":\"Bearer\",\"expires_in\":");
    w.put_u64(expires_in);
    w.put_str(",\"ext_expires_in\":");
    w.put_u64(expires_in);
    w.put_str(",\"access_token\":");
    write_json_string(access_token, &mut w);
    w.put_byte(b'}');
    w.finish()
}

#[cfg(test)]
mod tests;
