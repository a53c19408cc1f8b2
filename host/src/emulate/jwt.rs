//! Minting RS256 JWTs shaped like Entra ID managed-identity access tokens (v1.0), with IMDS's
//! lifetimes: `nbf` = `iat` = now − 300 s and `exp` = now + 86 400 s, so a fresh token has
//! `expires_in` = 86400 and `expires_on − not_before` = 86700 (docs/protocol.md §1.7).

use core::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::config::{Guid, IdentityConfig, ResourceId};
use super::signing::{KeyError, SigningKey};

/// Seconds from minting until `exp`.
pub const TOKEN_LIFETIME_SECS: u64 = 86_400;
/// How far before minting `nbf` and `iat` are set (Entra backdates tokens by five minutes).
pub const NOT_BEFORE_SKEW_SECS: u64 = 300;

/// A signed token and its validity window (Unix seconds). `Debug` never shows the JWT.
#[derive(Clone, PartialEq, Eq)]
pub struct MintedToken {
    /// Shared: a cache hit hands out a reference count, not a copy of the token.
    jwt: Arc<str>,
    /// `iat`.
    pub issued_at: u64,
    /// `nbf`, the response's `not_before`.
    pub not_before: u64,
    /// `exp`, the response's `expires_on`.
    pub expires_on: u64,
}

impl MintedToken {
    /// The compact JWT, the response's `access_token`. Never log it.
    pub fn jwt(&self) -> &str {
        &self.jwt
    }

    /// Seconds left at `now`, the response's `expires_in` (0 once expired).
    pub fn expires_in(&self, now: u64) -> u64 {
        self.expires_on.saturating_sub(now)
    }
}

impl fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintedToken")
            .field("jwt", &format_args!("<redacted {} bytes>", self.jwt.len()))
            .field("issued_at", &self.issued_at)
            .field("not_before", &self.not_before)
            .field("expires_on", &self.expires_on)
            .finish()
    }
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    kid: &'a str,
    typ: &'static str,
}

/// The claims of a minted token, in the order Entra writes them.
#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    iss: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
    appid: String,
    appidacr: &'static str,
    idp: &'a str,
    idtyp: &'static str,
    oid: String,
    sub: String,
    tid: String,
    uti: String,
    ver: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    xms_mirid: Option<&'a str>,
}

/// Mints tokens for the identities of one tenant with one signing key. Cheap to share: wrap it in
/// an `Arc` or clone it (the key is shared).
#[derive(Clone, Debug)]
pub struct TokenMinter {
    key: Arc<SigningKey>,
    tenant_id: Guid,
    issuer: String,
}

impl TokenMinter {
    /// A minter for `tenant_id` whose issuer is Entra's v1 form `https://sts.windows.net/<tenant>/`.
    pub fn new(key: Arc<SigningKey>, tenant_id: Guid) -> Self {
        Self {
            key,
            tenant_id,
            issuer: format!("https://sts.windows.net/{tenant_id}/"),
        }
    }

    /// Replaces the issuer (`iss` and `idp`); the OIDC discovery document must announce the same.
    #[must_use]
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// The `iss` of minted tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The tenant (`tid`).
    pub fn tenant_id(&self) -> Guid {
        self.tenant_id
    }

    /// The signing key (for the JWKS).
    pub fn signing_key(&self) -> &Arc<SigningKey> {
        &self.key
    }

    /// Mints a token for `identity` with audience `resource`, valid from `now − 300` to
    /// `now + 86400` (Unix seconds). Each token has a fresh random `uti`, so two tokens minted in
    /// the same second differ.
    pub fn mint(
        &self,
        identity: &IdentityConfig,
        resource: &str,
        now: u64,
    ) -> Result<MintedToken, KeyError> {
        let not_before = now.saturating_sub(NOT_BEFORE_SKEW_SECS);
        let expires_on = now.saturating_add(TOKEN_LIFETIME_SECS);
        let mut uti = [0u8; 16];
        // A failing OS random source only makes `uti` less unique; the token stays valid.
        let _ = getrandom::fill(&mut uti);
        let header = Header {
            alg: "RS256",
            kid: self.key.kid(),
            typ: "JWT",
        };
        let claims = Claims {
            aud: resource,
            iss: &self.issuer,
            iat: not_before,
            nbf: not_before,
            exp: expires_on,
            appid: identity.client_id.to_string(),
            appidacr: "2",
            idp: &self.issuer,
            idtyp: "app",
            oid: identity.object_id.to_string(),
            sub: identity.object_id.to_string(),
            tid: self.tenant_id.to_string(),
            uti: URL_SAFE_NO_PAD.encode(uti),
            ver: "1.0",
            xms_mirid: identity.resource_id().map(ResourceId::as_str),
        };
        let mut jwt = String::with_capacity(1024);
        URL_SAFE_NO_PAD.encode_string(to_json(&header), &mut jwt);
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(to_json(&claims), &mut jwt);
        let signature = self.key.sign_rs256(jwt.as_bytes())?;
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut jwt);
        Ok(MintedToken {
            jwt: jwt.into(),
            issued_at: not_before,
            not_before,
            expires_on,
        })
    }
}

/// Checks `jwt`'s RS256 signature with `jwk` (as a relying party holding the JWKS would) and
/// returns its claims; `None` when it is not a compact JWS, not signed by that key, or its
/// payload is not JSON.
pub fn verify_rs256(jwt: &str, jwk: &super::signing::Jwk) -> Option<serde_json::Value> {
    let mut parts = jwt.split('.');
    let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    let signed = &jwt[..header.len() + 1 + claims.len()];
    jwk.to_public_key()
        .ok()?
        .pkcs1v15_verify::<rsa::sha2::Sha256>(signed.as_bytes(), &signature)
        .ok()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing plain structs of strings and integers cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use rsa::sha2::Sha256;
    use serde_json::Value;

    use super::*;
    use crate::emulate::config::EmulatorConfig;
    use crate::emulate::signing::tests::test_key;

    pub(crate) fn minter() -> TokenMinter {
        TokenMinter::new(test_key(), EmulatorConfig::DEFAULT_TENANT_ID)
    }

    /// Verifies the signature with the JWK's public key and returns (header, claims).
    pub(crate) fn verify(jwt: &str, key: &SigningKey) -> (Value, Value) {
        let mut parts = jwt.split('.');
        let (h, c, s) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        assert!(parts.next().is_none());
        let signature = URL_SAFE_NO_PAD.decode(s).unwrap();
        key.jwk()
            .to_public_key()
            .unwrap()
            .pkcs1v15_verify::<Sha256>(format!("{h}.{c}").as_bytes(), &signature)
            .expect("signature verifies");
        let decode = |p: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
        (decode(h), decode(c))
    }

    #[test]
    fn user_assigned_token_round_trip() {
        let config = EmulatorConfig::builtin();
        let ua = &config.user_assigned[0];
        let m = minter();
        let now = 1_757_687_622;
        let t = m.mint(ua, "https://storage.azure.com/", now).unwrap();
        assert_eq!(t.expires_on - t.not_before, 86_700);
        assert_eq!(t.expires_in(now), 86_400);
        assert_eq!(t.expires_in(now + 100), 86_300);
        assert_eq!(t.expires_in(now + 100_000), 0);

        let (header, claims) = verify(t.jwt(), m.signing_key());
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["kid"], m.signing_key().kid());
        assert_eq!(claims["aud"], "https://storage.azure.com/");
        let tenant = config.tenant_id.to_string();
        assert_eq!(claims["iss"], format!("https://sts.windows.net/{tenant}/"));
        assert_eq!(claims["tid"], tenant);
        assert_eq!(claims["iat"], t.not_before);
        assert_eq!(claims["nbf"], t.not_before);
        assert_eq!(claims["exp"], t.expires_on);
        assert_eq!(claims["appid"], ua.client_id.to_string());
        assert_eq!(claims["oid"], ua.object_id.to_string());
        assert_eq!(claims["sub"], ua.object_id.to_string());
        assert_eq!(claims["idtyp"], "app");
        assert_eq!(claims["ver"], "1.0");
        assert_eq!(claims["xms_mirid"], ua.resource_id().unwrap().as_str());
    }

    #[test]
    fn system_assigned_has_no_mirid_and_tokens_are_unique() {
        let config = EmulatorConfig::builtin();
        let sa = config.system_assigned.as_ref().unwrap();
        let m = minter().with_issuer("http://127.0.0.1:8080/");
        let a = m.mint(sa, "https://vault.azure.net", 1000).unwrap();
        let b = m.mint(sa, "https://vault.azure.net", 1000).unwrap();
        assert_ne!(a.jwt(), b.jwt());
        let (_, claims) = verify(a.jwt(), m.signing_key());
        assert!(claims.get("xms_mirid").is_none());
        assert_eq!(claims["iss"], "http://127.0.0.1:8080/");
        assert_eq!(claims["nbf"], 700);
        assert_eq!(claims["appid"], sa.client_id.to_string());
    }

    #[test]
    fn tampered_token_fails_verification() {
        let config = EmulatorConfig::builtin();
        let m = minter();
        let t = m.mint(&config.user_assigned[1], "api://x", 5000).unwrap();
        let (h, rest) = t.jwt().split_once('.').unwrap();
        let (_, s) = rest.split_once('.').unwrap();
        let forged_claims = URL_SAFE_NO_PAD.encode(br#"{"aud":"api://x","exp":99999999999}"#);
        let sig = URL_SAFE_NO_PAD.decode(s).unwrap();
        let public = m.signing_key().public_key();
        assert!(
            public
                .pkcs1v15_verify::<Sha256>(format!("{h}.{forged_claims}").as_bytes(), &sig)
                .is_err()
        );
    }

    #[test]
    fn debug_redacts_the_jwt() {
        let config = EmulatorConfig::builtin();
        let t = minter()
            .mint(&config.user_assigned[0], "api://x", 5000)
            .unwrap();
        let debug = format!("{t:?}");
        assert!(debug.contains("<redacted"));
        assert!(!debug.contains(t.jwt().split('.').next().unwrap()));
    }
}
