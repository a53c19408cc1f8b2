//! The host's token client: one request to IMDS (or a compatible endpoint) over a tokio TCP
//! stream, through mitoken-core's async driver, with connect and overall timeouts.
//!
//! The HTTP bytes are the core's: the stream is wrapped in `embedded-io-adapters`' `FromTokio`
//! and handed to [`mitoken_core::io::fetch_token_async`]. The connection is a plain TCP
//! connection to the endpoint's address, so `HTTP_PROXY`/`HTTPS_PROXY` are never consulted
//! (IMDS must not be reached through a proxy).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use embedded_io_adapters::tokio_1::FromTokio;
use mitoken_core::arc::ArcError;
use mitoken_core::client::{ClientError, Outcome};
use mitoken_core::io::{FetchError, fetch_token_async};
use mitoken_core::request::{Endpoint, RequestError, Style, TokenRequest};
use mitoken_core::token::Token;
use serde::Serialize;
use tokio::net::TcpStream;

/// Largest response accepted (IMDS tokens are 1.5–4 KB; the core handles ≥ 16 KiB tokens).
pub const RESPONSE_BUFFER: usize = 64 * 1024;

/// Time allowed for the TCP connection alone.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An access token, owned. `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct AccessToken(String);

impl AccessToken {
    /// Wraps a token text.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token text, for an `Authorization: Bearer` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccessToken(<redacted, {} bytes>)", self.0.len())
    }
}

/// A token response, owned, with the fields the service sent. It serializes in IMDS's own
/// shape: numeric fields as JSON strings of digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenResponse {
    /// The bearer token.
    pub access_token: AccessToken,
    /// Client id of the identity used, when the service says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Seconds until expiry when the answer was sent.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "digits")]
    pub expires_in: Option<u64>,
    /// Expiry, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "digits")]
    pub expires_on: Option<u64>,
    /// "Extended" lifetime in seconds.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "digits")]
    pub ext_expires_in: Option<u64>,
    /// Start of validity, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "digits")]
    pub not_before: Option<u64>,
    /// The resource the token is for.
    pub resource: String,
    /// `Bearer`.
    pub token_type: String,
    /// Object id of the identity, when the service says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// ARM id of the identity, when the service says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msi_res_id: Option<String>,
}

/// Serializes a number the way IMDS does: as a JSON string of digits.
#[allow(clippy::ref_option)] // serde's `serialize_with` passes `&Option<T>`
fn digits<S: serde::Serializer>(n: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match n {
        Some(n) => s.collect_str(n),
        None => s.serialize_none(),
    }
}

impl TokenResponse {
    /// An owned copy of a token parsed by the core.
    pub fn from_core(t: &Token<'_>) -> Self {
        Self {
            access_token: AccessToken(t.access_token.expose().to_owned()),
            client_id: t.client_id.map(str::to_owned),
            expires_in: t.expires_in,
            expires_on: t.expires_on,
            ext_expires_in: t.ext_expires_in,
            not_before: t.not_before,
            resource: t.resource.to_owned(),
            token_type: t.token_type.to_owned(),
            object_id: t.object_id.map(str::to_owned),
            msi_res_id: t.msi_res_id.map(str::to_owned),
        }
    }
}

/// An error answer from the token service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceFailure {
    /// HTTP status.
    pub status: u16,
    /// The `error` code (empty when the body was not error JSON).
    pub error: String,
    /// The `error_description`, or the body's text.
    pub description: Option<String>,
    /// `Retry-After`, in seconds.
    pub retry_after: Option<u64>,
    /// The service's correlation id, when its body has one (boxed: keeps every failure
    /// value small).
    pub correlation_id: Option<Box<str>>,
}

impl fmt::Display for ServiceFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if !self.error.is_empty() {
            write!(f, " {}", self.error)?;
        }
        if let Some(d) = &self.description {
            write!(f, ": {d}")?;
        }
        if let Some(s) = self.retry_after {
            write!(f, " (retry after {s} s)")?;
        }
        if let Some(c) = &self.correlation_id {
            write!(f, " (correlation id {c})")?;
        }
        Ok(())
    }
}

/// Why an Arc key file could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ArcKeyError {
    /// The path or the file breaks a rule every SDK applies.
    #[error("{0}")]
    Rule(ArcError),
    /// The path resolves (through a symlink) outside the tokens directory.
    #[error("Arc key file {path} resolves outside the tokens directory {dir}")]
    OutsideDirectory {
        /// The path the challenge named.
        path: String,
        /// The tokens directory.
        dir: String,
    },
    /// The file could not be inspected or read.
    #[error("cannot read Arc key file {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The system's error.
        source: Arc<std::io::Error>,
    },
    /// The file is not UTF-8 text.
    #[error("Arc key file {path} is not text")]
    NotText {
        /// The path.
        path: String,
    },
}

/// How a connection to an endpoint is made.
///
/// Every plain-HTTP source is reached over [`Transport::Tcp`]. Service Fabric
/// ([`Style::ServiceFabric`]) is HTTPS with the server certificate pinned by
/// `IDENTITY_SERVER_THUMBPRINT`: [`Transport::PinnedTls`]. The HTTP bytes are the core's either
/// way; only the stream under them differs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Transport {
    /// Plain TCP to the endpoint's address (no proxy).
    Tcp,
    /// TLS over TCP, the server's certificate pinned by its SHA-1 thumbprint.
    PinnedTls(crate::sf_client::PinnedHttps),
}

impl Transport {
    /// The transport for an endpoint speaking `style`; `thumbprint` pins an HTTPS one.
    pub fn for_style(style: Style, thumbprint: Option<&str>) -> Result<Self, FetchFailure> {
        if !style.uses_tls() {
            return Ok(Self::Tcp);
        }
        let thumbprint = thumbprint.ok_or(FetchFailure::NoTlsTransport)?;
        crate::sf_client::PinnedHttps::new(thumbprint)
            .map(Self::PinnedTls)
            .map_err(|e| FetchFailure::Tls(e.to_string()))
    }
}

/// Why a fetch failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchFailure {
    /// The request is invalid; nothing was sent.
    #[error("invalid request: {0}")]
    InvalidRequest(RequestError),
    /// The endpoint could not be reached.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// `host:port` tried.
        addr: String,
        /// The system's error.
        source: Arc<std::io::Error>,
    },
    /// The connection failed after it was made.
    #[error("connection to {addr} failed: {source}")]
    Io {
        /// `host:port`.
        addr: String,
        /// The system's error.
        source: Arc<std::io::Error>,
    },
    /// No answer in time.
    #[error("no answer from {addr} within {after:?}")]
    Timeout {
        /// `host:port`.
        addr: String,
        /// The limit that ran out.
        after: Duration,
    },
    /// The answer is not a valid token response.
    #[error("invalid answer from {addr}: {error}")]
    Protocol {
        /// `host:port`.
        addr: String,
        /// What was wrong.
        error: ClientError,
    },
    /// The service answered with an error.
    #[error("token service error: {0}")]
    Service(ServiceFailure),
    /// Azure Arc challenged the request: the key file at `key_path` must be read and the
    /// request sent again with it (handled by [`crate::source_fetch`]; seen elsewhere only if a
    /// challenge was not answered).
    #[error("Azure Arc asked for the key in {key_path} and the challenge was not answered")]
    ArcChallenge {
        /// The key file the challenge names.
        key_path: String,
    },
    /// An Arc key file could not be used; nothing was sent with it.
    #[error("{0}")]
    ArcKey(Box<ArcKeyError>),
    /// The endpoint is HTTPS (Service Fabric) and no thumbprint was given to pin it by.
    #[error(
        "service-fabric is HTTPS pinned by IDENTITY_SERVER_THUMBPRINT, which is not set; nothing \
         was sent"
    )]
    NoTlsTransport,
    /// The TLS transport could not be set up or the handshake failed (e.g. the server's
    /// certificate does not match the pinned thumbprint).
    #[error("TLS: {0}")]
    Tls(String),
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Gets one token: connect, send, read, parse, all within `timeout`. No retries.
pub async fn fetch_once(
    endpoint: &Endpoint<'_>,
    request: &TokenRequest<'_>,
    timeout: Duration,
) -> Result<TokenResponse, FetchFailure> {
    fetch_with(endpoint, request, timeout, TokenResponse::from_core).await
}

/// Like [`fetch_once`], but hands the core's parsed token (still borrowing the read buffer) to
/// `on_token`, e.g. to put it in a core [`TokenCache`](mitoken_core::cache::TokenCache) without
/// another copy.
pub async fn fetch_with<R>(
    endpoint: &Endpoint<'_>,
    request: &TokenRequest<'_>,
    timeout: Duration,
    on_token: impl FnOnce(&Token<'_>) -> R,
) -> Result<R, FetchFailure> {
    let transport = Transport::for_style(endpoint.style(), None)?;
    fetch_over(endpoint, request, &transport, timeout, on_token).await
}

/// Like [`fetch_with`], over `transport`.
pub async fn fetch_over<R>(
    endpoint: &Endpoint<'_>,
    request: &TokenRequest<'_>,
    transport: &Transport,
    timeout: Duration,
    on_token: impl FnOnce(&Token<'_>) -> R,
) -> Result<R, FetchFailure> {
    request
        .validate(endpoint)
        .map_err(FetchFailure::InvalidRequest)?;
    let (host, port) = endpoint.connect_addr();
    let addr = format!("{host}:{port}");
    tracing::debug!(%addr, resource = request.resource, "token request");
    let work = async {
        let stream = tokio::time::timeout(
            CONNECT_TIMEOUT.min(timeout),
            TcpStream::connect((host, port)),
        )
        .await
        .map_err(|_| FetchFailure::Timeout {
            addr: addr.clone(),
            after: CONNECT_TIMEOUT.min(timeout),
        })?
        .map_err(|source| FetchFailure::Connect {
            addr: addr.clone(),
            source: Arc::new(source),
        })?;
        let _ = stream.set_nodelay(true);
        let mut buf = vec![0u8; RESPONSE_BUFFER];
        let result = match transport {
            Transport::Tcp => {
                let mut io = FromTokio::new(stream);
                fetch_token_async(&mut io, request, endpoint, &mut buf, unix_now()).await
            }
            Transport::PinnedTls(tls) => {
                let tls = tls.connect(host, stream).await.map_err(|source| {
                    tracing::debug!(%addr, error = %source, "TLS handshake failed");
                    FetchFailure::Tls(format!("handshake with {addr}: {source}"))
                })?;
                let mut io = FromTokio::new(tls);
                fetch_token_async(&mut io, request, endpoint, &mut buf, unix_now()).await
            }
        };
        match result {
            Ok(Outcome::Token(t)) => Ok(on_token(&t)),
            Ok(Outcome::Service(e)) => Err(FetchFailure::Service(ServiceFailure {
                status: e.status,
                error: e.error.to_owned(),
                description: e.description.map(str::to_owned),
                retry_after: e.retry_after,
                correlation_id: e.correlation_id.map(Box::from),
            })),
            Ok(Outcome::ArcChallenge { key_path }) => Err(FetchFailure::ArcChallenge {
                key_path: key_path.to_owned(),
            }),
            Err(FetchError::Io(source)) => Err(FetchFailure::Io {
                addr: addr.clone(),
                source: Arc::new(source),
            }),
            Err(FetchError::WriteZero) => Err(FetchFailure::Io {
                addr: addr.clone(),
                source: Arc::new(std::io::ErrorKind::WriteZero.into()),
            }),
            Err(FetchError::Client(ClientError::Request(e))) => {
                Err(FetchFailure::InvalidRequest(e))
            }
            Err(FetchError::Client(error)) => Err(FetchFailure::Protocol {
                addr: addr.clone(),
                error,
            }),
            // `Outcome` and `FetchError` are non-exhaustive: anything new is not a token.
            Ok(_) | Err(_) => Err(FetchFailure::Protocol {
                addr: addr.clone(),
                error: ClientError::Misuse,
            }),
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| {
            Err(FetchFailure::Timeout {
                addr: addr.clone(),
                after: timeout,
            })
        })
}
