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
//!
//! Per token request the glue is expected to: resolve the identity (core server) → count and
//! decide faults ([`faults::FaultPlan::decide`]) → throttle ([`throttle::Throttle::try_acquire`],
//! holding the permit until the answer is written) → [`cache::TokenCache::get_or_mint`] →
//! write the answer (core server) → [`counters::Counters::record`].

pub mod admin;
pub mod cache;
pub mod config;
pub mod counters;
pub mod faults;
pub mod jwks;
pub mod jwt;
pub mod signing;
pub mod throttle;

use core::fmt::Write as _;
use core::net::SocketAddr;

use config::{EmulatorConfig, Flavor};
use signing::SigningKey;

/// The listen address is not a loopback address and non-loopback binding was not asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0} is not a loopback address; the emulator hands out tokens to anyone who can reach it, so binding it needs an explicit opt-in flag"
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

/// The start-up text: where the emulator listens, its flavor, the signing key's `kid` (never the
/// key) and one line per identity.
pub fn startup_banner(
    listen: SocketAddr,
    flavor: Flavor,
    config: &EmulatorConfig,
    key: &SigningKey,
) -> String {
    let mut text = format!(
        "mitoken emulate ({flavor}) listening on http://{listen}\ntenant {}\nsigning key kid {} (JWKS at http://{listen}{})\n",
        config.tenant_id,
        key.kid(),
        jwks::JWKS_PATH,
    );
    let count = config.identities().count();
    if count == 0 {
        text.push_str("no identities\n");
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
            text.starts_with("mitoken emulate (extension) listening on http://127.0.0.1:50342\n")
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
