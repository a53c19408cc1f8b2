//! One attempt at a managed-identity source: the secret header added, and Azure Arc's
//! challenge answered (key file read under the rules), so that the engine sees one attempt
//! per token request whatever the source.
//!
//! Arc: the first request goes out without `Authorization`; a `401` challenge names a key
//! file, which is checked with the core's rules ([`mitoken_core::arc::check_key_path`]),
//! canonicalized (a symlink out of the tokens directory is refused), size-checked against
//! [`ARC_MAX_KEY_FILE_LEN`] and read; the request is then sent again with
//! `Authorization: Basic <contents>`. Each request has the attempt's timeout. The contents are
//! never logged.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mitoken_core::arc::{check_key_len, check_key_path};
use mitoken_core::request::{Endpoint, Style, TokenRequest};
use mitoken_core::source::{ARC_MAX_KEY_FILE_LEN, ARC_TOKENS_DIR_LINUX};
use mitoken_core::token::Token;

use crate::client::{ArcKeyError, FetchFailure, Transport, fetch_over, fetch_with};

/// What a source needs besides the request: its secret and, for Arc, where key files live.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceAuth {
    /// The secret header's value (`IDENTITY_HEADER` or `MSI_SECRET`), for the styles that
    /// send one.
    pub secret: Option<String>,
    /// The directory Arc key files must be directly inside.
    pub arc_tokens_dir: PathBuf,
    /// Service Fabric: the SHA-1 thumbprint (`IDENTITY_SERVER_THUMBPRINT`) its HTTPS
    /// certificate is pinned by.
    pub thumbprint: Option<String>,
}

impl Default for SourceAuth {
    fn default() -> Self {
        Self {
            secret: None,
            arc_tokens_dir: PathBuf::from(ARC_TOKENS_DIR_LINUX),
            thumbprint: None,
        }
    }
}

impl std::fmt::Debug for SourceAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceAuth")
            .field(
                "secret",
                &self
                    .secret
                    .as_ref()
                    .map(|s| format!("<redacted, {} bytes>", s.len())),
            )
            .field("arc_tokens_dir", &self.arc_tokens_dir)
            .field("thumbprint", &self.thumbprint)
            .finish()
    }
}

/// One attempt for `request` at `endpoint`, as the source's protocol needs it.
pub async fn fetch_source<R>(
    endpoint: &Endpoint<'_>,
    request: &TokenRequest<'_>,
    auth: &SourceAuth,
    timeout: Duration,
    on_token: impl FnOnce(&Token<'_>) -> R,
) -> Result<R, FetchFailure> {
    let style = endpoint.style();
    let request = match (&auth.secret, style.needs_secret()) {
        (Some(secret), true) => request.with_secret(secret),
        _ => *request,
    };
    if style.uses_tls() {
        let transport = Transport::for_style(style, auth.thumbprint.as_deref())?;
        return fetch_over(endpoint, &request, &transport, timeout, on_token).await;
    }
    if style != Style::Arc {
        return fetch_with(endpoint, &request, timeout, on_token).await;
    }
    // `on_token` is for whichever of the two requests gets the token: lent through an Option,
    // so it runs at most once, and exactly once when a token arrives.
    let mut on_token = Some(on_token);
    let mut deliver = |t: &Token<'_>| on_token.take().map(|f| f(t));
    let key_path = match fetch_with(endpoint, &request, timeout, &mut deliver).await {
        Ok(delivered) => return delivered.ok_or_else(misuse),
        Err(FetchFailure::ArcChallenge { key_path }) => key_path,
        Err(other) => return Err(other),
    };
    let key = read_arc_key(&key_path, &auth.arc_tokens_dir)?;
    tracing::debug!(path = %key_path, bytes = key.len(), "answering the Arc challenge");
    let authorized = request.with_secret(&key);
    fetch_with(endpoint, &authorized, timeout, &mut deliver)
        .await?
        .ok_or_else(misuse)
}

/// The callback already ran (cannot happen: a token ends the exchange).
fn misuse() -> FetchFailure {
    FetchFailure::Protocol {
        addr: String::new(),
        error: mitoken_core::client::ClientError::Misuse,
    }
}

/// Reads the Arc key file `path` names, under the rules: the core's path rules against `dir`,
/// then the real path (symlinks resolved) must still be directly inside the real `dir`, and the
/// file at most [`ARC_MAX_KEY_FILE_LEN`] bytes.
pub fn read_arc_key(path: &str, dir: &Path) -> Result<String, FetchFailure> {
    let fail = |e: ArcKeyError| FetchFailure::ArcKey(Box::new(e));
    let io = |source: std::io::Error| {
        fail(ArcKeyError::Io {
            path: path.to_owned(),
            source: Arc::new(source),
        })
    };
    let dir_text = dir.to_string_lossy();
    check_key_path(path, &dir_text).map_err(|e| fail(ArcKeyError::Rule(e)))?;
    let real_dir = std::fs::canonicalize(dir).map_err(io)?;
    let real = std::fs::canonicalize(path).map_err(io)?;
    if real.parent() != Some(real_dir.as_path()) {
        return Err(fail(ArcKeyError::OutsideDirectory {
            path: path.to_owned(),
            dir: dir_text.into_owned(),
        }));
    }
    let len = std::fs::metadata(&real).map_err(io)?.len();
    check_key_len(len).map_err(|e| fail(ArcKeyError::Rule(e)))?;
    let bytes = std::fs::read(&real).map_err(io)?;
    // The file may have grown between the size check and the read.
    check_key_len(bytes.len() as u64).map_err(|e| fail(ArcKeyError::Rule(e)))?;
    debug_assert!(bytes.len() as u64 <= ARC_MAX_KEY_FILE_LEN);
    String::from_utf8(bytes).map_err(|_| {
        fail(ArcKeyError::NotText {
            path: path.to_owned(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_rules() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ok = d.join("a.key");
        std::fs::write(&ok, "0123abcd").unwrap();
        assert_eq!(read_arc_key(ok.to_str().unwrap(), d).unwrap(), "0123abcd");
        let big = d.join("big.key");
        std::fs::write(&big, vec![b'a'; 4097]).unwrap();
        assert!(matches!(
            read_arc_key(big.to_str().unwrap(), d),
            Err(FetchFailure::ArcKey(e)) if matches!(*e, ArcKeyError::Rule(_))
        ));
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("secret.key");
        std::fs::write(&target, "s").unwrap();
        let link = d.join("link.key");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(
            read_arc_key(link.to_str().unwrap(), d),
            Err(FetchFailure::ArcKey(e)) if matches!(*e, ArcKeyError::OutsideDirectory { .. })
        ));
        assert!(matches!(
            read_arc_key(target.to_str().unwrap(), d),
            Err(FetchFailure::ArcKey(e)) if matches!(*e, ArcKeyError::Rule(_))
        ));
        let missing = d.join("missing.key");
        assert!(matches!(
            read_arc_key(missing.to_str().unwrap(), d),
            Err(FetchFailure::ArcKey(e)) if matches!(*e, ArcKeyError::Io { .. })
        ));
    }
}
