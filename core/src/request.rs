//! Token requests: a [`TokenRequest`] written as HTTP/1.1 bytes for an [`Endpoint`].
//!
//! ```
//! use mitoken_core::request::{Endpoint, Selector, TokenRequest};
//!
//! let req = TokenRequest::new("https://management.azure.com/")
//!     .with_selector(Selector::ClientId("b9c48cb0-1720-400e-8ca8-2984fcb042d9"));
//! let mut buf = [0u8; 512];
//! let n = req.write(&Endpoint::Imds, &mut buf).unwrap();
//! assert!(buf[..n].starts_with(
//!     b"GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2F"
//! ));
//! ```
//!
//! Every value is validated before anything is written: CR, LF and every other control
//! character (bytes `0x00–0x1F` and `0x7F`) in the resource, a selector, the api-version, the
//! host or the path is rejected with [`RequestError::ControlCharacter`] naming the field, so no
//! value can smuggle a header or a second request. Query values are then percent-encoded
//! ([`crate::query::encode`]).

use core::fmt;

use crate::query;
use crate::secret::Secret;
use crate::source::Source;
use crate::write::{BufferTooSmall, SliceWriter};

/// IMDS address (link-local, plain HTTP).
pub const IMDS_HOST: &str = "169.254.169.254";
/// IMDS port.
pub const IMDS_PORT: u16 = 80;
/// Path of the IMDS managed-identity token endpoint.
pub const IMDS_TOKEN_PATH: &str = "/metadata/identity/oauth2/token";
/// Host of the legacy managed-identity VM extension.
pub const EXTENSION_HOST: &str = "localhost";
/// Default port of the legacy managed-identity VM extension.
pub const EXTENSION_PORT: u16 = 50342;
/// Path of the legacy VM extension's token endpoint.
pub const EXTENSION_TOKEN_PATH: &str = "/oauth2/token";
/// The `api-version` every Microsoft SDK sends to IMDS.
pub const DEFAULT_API_VERSION: &str = "2018-02-01";
/// The `User-Agent` mitoken sends.
pub const USER_AGENT: &str = concat!("mitoken/", env!("CARGO_PKG_VERSION"));

/// Which value of a request an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestField {
    /// The `resource` (or the scope it came from).
    Resource,
    /// The `client_id` selector.
    ClientId,
    /// The `object_id` selector.
    ObjectId,
    /// The `msi_res_id` / `mi_res_id` selector.
    ResourceId,
    /// The `api-version`.
    ApiVersion,
    /// The endpoint host.
    Host,
    /// The endpoint path.
    Path,
    /// The endpoint URL given to [`Endpoint::parse_url`].
    Url,
    /// The source's secret (`X-IDENTITY-HEADER`, `secret`, `Secret`, or Arc's key).
    Secret,
}

impl RequestField {
    /// The field's name as a person would look for it (query parameter names where there is one).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Resource => "resource",
            Self::ClientId => "client_id",
            Self::ObjectId => "object_id",
            Self::ResourceId => "resource id (msi_res_id/mi_res_id)",
            Self::ApiVersion => "api-version",
            Self::Host => "host",
            Self::Path => "path",
            Self::Url => "endpoint URL",
            Self::Secret => "secret",
        }
    }
}

impl fmt::Display for RequestField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a token request or an endpoint could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// The output buffer is too small; `required` bytes hold the whole request.
    BufferTooSmall {
        /// Exact size of the request in bytes.
        required: usize,
    },
    /// `field` contains CR, LF or another control character (`0x00–0x1F`, `0x7F`).
    ControlCharacter {
        /// The offending value.
        field: RequestField,
    },
    /// `field` is empty but must have a value.
    Empty {
        /// The empty value.
        field: RequestField,
    },
    /// The scope contains whitespace: a managed-identity request takes exactly one scope.
    MultipleScopes,
    /// The host has characters other than letters, digits, `-._~` (or, for an IPv6
    /// literal, hex digits, `:` and `.`).
    InvalidHost,
    /// The path does not start with `/`, or has a space, `?`, `#` or a non-ASCII byte.
    InvalidPath,
    /// The port is missing after `:`, not a number, 0, or above 65535.
    InvalidPort,
    /// The URL is `https://…`; managed-identity endpoints of this kind speak plain HTTP only.
    HttpsNotSupported,
    /// The endpoint speaks a managed-identity source other than IMDS and the VM extension, and
    /// this build of the core was made without its `sources` feature (a guest that only ever
    /// talks to IMDS leaves those protocols out of its image).
    SourceNotBuilt,
    /// The URL does not start with `http://`.
    NotHttpUrl,
    /// The URL has no host (`http://` or `http:///path`).
    MissingHost,
    /// The URL has user information (`user@host`), which is not supported.
    UserInfoInUrl,
    /// The URL has a query (`?`) or fragment (`#`); give only scheme, host, port and path.
    QueryInUrl,
    /// The URL is `http://` but the source (Service Fabric) is served over HTTPS only.
    HttpsRequired,
    /// The source needs a secret header and the request has no secret.
    MissingSecret {
        /// The source.
        source: Source,
    },
    /// The request has a secret but the endpoint's style sends none (IMDS, the extension,
    /// Cloud Shell).
    SecretNotUsed,
    /// The source does not accept this kind of user-assigned selector.
    SelectorNotSupported {
        /// The source.
        source: Source,
        /// The selector given.
        selector: RequestField,
    },
    /// Azure ML needs a `clientid` on every request (its `DEFAULT_IDENTITY_CLIENT_ID` when no
    /// identity is named).
    ClientIdRequired,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Without the `sources` feature these cannot happen (a request to another source is
            // refused first, with `SourceNotBuilt`): its text keeps their formatting out of the
            // image.
            Self::HttpsRequired
            | Self::MissingSecret { .. }
            | Self::SelectorNotSupported { .. }
            | Self::ClientIdRequired
                if !cfg!(feature = "sources") =>
            {
                fmt::Display::fmt(&Self::SourceNotBuilt, f)
            }
            Self::BufferTooSmall { required } => {
                write!(f, "request buffer too small: {required} bytes required")
            }
            Self::ControlCharacter { field } => {
                write!(f, "{field} contains CR, LF or another control character")
            }
            Self::Empty { field } => write!(f, "{field} is empty"),
            Self::MultipleScopes => f.write_str(
                "scope contains whitespace: managed identity takes exactly one scope/resource",
            ),
            Self::InvalidHost => f.write_str(
                "invalid host: use letters, digits and '-._~', or an IP address literal",
            ),
            Self::InvalidPath => f.write_str(
                "invalid path: must start with '/' and contain no space, '?', '#' or non-ASCII",
            ),
            Self::InvalidPort => f.write_str("invalid port: must be a number from 1 to 65535"),
            Self::HttpsNotSupported => {
                f.write_str("https URLs are not supported: the endpoint must be http://")
            }
            Self::SourceNotBuilt => f.write_str(
                "this build speaks IMDS and the VM extension only (mitoken-core without `sources`)",
            ),
            Self::NotHttpUrl => f.write_str("endpoint URL must start with http://"),
            Self::MissingHost => f.write_str("endpoint URL has no host"),
            Self::UserInfoInUrl => f.write_str("endpoint URL must not contain user@"),
            Self::QueryInUrl => {
                f.write_str("endpoint URL must not contain a query ('?') or fragment ('#')")
            }
            Self::HttpsRequired => f.write_str("this source is served over https:// only"),
            Self::MissingSecret { source } => {
                write!(f, "{source} needs a secret header and none was given")
            }
            Self::SecretNotUsed => f.write_str("this endpoint takes no secret"),
            Self::SelectorNotSupported { source, selector } => write!(
                f,
                "{source} does not accept a {selector} selector (user-assigned identity)"
            ),
            Self::ClientIdRequired => f.write_str(
                "azure-ml needs a client id on every request (set DEFAULT_IDENTITY_CLIENT_ID or \
                 pass --client-id)",
            ),
        }
    }
}

impl core::error::Error for RequestError {}

impl From<BufferTooSmall> for RequestError {
    fn from(e: BufferTooSmall) -> Self {
        Self::BufferTooSmall {
            required: e.required,
        }
    }
}

/// Query-parameter name used for an ARM resource-ID selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResIdParam {
    /// `msi_res_id`: the documented IMDS name, and the only one Azure Container Instances honour.
    #[default]
    MsiResId,
    /// `mi_res_id`: honoured by IMDS (undocumented) and the only one App Service honours.
    MiResId,
}

impl ResIdParam {
    /// The query-parameter name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MsiResId => "msi_res_id",
            Self::MiResId => "mi_res_id",
        }
    }
}

/// Selects a user-assigned identity. Without one, the endpoint picks its default identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector<'a> {
    /// By Entra client (application) ID: `client_id=…`.
    ClientId(&'a str),
    /// By Entra object (principal) ID: `object_id=…`.
    ObjectId(&'a str),
    /// By ARM resource ID (`/subscriptions/…/userAssignedIdentities/<name>`).
    ResourceId {
        /// The ARM resource ID, unencoded.
        id: &'a str,
        /// The query-parameter name to send it under.
        param: ResIdParam,
    },
}

impl<'a> Selector<'a> {
    /// The query-parameter name this selector is sent as.
    pub const fn param(&self) -> &'static str {
        match self {
            Self::ClientId(_) => "client_id",
            Self::ObjectId(_) => "object_id",
            Self::ResourceId { param, .. } => param.as_str(),
        }
    }

    /// The selector's value, unencoded.
    pub const fn value(&self) -> &'a str {
        match *self {
            Self::ClientId(v) | Self::ObjectId(v) | Self::ResourceId { id: v, .. } => v,
        }
    }

    const fn field(&self) -> RequestField {
        match self {
            Self::ClientId(_) => RequestField::ClientId,
            Self::ObjectId(_) => RequestField::ObjectId,
            Self::ResourceId { .. } => RequestField::ResourceId,
        }
    }
}

/// Which protocol dialect an endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Style {
    /// IMDS: `api-version` first in the query.
    #[default]
    Imds,
    /// Legacy VM extension: no `api-version`. `bypass_cache=true` is still sent when asked for:
    /// the emulator and the bridge honour it; a genuine extension ignores what it does not know.
    Extension,
    /// App Service / Functions / Container Apps, api-version `2019-08-01`: the secret in
    /// `X-IDENTITY-HEADER`, selectors `client_id` / `object_id` / `mi_res_id`.
    AppService,
    /// App Service's legacy api-version `2017-09-01`: the secret in `secret`, selector
    /// `clientid` only.
    AppService2017,
    /// Azure Machine Learning: the 2017 form, with `clientid` on every request.
    AzureMl,
    /// Azure Arc (HIMDS), api-version `2020-06-01`, `Metadata: true`; the second request of the
    /// challenge carries `Authorization: Basic <key file contents>` (the request's secret).
    /// Selectors `client_id` / `object_id` / `msi_res_id`.
    Arc,
    /// Cloud Shell: `POST`, form body `resource=…`, `Metadata: true`, no selectors.
    CloudShell,
    /// Service Fabric (HTTPS): the secret in `Secret`, api-version `2019-07-01-preview`, no
    /// selectors.
    ServiceFabric,
}

impl Style {
    /// Every style.
    pub const ALL: [Self; 8] = [
        Self::Imds,
        Self::Extension,
        Self::AppService,
        Self::AppService2017,
        Self::AzureMl,
        Self::Arc,
        Self::CloudShell,
        Self::ServiceFabric,
    ];

    /// The style a [`Source`] speaks; `None` for workload identity (not an MSI endpoint).
    pub const fn for_source(source: Source) -> Option<Self> {
        match source {
            Source::Imds => Some(Self::Imds),
            Source::AppService => Some(Self::AppService),
            Source::AppService2017 => Some(Self::AppService2017),
            Source::AzureMl => Some(Self::AzureMl),
            Source::Arc => Some(Self::Arc),
            Source::CloudShell => Some(Self::CloudShell),
            Source::ServiceFabric => Some(Self::ServiceFabric),
            _ => None,
        }
    }

    /// The source this style talks to (`None` for the legacy VM extension).
    pub const fn source(self) -> Option<Source> {
        match self {
            Self::Imds => Some(Source::Imds),
            Self::Extension => None,
            Self::AppService => Some(Source::AppService),
            Self::AppService2017 => Some(Source::AppService2017),
            Self::AzureMl => Some(Source::AzureMl),
            Self::Arc => Some(Source::Arc),
            Self::CloudShell => Some(Source::CloudShell),
            Self::ServiceFabric => Some(Source::ServiceFabric),
        }
    }

    /// The port a URL without one means: 443 for HTTPS, else 80.
    pub const fn default_port(self) -> u16 {
        if self.uses_tls() { 443 } else { 80 }
    }

    /// True if the endpoint is reached over HTTPS (Service Fabric).
    pub const fn uses_tls(self) -> bool {
        matches!(self, Self::ServiceFabric)
    }

    /// True if requests carry a secret header (App Service, 2017, Azure ML, Service Fabric).
    pub const fn needs_secret(self) -> bool {
        matches!(
            self,
            Self::AppService | Self::AppService2017 | Self::AzureMl | Self::ServiceFabric
        )
    }

    /// The header the request's secret goes in, with its value prefix (`Basic ` for Arc).
    const fn secret_header(self) -> Option<&'static str> {
        match self {
            Self::AppService => Some("X-IDENTITY-HEADER: "),
            Self::AppService2017 | Self::AzureMl => Some("secret: "),
            Self::ServiceFabric => Some("Secret: "),
            Self::Arc => Some("Authorization: Basic "),
            Self::Imds | Self::Extension | Self::CloudShell => None,
        }
    }

    /// True if requests carry `Metadata: true`.
    const fn sends_metadata(self) -> bool {
        matches!(
            self,
            Self::Imds | Self::Extension | Self::Arc | Self::CloudShell
        )
    }

    /// The query name `selector` is sent under in this style, or the refusal.
    fn selector_param(self, selector: &Selector<'_>) -> Result<&'static str, RequestError> {
        let Some(source) = self.source() else {
            return Ok(selector.param());
        };
        if source == Source::Imds {
            return Ok(selector.param());
        }
        let (client, object, res) = source.selector_names();
        let name = match selector {
            Selector::ClientId(_) => client,
            Selector::ObjectId(_) => object,
            Selector::ResourceId { .. } => res,
        };
        name.ok_or(RequestError::SelectorNotSupported {
            source,
            selector: selector.field(),
        })
    }
}

/// `style` if this build speaks it: without the `sources` feature only IMDS and the VM
/// extension are built, and the checks after this one let the compiler drop the others' code.
#[inline]
fn built(style: Style) -> Result<Style, RequestError> {
    if cfg!(feature = "sources") || matches!(style, Style::Imds | Style::Extension) {
        Ok(style)
    } else {
        Err(RequestError::SourceNotBuilt)
    }
}

/// Where a token request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint<'a> {
    /// IMDS: `169.254.169.254:80`, path [`IMDS_TOKEN_PATH`].
    Imds,
    /// Legacy VM extension: `localhost:50342`, path [`EXTENSION_TOKEN_PATH`].
    ///
    /// A resource-ID selector is sent as given (as legacy SDKs did), although the extension
    /// documented only `client_id` and `object_id`: a genuine extension may ignore it and answer
    /// for its default identity, so check the identity of the returned token when it matters.
    Extension,
    /// Any other server (an emulator, a bridge, an IMDS override).
    Custom {
        /// Host name or IP address; an IPv6 address without brackets.
        host: &'a str,
        /// TCP port.
        port: u16,
        /// Token path, starting with `/` (no query).
        path: &'a str,
        /// Protocol dialect.
        style: Style,
    },
}

impl<'a> Endpoint<'a> {
    /// Parses an endpoint as a user names it (`--endpoint`, a configuration value): `imds`,
    /// `extension`, or a URL for [`Endpoint::parse_url`].
    pub fn parse_spec(spec: &'a str) -> Result<Self, RequestError> {
        match spec {
            "imds" => Ok(Self::Imds),
            "extension" => Ok(Self::Extension),
            url => Self::parse_url(url),
        }
    }

    /// Parses `http://host[:port][/path]`, e.g. an `AZURE_POD_IDENTITY_AUTHORITY_HOST` value.
    ///
    /// The scheme must be `http` (any case). The port defaults to 80. An empty path or `/`
    /// means [`IMDS_TOKEN_PATH`] (as Azure SDKs treat the IMDS override); any other path is used
    /// verbatim as the token path. An IPv6 host is written in brackets (`http://[::1]:8080`).
    /// The result speaks [`Style::Imds`]; change it with [`Endpoint::with_style`].
    pub fn parse_url(url: &'a str) -> Result<Self, RequestError> {
        Self::parse_url_for(url, Style::Imds)
    }

    /// Parses the token URL of a managed-identity source (e.g. `IDENTITY_ENDPOINT`,
    /// `MSI_ENDPOINT`) for `style`.
    ///
    /// As [`Endpoint::parse_url`], except: [`Style::ServiceFabric`] requires `https://` (port
    /// 443 by default) and every other style requires `http://`; for styles other than
    /// [`Style::Imds`] and [`Style::Extension`] the path is kept as given (empty means `/`),
    /// since these sources name their whole token URL.
    pub fn parse_url_for(url: &'a str, style: Style) -> Result<Self, RequestError> {
        if has_control(url) {
            return Err(RequestError::ControlCharacter {
                field: RequestField::Url,
            });
        }
        // The scheme ends at the first `:`, which `//` must follow. (A `://` after an earlier
        // `:` would give a scheme containing `:`, never `http`, so the answer is the same as
        // splitting at the first `://`; a byte search keeps the substring searcher out of
        // the firmware image.)
        let (scheme, rest) = split_at_byte(url, b':')
            .and_then(|(scheme, rest)| Some((scheme, rest.strip_prefix("//")?)))
            .ok_or(RequestError::NotHttpUrl)?;
        let https = scheme.eq_ignore_ascii_case("https");
        if https && !style.uses_tls() {
            return Err(RequestError::HttpsNotSupported);
        }
        if !https {
            if !scheme.eq_ignore_ascii_case("http") {
                return Err(RequestError::NotHttpUrl);
            }
            if style.uses_tls() {
                return Err(RequestError::HttpsRequired);
            }
        }
        // Byte loops rather than char patterns: the same answers for ASCII delimiters, in a
        // fraction of the code (no char searchers in the firmware image).
        if rest.bytes().any(|b| b == b'?' || b == b'#') {
            return Err(RequestError::QueryInUrl);
        }
        let (authority, path) = match rest.bytes().position(|b| b == b'/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.bytes().any(|b| b == b'@') {
            return Err(RequestError::UserInfoInUrl);
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = split_at_byte(bracketed, b']').ok_or(RequestError::InvalidHost)?;
            if !host.bytes().any(|b| b == b':') {
                return Err(RequestError::InvalidHost);
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or(RequestError::InvalidHost)?),
            };
            (host, port)
        } else {
            match split_at_byte(authority, b':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(RequestError::MissingHost);
        }
        check_host(host)?;
        let port = match port {
            None => style.default_port(),
            Some(p) => parse_port(p)?,
        };
        let path = match (style, path) {
            (Style::Imds | Style::Extension, "" | "/") => IMDS_TOKEN_PATH,
            (_, "") => "/",
            (_, p) => {
                check_path(p)?;
                p
            }
        };
        Ok(Self::Custom {
            host,
            port,
            path,
            style,
        })
    }

    /// The same server, speaking `style`.
    #[must_use]
    pub fn with_style(self, style: Style) -> Self {
        Self::Custom {
            host: self.host(),
            port: self.port(),
            path: self.path(),
            style,
        }
    }

    /// Host to connect to (an IPv6 address comes without brackets).
    pub fn host(&self) -> &'a str {
        match self {
            Self::Imds => IMDS_HOST,
            Self::Extension => EXTENSION_HOST,
            Self::Custom { host, .. } => host,
        }
    }

    /// TCP port to connect to.
    pub fn port(&self) -> u16 {
        match self {
            Self::Imds => IMDS_PORT,
            Self::Extension => EXTENSION_PORT,
            Self::Custom { port, .. } => *port,
        }
    }

    /// `(host, port)` to connect to.
    pub fn connect_addr(&self) -> (&'a str, u16) {
        (self.host(), self.port())
    }

    /// Token path.
    pub fn path(&self) -> &'a str {
        match self {
            Self::Imds => IMDS_TOKEN_PATH,
            Self::Extension => EXTENSION_TOKEN_PATH,
            Self::Custom { path, .. } => path,
        }
    }

    /// Protocol dialect.
    pub fn style(&self) -> Style {
        match self {
            Self::Imds => Style::Imds,
            Self::Extension => Style::Extension,
            Self::Custom { style, .. } => *style,
        }
    }

    /// Checks host, port and path of a [`Endpoint::Custom`] (the built-in ones are valid).
    pub fn validate(&self) -> Result<(), RequestError> {
        if let Self::Custom {
            host, port, path, ..
        } = self
        {
            if host.is_empty() {
                return Err(RequestError::Empty {
                    field: RequestField::Host,
                });
            }
            check_host(host)?;
            if *port == 0 {
                return Err(RequestError::InvalidPort);
            }
            check_path(path)?;
        }
        Ok(())
    }

    /// Writes the `Host` header value: host (bracketed if IPv6), then `:port` unless it is the style's default (80, or 443 for HTTPS).
    fn write_host_header(&self, w: &mut SliceWriter<'_>) {
        let host = self.host();
        if host.contains(':') {
            w.put_byte(b'[');
            w.put_str(host);
            w.put_byte(b']');
        } else {
            w.put_str(host);
        }
        if self.port() != self.style().default_port() {
            w.put_byte(b':');
            w.put_u64(u64::from(self.port()));
        }
    }
}

/// Bytes that may never appear in any value: C0 controls and DEL.
const fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7F
}

/// `s` split around the first `delim` (an ASCII byte), like `str::split_once` with a char
/// pattern but without its searcher.
fn split_at_byte(s: &str, delim: u8) -> Option<(&str, &str)> {
    let i = s.bytes().position(|b| b == delim)?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

fn has_control(s: &str) -> bool {
    s.bytes().any(is_control)
}

fn check_host(host: &str) -> Result<(), RequestError> {
    if has_control(host) {
        return Err(RequestError::ControlCharacter {
            field: RequestField::Host,
        });
    }
    let ok = if host.bytes().any(|b| b == b':') {
        host.bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        host.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    };
    if ok {
        Ok(())
    } else {
        Err(RequestError::InvalidHost)
    }
}

fn check_path(path: &str) -> Result<(), RequestError> {
    if has_control(path) {
        return Err(RequestError::ControlCharacter {
            field: RequestField::Path,
        });
    }
    let ok = path.starts_with('/')
        && path
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#');
    if ok {
        Ok(())
    } else {
        Err(RequestError::InvalidPath)
    }
}

fn parse_port(p: &str) -> Result<u16, RequestError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RequestError::InvalidPort);
    }
    // At most five digits: the value fits a u32 (no `str::parse`, whose generic integer
    // parser is larger than this fold).
    let value = p.bytes().fold(0u32, |n, b| n * 10 + u32::from(b - b'0'));
    match u16::try_from(value) {
        Ok(0) | Err(_) => Err(RequestError::InvalidPort),
        Ok(port) => Ok(port),
    }
}

/// Whether the server should keep the connection open after answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Connection {
    /// `Connection: close` (the default; one request per connection).
    #[default]
    Close,
    /// `Connection: keep-alive`.
    KeepAlive,
}

/// A managed-identity token request.
///
/// Build one with [`TokenRequest::new`] or [`TokenRequest::from_scope`] and the `with_*`
/// methods, then [`TokenRequest::write`] it for an [`Endpoint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenRequest<'a> {
    /// App ID URI of the target resource, unencoded (e.g. `https://management.azure.com/`).
    pub resource: &'a str,
    /// User-assigned identity to use; `None` lets the endpoint pick its default identity.
    pub selector: Option<Selector<'a>>,
    /// `api-version` for IMDS-style endpoints; ignored by the extension style.
    pub api_version: &'a str,
    /// Sends `bypass_cache=true` (both styles): IMDS fetches a fresh token from Entra ID.
    pub bypass_cache: bool,
    /// `Connection` header.
    pub connection: Connection,
    /// The source's secret, sent in its header (`X-IDENTITY-HEADER`, `secret`, `Secret`, or
    /// Arc's `Authorization: Basic`). Redacted in `Debug`.
    pub secret: Option<Secret<'a>>,
}

impl<'a> TokenRequest<'a> {
    /// A request for `resource` with the default identity, api-version [`DEFAULT_API_VERSION`],
    /// IMDS cache allowed, `Connection: close`.
    pub const fn new(resource: &'a str) -> Self {
        Self {
            resource,
            selector: None,
            api_version: DEFAULT_API_VERSION,
            bypass_cache: false,
            connection: Connection::Close,
            secret: None,
        }
    }

    /// A request for an `OAuth2` *scope*, as Azure SDKs take them: a trailing `/.default` is
    /// stripped (`https://vault.azure.net/.default` → `https://vault.azure.net`).
    ///
    /// A scope with whitespace (a space-separated list) is [`RequestError::MultipleScopes`];
    /// an empty one is [`RequestError::Empty`].
    pub fn from_scope(scope: &'a str) -> Result<Self, RequestError> {
        if scope.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(RequestError::MultipleScopes);
        }
        let resource = scope.strip_suffix("/.default").unwrap_or(scope);
        if resource.is_empty() {
            return Err(RequestError::Empty {
                field: RequestField::Resource,
            });
        }
        Ok(Self::new(resource))
    }

    /// Selects a user-assigned identity.
    #[must_use]
    pub const fn with_selector(mut self, selector: Selector<'a>) -> Self {
        self.selector = Some(selector);
        self
    }

    /// Sets the `api-version` (IMDS style only).
    #[must_use]
    pub const fn with_api_version(mut self, api_version: &'a str) -> Self {
        self.api_version = api_version;
        self
    }

    /// Asks the endpoint to bypass its token cache (`bypass_cache=true`, in both styles).
    #[must_use]
    pub const fn with_bypass_cache(mut self, bypass: bool) -> Self {
        self.bypass_cache = bypass;
        self
    }

    /// Sets the source's secret (the shell reads it from the environment, or Arc's key file).
    #[must_use]
    pub const fn with_secret(mut self, secret: &'a str) -> Self {
        self.secret = Some(Secret::new(secret));
        self
    }

    /// Sets the `Connection` header.
    #[must_use]
    pub const fn with_connection(mut self, connection: Connection) -> Self {
        self.connection = connection;
        self
    }

    /// Checks every value this request would send to `endpoint`, without writing anything.
    pub fn validate(&self, endpoint: &Endpoint<'_>) -> Result<(), RequestError> {
        endpoint.validate()?;
        let style = built(endpoint.style())?;
        check_value(self.resource, RequestField::Resource)?;
        if style == Style::Imds {
            check_value(self.api_version, RequestField::ApiVersion)?;
        }
        if let Some(sel) = &self.selector {
            style.selector_param(sel)?;
            check_value(sel.value(), sel.field())?;
        } else if style == Style::AzureMl {
            return Err(RequestError::ClientIdRequired);
        }
        match (&self.secret, style.secret_header()) {
            (Some(secret), Some(_)) => check_value(secret.expose(), RequestField::Secret)?,
            (Some(_), None) => return Err(RequestError::SecretNotUsed),
            (None, Some(_)) if style.needs_secret() => {
                if let Some(source) = style.source() {
                    return Err(RequestError::MissingSecret { source });
                }
            }
            (None, _) => {}
        }
        Ok(())
    }

    /// Writes the complete HTTP/1.1 request for `endpoint` into `out`; returns its length.
    ///
    /// For IMDS, the extension and the GET sources:
    ///
    /// ```text
    /// GET <path>?[api-version=<v>&]resource=<r>[&<selector>=<id>][&bypass_cache=true] HTTP/1.1
    /// Host: <host>[:<port>]
    /// [Metadata: true]                      (IMDS, extension, Arc)
    /// [<secret header>: <secret>]           (App Service, 2017, Azure ML, SF, Arc step 2)
    /// Connection: close | keep-alive
    /// Accept: application/json
    /// User-Agent: mitoken/<version>
    /// ```
    ///
    /// Cloud Shell is a form `POST` to the path with `Metadata: true`,
    /// `Content-Type: application/x-www-form-urlencoded`, `Content-Length` and the body
    /// `resource=<r>`. The `api-version` is [`TokenRequest::api_version`] for IMDS and the
    /// source's fixed one ([`Source::api_version`]) for the others; the selector's query name is
    /// the source's ([`Source::selector_names`]); `bypass_cache` is sent to IMDS and the
    /// extension only.
    ///
    /// Lines end in CRLF and a blank line ends the head. Values are validated first (see the
    /// module docs). If `out` is too small nothing useful is in it and the error is
    /// [`RequestError::BufferTooSmall`] with the exact size; if this returned `Ok` for one
    /// buffer, it returns `Ok` with the same length for any buffer at least that long.
    pub fn write(&self, endpoint: &Endpoint<'_>, out: &mut [u8]) -> Result<usize, RequestError> {
        self.validate(endpoint)?;
        // Checked again although `validate` did: the compiler drops the other sources' code
        // below only when it sees the check here (1,088 B of the guest's `.text` without it).
        let style = built(endpoint.style())?;
        let mut w = SliceWriter::new(out);
        let post = style == Style::CloudShell;
        w.put_str(if post { "POST " } else { "GET " });
        w.put_str(endpoint.path());
        if !post {
            w.put_byte(b'?');
            let api_version = match style.source() {
                Some(Source::Imds) => Some(self.api_version),
                Some(source) => source.api_version(),
                None => None,
            };
            if let Some(v) = api_version {
                w.put_str("api-version=");
                query::encode(v.as_bytes(), &mut w);
                w.put_byte(b'&');
            }
            w.put_str("resource=");
            query::encode(self.resource.as_bytes(), &mut w);
            if let Some(sel) = &self.selector {
                w.put_byte(b'&');
                w.put_str(style.selector_param(sel)?);
                w.put_byte(b'=');
                query::encode(sel.value().as_bytes(), &mut w);
            }
            if self.bypass_cache && matches!(style, Style::Imds | Style::Extension) {
                w.put_str("&bypass_cache=true");
            }
        }
        w.put_str(" HTTP/1.1\r\nHost: ");
        endpoint.write_host_header(&mut w);
        if style.sends_metadata() {
            w.put_str("\r\nMetadata: true");
        }
        if let (Some(secret), Some(header)) = (&self.secret, style.secret_header()) {
            w.put_str("\r\n");
            w.put_str(header);
            w.put_str(secret.expose());
        }
        if post {
            w.put_str("\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ");
            let body_len = "resource=".len() + query::encoded_len(self.resource.as_bytes());
            w.put_u64(body_len as u64);
        }
        w.put_str("\r\nConnection: ");
        w.put_str(match self.connection {
            Connection::Close => "close",
            Connection::KeepAlive => "keep-alive",
        });
        w.put_str("\r\nAccept: application/json\r\nUser-Agent: ");
        w.put_str(USER_AGENT);
        w.put_str("\r\n\r\n");
        if post {
            w.put_str("resource=");
            query::encode(self.resource.as_bytes(), &mut w);
        }
        Ok(w.finish()?)
    }

    /// The exact length [`TokenRequest::write`] needs for `endpoint` (or the validation error).
    pub fn encoded_len(&self, endpoint: &Endpoint<'_>) -> Result<usize, RequestError> {
        match self.write(endpoint, &mut []) {
            Ok(n) | Err(RequestError::BufferTooSmall { required: n }) => Ok(n),
            Err(e) => Err(e),
        }
    }
}

fn check_value(value: &str, field: RequestField) -> Result<(), RequestError> {
    if value.is_empty() {
        Err(RequestError::Empty { field })
    } else if has_control(value) {
        Err(RequestError::ControlCharacter { field })
    } else {
        Ok(())
    }
}
