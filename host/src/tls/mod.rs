//! TLS for the HTTPS sources (Service Fabric, workload identity): generated certificates,
//! a server loop that hands each request's bytes to a handler, and the client's
//! thumbprint-pinned transport. The protocol decisions are the core's
//! (`mitoken_core::service_fabric`, `mitoken_core::workload`); only TLS lives here.

pub mod certs;
pub mod pinned;
pub mod server;

/// The rustls crypto provider every config here uses: ring, which builds with only a C
/// compiler (aws-lc-rs needs cmake; rustls 0.23.48 marks ring's provider deprecated for lacking
/// post-quantum key exchange, which loopback test traffic does not need).
pub(crate) fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    #[allow(deprecated)]
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
