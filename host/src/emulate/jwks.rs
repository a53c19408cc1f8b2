//! The documents a service under test needs to validate emulator tokens: a JWKS with the public
//! signing key and an OIDC discovery document whose `jwks_uri` points at it, both served
//! on the emulator's listener.

use serde::{Deserialize, Serialize};

use super::signing::{Jwk, SigningKey};

/// Path of the OIDC discovery document.
pub const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";
/// Path of the JWKS document.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// A JSON Web Key Set (RFC 7517 §5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys; the emulator publishes one.
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// The set holding `key`'s public half.
    pub fn for_key(key: &SigningKey) -> Self {
        Self {
            keys: vec![key.jwk().clone()],
        }
    }

    /// The key with this `kid`.
    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

/// The subset of an OIDC provider metadata document (OIDC Discovery 1.0 §3) that
/// token validators read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenIdConfiguration {
    /// Must equal the tokens' `iss`.
    pub issuer: String,
    /// Where the JWKS is.
    pub jwks_uri: String,
    /// Required by the specification; the emulator does not serve it.
    pub authorization_endpoint: String,
    /// The emulator's token endpoint (IMDS path).
    pub token_endpoint: String,
    /// `["code"]` (required field; nothing is served).
    pub response_types_supported: Vec<String>,
    /// `["pairwise"]`, as Entra.
    pub subject_types_supported: Vec<String>,
    /// `["RS256"]`.
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// The claims minted tokens carry.
    pub claims_supported: Vec<String>,
}

impl OpenIdConfiguration {
    /// The document for tokens issued by `issuer`, with endpoints under `base_url` (such as
    /// `http://127.0.0.1:8080`, no trailing slash needed).
    pub fn new(issuer: &str, base_url: &str) -> Self {
        let base = base_url.trim_end_matches('/');
        let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
        Self {
            issuer: issuer.to_owned(),
            jwks_uri: format!("{base}{JWKS_PATH}"),
            authorization_endpoint: format!("{base}/oauth2/authorize"),
            token_endpoint: format!("{base}/metadata/identity/oauth2/token"),
            response_types_supported: strings(&["code"]),
            subject_types_supported: strings(&["pairwise"]),
            id_token_signing_alg_values_supported: strings(&["RS256"]),
            claims_supported: strings(&[
                "aud",
                "iss",
                "iat",
                "nbf",
                "exp",
                "appid",
                "appidacr",
                "idp",
                "idtyp",
                "oid",
                "sub",
                "tid",
                "uti",
                "ver",
                "xms_mirid",
            ]),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::emulate::config::EmulatorConfig;
    use crate::emulate::jwt::tests::{minter, verify};

    #[test]
    fn jwks_shape_and_validates_tokens() {
        let m = minter();
        let jwks = Jwks::for_key(m.signing_key());
        let json: Value = serde_json::to_value(&jwks).unwrap();
        let keys = json["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        let k = keys[0].as_object().unwrap();
        let mut names: Vec<&str> = k.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["alg", "e", "kid", "kty", "n", "use"]);
        assert_eq!(k["use"], "sig");
        assert_eq!(k["kty"], "RSA");

        // A relying party: parse the JWKS text, find the key by the token's kid, verify.
        let parsed: Jwks = serde_json::from_str(&serde_json::to_string(&jwks).unwrap()).unwrap();
        let config = EmulatorConfig::builtin();
        let t = m.mint(&config.user_assigned[0], "api://x", 1).unwrap();
        let kid = m.signing_key().kid();
        let jwk = parsed.find(kid).unwrap();
        assert_eq!(jwk, m.signing_key().jwk());
        verify(t.jwt(), m.signing_key());
        assert!(parsed.find("nope").is_none());
    }

    #[test]
    fn openid_configuration_shape() {
        let m = minter();
        let doc = OpenIdConfiguration::new(m.issuer(), "http://127.0.0.1:50342/");
        let json: Value = serde_json::to_value(&doc).unwrap();
        assert_eq!(json["issuer"], m.issuer());
        assert_eq!(
            json["jwks_uri"],
            "http://127.0.0.1:50342/.well-known/jwks.json"
        );
        assert_eq!(json["id_token_signing_alg_values_supported"][0], "RS256");
        for required in [
            "issuer",
            "jwks_uri",
            "authorization_endpoint",
            "response_types_supported",
            "subject_types_supported",
            "id_token_signing_alg_values_supported",
        ] {
            assert!(json.get(required).is_some(), "{required}");
        }
        assert!(doc.jwks_uri.ends_with(JWKS_PATH));
    }
}
