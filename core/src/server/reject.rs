//! The server's error answers: every rejection, with its status, `error` and
//! `error_description` per flavor, and where the text comes from. Codes that depend only on
//! the status come from the one [catalogue](crate::catalogue).
//!
//! docs/errors.md is the human copy of this table; a test
//! checks that every text here appears there.

use core::fmt;

use crate::catalogue;
use crate::identity::{Flavor, ResolveError};

/// Where an error's status and text come from (docs/protocol.md §0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Provenance {
    /// Official documentation or the IMDS swagger.
    Doc,
    /// Observed on the wire (captured responses quoted in public issues).
    Obs,
    /// Our choice: the service's answer is undocumented or unconfirmed.
    Ours,
}

/// One error answer of the server. Rendered as `{"error":…,"error_description":…}` (or, for
/// [`Rejection::NotFound`], IMDS's one-field `{"error":"Not found"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rejection {
    /// IMDS: a path other than the identity endpoints → 404 `{"error":"Not found"}`.
    NotFound,
    /// Extension: a path other than `/oauth2/token` → 401 `unknown_source`,
    /// `Unknown Source <path>`.
    UnknownSource,
    /// A method the endpoint does not serve (IMDS: anything but GET; extension: anything but GET
    /// and POST) → 405.
    MethodNotAllowed,
    /// `Metadata: true` missing or another value → 400.
    MetadataHeaderMissing,
    /// The request carries `X-Forwarded-For` (IMDS) → 400.
    ForwardedFor,
    /// Extension POST whose body is not `application/x-www-form-urlencoded` → 400.
    UnsupportedContentType,
    /// A parameter name appears twice (query and form body count together) → 400.
    DuplicateParameter,
    /// More parameters than [`MAX_PARAMS`](super::MAX_PARAMS) → 400.
    TooManyParameters,
    /// The decoded parameters do not fit the server's work buffer → 400.
    ParametersTooLong,
    /// A parameter does not percent-decode to UTF-8 → 400.
    InvalidEncoding,
    /// IMDS: `api-version` missing or not a supported version → 400.
    ApiVersion,
    /// `resource` missing or empty → 400.
    ResourceMissing,
    /// More than one of `client_id`, `object_id`, `msi_res_id` / `mi_res_id` → 400.
    MultipleSelectors,
    /// The selector names no identity of the VM, or the VM has none → 400 `Identity not found`.
    IdentityNotFound,
    /// No selector, no system-assigned identity, several user-assigned ones → 400.
    MultipleUserAssigned,
    /// The issuer does not know the resource → 400 `invalid_resource` (AADSTS500011 text).
    InvalidResource,
    /// The issuer throttles → 429 `too_many_requests` with `Retry-After`.
    Throttled,
    /// The issuer is temporarily unavailable → 503 `service_unavailable` with `Retry-After`.
    Unavailable,
    /// The issuer failed → 500.
    IssueFailed,
    /// The bytes are not an HTTP/1.1 request the server accepts → 400, connection closed.
    MalformedRequest,
    /// A request line or header is longer than the limits, or too many headers → 431, closed.
    HeadTooLarge,
    /// The body is larger than the limit → 413, connection closed.
    BodyTooLarge,
    /// App Service, App Service 2017, Azure ML: the secret header is missing or wrong → 403
    /// (App Service) or 401 (2017, ML).
    SecretMissing,
    /// Arc step 1: no `Authorization` header → 401 with `WWW-Authenticate: Basic realm=<key
    /// file>`.
    ArcChallenge,
    /// Arc step 2: `Authorization` does not carry the current key → 401.
    ArcKeyInvalid,
    /// Arc: the identity named is not assigned to the machine → 404.
    IdentityNotAssigned,
    /// Azure ML: no `clientid` → 400.
    ClientIdRequired,
    /// Cloud Shell: the audience is not on the allowlist → 400 `AudienceNotSupported`.
    AudienceNotSupported,
}

impl Rejection {
    /// Every rejection, for catalogues and tests.
    pub const ALL: [Rejection; 28] = [
        Rejection::NotFound,
        Rejection::UnknownSource,
        Rejection::MethodNotAllowed,
        Rejection::MetadataHeaderMissing,
        Rejection::ForwardedFor,
        Rejection::UnsupportedContentType,
        Rejection::DuplicateParameter,
        Rejection::TooManyParameters,
        Rejection::ParametersTooLong,
        Rejection::InvalidEncoding,
        Rejection::ApiVersion,
        Rejection::ResourceMissing,
        Rejection::MultipleSelectors,
        Rejection::IdentityNotFound,
        Rejection::MultipleUserAssigned,
        Rejection::InvalidResource,
        Rejection::Throttled,
        Rejection::Unavailable,
        Rejection::IssueFailed,
        Rejection::MalformedRequest,
        Rejection::HeadTooLarge,
        Rejection::BodyTooLarge,
        Rejection::SecretMissing,
        Rejection::ArcChallenge,
        Rejection::ArcKeyInvalid,
        Rejection::IdentityNotAssigned,
        Rejection::ClientIdRequired,
        Rejection::AudienceNotSupported,
    ];

    /// The HTTP status.
    pub const fn status(self, flavor: Flavor) -> u16 {
        match self {
            Rejection::NotFound | Rejection::IdentityNotAssigned => 404,
            Rejection::UnknownSource | Rejection::ArcChallenge | Rejection::ArcKeyInvalid => 401,
            Rejection::MethodNotAllowed => 405,
            Rejection::Throttled => 429,
            Rejection::Unavailable => 503,
            Rejection::IssueFailed => 500,
            Rejection::HeadTooLarge => 431,
            Rejection::BodyTooLarge => 413,
            Rejection::SecretMissing => 403,
            _ => {
                let _ = flavor;
                400
            }
        }
    }

    /// The `error` field.
    pub const fn error(self, flavor: Flavor) -> &'static str {
        match (self, flavor) {
            (Rejection::NotFound, _) => "Not found",
            (Rejection::UnknownSource, _) => "unknown_source",
            (Rejection::MethodNotAllowed, _) => catalogue::error_code(405),
            (Rejection::MetadataHeaderMissing, Flavor::Extension) => "bad_request_102",
            (Rejection::InvalidResource, _) => "invalid_resource",
            (Rejection::Throttled, _) => catalogue::error_code(429),
            (Rejection::Unavailable, _) => catalogue::error_code(503),
            (Rejection::IssueFailed, Flavor::Extension) => "unknown",
            (Rejection::IssueFailed, _) => catalogue::error_code(500),
            (
                Rejection::MalformedRequest | Rejection::HeadTooLarge | Rejection::BodyTooLarge,
                _,
            ) => "bad_request",
            (Rejection::SecretMissing, _) => "forbidden",
            (Rejection::ArcChallenge | Rejection::ArcKeyInvalid, _) => "unauthorized_client",
            (Rejection::IdentityNotAssigned, _) => "not_found",
            (Rejection::AudienceNotSupported, _) => "AudienceNotSupported",
            _ => "invalid_request",
        }
    }

    /// The `error_description` field; `None` for the one-field `{"error":…}` shape.
    ///
    /// For [`Rejection::UnknownSource`] the request path follows this text, and for
    /// [`Rejection::InvalidResource`] it is a template whose `<resource>` and `<tenant>` the
    /// server fills in.
    pub const fn description(self, flavor: Flavor) -> Option<&'static str> {
        Some(match (self, flavor) {
            (Rejection::NotFound, _) => return None,
            (Rejection::UnknownSource, _) => "Unknown Source ",
            (Rejection::MethodNotAllowed, _) => "Not allowed",
            (Rejection::MetadataHeaderMissing, _) => "Required metadata header not specified",
            (Rejection::ForwardedFor, _) => {
                "Requests with an X-Forwarded-For header are not allowed; do not use a proxy"
            }
            (Rejection::UnsupportedContentType, _) => {
                "POST body must be application/x-www-form-urlencoded"
            }
            (Rejection::DuplicateParameter, _) => "Duplicate query parameters are not allowed",
            (Rejection::TooManyParameters, _) => "Too many query parameters",
            (Rejection::ParametersTooLong, _) => "Query parameters are too long",
            (Rejection::InvalidEncoding, _) => {
                "Query parameters are not valid percent-encoded UTF-8"
            }
            (Rejection::ApiVersion, _) => {
                "Bad request. api-version is invalid or was not specified in the request. \
                 For more information refer to aka.ms/azureimds"
            }
            (Rejection::ResourceMissing, _) => "Required query variable 'resource' is missing",
            (Rejection::MultipleSelectors, _) => {
                "Only one of client_id, object_id and msi_res_id may be specified"
            }
            (Rejection::IdentityNotFound, _) => "Identity not found",
            (Rejection::MultipleUserAssigned, _) => {
                "Multiple user assigned identities exist, please specify the clientId / \
                 resourceId of the identity in the token request"
            }
            (Rejection::InvalidResource, _) => {
                "AADSTS500011: The resource principal named <resource> was not found in the \
                 tenant named <tenant>. This can happen if the application has not been \
                 installed by the administrator of the tenant or consented to by any user in the \
                 tenant. You might have sent your authentication request to the wrong tenant."
            }
            (Rejection::Throttled, _) => "Too many requests; retry after the Retry-After delay",
            (Rejection::Unavailable, _) => {
                "Service temporarily unavailable; retry after the Retry-After delay"
            }
            (Rejection::IssueFailed, Flavor::Extension) => {
                "Failed to retrieve token from the Active directory. For details see logs in \
                 the server's log"
            }
            (Rejection::IssueFailed, _) => "Failed to issue a token; retry later",
            (Rejection::MalformedRequest, _) => "Malformed HTTP request",
            (Rejection::HeadTooLarge, _) => "Request line or header fields too large",
            (Rejection::BodyTooLarge, _) => "Request body too large",
            (Rejection::SecretMissing, _) => "Missing or invalid X-IDENTITY-HEADER header.",
            (Rejection::ArcChallenge, _) => {
                "Authorization header required: read the key file named in WWW-Authenticate"
            }
            (Rejection::ArcKeyInvalid, _) => "Invalid or expired key",
            (Rejection::IdentityNotAssigned, _) => {
                "The requested identity has not been assigned to this resource."
            }
            (Rejection::ClientIdRequired, _) => "Required query variable 'clientid' is missing",
            (Rejection::AudienceNotSupported, _) => "Audience isn't a supported MSI token audience",
        })
    }

    /// Where the status and text come from.
    pub const fn provenance(self, flavor: Flavor) -> Provenance {
        match (self, flavor) {
            (Rejection::NotFound | Rejection::UnknownSource | Rejection::IssueFailed, _)
            | (Rejection::MethodNotAllowed, Flavor::Imds)
            | (Rejection::MetadataHeaderMissing, Flavor::Extension) => Provenance::Doc,
            (
                Rejection::MetadataHeaderMissing
                | Rejection::ResourceMissing
                | Rejection::IdentityNotFound
                | Rejection::MultipleUserAssigned
                | Rejection::InvalidResource,
                _,
            ) => Provenance::Obs,
            _ => Provenance::Ours,
        }
    }

    /// True when the answer carries `Retry-After` (429 and 503).
    pub const fn has_retry_after(self) -> bool {
        matches!(self, Rejection::Throttled | Rejection::Unavailable)
    }

    /// True when the server closes the connection after answering (the request's framing
    /// cannot be trusted).
    pub const fn closes_connection(self) -> bool {
        matches!(
            self,
            Rejection::MalformedRequest | Rejection::HeadTooLarge | Rejection::BodyTooLarge
        )
    }
}

impl From<ResolveError> for Rejection {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::MultipleUserAssigned => Rejection::MultipleUserAssigned,
            _ => Rejection::IdentityNotFound,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flavor = Flavor::Imds;
        write!(f, "{} {}", self.status(flavor), self.error(flavor))?;
        if let Some(d) = self.description(flavor) {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl core::error::Error for Rejection {}
