//! Service Fabric's transport: HTTPS pinned by `IDENTITY_SERVER_THUMBPRINT`.
//!
//! `mitoken token --source service-fabric` goes through the same engine, request writer and
//! response parsers as every other source ([`crate::token_client`], [`crate::source_fetch`]);
//! only the stream differs. [`PinnedHttps`] makes it: TLS to the endpoint in
//! `IDENTITY_ENDPOINT`, accepting exactly the certificate whose SHA-1 is the thumbprint instead
//! of validating a CA chain (the handshake's signature is still verified).

use mitoken_core::service_fabric::parse_thumbprint;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Why a pinned transport could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// The thumbprint is not a SHA-1 (40 hex digits; spaces and `:` ignored).
    #[error("IDENTITY_SERVER_THUMBPRINT: {0}")]
    Thumbprint(#[from] mitoken_core::service_fabric::ThumbprintError),
    /// The TLS configuration could not be built.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
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
    ///
    /// # Errors
    /// A thumbprint that is not a SHA-1, or a TLS configuration that cannot be built.
    pub fn new(thumbprint: &str) -> Result<Self, PinError> {
        let sha1 = parse_thumbprint(thumbprint)?;
        let config = crate::tls::pinned::client_config(sha1)?;
        Ok(Self {
            connector: TlsConnector::from(config),
        })
    }

    /// The TLS handshake over `tcp` with `host` (the certificate's names are not checked: the
    /// pin decides).
    ///
    /// # Errors
    /// The handshake's failure, e.g. a certificate that is not the pinned one.
    pub async fn connect(
        &self,
        host: &str,
        tcp: TcpStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        self.connector.connect(name, tcp).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_are_checked_before_anything_is_sent() {
        assert!(PinnedHttps::new(&"ab".repeat(20)).is_ok());
        assert!(PinnedHttps::new("AB:CD").is_err());
        assert!(PinnedHttps::new(&"zz".repeat(20)).is_err());
    }
}
