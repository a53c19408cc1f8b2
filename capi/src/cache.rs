//! `mitoken_cache`: mitoken-core's token cache (refresh-ahead, LRU) in static storage.

use mitoken_core::cache::{CacheError, CacheKey, CachedToken, Lookup, TokenCache};

use crate::exchange::{self, mitoken_exchange};
use crate::raw::{self, Storage, mitoken_str};
use crate::request::{self, mitoken_request};
use crate::result::mitoken_result;

/// Tokens a `mitoken_cache` holds (least recently used evicted when full).
pub const MITOKEN_CACHE_ENTRIES: usize = 4;
/// Bytes per entry for `access_token` + `token_type` + `client_id` (IMDS tokens: 1.5–4 KB).
pub const MITOKEN_CACHE_TOKEN_BYTES: usize = 4096;
/// Bytes per entry for the key: ~16 + resource + selector, + host and path of a custom
/// endpoint.
pub const MITOKEN_CACHE_KEY_BYTES: usize = 512;
/// Words (`uint64_t`) of a `mitoken_cache`.
pub const MITOKEN_CACHE_WORDS: usize = 2400;
/// Bytes of a `mitoken_cache`: put it in static storage, not on a small stack.
pub const MITOKEN_CACHE_SIZE: usize = MITOKEN_CACHE_WORDS * 8;

type Cache = TokenCache<MITOKEN_CACHE_ENTRIES, MITOKEN_CACHE_TOKEN_BYTES, MITOKEN_CACHE_KEY_BYTES>;

/// Storage for a token cache. Opaque, like `mitoken_exchange`; `MITOKEN_CACHE_SIZE` bytes.
#[repr(C)]
pub struct mitoken_cache {
    /// Private.
    pub opaque: [u64; MITOKEN_CACHE_WORDS],
}

// SAFETY: a repr(C) struct holding only a `u64` array.
unsafe impl Storage for mitoken_cache {
    type State = Cache;
    const TAG: u64 = 0x6d69_746f_6b63_6331; // "mitokcc1"
    fn words(&mut self) -> &mut [u64] {
        &mut self.opaque
    }
}

const _: () = assert!(raw::fits::<mitoken_cache>());

/// A cached token. Its strings point into the cache storage: valid until the next call that
/// changes this cache (`mitoken_cache_insert`, `_get`, `_remove`, `_init`). Copy what you keep.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct mitoken_cached_token {
    /// True: no refresh due yet. False: still valid but due for refresh (use it, and fetch a
    /// new one).
    pub fresh: bool,
    /// The bearer token. A secret: never log it.
    pub access_token: mitoken_str,
    /// `token_type` (`Bearer`).
    pub token_type: mitoken_str,
    /// `client_id`, if the service sent one.
    pub client_id: mitoken_str,
    /// When it expires, Unix milliseconds.
    pub expires_at_ms: u64,
    /// When a refresh is due, Unix milliseconds (at most `expires_at_ms`).
    pub refresh_at_ms: u64,
}

impl mitoken_cached_token {
    fn of(t: &CachedToken<'_>, fresh: bool) -> Self {
        Self {
            fresh,
            access_token: mitoken_str::of(t.access_token.expose()),
            token_type: mitoken_str::of(t.token_type),
            client_id: mitoken_str::of_opt(t.client_id),
            expires_at_ms: t.expires_at,
            refresh_at_ms: t.refresh_at,
        }
    }
}

fn code(e: CacheError) -> mitoken_result {
    match e {
        CacheError::KeyTooLarge { .. } => mitoken_result::CacheKeyTooLarge,
        CacheError::TokenTooLarge { .. } => mitoken_result::CacheTokenTooLarge,
        CacheError::Expired => mitoken_result::CacheExpired,
        _ => mitoken_result::InvalidArgument,
    }
}

/// The cache in `c`, or the code to return.
///
/// # Safety
/// As [`raw::storage`].
unsafe fn cache<'a>(c: *mut mitoken_cache) -> Result<&'a mut Cache, mitoken_result> {
    // SAFETY: forwarded contract.
    let storage = unsafe { raw::storage(c) }?;
    raw::state(storage).ok_or(mitoken_result::Misuse)
}

/// Makes `c` an empty cache (also: empties it). Call once before any other `mitoken_cache_*`.
///
/// Returns `OK`, `NULL_ARGUMENT`, `MISALIGNED`.
///
/// # Safety
/// `c` points to a `mitoken_cache` no other thread uses during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mitoken_cache_init(c: *mut mitoken_cache) -> mitoken_result {
    // SAFETY: `c` is NULL or valid, exclusive storage (contract).
    match unsafe { raw::storage(c) } {
        Ok(storage) => {
            raw::put(storage, Cache::new());
            mitoken_result::Ok
        }
        Err(e) => e,
    }
}

/// Stores the token the finished exchange `ex` received for `req`, at `now_ms` (Unix
/// milliseconds: the cache compares with `expires_on`). Replaces the entry for the same
/// request; evicts an expired or the least recently used entry when full. The token's text is
/// copied: the exchange buffer may be reused afterwards.
///
/// Returns `OK`; `CACHE_KEY_TOO_LARGE`, `CACHE_TOKEN_TOO_LARGE`, `CACHE_EXPIRED` (nothing
/// stored); `MISUSE` (cache not initialised, or `ex` did not end with a token);
/// `NULL_ARGUMENT`, `MISALIGNED`, `INVALID_ARGUMENT`, `INVALID_UTF8`.
///
/// # Safety
/// `c` points to an initialised `mitoken_cache`, `req` to the valid `mitoken_request` the
/// exchange was started with, `ex` to a `mitoken_exchange` whose buffer is still intact.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mitoken_cache_insert(
    c: *mut mitoken_cache,
    req: *const mitoken_request,
    ex: *mut mitoken_exchange,
    now_ms: u64,
) -> mitoken_result {
    // SAFETY: `req` is NULL or a valid request whose strings are valid for this call (contract).
    let parsed = match unsafe { request::parse(req) } {
        Ok(p) => p,
        Err(e) => return e,
    };
    // SAFETY: `ex` is NULL or valid storage whose buffer is intact (contract).
    let token = match unsafe { exchange::finished_token(ex) } {
        Ok(t) => t,
        Err(e) => return e,
    };
    // SAFETY: `c` is NULL or valid, exclusive storage (contract).
    let cache = match unsafe { cache(c) } {
        Ok(c) => c,
        Err(e) => return e,
    };
    let key = CacheKey::for_request(&parsed.request, parsed.endpoint);
    match cache.insert(&key, &token, now_ms) {
        Ok(()) => mitoken_result::Ok,
        Err(e) => code(e),
    }
}

/// Looks up the token for `req` at `now_ms` (Unix milliseconds) into `*out`.
///
/// Returns `OK` (`out->fresh` false means: use it, but refresh it now); `CACHE_MISS` (absent
/// or expired — an expired entry is dropped); `MISUSE` (not initialised); `NULL_ARGUMENT`,
/// `MISALIGNED`, `INVALID_ARGUMENT`, `INVALID_UTF8`.
///
/// # Safety
/// `c` points to an initialised `mitoken_cache`, `req` to a valid `mitoken_request`, `out` to
/// a writable `mitoken_cached_token`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mitoken_cache_get(
    c: *mut mitoken_cache,
    req: *const mitoken_request,
    now_ms: u64,
    out: *mut mitoken_cached_token,
) -> mitoken_result {
    if out.is_null() {
        return mitoken_result::NullArgument;
    }
    // SAFETY: `req` is NULL or a valid request whose strings are valid for this call (contract).
    let parsed = match unsafe { request::parse(req) } {
        Ok(p) => p,
        Err(e) => return e,
    };
    // SAFETY: `c` is NULL or valid, exclusive storage (contract).
    let cache = match unsafe { cache(c) } {
        Ok(c) => c,
        Err(e) => return e,
    };
    let key = CacheKey::for_request(&parsed.request, parsed.endpoint);
    let found = match cache.get(&key, now_ms) {
        Lookup::Fresh(t) => mitoken_cached_token::of(&t, true),
        Lookup::Stale(t) => mitoken_cached_token::of(&t, false),
        Lookup::Missing => return mitoken_result::CacheMiss,
    };
    // SAFETY: `out` is writable (contract; NULL checked above).
    match unsafe { raw::out(out, found) } {
        Ok(()) => mitoken_result::Ok,
        Err(e) => e,
    }
}

/// Removes the token for `req`, if any.
///
/// Returns `OK`, `CACHE_MISS` (there was none), `MISUSE` (not initialised), `NULL_ARGUMENT`,
/// `MISALIGNED`, `INVALID_ARGUMENT`, `INVALID_UTF8`.
///
/// # Safety
/// `c` points to an initialised `mitoken_cache`, `req` to a valid `mitoken_request`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mitoken_cache_remove(
    c: *mut mitoken_cache,
    req: *const mitoken_request,
) -> mitoken_result {
    // SAFETY: `req` is NULL or a valid request whose strings are valid for this call (contract).
    let parsed = match unsafe { request::parse(req) } {
        Ok(p) => p,
        Err(e) => return e,
    };
    // SAFETY: `c` is NULL or valid, exclusive storage (contract).
    let cache = match unsafe { cache(c) } {
        Ok(c) => c,
        Err(e) => return e,
    };
    if cache.remove(&CacheKey::for_request(&parsed.request, parsed.endpoint)) {
        mitoken_result::Ok
    } else {
        mitoken_result::CacheMiss
    }
}

/// The earliest refresh time of any cached token (Unix ms, possibly past) in `*at_ms`: sleep
/// until then, then `mitoken_cache_get` your requests and refresh the stale ones.
///
/// Returns `OK`, `CACHE_MISS` (the cache is empty), `MISUSE` (not initialised),
/// `NULL_ARGUMENT`, `MISALIGNED`.
///
/// # Safety
/// `c` points to an initialised `mitoken_cache`, `at_ms` to a writable `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mitoken_cache_next_refresh(
    c: *mut mitoken_cache,
    at_ms: *mut u64,
) -> mitoken_result {
    // SAFETY: `c` is NULL or valid, exclusive storage (contract).
    let cache = match unsafe { cache(c) } {
        Ok(c) => c,
        Err(e) => return e,
    };
    let Some(at) = cache.next_refresh_at() else {
        return if at_ms.is_null() {
            mitoken_result::NullArgument
        } else {
            mitoken_result::CacheMiss
        };
    };
    // SAFETY: `at_ms` is NULL or writable (contract).
    match unsafe { raw::out(at_ms, at) } {
        Ok(()) => mitoken_result::Ok,
        Err(e) => e,
    }
}
