//! Generated certificates: Service Fabric's self-signed server certificate (clients pin its
//! SHA-1 thumbprint) and workload identity's CA with a `localhost` / `127.0.0.1` server
//! certificate (clients trust the CA through `SSL_CERT_FILE` and friends).

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha1::{Digest as _, Sha1};

/// Names every generated server certificate is valid for.
pub const SERVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// Why a certificate could not be made, loaded or written.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen refused the parameters or could not sign.
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate or key.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A server's certificate and key, and the CA that issued it when there is one.
pub struct ServerIdentity {
    /// The server certificate (DER).
    pub cert_der: CertificateDer<'static>,
    /// The server certificate (PEM).
    pub cert_pem: String,
    /// The CA certificate (PEM), if the server certificate is not self-signed.
    pub ca_pem: Option<String>,
    key_der: Vec<u8>,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("thumbprint", &self.thumbprint())
            .field("has_ca", &self.ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

fn server_params(common_name: &str) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(
        SERVER_NAMES
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>(),
    )?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

impl ServerIdentity {
    /// A new self-signed certificate for [`SERVER_NAMES`] (Service Fabric's kind).
    pub fn self_signed(common_name: &str) -> Result<Self, CertError> {
        let key = KeyPair::generate()?;
        let cert = server_params(common_name)?.self_signed(&key)?;
        Ok(Self {
            cert_der: cert.der().clone(),
            cert_pem: cert.pem(),
            ca_pem: None,
            key_der: key.serialize_der(),
        })
    }

    /// A new CA and a server certificate it issued for [`SERVER_NAMES`].
    pub fn with_ca(ca_name: &str, common_name: &str) -> Result<Self, CertError> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, ca_name);
        ca_params.distinguished_name = dn;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let key = KeyPair::generate()?;
        let cert = server_params(common_name)?.signed_by(&key, &issuer)?;
        Ok(Self {
            cert_der: cert.der().clone(),
            cert_pem: cert.pem(),
            ca_pem: Some(ca_cert.pem()),
            key_der: key.serialize_der(),
        })
    }

    /// The SHA-1 of the certificate's DER (what `IDENTITY_SERVER_THUMBPRINT` holds).
    pub fn sha1(&self) -> [u8; 20] {
        sha1_of(&self.cert_der)
    }

    /// The thumbprint as 40 upper-case hex digits.
    pub fn thumbprint(&self) -> String {
        let mut out = [0u8; 40];
        mitoken_core::service_fabric::write_thumbprint(&self.sha1(), &mut out).to_owned()
    }

    /// A rustls server configuration presenting this certificate (HTTP/1.1 only).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, CertError> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(super::provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![self.cert_der.clone()], key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Writes the certificate a client must trust (the CA's, else the server's own) as PEM.
    pub fn write_trust_pem(&self, path: &Path) -> Result<(), CertError> {
        let pem = self.ca_pem.as_deref().unwrap_or(&self.cert_pem);
        std::fs::write(path, pem).map_err(|source| CertError::Write {
            path: path.display().to_string(),
            source,
        })
    }
}

/// SHA-1 of `der`.
pub fn sha1_of(der: &[u8]) -> [u8; 20] {
    let digest = Sha1::digest(der);
    let mut out = [0u8; 20];
    out.copy_from_slice(&digest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_thumbprint_is_the_sha1_of_the_der() {
        let id = ServerIdentity::self_signed("mitoken test").unwrap();
        let t = id.thumbprint();
        assert_eq!(t.len(), 40);
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase())
        );
        assert_eq!(
            mitoken_core::service_fabric::parse_thumbprint(&t).unwrap(),
            sha1_of(&id.cert_der)
        );
        assert!(id.ca_pem.is_none());
        id.server_config().unwrap();
    }

    #[test]
    fn ca_issued_identity_has_a_ca() {
        let id = ServerIdentity::with_ca("mitoken CA", "localhost").unwrap();
        assert!(
            id.ca_pem
                .as_deref()
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        id.server_config().unwrap();
    }
}
