//! The Service Fabric client: `mitoken token --source service-fabric`.
//!
//! [`PinnedHttps`] is the transport (the extension point for the token engine): HTTPS to the
//! endpoint in `IDENTITY_ENDPOINT`, accepting exactly the certificate whose SHA-1 is
//! `IDENTITY_SERVER_THUMBPRINT` instead of validating a CA chain. The request bytes are built
//! with the core's HTTP writers; the answer is read with the core's response reader and its
//! token / error parsers (which accept Service Fabric's numeric `expires_on` and nested error).

use std::sync::Arc;
use std::time::Duration;

use mitoken_core::http::{ResponseReader, Status, end_head, write_header, write_request_line};
use mitoken_core::service_fabric::{API_VERSION, parse_thumbprint};
use mitoken_core::source::{
    ENV_IDENTITY_ENDPOINT, ENV_IDENTITY_HEADER, ENV_IDENTITY_SERVER_THUMBPRINT,
};
use mitoken_core::token::{ServiceError, Token};
use mitoken_core::write::SliceWriter;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::client::{ServiceFailure, TokenResponse};

/// Largest response read (a token is a few KiB).
const MAX_RESPONSE: usize = 64 * 1024;

/// Why a Service Fabric token could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SfClientError {
    /// A variable is missing.
    #[error(
        "{0} is not set (Service Fabric needs IDENTITY_ENDPOINT, IDENTITY_HEADER and IDENTITY_SERVER_THUMBPRINT)"
    )]
    MissingVariable(&'static str),
    /// The thumbprint is not a SHA-1.
    #[error("{0}")]
    Thumbprint(#[from] mitoken_core::service_fabric::ThumbprintError),
    /// The endpoint is not `https://host[:port]/path`.
    #[error("IDENTITY_ENDPOINT must be an https:// URL, got {0}")]
    Endpoint(String),
    /// Connecting, the handshake (a certificate that is not the pinned one fails here), or
    /// reading failed.
    #[error("{what} {addr}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// `host:port`.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// The answer is not HTTP, or not a token.
    #[error("malformed answer: {0}")]
    Protocol(String),
    /// The endpoint answered with an error.
    #[error("{0}")]
    Service(ServiceFailure),
    /// No answer within the time allowed.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// A parsed `https://host[:port]/path[?query]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsUrl {
    /// Host name or IP literal (brackets removed).
    pub host: String,
    /// Port (443 by default).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl HttpsUrl {
    /// Parses an `https://` URL.
    pub fn parse(url: &str) -> Result<Self, SfClientError> {
        let bad = || SfClientError::Endpoint(url.to_owned());
        let rest = url
            .get(..8)
            .filter(|s| s.eq_ignore_ascii_case("https://"))
            .and_then(|_| url.get(8..))
            .ok_or_else(bad)?;
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
        if authority.is_empty() || authority.contains('@') {
            return Err(bad());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(bad)?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad())?,
            None => 443,
        };
        Ok(Self {
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }
}

/// HTTPS pinned to one certificate thumbprint.
#[derive(Clone)]
pub struct PinnedHttps {
    connector: TlsConnector,
}

impl std::fmt::Debug for PinnedHttps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinnedHttps").finish_non_exhaustive()
    }
}

impl PinnedHttps {
    /// A transport pinned to `thumbprint` (40 hex digits; spaces and `:` ignored).
    pub fn new(thumbprint: &str) -> Result<Self, SfClientError> {
        let sha1 = parse_thumbprint(thumbprint)?;
        let config = crate::tls::pinned::client_config(sha1)
            .map_err(|e| SfClientError::Protocol(e.to_string()))?;
        Ok(Self {
            connector: TlsConnector::from(config),
        })
    }

    /// Sends `request` (a complete HTTP/1.1 request with `Connection: close`) to `url`'s host
    /// and returns the response's bytes, read until the response is complete.
    pub async fn exchange(&self, url: &HttpsUrl, request: &[u8]) -> Result<Vec<u8>, SfClientError> {
        let addr = format!("{}:{}", url.host, url.port);
        let io = |what| {
            let addr = addr.clone();
            move |source| SfClientError::Io { what, addr, source }
        };
        let tcp = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(io("cannot connect to"))?;
        let _ = tcp.set_nodelay(true);
        let name = rustls::pki_types::ServerName::try_from(url.host.clone())
            .map_err(|e| SfClientError::Endpoint(e.to_string()))?;
        let mut tls = self
            .connector
            .connect(name, tcp)
            .await
            .map_err(io("TLS handshake with"))?;
        tls.write_all(request).await.map_err(io("cannot send to"))?;
        let mut buf = vec![0u8; 16 * 1024];
        let mut filled = 0;
        let mut reader = ResponseReader::default();
        loop {
            if filled == buf.len() {
                if buf.len() >= MAX_RESPONSE {
                    return Err(SfClientError::Protocol("response too large".to_owned()));
                }
                buf.resize(buf.len() * 2, 0);
            }
            let n = tls
                .read(&mut buf[filled..])
                .await
                .map_err(io("cannot read from"))?;
            if n == 0 {
                return Err(SfClientError::Protocol(
                    "connection closed mid-response".to_owned(),
                ));
            }
            filled += n;
            match reader.feed(&mut buf, filled) {
                Ok(Status::Complete { len, .. }) => {
                    buf.truncate(len);
                    return Ok(buf);
                }
                Ok(Status::Partial) => {}
                Err(e) => return Err(SfClientError::Protocol(e.to_string())),
            }
        }
    }
}

/// Builds the token request for `resource`: `GET <path>?api-version=…&resource=…` with the
/// `Secret` header.
pub fn build_request(
    url: &HttpsUrl,
    secret: &str,
    resource: &str,
) -> Result<Vec<u8>, SfClientError> {
    let mut encoded = vec![0u8; mitoken_core::query::encoded_len(resource.as_bytes())];
    let n = mitoken_core::query::encode_into(resource.as_bytes(), &mut encoded)
        .map_err(|e| SfClientError::Protocol(format!("{e:?}")))?;
    encoded.truncate(n);
    let sep = if url.path.contains('?') { '&' } else { '?' };
    let target = format!(
        "{}{sep}api-version={API_VERSION}&resource={}",
        url.path,
        String::from_utf8_lossy(&encoded)
    );
    let host = if url.port == 443 {
        url.host.clone()
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let mut out = vec![0u8; target.len() + host.len() + secret.len() + 256];
    let mut w = SliceWriter::new(&mut out);
    write_request_line(&mut w, "GET", &target)
        .and_then(|()| write_header(&mut w, "Host", &host))
        .and_then(|()| write_header(&mut w, "Secret", secret))
        .and_then(|()| write_header(&mut w, "Accept", "application/json"))
        .and_then(|()| write_header(&mut w, "Connection", "close"))
        .map_err(|e| SfClientError::Protocol(e.to_string()))?;
    end_head(&mut w);
    let n = w
        .finish()
        .map_err(|e| SfClientError::Protocol(format!("{e:?}")))?;
    out.truncate(n);
    Ok(out)
}

/// Reads a response: the token, or the service's error.
pub fn read_response(bytes: &[u8]) -> Result<TokenResponse, SfClientError> {
    let mut buf = bytes.to_vec();
    let mut reader = ResponseReader::default();
    let response = match reader.feed(&mut buf, bytes.len()) {
        Ok(Status::Complete { value, .. }) => value,
        Ok(Status::Partial) => {
            return Err(SfClientError::Protocol("incomplete response".to_owned()));
        }
        Err(e) => return Err(SfClientError::Protocol(e.to_string())),
    };
    let body = response.body(&buf);
    let mut scratch = vec![0u8; body.len()];
    if response.status == 200 {
        return Token::parse(body, &mut scratch)
            .map(|t| TokenResponse::from_core(&t))
            .map_err(|e| SfClientError::Protocol(e.to_string()));
    }
    let retry_after = response
        .retry_after
        .map(|r| r.delay_from(crate::client::unix_now()));
    let failure = match ServiceError::parse(response.status, retry_after, body, &mut scratch) {
        Ok(e) => ServiceFailure {
            status: e.status,
            error: e.error.to_owned(),
            description: e.description.map(str::to_owned),
            retry_after: e.retry_after,
        },
        Err(_) => ServiceFailure {
            status: response.status,
            error: String::new(),
            description: Some(String::from_utf8_lossy(body).into_owned()),
            retry_after,
        },
    };
    Err(SfClientError::Service(failure))
}

/// The endpoint, secret and thumbprint from the environment.
pub fn from_env() -> Result<(String, String, String), SfClientError> {
    let get =
        |name: &'static str| std::env::var(name).map_err(|_| SfClientError::MissingVariable(name));
    Ok((
        get(ENV_IDENTITY_ENDPOINT)?,
        get(ENV_IDENTITY_HEADER)?,
        get(ENV_IDENTITY_SERVER_THUMBPRINT)?,
    ))
}

/// Gets a token: up to 4 tries, retrying 429 and 5xx answers and connection failures with
/// Service Fabric's backoff (1, 2, 4 s, or `Retry-After`), all within `timeout`.
pub async fn get_token(
    endpoint: &str,
    secret: &str,
    thumbprint: &str,
    resource: &str,
    timeout: Duration,
) -> Result<TokenResponse, SfClientError> {
    let url = HttpsUrl::parse(endpoint)?;
    let transport = Arc::new(PinnedHttps::new(thumbprint)?);
    let request = build_request(&url, secret, resource)?;
    let attempt = async {
        let mut backoff = Duration::from_secs(1);
        let mut tries = 0;
        loop {
            tries += 1;
            let outcome = match transport.exchange(&url, &request).await {
                Ok(bytes) => read_response(&bytes),
                Err(e) => Err(e),
            };
            let wait = match &outcome {
                Err(SfClientError::Service(f)) if f.status == 429 || f.status >= 500 => {
                    f.retry_after.map_or(backoff, Duration::from_secs)
                }
                Err(SfClientError::Io {
                    what: "cannot connect to",
                    ..
                }) => backoff,
                _ => return outcome,
            };
            if tries >= 4 {
                return outcome;
            }
            tokio::time::sleep(wait).await;
            backoff *= 2;
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| SfClientError::Timeout(timeout))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let u = HttpsUrl::parse("https://127.0.0.1:2377/metadata/identity/oauth2/token").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 2377, "/metadata/identity/oauth2/token")
        );
        let u = HttpsUrl::parse("HTTPS://[::1]/x?y=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 443, "/x?y=1")
        );
        for bad in ["http://h/x", "https://", "https://u@h/", "https://h:99999/"] {
            assert!(HttpsUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn request_has_the_secret_and_api_version() {
        let u = HttpsUrl::parse("https://localhost:2377/metadata/identity/oauth2/token").unwrap();
        let r =
            String::from_utf8(build_request(&u, "s3", "https://vault.azure.net").unwrap()).unwrap();
        assert!(r.starts_with("GET /metadata/identity/oauth2/token?api-version=2019-07-01-preview&resource=https%3A%2F%2Fvault.azure.net HTTP/1.1\r\n"), "{r}");
        assert!(r.contains("\r\nSecret: s3\r\n"));
        assert!(r.contains("\r\nHost: localhost:2377\r\n"));
        assert!(build_request(&u, "bad\r\nX: y", "r").is_err());
    }

    #[test]
    fn responses_parse_both_ways() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 93\r\n\r\n{\"token_type\":\"Bearer\",\"access_token\":\"a.b.c\",\"expires_on\":1565244611,\"resource\":\"https://r\"}";
        let t = read_response(ok).unwrap();
        assert_eq!(t.expires_on, Some(1_565_244_611));
        let body =
            br#"{"error":{"correlationId":"c","code":"SecretHeaderNotFound","message":"m"}}"#;
        let err = [
            format!(
                "HTTP/1.1 401 Unauthorized\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
            body,
        ]
        .concat();
        match read_response(&err) {
            Err(SfClientError::Service(f)) => {
                assert_eq!((f.status, f.error.as_str()), (401, "SecretHeaderNotFound"));
            }
            other => panic!("{other:?}"),
        }
    }
}
