//! The Service Fabric client's transport: HTTPS that accepts exactly the server certificate
//! whose SHA-1 is `IDENTITY_SERVER_THUMBPRINT`, instead of validating a chain to a CA (the
//! endpoint's certificate is self-signed). The handshake signature is still checked against
//! that certificate's key, so a peer must hold the pinned certificate's private key.

use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::certs::sha1_of;

/// Accepts the one certificate whose SHA-1 is the pinned thumbprint.
#[derive(Debug)]
pub struct PinnedThumbprint {
    expected: [u8; 20],
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedThumbprint {
    /// Pins `sha1` (see `mitoken_core::service_fabric::parse_thumbprint`).
    pub fn new(sha1: [u8; 20]) -> Self {
        Self {
            expected: sha1,
            algorithms: super::provider().signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for PinnedThumbprint {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = sha1_of(end_entity);
        let diff = got
            .iter()
            .zip(&self.expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff == 0 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A client configuration that pins `sha1`.
pub fn client_config(sha1: [u8; 20]) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let mut config = rustls::ClientConfig::builder_with_provider(super::provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedThumbprint::new(sha1)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
