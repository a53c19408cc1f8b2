//! The per-(identity, resource) token cache IMDS keeps: repeated requests get the same token with
//! `expires_in` counting down; `bypass_cache=true` mints a new one (which then replaces the cached
//! one).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::config::{Guid, IdentityConfig};
use super::jwt::{MintedToken, TokenMinter};
use super::signing::KeyError;

/// A token served from [`TokenCache::get_or_mint`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedToken {
    /// The token.
    pub token: MintedToken,
    /// Seconds left at the time of the request (the response's `expires_in`).
    pub expires_in: u64,
    /// Whether it came from the cache rather than being minted for this request.
    pub from_cache: bool,
}

/// Tokens by (identity client ID, resource), bounded in size. Thread-safe; share it by reference
/// or `Arc`.
#[derive(Debug)]
pub struct TokenCache {
    entries: Mutex<HashMap<(Guid, String), MintedToken>>,
    max_entries: usize,
    refresh_margin_secs: u64,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_ENTRIES, Self::DEFAULT_REFRESH_MARGIN_SECS)
    }
}

impl TokenCache {
    /// Default bound on cached tokens.
    pub const DEFAULT_MAX_ENTRIES: usize = 10_000;
    /// Default: a cached token with less than this many seconds left is replaced.
    pub const DEFAULT_REFRESH_MARGIN_SECS: u64 = 300;

    /// A cache holding at most `max_entries` tokens (at least 1), replacing those with less than
    /// `refresh_margin_secs` left.
    pub fn new(max_entries: usize, refresh_margin_secs: u64) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            max_entries: max_entries.max(1),
            refresh_margin_secs,
        }
    }

    /// The cached token for (`identity`, `resource`) if it has more than the refresh margin left
    /// at `now` and `bypass_cache` is false; otherwise a newly minted one, which is cached.
    ///
    /// Minting happens outside the lock; two concurrent misses may both mint (the later one is
    /// kept), which is harmless.
    pub fn get_or_mint(
        &self,
        minter: &TokenMinter,
        identity: &IdentityConfig,
        resource: &str,
        now: u64,
        bypass_cache: bool,
    ) -> Result<ServedToken, KeyError> {
        let key = (identity.key(), resource.to_owned());
        if !bypass_cache {
            let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(token) = entries.get(&key)
                && token.expires_in(now) > self.refresh_margin_secs
            {
                return Ok(ServedToken {
                    expires_in: token.expires_in(now),
                    token: token.clone(),
                    from_cache: true,
                });
            }
        }
        let token = minter.mint(identity, resource, now)?;
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.max_entries && !entries.contains_key(&key) {
            entries.retain(|_, t| t.expires_in(now) > self.refresh_margin_secs);
            if entries.len() >= self.max_entries
                && let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, t)| t.expires_on)
                    .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(key, token.clone());
        Ok(ServedToken {
            expires_in: token.expires_in(now),
            token,
            from_cache: false,
        })
    }

    /// How many tokens are cached.
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every token.
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulate::config::EmulatorConfig;
    use crate::emulate::jwt::tests::minter;

    #[test]
    fn cached_token_counts_down_and_bypass_mints() {
        let config = EmulatorConfig::builtin();
        let id = &config.user_assigned[0];
        let m = minter();
        let cache = TokenCache::default();
        let first = cache.get_or_mint(&m, id, "r", 10_000, false).unwrap();
        assert!(!first.from_cache);
        assert_eq!(first.expires_in, 86_400);

        let again = cache.get_or_mint(&m, id, "r", 10_120, false).unwrap();
        assert!(again.from_cache);
        assert_eq!(again.token, first.token);
        assert_eq!(again.expires_in, 86_280);
        assert_eq!(again.token.expires_on - again.token.not_before, 86_700);

        let bypassed = cache.get_or_mint(&m, id, "r", 10_130, true).unwrap();
        assert!(!bypassed.from_cache);
        assert_ne!(bypassed.token.jwt(), first.token.jwt());
        assert_eq!(bypassed.expires_in, 86_400);
        // The bypass result replaced the cached one.
        let after = cache.get_or_mint(&m, id, "r", 10_140, false).unwrap();
        assert_eq!(after.token, bypassed.token);
    }

    #[test]
    fn keyed_by_identity_and_resource() {
        let config = EmulatorConfig::builtin();
        let (a, b) = (&config.user_assigned[0], &config.user_assigned[1]);
        let m = minter();
        let cache = TokenCache::default();
        let t1 = cache.get_or_mint(&m, a, "r1", 0, false).unwrap();
        let t2 = cache.get_or_mint(&m, a, "r2", 0, false).unwrap();
        let t3 = cache.get_or_mint(&m, b, "r1", 0, false).unwrap();
        assert!(!t2.from_cache && !t3.from_cache);
        assert_ne!(t1.token, t2.token);
        assert_eq!(cache.len(), 3);
        cache.clear();
        assert!(cache.is_empty());
    }

    #[test]
    fn near_expiry_is_refreshed_and_size_is_bounded() {
        let config = EmulatorConfig::builtin();
        let id = &config.user_assigned[0];
        let m = minter();
        let cache = TokenCache::new(2, 300);
        let t = cache.get_or_mint(&m, id, "r", 0, false).unwrap();
        let late = cache.get_or_mint(&m, id, "r", 86_400 - 300, false).unwrap();
        assert!(!late.from_cache);
        assert_ne!(late.token, t.token);

        cache.get_or_mint(&m, id, "r2", 86_150, false).unwrap();
        cache.get_or_mint(&m, id, "r3", 86_200, false).unwrap();
        assert_eq!(cache.len(), 2);
        // "r" (oldest expiry) was evicted.
        assert!(
            !cache
                .get_or_mint(&m, id, "r", 86_200, false)
                .unwrap()
                .from_cache
        );
    }
}
