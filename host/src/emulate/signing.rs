//! The emulator's RSA signing key: generated at start (`SigningKey::generate`) or loaded from a
//! PKCS#8 / PKCS#1 PEM file (`--signing-key FILE`). Its public half is published as a JWK whose
//! `kid` is the RFC 7638 thumbprint.
//!
//! The private key leaves the process only through [`SigningKey::export_pkcs8_pem`]
//! (`--export-signing-key FILE`). `Debug` shows the `kid` and nothing secret.

use core::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, LineEnding};
use rsa::sha2::{Digest as _, Sha256};
use rsa::traits::PublicKeyParts as _;
use rsa::{PrivateKey, PublicKey};
use serde::{Deserialize, Serialize};

/// The public half of the signing key as a JSON Web Key (RFC 7517), ready for a JWKS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `RSA`.
    pub kty: String,
    /// Intended use: `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// Algorithm: `RS256`.
    pub alg: String,
    /// Key ID: the RFC 7638 thumbprint, also the JWT header's `kid`.
    pub kid: String,
    /// Modulus, base64url without padding or leading zero bytes.
    pub n: String,
    /// Public exponent, base64url.
    pub e: String,
}

impl Jwk {
    /// The RFC 7638 thumbprint of an RSA key given as base64url `n` and `e`: SHA-256 over the
    /// canonical `{"e":…,"kty":"RSA","n":…}`, base64url without padding.
    pub fn thumbprint(n: &str, e: &str) -> String {
        let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// Rebuilds the RSA public key from `n` and `e` (what a relying party does with the JWKS).
    pub fn to_public_key(&self) -> Result<PublicKey, KeyError> {
        let n = URL_SAFE_NO_PAD
            .decode(&self.n)
            .map_err(|_| KeyError::InvalidJwk)?;
        let e = URL_SAFE_NO_PAD
            .decode(&self.e)
            .map_err(|_| KeyError::InvalidJwk)?;
        PublicKey::new(
            rsa::BoxedUint::from_be_slice_vartime(&n),
            rsa::BoxedUint::from_be_slice_vartime(&e),
        )
        .map_err(KeyError::Rsa)
    }
}

/// Why a signing key could not be made, read, written or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key file could not be read.
    #[error("{}: cannot read signing key: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file could not be written.
    #[error("{}: cannot write signing key: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The text is not a PEM `PRIVATE KEY` (PKCS#8) or `RSA PRIVATE KEY` (PKCS#1) block.
    #[error("not a PEM private key (expected `BEGIN PRIVATE KEY` or `BEGIN RSA PRIVATE KEY`)")]
    NotPem,
    /// The PEM is an encrypted PKCS#8 key; only unencrypted keys are supported.
    #[error("encrypted private keys are not supported; decrypt it first (openssl pkcs8)")]
    Encrypted,
    /// A PKCS#8 PEM that could not be decoded as an RSA key.
    #[error("invalid PKCS#8 RSA private key: {0}")]
    Pkcs8(#[source] rsa::pkcs8::Error),
    /// A PKCS#1 PEM that could not be decoded.
    #[error("invalid PKCS#1 RSA private key: {0}")]
    Pkcs1(#[source] rsa::pkcs1::Error),
    /// The key is smaller than 2048 bits.
    #[error("RSA key of {bits} bits is too small (at least 2048 required)")]
    TooSmall {
        /// The key's modulus size.
        bits: usize,
    },
    /// A JWK's `n` or `e` is not base64url.
    #[error("invalid JWK: n and e must be base64url")]
    InvalidJwk,
    /// The RSA implementation refused (key generation, signing, or a malformed public key).
    #[error("RSA operation failed: {0}")]
    Rsa(#[source] rsa::Error),
}

/// An RSA private key that signs tokens with RS256 (RSASSA-PKCS1-v1_5 with SHA-256).
pub struct SigningKey {
    key: PrivateKey,
    jwk: Jwk,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.jwk.kid)
            .field("bits", &self.bits())
            .field("private_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The size of generated keys, as Entra's token-signing keys.
    pub const GENERATED_BITS: usize = 2048;
    /// The smallest key accepted from a file.
    pub const MIN_BITS: usize = 2048;

    /// Generates a fresh 2048-bit key from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        let key =
            PrivateKey::new(&mut getrandom::SysRng, Self::GENERATED_BITS).map_err(KeyError::Rsa)?;
        Self::from_private_key(key)
    }

    /// Wraps an RSA private key (at least 2048 bits).
    pub fn from_private_key(key: PrivateKey) -> Result<Self, KeyError> {
        let bits = key.size() * 8;
        if bits < Self::MIN_BITS {
            return Err(KeyError::TooSmall { bits });
        }
        let n = URL_SAFE_NO_PAD.encode(strip_leading_zeros(&key.n().to_be_bytes()));
        let e = URL_SAFE_NO_PAD.encode(strip_leading_zeros(&key.e().to_be_bytes()));
        let kid = Jwk::thumbprint(&n, &e);
        let jwk = Jwk {
            kty: "RSA".into(),
            use_: "sig".into(),
            alg: "RS256".into(),
            kid,
            n,
            e,
        };
        Ok(Self { key, jwk })
    }

    /// Decodes a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE
    /// KEY`).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let key = if pem.contains("-----BEGIN RSA PRIVATE KEY-----") {
            PrivateKey::from_pkcs1_pem(pem).map_err(KeyError::Pkcs1)?
        } else if pem.contains("-----BEGIN PRIVATE KEY-----") {
            PrivateKey::from_pkcs8_pem(pem).map_err(KeyError::Pkcs8)?
        } else if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            return Err(KeyError::Encrypted);
        } else {
            return Err(KeyError::NotPem);
        };
        Self::from_private_key(key)
    }

    /// Reads a PEM private key file (`--signing-key FILE`).
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_pem(&pem)
    }

    /// Writes the private key as PKCS#8 PEM to `path` (`--export-signing-key FILE`), creating or
    /// truncating it; on Unix the file is made readable by its owner only. This is the only way
    /// the private key leaves the process.
    pub fn export_pkcs8_pem(&self, path: &Path) -> Result<(), KeyError> {
        let pem = self
            .key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(KeyError::Pkcs8)?;
        let write_err = |source| KeyError::Write {
            path: path.to_owned(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(write_err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(write_err)?;
        }
        file.write_all(pem.as_bytes()).map_err(write_err)?;
        file.sync_all().map_err(write_err)
    }

    /// The key ID (RFC 7638 thumbprint) used as the JWT `kid`.
    pub fn kid(&self) -> &str {
        &self.jwk.kid
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        self.key.to_public_key()
    }

    /// The modulus size in bits.
    pub fn bits(&self) -> usize {
        self.key.size() * 8
    }

    /// Signs `message` with RS256 and returns the raw signature (as long as the modulus).
    pub fn sign_rs256(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.key
            .pkcs1v15_sign::<Sha256>(message)
            .map_err(KeyError::Rsa)
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    &bytes[first..]
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::{Arc, OnceLock};

    use super::*;

    /// One generated key shared by the tests of all modules (generation takes a moment).
    pub(crate) fn test_key() -> Arc<SigningKey> {
        static KEY: OnceLock<Arc<SigningKey>> = OnceLock::new();
        KEY.get_or_init(|| Arc::new(SigningKey::generate().expect("key generation")))
            .clone()
    }

    #[test]
    fn generated_key_shape() {
        let key = test_key();
        assert_eq!(key.bits(), 2048);
        let jwk = key.jwk();
        assert_eq!(
            (jwk.kty.as_str(), jwk.use_.as_str(), jwk.alg.as_str()),
            ("RSA", "sig", "RS256")
        );
        assert_eq!(jwk.e, "AQAB");
        // 256 bytes of modulus, no padding.
        assert_eq!(URL_SAFE_NO_PAD.decode(&jwk.n).unwrap().len(), 256);
        assert_eq!(key.kid(), Jwk::thumbprint(&jwk.n, &jwk.e));
        assert_eq!(key.kid().len(), 43);
        let debug = format!("{key:?}");
        assert!(debug.contains(key.kid()) && debug.contains("<redacted>"));
        assert!(!debug.contains(&jwk.n));
    }

    #[test]
    fn thumbprint_rfc7638_example() {
        // RFC 7638 §3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            Jwk::thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn sign_and_verify_with_jwk_public_key() {
        let key = test_key();
        let sig = key.sign_rs256(b"header.payload").unwrap();
        assert_eq!(sig.len(), 256);
        let public = key.jwk().to_public_key().unwrap();
        assert_eq!(public, key.public_key());
        public
            .pkcs1v15_verify::<Sha256>(b"header.payload", &sig)
            .unwrap();
        assert!(
            public
                .pkcs1v15_verify::<Sha256>(b"header.payloaD", &sig)
                .is_err()
        );
    }

    #[test]
    fn pem_round_trips_pkcs8_and_pkcs1() {
        use rsa::pkcs1::EncodeRsaPrivateKey as _;
        let key = test_key();
        let dir = std::env::temp_dir().join(format!("mitoken-key-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key.pem");
        key.export_pkcs8_pem(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"));
        let loaded = SigningKey::load(&path).unwrap();
        assert_eq!(loaded.jwk(), key.jwk());

        let pkcs1 = key.key.to_pkcs1_pem(LineEnding::LF).unwrap();
        let loaded = SigningKey::from_pem(&pkcs1).unwrap();
        assert_eq!(loaded.kid(), key.kid());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_pem() {
        assert!(matches!(
            SigningKey::from_pem("hello"),
            Err(KeyError::NotPem)
        ));
        assert!(matches!(
            SigningKey::from_pem(
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
            ),
            Err(KeyError::Encrypted)
        ));
        assert!(matches!(
            SigningKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            Err(KeyError::Pkcs8(_))
        ));
        assert!(matches!(
            SigningKey::from_pem(
                "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"
            ),
            Err(KeyError::Pkcs1(_))
        ));
        let e = SigningKey::load(Path::new("/nonexistent/key.pem")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/key.pem: cannot read")
        );
    }

    #[test]
    fn small_keys_are_refused() {
        let small = PrivateKey::new(&mut getrandom::SysRng, 1024).unwrap();
        assert!(matches!(
            SigningKey::from_private_key(small),
            Err(KeyError::TooSmall { bits: 1024 })
        ));
    }
}
