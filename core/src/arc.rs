//! Azure Arc (HIMDS): the key-file challenge and the user-assigned echo check, as pure
//! functions the shells call.
//!
//! The exchange is two requests. The first (no `Authorization`) is answered `401` with
//! `WWW-Authenticate: Basic realm=<absolute path of a .key file>` — the realm unquoted, with
//! exactly one `=` in the header value ([`parse_challenge`]). The client checks the path
//! ([`check_key_path`]: directly inside the platform directory, a `*.key` name, no `..`),
//! reads the file (the shell: canonicalize, refuse a symlink out of the directory, at most
//! [`ARC_MAX_KEY_FILE_LEN`] bytes) and repeats the request with
//! `Authorization: Basic <file contents>` ([`TokenRequest::with_secret`]).
//!
//! Agents that serve user-assigned identities echo the identity used in the token body; a
//! client that named one fails closed when the echo is missing or different
//! ([`check_echo`], ASCII case-insensitive), because legacy agents silently answer with the
//! system-assigned identity.
//!
//! ```
//! use mitoken_core::arc::{check_key_path, parse_challenge};
//! use mitoken_core::source::ARC_TOKENS_DIR_LINUX;
//!
//! let path = parse_challenge("Basic realm=/var/opt/azcmagent/tokens/3f2c.key").unwrap();
//! assert_eq!(check_key_path(path, ARC_TOKENS_DIR_LINUX), Ok("3f2c.key"));
//! assert!(check_key_path("/etc/shadow", ARC_TOKENS_DIR_LINUX).is_err());
//! ```
//!
//! [`TokenRequest::with_secret`]: crate::request::TokenRequest::with_secret

use core::fmt;

use crate::request::{RequestField, Selector};
pub use crate::source::ARC_MAX_KEY_FILE_LEN;
use crate::token::Token;

/// Why an Arc challenge, key file or answer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArcError {
    /// The `WWW-Authenticate` value is not `Basic realm=<path>` with exactly one `=`, an
    /// unquoted non-empty path and no control characters.
    MalformedChallenge,
    /// The key path is not directly inside the tokens directory.
    KeyOutsideDirectory,
    /// The key file's name does not end in `.key` (or is only `.key`).
    NotAKeyFile,
    /// The key path has a `..` or `.` component, a backslash or a control character.
    SuspiciousKeyPath,
    /// The key file is larger than [`ARC_MAX_KEY_FILE_LEN`] bytes.
    KeyFileTooLarge {
        /// Its size in bytes.
        len: u64,
    },
    /// A user-assigned identity was named and the token does not say which identity it is for.
    IdentityNotEchoed {
        /// The selector that was sent.
        selector: RequestField,
    },
    /// A user-assigned identity was named and the token is for another one.
    IdentityMismatch {
        /// The selector that was sent.
        selector: RequestField,
    },
}

impl fmt::Display for ArcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MalformedChallenge => f.write_str(
                "Arc challenge is not `WWW-Authenticate: Basic realm=<path>` (one '=', unquoted)",
            ),
            Self::KeyOutsideDirectory => {
                f.write_str("Arc key file is not directly inside the agent's tokens directory")
            }
            Self::NotAKeyFile => f.write_str("Arc key file name does not end in .key"),
            Self::SuspiciousKeyPath => f.write_str(
                "Arc key path has a '.' or '..' component, a backslash or a control character",
            ),
            Self::KeyFileTooLarge { len } => write!(
                f,
                "Arc key file is {len} bytes, more than the {ARC_MAX_KEY_FILE_LEN} allowed"
            ),
            Self::IdentityNotEchoed { selector } => write!(
                f,
                "Arc answered without naming the identity ({selector} was requested): an agent \
                 without user-assigned support answers for the system identity, so the token \
                 is refused"
            ),
            Self::IdentityMismatch { selector } => write!(
                f,
                "Arc answered for another identity than the {selector} requested; the token is \
                 refused"
            ),
        }
    }
}

impl core::error::Error for ArcError {}

/// The key-file path named by an Arc `WWW-Authenticate` header value.
pub fn parse_challenge(value: &str) -> Result<&str, ArcError> {
    let mut parts = value.split('=');
    let (Some(scheme), Some(path), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ArcError::MalformedChallenge);
    };
    if !scheme.trim().eq_ignore_ascii_case("basic realm") {
        return Err(ArcError::MalformedChallenge);
    }
    let path = path.trim();
    if path.is_empty() || path.bytes().any(|b| b == b'"' || b < 0x20 || b == 0x7F) {
        return Err(ArcError::MalformedChallenge);
    }
    Ok(path)
}

/// Checks an Arc key path against the rules every SDK applies, given the platform directory
/// (`dir`, e.g. [`ARC_TOKENS_DIR_LINUX`](crate::source::ARC_TOKENS_DIR_LINUX); a trailing `/`
/// is ignored). Returns the file name.
///
/// The path must be `dir/<name>` exactly: `<name>` ends in `.key` with something before it,
/// no component of the path is `.` or `..`, and there is no backslash or control character.
/// This is a check on the text only; the shell still canonicalizes the path, refuses one that
/// resolves outside the directory (a symlink) and checks the size ([`check_key_len`]).
pub fn check_key_path<'p>(path: &'p str, dir: &str) -> Result<&'p str, ArcError> {
    if path.bytes().any(|b| b == b'\\' || b < 0x20 || b == 0x7F)
        || path.split('/').any(|c| c == "." || c == "..")
    {
        return Err(ArcError::SuspiciousKeyPath);
    }
    let dir = dir.strip_suffix('/').unwrap_or(dir);
    let name = path
        .strip_prefix(dir)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|name| !name.is_empty() && !name.contains('/'))
        .ok_or(ArcError::KeyOutsideDirectory)?;
    match name.strip_suffix(".key") {
        Some(stem) if !stem.is_empty() => Ok(name),
        _ => Err(ArcError::NotAKeyFile),
    }
}

/// Checks a key file's size against [`ARC_MAX_KEY_FILE_LEN`].
pub const fn check_key_len(len: u64) -> Result<(), ArcError> {
    if len > ARC_MAX_KEY_FILE_LEN {
        Err(ArcError::KeyFileTooLarge { len })
    } else {
        Ok(())
    }
}

/// Checks that `token` is for the identity `selector` named (ASCII case-insensitive): the
/// body's `client_id`, `object_id`, or `msi_res_id` / `mi_res_id`.
pub fn check_echo(selector: &Selector<'_>, token: &Token<'_>) -> Result<(), ArcError> {
    let (field, echoed) = match selector {
        Selector::ClientId(_) => (RequestField::ClientId, token.client_id),
        Selector::ObjectId(_) => (RequestField::ObjectId, token.object_id),
        Selector::ResourceId { .. } => (
            RequestField::ResourceId,
            token.msi_res_id.or(token.mi_res_id),
        ),
    };
    match echoed {
        None => Err(ArcError::IdentityNotEchoed { selector: field }),
        Some(e) if e.eq_ignore_ascii_case(selector.value()) => Ok(()),
        Some(_) => Err(ArcError::IdentityMismatch { selector: field }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = "/var/opt/azcmagent/tokens";

    #[test]
    fn challenges() {
        let ok = [
            (
                "Basic realm=/var/opt/azcmagent/tokens/a.key",
                "/var/opt/azcmagent/tokens/a.key",
            ),
            ("basic realm= /x/y.key ", "/x/y.key"),
            ("BASIC REALM=/k.key", "/k.key"),
        ];
        for (v, p) in ok {
            assert_eq!(parse_challenge(v), Ok(p), "{v}");
        }
        for bad in [
            "",
            "Basic",
            "Basic realm=",
            "Basic realm=\"/var/opt/azcmagent/tokens/a.key\"",
            "Basic realm=/a=b.key",
            "Bearer realm=/a.key",
            "Basic realm=/a.key\u{1}",
            "Digest realm=/a.key",
        ] {
            assert_eq!(
                parse_challenge(bad),
                Err(ArcError::MalformedChallenge),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn key_paths() {
        assert_eq!(
            check_key_path("/var/opt/azcmagent/tokens/a.key", DIR),
            Ok("a.key")
        );
        assert_eq!(
            check_key_path(
                "/var/opt/azcmagent/tokens/a.key",
                "/var/opt/azcmagent/tokens/"
            ),
            Ok("a.key")
        );
        for (path, err) in [
            (
                "/var/opt/azcmagent/tokens/../../../etc/shadow.key",
                ArcError::SuspiciousKeyPath,
            ),
            (
                "/var/opt/azcmagent/tokens/./a.key",
                ArcError::SuspiciousKeyPath,
            ),
            (
                "/var/opt/azcmagent/tokens/a\\b.key",
                ArcError::SuspiciousKeyPath,
            ),
            (
                "/var/opt/azcmagent/tokens/sub/a.key",
                ArcError::KeyOutsideDirectory,
            ),
            (
                "/var/opt/azcmagent/tokensX/a.key",
                ArcError::KeyOutsideDirectory,
            ),
            ("/var/opt/azcmagent/tokens/", ArcError::KeyOutsideDirectory),
            ("/var/opt/azcmagent/tokens", ArcError::KeyOutsideDirectory),
            ("/tmp/a.key", ArcError::KeyOutsideDirectory),
            ("a.key", ArcError::KeyOutsideDirectory),
            ("/var/opt/azcmagent/tokens/a.txt", ArcError::NotAKeyFile),
            ("/var/opt/azcmagent/tokens/.key", ArcError::NotAKeyFile),
            ("/var/opt/azcmagent/tokens/a.KEY", ArcError::NotAKeyFile),
        ] {
            assert_eq!(check_key_path(path, DIR), Err(err), "{path}");
        }
        assert_eq!(check_key_len(4096), Ok(()));
        assert_eq!(
            check_key_len(4097),
            Err(ArcError::KeyFileTooLarge { len: 4097 })
        );
    }

    #[test]
    fn echo() {
        let body = br#"{"access_token":"t","expires_in":"3600","resource":"r","token_type":"Bearer","client_id":"ABC","mi_res_id":"/Sub/X"}"#;
        let token = Token::parse(body, &mut []).unwrap();
        assert_eq!(check_echo(&Selector::ClientId("abc"), &token), Ok(()));
        assert_eq!(
            check_echo(&Selector::ClientId("abd"), &token),
            Err(ArcError::IdentityMismatch {
                selector: RequestField::ClientId
            })
        );
        assert_eq!(
            check_echo(&Selector::ObjectId("abc"), &token),
            Err(ArcError::IdentityNotEchoed {
                selector: RequestField::ObjectId
            })
        );
        let res = Selector::ResourceId {
            id: "/sub/x",
            param: crate::request::ResIdParam::MsiResId,
        };
        // `mi_res_id` (App Service and Arc's spelling) is read only with the core's `sources`.
        let want = if cfg!(feature = "sources") {
            Ok(())
        } else {
            Err(ArcError::IdentityNotEchoed {
                selector: RequestField::ResourceId,
            })
        };
        assert_eq!(check_echo(&res, &token), want);
    }
}
