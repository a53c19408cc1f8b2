//! What the emulator needs beyond IMDS to imitate App Service (2019, 2017), Azure ML, Cloud
//! Shell and Arc: the source's secret, Arc's rotating key files, per-answer correlation ids,
//! default listen addresses, token URLs and the environment that points SDKs at the emulator
//! (docs/sources-emulator.md).
//!
//! The secret and the Arc keys are credentials: they are written only to the `--env-file`
//! (mode 0600) and the key files (mode 0600), never logged; their `Debug` is redacted.

use core::fmt;
use core::fmt::Write as _;
use core::net::SocketAddr;
use core::time::Duration;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use mitoken_core::server::sources::{
    APP_SERVICE_TOKEN_PATH, ARC_TOKEN_PATH, CLOUD_SHELL_TOKEN_PATH,
};
use mitoken_core::source::{
    ENV_AZUREPS_HOST_ENVIRONMENT, ENV_DEFAULT_IDENTITY_CLIENT_ID, ENV_IDENTITY_ENDPOINT,
    ENV_IDENTITY_HEADER, ENV_IMDS_ENDPOINT, ENV_MSI_ENDPOINT, ENV_MSI_SECRET,
    ENV_POD_IDENTITY_AUTHORITY_HOST, Source,
};

/// The sources `mitoken emulate --source` serves.
pub const SERVED: [Source; 6] = [
    Source::Imds,
    Source::AppService,
    Source::AppService2017,
    Source::AzureMl,
    Source::CloudShell,
    Source::Arc,
];

/// True when `mitoken emulate --source source` is served by this emulator.
pub fn is_served(source: Source) -> bool {
    SERVED.contains(&source)
}

/// The default listen address of `source`: the port the real platform uses (App Service
/// `41741`, Azure ML `46809`, Cloud Shell `50342`, Arc `40342`) on 127.0.0.1; `None` for IMDS
/// (its flavor decides).
pub fn default_listen(source: Source) -> Option<SocketAddr> {
    let port = match source {
        Source::AppService | Source::AppService2017 => 41_741,
        Source::AzureMl => 46_809,
        Source::CloudShell => 50_342,
        Source::Arc => 40_342,
        _ => return None,
    };
    Some(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// The token path `source` serves.
pub fn token_path(source: Source) -> &'static str {
    match source {
        Source::AppService | Source::AppService2017 | Source::AzureMl => APP_SERVICE_TOKEN_PATH,
        Source::CloudShell => CLOUD_SHELL_TOKEN_PATH,
        Source::Arc => ARC_TOKEN_PATH,
        _ => mitoken_core::server::IMDS_TOKEN_PATH,
    }
}

/// True when `source` checks a shared secret header (App Service, App Service 2017, Azure ML).
pub fn has_secret(source: Source) -> bool {
    matches!(
        source,
        Source::AppService | Source::AppService2017 | Source::AzureMl
    )
}

/// A secret value: never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps `value`.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// A new random secret: a GUID, as App Service's `IDENTITY_HEADER` is.
    pub fn generate() -> Self {
        Self(random_guid())
    }

    /// The value, for the env file and the server's check only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// A random version-4 GUID in lower case.
pub fn random_guid() -> String {
    let mut b = [0u8; 16];
    // Without the system's randomness there is nothing safe to hand out: an all-zero
    // value stays unusable only if it is never accepted, so fail loudly instead.
    if getrandom::fill(&mut b).is_err() {
        tracing::error!("no system randomness; refusing to continue");
        std::process::abort();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = b.iter().fold(String::with_capacity(32), |mut h, x| {
        let _ = write!(h, "{x:02x}");
        h
    });
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// One Arc key: the file that holds it and its contents.
pub struct ArcKey {
    /// The absolute path of the key file (the challenge's realm).
    pub path: String,
    /// The file's contents (what `Authorization: Basic` must carry).
    pub key: SecretValue,
    created: Instant,
}

impl fmt::Debug for ArcKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArcKey")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Why a key file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("Arc key file in {dir}: {source}")]
pub struct ArcKeyError {
    /// The tokens directory.
    pub dir: PathBuf,
    /// What failed.
    pub source: std::io::Error,
}

/// Arc's challenge keys: one current key file (mode 0600) in the tokens directory, replaced by
/// a new one (and the old file deleted) once it is older than the lifetime. A key is accepted
/// only while it is current: a client that read it just before the rotation gets 401 and
/// starts again with a new challenge, as with HIMDS.
#[derive(Debug)]
pub struct ArcKeys {
    dir: PathBuf,
    lifetime: Duration,
    current: Mutex<Option<Arc<ArcKey>>>,
}

impl ArcKeys {
    /// Keys in `dir` (created if missing), each current for `lifetime`. Writes the first key
    /// file now, so a directory that cannot be written fails at start.
    pub fn new(dir: &Path, lifetime: Duration) -> Result<Self, ArcKeyError> {
        let err = |source| ArcKeyError {
            dir: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let dir = std::fs::canonicalize(dir).map_err(err)?;
        let keys = Self {
            dir,
            lifetime,
            current: Mutex::new(None),
        };
        keys.current()?;
        Ok(keys)
    }

    /// The tokens directory (canonical).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current key, rotated first when it has outlived its lifetime.
    pub fn current(&self) -> Result<Arc<ArcKey>, ArcKeyError> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(key) = current.as_ref()
            && key.created.elapsed() < self.lifetime
        {
            return Ok(Arc::clone(key));
        }
        let key = Arc::new(self.write_key()?);
        if let Some(old) = current.replace(Arc::clone(&key)) {
            let _ = std::fs::remove_file(&old.path);
        }
        tracing::debug!(path = %key.path, "Arc key rotated");
        Ok(key)
    }

    fn write_key(&self) -> Result<ArcKey, ArcKeyError> {
        let err = |source| ArcKeyError {
            dir: self.dir.clone(),
            source,
        };
        let path = self.dir.join(format!("{}.key", random_guid()));
        let key = SecretValue::new(random_guid().replace('-', ""));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(&path).map_err(err)?;
        file.write_all(key.expose().as_bytes()).map_err(err)?;
        Ok(ArcKey {
            path: path.to_string_lossy().into_owned(),
            key,
            created: Instant::now(),
        })
    }
}

impl Drop for ArcKeys {
    fn drop(&mut self) {
        let current = self
            .current
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(key) = current.take() {
            let _ = std::fs::remove_file(&key.path);
        }
    }
}

/// The `KEY=VALUE` pairs that point SDKs at an emulator of `source` whose base URL is `base`
/// (`http://127.0.0.1:PORT`): App Service `IDENTITY_ENDPOINT` + `IDENTITY_HEADER`; App Service
/// 2017 `MSI_ENDPOINT` + `MSI_SECRET`; Azure ML those and `DEFAULT_IDENTITY_CLIENT_ID`; Cloud
/// Shell `MSI_ENDPOINT` + `AZUREPS_HOST_ENVIRONMENT=cloud-shell/1.0` (MSAL Python detects Cloud
/// Shell by it); Arc `IDENTITY_ENDPOINT` + `IMDS_ENDPOINT`; IMDS
/// `AZURE_POD_IDENTITY_AUTHORITY_HOST`.
pub fn env_pairs(
    source: Source,
    base: &str,
    secret: Option<&str>,
    default_client_id: Option<&str>,
) -> Vec<(&'static str, String)> {
    let base = base.trim_end_matches('/');
    let url = format!("{base}{}", token_path(source));
    let secret = secret.unwrap_or_default().to_owned();
    match source {
        Source::AppService => vec![(ENV_IDENTITY_ENDPOINT, url), (ENV_IDENTITY_HEADER, secret)],
        Source::AppService2017 => vec![(ENV_MSI_ENDPOINT, url), (ENV_MSI_SECRET, secret)],
        Source::AzureMl => {
            let mut pairs = vec![(ENV_MSI_ENDPOINT, url), (ENV_MSI_SECRET, secret)];
            if let Some(id) = default_client_id {
                pairs.push((ENV_DEFAULT_IDENTITY_CLIENT_ID, id.to_owned()));
            }
            pairs
        }
        Source::CloudShell => vec![
            (ENV_MSI_ENDPOINT, url),
            (ENV_AZUREPS_HOST_ENVIRONMENT, "cloud-shell/1.0".to_owned()),
        ],
        Source::Arc => vec![
            (ENV_IDENTITY_ENDPOINT, url),
            (ENV_IMDS_ENDPOINT, base.to_owned()),
        ],
        _ => vec![(ENV_POD_IDENTITY_AUTHORITY_HOST, base.to_owned())],
    }
}

/// Writes `pairs` as `KEY=VALUE` lines to `path`, mode 0600 (it may hold a secret).
pub fn write_env_file(path: &Path, pairs: &[(&'static str, String)]) -> std::io::Result<()> {
    let mut text = String::new();
    for (k, v) in pairs {
        text.push_str(k);
        text.push('=');
        text.push_str(v);
        text.push('\n');
    }
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_v4() {
        let g = random_guid();
        assert!(mitoken_core::identity::Guid::parse(&g).is_some(), "{g}");
        assert_eq!(&g[14..15], "4");
        assert_ne!(random_guid(), g);
    }

    #[test]
    fn env_for_each_source() {
        let p = env_pairs(Source::AppService, "http://127.0.0.1:1/", Some("s"), None);
        assert_eq!(
            p,
            [
                (
                    "IDENTITY_ENDPOINT",
                    "http://127.0.0.1:1/MSI/token".to_owned()
                ),
                ("IDENTITY_HEADER", "s".to_owned())
            ]
        );
        let p = env_pairs(Source::AzureMl, "http://h:2", Some("s"), Some("c"));
        assert_eq!(p[2], ("DEFAULT_IDENTITY_CLIENT_ID", "c".to_owned()));
        let p = env_pairs(Source::Arc, "http://h:3", None, None);
        assert_eq!(p[1], ("IMDS_ENDPOINT", "http://h:3".to_owned()));
        let p = env_pairs(Source::CloudShell, "http://h:4", None, None);
        assert_eq!(p[0].1, "http://h:4/oauth2/token");
    }

    #[test]
    fn arc_keys_rotate_and_clean_up() {
        let dir = std::env::temp_dir().join(format!("mitoken-arc-{}", random_guid()));
        let keys = ArcKeys::new(&dir, Duration::from_millis(50)).unwrap();
        let first = keys.current().unwrap();
        let meta = std::fs::metadata(&first.path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(
            std::fs::read_to_string(&first.path).unwrap(),
            first.key.expose()
        );
        assert!(Arc::ptr_eq(&first, &keys.current().unwrap()));
        std::thread::sleep(Duration::from_millis(60));
        let second = keys.current().unwrap();
        assert_ne!(first.path, second.path);
        assert!(!Path::new(&first.path).exists());
        drop(keys);
        assert!(!Path::new(&second.path).exists());
        std::fs::remove_dir(&dir).unwrap();
    }
}
