//! Building blocks of `mitoken emulate`, an IMDS-compatible emulator for development and tests.
//!
//! Each module is self-contained and does no network I/O: time (`now` in Unix seconds, or an
//! `Instant`) and randomness come in as arguments, so tests run on a virtual clock.
//!
//! - [`config`]: the TOML identity configuration (`--config`, `--flavor`), located errors.
//! - [`signing`]: the RSA key (`--signing-key`, `--export-signing-key`), JWK and `kid`.
//! - [`jwt`]: RS256 tokens shaped like Entra managed-identity tokens, IMDS lifetimes.
//! - [`cache`]: the per-(identity, resource) token cache, `bypass_cache`.
//! - [`jwks`]: the JWKS and OIDC discovery documents served next to the token endpoint.
//! - [`faults`]: fault rules (`--fault`), decided per request.
//! - [`throttle`]: IMDS's 20 requests/s + 5 concurrent limit (`--throttle`).
//! - [`counters`]: requests by status, origin and identity.
//! - [`admin`]: the run-time admin path over faults, counters, throttle and cache.
//! - [`serve`]: the tokio listener gluing the above to the core server
//!   ([`serve::Emulator::start`]).
//!
//! Per token request ([`serve`]): the core parses and validates the request → throttle
//! ([`throttle::Throttle::try_acquire`], holding the permit until the answer is written) and
//! path-level fault rules (`Issuer::admit`) → the core resolves the identity → identity-level
//! fault rules → [`cache::TokenCache::get_or_mint`] (`Issuer::issue`) → the core writes the
//! answer → [`counters::Counters::record`].

pub mod admin;
pub mod cache;
pub mod config;
pub mod counters;
pub mod faults;
pub mod jwks;
pub mod jwt;
pub mod serve;
pub mod signing;
pub mod sources;
pub mod throttle;

use core::fmt::Write as _;
use core::net::SocketAddr;

use config::{EmulatorConfig, Flavor};
use signing::SigningKey;

/// The listen address is not a loopback address and non-loopback binding was not asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0} is not a loopback address; the emulator hands out tokens to anyone who can reach it, so binding it needs --allow-non-loopback"
)]
pub struct NonLoopbackAddress(pub SocketAddr);

/// Refuses a non-loopback `addr` unless `allow_non_loopback` (the explicit flag) is set.
pub fn check_listen_addr(
    addr: SocketAddr,
    allow_non_loopback: bool,
) -> Result<(), NonLoopbackAddress> {
    if addr.ip().is_loopback() || allow_non_loopback {
        Ok(())
    } else {
        Err(NonLoopbackAddress(addr))
    }
}

/// The start-up text. The first line is always `listening on http://<addr>` (tests and scripts
/// read the port from it); then the flavor, tenant, the signing key's `kid` (never the key), the
/// document and admin URLs, and one line per identity.
pub fn startup_banner(
    listen: SocketAddr,
    flavor: Flavor,
    config: &EmulatorConfig,
    key: &SigningKey,
) -> String {
    let base = format!("http://{listen}");
    let token_path = match flavor {
        Flavor::Extension => mitoken_core::server::EXTENSION_TOKEN_PATH,
        _ => mitoken_core::server::IMDS_TOKEN_PATH,
    };
    let mut text = format!(
        "listening on {base}\n\
         mitoken emulate: {flavor} flavor, token endpoint {base}{token_path}\n\
         tenant {}\n\
         signing key kid {} (JWKS {base}{}, OpenID configuration {base}{})\n\
         admin {base}{}{{faults,counters,throttle,cache}}\n",
        config.tenant_id,
        key.kid(),
        jwks::JWKS_PATH,
        jwks::OPENID_CONFIGURATION_PATH,
        admin::ADMIN_PREFIX,
    );
    let count = config.identities().count();
    if count == 0 {
        text.push_str("no identities\n");
    } else {
        let _ = writeln!(text, "{count} identities:");
    }
    for identity in config.identities() {
        // Writing to a String cannot fail.
        let _ = writeln!(text, "  {identity}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only_unless_asked() {
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let v6: SocketAddr = "[::1]:8080".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(check_listen_addr(local, false), Ok(()));
        assert_eq!(check_listen_addr(v6, false), Ok(()));
        assert_eq!(check_listen_addr(any, false), Err(NonLoopbackAddress(any)));
        assert_eq!(check_listen_addr(any, true), Ok(()));
    }

    #[test]
    fn banner_lists_identities_and_no_secrets() {
        let key = signing::tests::test_key();
        let config = EmulatorConfig::builtin();
        let text = startup_banner(
            "127.0.0.1:50342".parse().unwrap(),
            Flavor::Extension,
            &config,
            &key,
        );
        assert!(
            text.starts_with("listening on http://127.0.0.1:50342\nmitoken emulate: VM extension flavor, token endpoint http://127.0.0.1:50342/oauth2/token\n"),
            "{text}"
        );
        assert!(text.contains(key.kid()));
        assert!(!text.contains(&key.jwk().n));
        assert_eq!(text.matches("client_id=").count(), 3);
        assert!(text.contains("userAssignedIdentities/uami-2"));
        let empty = EmulatorConfig::parse("", std::path::Path::new("x"), Flavor::Imds).unwrap();
        assert!(
            startup_banner("127.0.0.1:1".parse().unwrap(), Flavor::Imds, &empty, &key)
                .contains("no identities")
        );
    }
}
