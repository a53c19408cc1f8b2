//! The server side: a sans-I/O IMDS (or legacy VM extension) token endpoint.
//!
//! The core decides, the shell signs and moves bytes. The server answers with values; it never
//! calls back into the shell, so nothing is asked twice:
//!
//! 1. the shell reads bytes from a connection into a buffer and calls [`Server::receive`]: a
//!    complete request comes back as a [`Request`] (malformed bytes are answered there);
//! 2. the shell gives its [`Verdict`] on it: answer a path the server does not own with its own
//!    JSON (a JWKS, an admin API), answer with a [`Fault`] (throttling, fault injection), or
//!    proceed;
//! 3. [`Server::answer`] validates the request per flavor (docs/protocol.md §1.2–1.9, §2),
//!    percent-decodes the parameters into a work buffer and resolves the identity (§3): an
//!    error from the [`Rejection`] catalogue or the info answer is written, and a valid token
//!    request comes back as [`Answer::Issue`] — resolved identity X needs a token for
//!    resource R;
//! 4. the shell gets the token (cache, minter, upstream) and [`Issue::write_token`] (or
//!    [`Issue::write_error`]) writes the whole HTTP response, in the flavor's JSON shape, and
//!    says how many input bytes the request took and whether to keep the connection open, so
//!    pipelined keep-alive requests are handled by calling again with the rest.
//!
//! A buffer too small is reported as [`HandleError`]: the shell grows it and repeats the same
//! call with the values it already holds.
//!
//! [`Server::handle`] drives these steps in one call through the [`Issuer`] callbacks, for
//! simple shells and tests (it may call them again after a buffer grows). [`Server::decide`]
//! exposes step 3 alone over a [`RequestView`] for shells with their own HTTP stack. [`Relay`]
//! is the same front without identity resolution and with a deferred answer, for a shell that
//! fetches tokens from upstream (the legacy-extension bridge). Every error answer, its text and
//! its source is listed in docs/errors.md.

mod answer;
mod conn;
mod handle;
mod params;
mod reject;
mod relay;
mod respond;
pub mod sources;

use core::fmt;

pub use answer::{Answer, Issue, Minted, Received, Request, Verdict};
pub use conn::{Outcome, Response, ServerConnection};
pub use handle::Handled;
pub use reject::{Provenance, Rejection};
pub use relay::{Relay, RelayRequest, Relayed, Reply};
pub use respond::CONTENT_TYPE;

use crate::http::Limits;
use crate::identity::{Flavor, IdentityTable, Resolved, Selector};
use crate::source::Source;

/// Most parameters (query and form together) a request may carry.
pub const MAX_PARAMS: usize = 16;

/// Path of the IMDS token endpoint.
pub const IMDS_TOKEN_PATH: &str = "/metadata/identity/oauth2/token";
/// Path of the IMDS identity-info endpoint (`{"tenantId":…}`, docs/protocol.md §5.2).
pub const IMDS_INFO_PATH: &str = "/metadata/identity/info";
/// Path of the legacy VM extension's token endpoint.
pub const EXTENSION_TOKEN_PATH: &str = "/oauth2/token";

/// The `api-version`s the identity endpoints accept by default: the versions of docs/protocol.md §1.6
/// from `2018-02-01` on (the identity category did not exist before it).
pub const IDENTITY_API_VERSIONS: [&str; 30] = [
    "2025-04-07",
    "2024-07-17",
    "2024-03-15",
    "2023-11-15",
    "2023-07-01",
    "2021-12-13",
    "2021-11-15",
    "2021-11-01",
    "2021-10-01",
    "2021-08-01",
    "2021-05-01",
    "2021-03-01",
    "2021-02-01",
    "2021-01-01",
    "2020-12-01",
    "2020-10-01",
    "2020-09-01",
    "2020-07-15",
    "2020-06-01",
    "2019-11-01",
    "2019-08-15",
    "2019-08-01",
    "2019-06-04",
    "2019-06-01",
    "2019-04-30",
    "2019-03-11",
    "2019-02-01",
    "2018-10-01",
    "2018-04-02",
    "2018-02-01",
];

/// Whether `version` is one of `accepted`. A dated version (`YYYY-MM-DD`, ten bytes) is
/// compared as a ten-byte array, in line: a `memcmp` call per entry cost ~1,000 instructions
/// per request over the 30 defaults (`cargo xtask bench`).
pub(crate) fn api_version_accepted(accepted: &[&str], version: &str) -> bool {
    match <&[u8; 10]>::try_from(version.as_bytes()) {
        Ok(dated) => accepted
            .iter()
            .any(|a| <&[u8; 10]>::try_from(a.as_bytes()).is_ok_and(|a| a == dated)),
        Err(_) => accepted.contains(&version),
    }
}

/// How a server behaves. Build with [`Config::new`] and the `with_*` methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config<'s> {
    /// IMDS or the legacy extension.
    pub flavor: Flavor,
    /// Entra tenant of the system-assigned identity, served at `/metadata/identity/info`, and
    /// named in `invalid_resource` errors. Default `None`.
    pub tenant_id: Option<&'s str>,
    /// Accepted `api-version`s (IMDS). Default [`IDENTITY_API_VERSIONS`].
    pub api_versions: &'s [&'s str],
    /// The `ext_expires_in` written in IMDS answers. Default 86399 (observed constant, §1.7).
    pub ext_expires_in: u64,
    /// `Retry-After` seconds for a 429/503 whose cause gave none. Default 1.
    pub default_retry_after: u32,
    /// Value of a `Server` response header, e.g. `IMDS/150.870.65.1234`. Default `None`.
    pub server_header: Option<&'s str>,
    /// Bounds on request heads and bodies: 8 KiB lines, 64 headers, 8 KiB bodies by default.
    pub limits: Limits,
    /// The source imitated. [`Source::Imds`] (the default) serves [`Config::flavor`]; App
    /// Service (2019, 2017), Azure ML, Cloud Shell and Arc are served by [`sources`], whose
    /// paths, checks and bodies differ. Default [`Source::Imds`].
    pub source: Source,
    /// The secret a source checks: App Service's `X-IDENTITY-HEADER`, the 2017 / Azure ML
    /// `secret` header, Arc's current key (`Authorization: Basic <key>`). `None` refuses every
    /// request of those sources. Default `None`.
    pub secret: Option<&'s [u8]>,
    /// Arc: the absolute path of the current key file, sent as `WWW-Authenticate: Basic
    /// realm=<path>` with the challenge. Default `None` (no header).
    pub realm: Option<&'s str>,
    /// App Service (2019, 2017), Azure ML: the correlation id of this answer, sent as
    /// `X-CORRELATION-ID` and in error bodies. Default `None`.
    pub correlation_id: Option<&'s str>,
    /// Cloud Shell: the audiences it issues tokens for. Default
    /// [`sources::CLOUD_SHELL_AUDIENCES`].
    pub audiences: &'s [&'s str],
}

impl<'s> Config<'s> {
    /// The defaults for `flavor`.
    pub const fn new(flavor: Flavor) -> Self {
        Config {
            flavor,
            tenant_id: None,
            api_versions: &IDENTITY_API_VERSIONS,
            ext_expires_in: 86_399,
            default_retry_after: 1,
            server_header: None,
            limits: Limits::DEFAULT.with_max_body(8192),
            source: Source::Imds,
            secret: None,
            realm: None,
            correlation_id: None,
            audiences: &sources::CLOUD_SHELL_AUDIENCES,
        }
    }

    /// The defaults for `source`: [`Config::new`] of IMDS with [`Config::source`] set; App
    /// Service answers with `Server: Kestrel`. [`Source::Imds`] is `Config::new(Flavor::Imds)`.
    pub const fn for_source(source: Source) -> Self {
        let mut config = Config::new(Flavor::Imds);
        config.source = source;
        if matches!(source, Source::AppService) {
            config.server_header = Some("Kestrel");
        }
        config
    }

    /// Sets [`Config::secret`].
    #[must_use]
    pub const fn with_secret(mut self, secret: &'s [u8]) -> Self {
        self.secret = Some(secret);
        self
    }

    /// Sets [`Config::realm`].
    #[must_use]
    pub const fn with_realm(mut self, realm: &'s str) -> Self {
        self.realm = Some(realm);
        self
    }

    /// Sets [`Config::correlation_id`].
    #[must_use]
    pub const fn with_correlation_id(mut self, id: &'s str) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// Sets [`Config::audiences`].
    #[must_use]
    pub const fn with_audiences(mut self, audiences: &'s [&'s str]) -> Self {
        self.audiences = audiences;
        self
    }

    /// True when this configuration serves one of [`sources`] rather than IMDS or the
    /// extension.
    pub const fn is_source(&self) -> bool {
        !matches!(self.source, Source::Imds)
    }

    /// True when `path` is one of this server's own endpoints: [`serves_path`] for IMDS and the
    /// extension, the source's token path otherwise.
    pub fn serves(&self, path: &str) -> bool {
        if self.is_source() {
            sources::is_token_path(self.source, path)
        } else {
            serves_path(self.flavor, path)
        }
    }

    /// Sets [`Config::limits`].
    #[must_use]
    pub const fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets [`Config::tenant_id`].
    #[must_use]
    pub const fn with_tenant_id(mut self, tenant_id: &'s str) -> Self {
        self.tenant_id = Some(tenant_id);
        self
    }

    /// Sets [`Config::api_versions`].
    #[must_use]
    pub const fn with_api_versions(mut self, versions: &'s [&'s str]) -> Self {
        self.api_versions = versions;
        self
    }

    /// Sets [`Config::ext_expires_in`].
    #[must_use]
    pub const fn with_ext_expires_in(mut self, seconds: u64) -> Self {
        self.ext_expires_in = seconds;
        self
    }

    /// Sets [`Config::default_retry_after`].
    #[must_use]
    pub const fn with_default_retry_after(mut self, seconds: u32) -> Self {
        self.default_retry_after = seconds;
        self
    }

    /// Sets [`Config::server_header`].
    #[must_use]
    pub const fn with_server_header(mut self, value: &'s str) -> Self {
        self.server_header = Some(value);
        self
    }
}

/// A parsed request as validation sees it: what [`Server::handle`] extracts from the HTTP head,
/// or what a shell with its own HTTP stack fills in for [`Server::decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestView<'r> {
    /// The method, e.g. `GET`.
    pub method: &'r str,
    /// The path of the request target, still percent-encoded, without the query.
    pub path: &'r str,
    /// The query string (after `?`, still encoded); empty when there is none.
    pub query: &'r [u8],
    /// The value of the `Metadata` header, if present.
    pub metadata: Option<&'r [u8]>,
    /// True when the request carries an `X-Forwarded-For` header.
    pub forwarded_for: bool,
    /// The value of the `Content-Type` header, if present.
    pub content_type: Option<&'r [u8]>,
    /// The (decoded) body; empty when there is none.
    pub body: &'r [u8],
    /// The value of the `X-IDENTITY-HEADER` header (App Service), if present.
    pub identity_header: Option<&'r [u8]>,
    /// The value of the `secret` header (App Service 2017, Azure ML), if present.
    pub secret: Option<&'r [u8]>,
    /// The value of the `Authorization` header (Arc), if present.
    pub authorization: Option<&'r [u8]>,
}

/// What a valid token request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant<'a, 'w> {
    /// The identity the request resolved to.
    pub resolved: Resolved<'a>,
    /// The `resource` (audience), percent-decoded.
    pub resource: &'w str,
    /// `bypass_cache=true` was given.
    pub bypass_cache: bool,
}

/// The outcome of validating one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision<'a, 'w> {
    /// A valid token request: issue a token.
    Token(Grant<'a, 'w>),
    /// A valid `/metadata/identity/info` request: answer `{"tenantId":…}`.
    Info,
    /// Answer with this error.
    Reject(Rejection),
}

/// What the issuer is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssueRequest<'r, 'a> {
    /// The identity to issue for, and its slot in the table.
    pub resolved: Resolved<'a>,
    /// The audience, percent-decoded (e.g. `https://management.azure.com/`).
    pub resource: &'r str,
    /// Current time, Unix seconds.
    pub now: u64,
    /// The client asked to bypass the token cache.
    pub bypass_cache: bool,
    /// Which service answers.
    pub flavor: Flavor,
}

/// A token the issuer wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Issued {
    /// Length of the token written at the start of the issuer's output buffer (ASCII, e.g. a JWT).
    pub token_len: usize,
    /// When the token becomes valid, Unix seconds (the JWT `nbf`).
    pub not_before: u64,
    /// When it expires, Unix seconds (the JWT `exp`). `expires_in` is `expires_on − now`, so a
    /// cached token counts down.
    pub expires_on: u64,
}

/// An error answer chosen by the shell (fault injection, throttling, maintenance), or an
/// upstream error passed on by a [`Relay`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault<'f> {
    /// The HTTP status, 100–999.
    pub status: u16,
    /// The `error` field.
    pub error: &'f str,
    /// The `error_description` field; `None` writes the one-field `{"error":…}` shape.
    pub description: Option<&'f str>,
    /// `Retry-After` seconds. For 429 and 503 a `None` is replaced by
    /// [`Config::default_retry_after`].
    pub retry_after: Option<u32>,
}

/// Why the issuer did not produce a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IssueError<'f> {
    /// The resource is unknown to the (emulated) Entra ID → 400 `invalid_resource`.
    UnknownResource,
    /// Too many requests → 429 `too_many_requests`.
    Throttled {
        /// `Retry-After` seconds; `None` uses [`Config::default_retry_after`].
        retry_after: Option<u32>,
    },
    /// Temporarily unavailable → 503 `service_unavailable`.
    Unavailable {
        /// `Retry-After` seconds; `None` uses [`Config::default_retry_after`].
        retry_after: Option<u32>,
    },
    /// Issuing failed → 500.
    Failed,
    /// The token does not fit the output buffer; `required` bytes would. [`Server::handle`]
    /// reports this as [`HandleError::WorkTooSmall`].
    BufferTooSmall {
        /// Bytes the token needs.
        required: usize,
    },
    /// Answer with this shell-chosen error instead.
    Fault(Fault<'f>),
    /// Close the connection without answering (fault injection). [`Server::handle`] then
    /// returns a response of length 0, status 0, `keep_alive: false`, [`Outcome::Closed`].
    Close,
}

impl fmt::Display for IssueError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IssueError::UnknownResource => f.write_str("resource unknown to the issuer"),
            IssueError::Throttled { .. } => f.write_str("issuer throttled the request"),
            IssueError::Unavailable { .. } => f.write_str("issuer temporarily unavailable"),
            IssueError::Failed => f.write_str("issuer failed"),
            IssueError::BufferTooSmall { required } => {
                write!(f, "token buffer too small: {required} bytes required")
            }
            IssueError::Fault(fault) => {
                write!(f, "fault injected: {} {}", fault.status, fault.error)
            }
            IssueError::Close => f.write_str("close the connection without answering"),
        }
    }
}

impl core::error::Error for IssueError<'_> {}

/// What a request looks like before validation, for [`Issuer::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission<'r> {
    /// The method.
    pub method: &'r str,
    /// The path (still encoded).
    pub path: &'r str,
    /// Current time, Unix seconds.
    pub now: u64,
}

/// A well-formed request for a path the server does not own, offered to [`Issuer::serve_other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtherRequest<'r> {
    /// The method.
    pub method: &'r str,
    /// The path (still encoded), without the query.
    pub path: &'r str,
    /// The query string (after `?`, still encoded); empty when there is none.
    pub query: &'r [u8],
    /// The (decoded) body; empty when there is none.
    pub body: &'r [u8],
    /// Current time, Unix seconds.
    pub now: u64,
}

/// The shell's answer to an [`OtherRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OtherAnswer {
    /// Not the shell's path either: the server answers as for any unknown path (IMDS 404
    /// `Not found`, extension 401 `unknown_source`), after [`Issuer::admit`].
    Pass,
    /// Answer with `status` and the JSON body of `body_len` bytes the shell wrote at the start of
    /// the buffer it was given. The server puts the head (`Content-Type: application/json`,
    /// `Content-Length`, `Connection`) in front of it.
    Json {
        /// The HTTP status, 100–999.
        status: u16,
        /// Length of the body written at the start of the buffer.
        body_len: usize,
    },
    /// The body does not fit the buffer; `required` bytes would. [`Server::handle`] reports
    /// [`HandleError::OutputTooSmall`] and the caller calls again with a larger output buffer
    /// (the shell is asked again, so it should keep the answer it computed).
    TooSmall {
        /// Bytes the body needs.
        required: usize,
    },
}

/// True when `path` is one of the endpoints the server answers itself for `flavor`: IMDS's token
/// and info paths, or the extension's token path. Other paths are offered to
/// [`Issuer::serve_other`] first. Matching is [`endpoint`]'s.
pub fn serves_path(flavor: Flavor, path: &str) -> bool {
    endpoint(flavor, path).is_some()
}

/// Which of the server's own endpoints `path` (the request target's path, without the query)
/// names for `flavor`, matched the way the real services match it, or `None` for any other
/// path.
///
/// IMDS serves its identity endpoints with and without one trailing `/`: MSAL Node (and so
/// `@azure/identity` 4.x) canonicalizes an `AZURE_POD_IDENTITY_AUTHORITY_HOST` endpoint to
/// `…/metadata/identity/oauth2/token/`, and IMDS answers it. The extension's
/// `/oauth2/token` is matched exactly.
pub fn endpoint(flavor: Flavor, path: &str) -> Option<Endpoint> {
    if flavor == Flavor::Extension {
        return (path == EXTENSION_TOKEN_PATH).then_some(Endpoint::Token);
    }
    match path.strip_suffix('/').unwrap_or(path) {
        IMDS_TOKEN_PATH => Some(Endpoint::Token),
        IMDS_INFO_PATH => Some(Endpoint::Info),
        _ => None,
    }
}

/// The shell's side of issuing: mint (sign) tokens, and optionally answer requests with faults.
pub trait Issuer {
    /// Writes a token for `request` at the start of `out` and says how long it is and when it is
    /// valid. Called only for valid requests, after identity resolution; the identity's
    /// [`Slot`](crate::identity::Slot) in `request.resolved` lets the shell keep per-identity
    /// counters and faults. May be called again for the same request if the caller retries
    /// after [`HandleError::OutputTooSmall`].
    fn issue(
        &mut self,
        request: &IssueRequest<'_, '_>,
        out: &mut [u8],
    ) -> Result<Issued, IssueError<'_>>;

    /// Called for every well-formed request before validation; returning a [`Fault`] answers
    /// the request with it (e.g. a 410 while "IMDS is updating", or a 429 when over the rate
    /// limit). The default admits everything.
    fn admit(&mut self, request: &Admission<'_>) -> Option<Fault<'_>> {
        let _ = request;
        None
    }

    /// Called for every well-formed request whose path the server does not own (see
    /// [`serves_path`]), before [`Issuer::admit`] and without the `Metadata` header check: the
    /// shell may answer it by writing a JSON body at the start of `out` (e.g. a JWKS, or an
    /// admin API of its own). The default passes every request on, which the server answers as
    /// an unknown path.
    fn serve_other(&mut self, request: &OtherRequest<'_>, out: &mut [u8]) -> OtherAnswer {
        let _ = (request, out);
        OtherAnswer::Pass
    }
}

/// Why [`Server::handle`] could not produce a response. The input is not consumed; grow the
/// named buffer and call again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandleError {
    /// The output buffer cannot hold the response; `required` bytes would.
    OutputTooSmall {
        /// Bytes the response needs.
        required: usize,
    },
    /// The server's work buffer cannot hold the decoded parameters plus the token; `required`
    /// bytes would.
    WorkTooSmall {
        /// Bytes the work buffer needs.
        required: usize,
    },
}

impl fmt::Display for HandleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandleError::OutputTooSmall { required } => {
                write!(f, "response buffer too small: {required} bytes required")
            }
            HandleError::WorkTooSmall { required } => {
                write!(f, "server work buffer too small: {required} bytes required")
            }
        }
    }
}

impl core::error::Error for HandleError {}

/// A sans-I/O token server over an identity table.
///
/// `work` is scratch space lent for the server's lifetime: percent-decoded parameters, then the
/// token from the [`Issuer`]. The request-line limit plus the largest token (a few KiB) is always
/// enough; 16 KiB is a comfortable default.
#[derive(Debug)]
pub struct Server<'s, 'a, S, const N: usize> {
    table: &'a IdentityTable<S, N>,
    config: Config<'s>,
    work: &'s mut [u8],
}

/// One of the endpoints the server answers itself (see [`endpoint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// The token endpoint: IMDS `/metadata/identity/oauth2/token`, extension `/oauth2/token`.
    Token,
    /// IMDS `/metadata/identity/info`.
    Info,
}

impl<'s, 'a, S: AsRef<str>, const N: usize> Server<'s, 'a, S, N> {
    /// A server answering from `table` as `config` says, with `work` as scratch space.
    pub fn new(table: &'a IdentityTable<S, N>, config: Config<'s>, work: &'s mut [u8]) -> Self {
        Server {
            table,
            config,
            work,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config<'s> {
        &self.config
    }

    /// The identity table.
    pub fn table(&self) -> &'a IdentityTable<S, N> {
        self.table
    }

    /// Validates `req` and resolves its identity, with no I/O and no issuing. Parameters are
    /// decoded into `work`; the unused rest of `work` is returned beside the decision.
    ///
    /// Checks run in this order, the first failure answering: path, method, `Metadata`
    /// header, `X-Forwarded-For` (IMDS), content type (extension POST), parameter syntax
    /// (count, duplicates, encoding), `api-version` (IMDS), `resource`, selector count,
    /// resolution.
    pub fn decide<'w>(
        &self,
        req: &RequestView<'_>,
        work: &'w mut [u8],
    ) -> (Decision<'a, 'w>, &'w mut [u8]) {
        decide_with(self.table, &self.config, req, work)
    }

    /// A fresh [`ServerConnection`] with this server's limits.
    pub fn connection(&self) -> ServerConnection {
        ServerConnection::new(self.config.limits)
    }
}

/// [`Server::decide`] without borrowing the server.
pub(crate) fn decide_with<'a, 'w, S: AsRef<str>, const N: usize>(
    table: &'a IdentityTable<S, N>,
    config: &Config<'_>,
    req: &RequestView<'_>,
    work: &'w mut [u8],
) -> (Decision<'a, 'w>, &'w mut [u8]) {
    match decide_inner(table, config, req, work) {
        Ok(done) => done,
        Err((rejection, work)) => (Decision::Reject(rejection), work),
    }
}

#[allow(clippy::type_complexity)]
fn decide_inner<'a, 'w, S: AsRef<str>, const N: usize>(
    table: &'a IdentityTable<S, N>,
    config: &Config<'_>,
    req: &RequestView<'_>,
    work: &'w mut [u8],
) -> Result<(Decision<'a, 'w>, &'w mut [u8]), (Rejection, &'w mut [u8])> {
    if config.is_source() {
        let (valid, rest) = sources::validate(config, req, work)?;
        let resource = valid.resource.unwrap_or_default();
        return match sources::resolve(table, config.source, &valid.selector) {
            Ok(resolved) => Ok((
                Decision::Token(Grant {
                    resolved,
                    resource,
                    bypass_cache: valid.bypass_cache,
                }),
                rest,
            )),
            Err(rejection) => Err((rejection, rest)),
        };
    }
    let (valid, rest) = validate(config, req, Mode::Resolve, work)?;
    let Some(resource) = valid.resource else {
        return if table.system_assigned().is_some() && config.tenant_id.is_some() {
            Ok((Decision::Info, rest))
        } else {
            Err((Rejection::IdentityNotFound, rest))
        };
    };
    match table.resolve(&valid.selector) {
        Ok(resolved) => Ok((
            Decision::Token(Grant {
                resolved,
                resource,
                bypass_cache: valid.bypass_cache,
            }),
            rest,
        )),
        Err(e) => Err((e.into(), rest)),
    }
}

/// Who consumes a validated request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// [`Server`]: the identity is resolved from the table, and the IMDS info path is served.
    Resolve,
    /// [`Relay`]: the request is passed on upstream, which resolves the identity; only the
    /// token path is served, and a proxied request (`X-Forwarded-For` or `Forwarded`) is
    /// refused whatever the flavor.
    Relay,
}

/// A request that passed every check before identity resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Valid<'w> {
    /// The non-empty `resource` of a token request; `None` for the info path.
    pub resource: Option<&'w str>,
    /// The one selector (or [`Selector::Default`]).
    pub selector: Selector<'w>,
    /// `bypass_cache=true` was given.
    pub bypass_cache: bool,
}

/// The checks of [`Server::decide`] up to, not including, identity resolution; shared with
/// the relay so both answer malformed requests the same way. Parameters are decoded into
/// `work`; its unused rest comes back with the outcome.
#[allow(clippy::type_complexity)]
pub(crate) fn validate<'w>(
    config: &Config<'_>,
    req: &RequestView<'_>,
    mode: Mode,
    work: &'w mut [u8],
) -> Result<(Valid<'w>, &'w mut [u8]), (Rejection, &'w mut [u8])> {
    let flavor = config.flavor;
    let route = match (flavor, endpoint(flavor, req.path)) {
        (_, Some(Endpoint::Token)) => Endpoint::Token,
        (_, Some(Endpoint::Info)) if mode == Mode::Resolve => Endpoint::Info,
        (Flavor::Extension, _) => return Err((Rejection::UnknownSource, work)),
        (Flavor::Imds, _) => return Err((Rejection::NotFound, work)),
    };
    let post = req.method == "POST";
    let method_ok = match flavor {
        Flavor::Extension => req.method == "GET" || post,
        Flavor::Imds => req.method == "GET",
    };
    if !method_ok {
        return Err((Rejection::MethodNotAllowed, work));
    }
    if !req
        .metadata
        .is_some_and(|v| v.eq_ignore_ascii_case(b"true"))
    {
        return Err((Rejection::MetadataHeaderMissing, work));
    }
    if (flavor == Flavor::Imds || mode == Mode::Relay) && req.forwarded_for {
        return Err((Rejection::ForwardedFor, work));
    }
    let form: &[u8] = if post {
        match req.content_type {
            Some(ct) if is_form_urlencoded(ct) => req.body,
            None if req.body.is_empty() => &[],
            _ => return Err((Rejection::UnsupportedContentType, work)),
        }
    } else {
        &[]
    };
    let (params, rest) = params::parse(&[req.query, form], work)?;
    if flavor == Flavor::Imds
        && !params
            .api_version
            .is_some_and(|v| api_version_accepted(config.api_versions, v))
    {
        return Err((Rejection::ApiVersion, rest));
    }
    if route == Endpoint::Info {
        let valid = Valid {
            resource: None,
            selector: Selector::Default,
            bypass_cache: params.bypass_cache,
        };
        return Ok((valid, rest));
    }
    let Some(resource) = params.resource.filter(|r| !r.is_empty()) else {
        return Err((Rejection::ResourceMissing, rest));
    };
    if params.selectors > 1 {
        return Err((Rejection::MultipleSelectors, rest));
    }
    let valid = Valid {
        resource: Some(resource),
        selector: params.selector,
        bypass_cache: params.bypass_cache,
    };
    Ok((valid, rest))
}

/// True for `application/x-www-form-urlencoded`, any case, with or without parameters.
pub(crate) fn is_form_urlencoded(content_type: &[u8]) -> bool {
    let media = content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    media.eq_ignore_ascii_case(b"application/x-www-form-urlencoded")
}

/// The spellings of the selector parameters; `mi_res_id` is an alternative to `msi_res_id`.
pub const SELECTOR_PARAMS: [&str; 4] = ["client_id", "object_id", "msi_res_id", "mi_res_id"];

#[cfg(test)]
mod tests {
    use super::{IDENTITY_API_VERSIONS, api_version_accepted};

    #[test]
    fn api_versions_are_matched_exactly_whatever_their_length() {
        for v in IDENTITY_API_VERSIONS {
            assert!(api_version_accepted(&IDENTITY_API_VERSIONS, v), "{v}");
        }
        for v in [
            "",
            "2018-02-0",
            "2018-02-01 ",
            "2018-02-02",
            "2017-12-01",
            "2018-02-01\0",
        ] {
            assert!(!api_version_accepted(&IDENTITY_API_VERSIONS, v), "{v:?}");
        }
        let custom = ["v1", "2018-02-01-preview", "2020-01-01"];
        for v in custom {
            assert!(api_version_accepted(&custom, v), "{v}");
        }
        for v in ["v2", "2018-02-01", "2018-02-01-previe"] {
            assert!(!api_version_accepted(&custom, v), "{v}");
        }
    }
}
