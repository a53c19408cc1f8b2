//! A fixed-capacity token cache with refresh-ahead and least-recently-used eviction.
//!
//! [`TokenCache<N, T, K>`](TokenCache) holds up to `N` tokens keyed by [`CacheKey`]
//! (endpoint, selector, resource). Each entry owns copies of the token's text in fixed buffers
//! (the response buffer it was parsed from is transient): `T` bytes for `access_token` +
//! `token_type` + `client_id`, and `K` bytes for the encoded key. Nothing is truncated: a token
//! or key that does not fit is refused with the size it needs ([`CacheError`]).
//!
//! # Time
//!
//! `now` is **Unix time in milliseconds** (the clock `expires_on` is on). Tokens expire at the
//! earlier of `expires_on` and `now + expires_in` (whichever are present): `expires_in` is
//! relative and immune to a skewed local clock, `expires_on` guards against a clock running
//! ahead, and the earlier of the two is never later than the true expiry under either error.
//!
//! # Refresh-ahead
//!
//! The lifetime is `expires_on − not_before` when both are present, else `expires_in` as
//! received, else the time left. A token is *due for refresh* `lifetime / 2` before expiry if
//! the lifetime exceeds 2 h (IMDS's 24 h tokens: about 12 h after issue, like MSAL), and 5 min
//! before expiry otherwise — but never earlier than halfway through the time it had left when
//! it was inserted. That last rule matters because IMDS hands out *cached* tokens with less
//! time left: a token received 1 h before expiry would otherwise be due at once and refreshed
//! on every use; instead refreshes of such tokens come at halving intervals.
//!
//! [`get`](TokenCache::get) answers [`Lookup::Fresh`], [`Lookup::Stale`] (still valid, refresh
//! due — use it and refresh in the background) or [`Lookup::Missing`] (absent or expired; an
//! expired entry is dropped). A token is never returned once `now ≥ expires_at`.
//!
//! # Scheduling without polling
//!
//! [`next_refresh_at`](TokenCache::next_refresh_at) is the earliest refresh time of any entry
//! (possibly in the past). A shell sleeps until then, calls
//! [`purge_expired`](TokenCache::purge_expired), and for each entry [`due`](TokenCache::due)
//! returns starts a refresh and [`defer_refresh`](TokenCache::defer_refresh)s it (to when it
//! will retry, or to its expiry) so the next `due` moves on; the refreshed token is
//! [`insert`](TokenCache::insert)ed, which sets a new refresh time.
//!
//! # Cost
//!
//! Lookups hash the key (FNV-1a, 64 bit, over its encoding — no copy) and binary-search a
//! sorted `(hash, slot)` index, so their cost grows with log N; only a hash match compares the
//! stored key bytes, so a collision can never return the wrong token. Inserts and removals
//! shift the index (O(N) copies of 16 bytes); eviction and
//! [`next_refresh_at`](TokenCache::next_refresh_at) scan the `N` entries' times.
//!
//! # Size
//!
//! An entry is about `T + K + 96` bytes; the defaults (`T` = 4096, `K` = 512) fit IMDS tokens
//! (1.5–4 KB) and keys with an ARM resource-ID selector. `K` holds 16 bytes of framing plus
//! the resource and selector value, plus host and path for a [`Endpoint::Custom`] that is not
//! the built-in IMDS or extension address. With `N` = 64 the cache is ~300 KB: put it in a
//! `static` or on the heap of a host, not on a small stack.
//!
//! ```
//! use mitoken_core::cache::{CacheKey, Lookup, TokenCache};
//! use mitoken_core::request::Endpoint;
//! use mitoken_core::token::Token;
//!
//! let body = br#"{"access_token":"eyJ0eXAi","expires_in":"3600","resource":"https://vault.azure.net","token_type":"Bearer"}"#;
//! let token = Token::parse(body, &mut []).unwrap();
//! let key = CacheKey::new(Endpoint::Imds, None, "https://vault.azure.net");
//! let mut cache: TokenCache<4, 2048, 256> = TokenCache::new();
//! let now = 1_700_000_000_000;
//! cache.insert(&key, &token, now).unwrap();
//! // A 1 h token is due for refresh 5 min before it expires.
//! assert_eq!(cache.next_refresh_at(), Some(now + 55 * 60_000));
//! assert!(matches!(cache.get(&key, now + 1_000), Lookup::Fresh(_)));
//! assert!(matches!(cache.get(&key, now + 56 * 60_000), Lookup::Stale(_)));
//! assert!(matches!(cache.get(&key, now + 60 * 60_000), Lookup::Missing));
//! ```

use core::fmt;

use crate::request::{
    EXTENSION_HOST, EXTENSION_PORT, EXTENSION_TOKEN_PATH, Endpoint, IMDS_HOST, IMDS_PORT,
    IMDS_TOKEN_PATH, ResIdParam, Selector, Style, TokenRequest,
};
use crate::token::{Secret, Token};

/// Milliseconds in a second.
const MS_PER_S: u64 = 1_000;
/// Lifetimes above this are refreshed at half-life.
const LONG_LIFETIME_MS: u64 = 2 * 3_600 * MS_PER_S;
/// Shorter lifetimes are refreshed this long before expiry.
const SHORT_LEAD_MS: u64 = 5 * 60 * MS_PER_S;

/// Why the cache refused a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheError {
    /// The encoded key needs `required` bytes; the cache's key capacity `K` is smaller.
    KeyTooLarge {
        /// Bytes the encoded key needs.
        required: usize,
    },
    /// `access_token` + `token_type` + `client_id` need `required` bytes; the cache's token
    /// capacity `T` is smaller.
    TokenTooLarge {
        /// Bytes the token's text needs.
        required: usize,
    },
    /// The token is already expired at `now` (or has no expiry at all).
    Expired,
    /// The cache has capacity 0.
    NoCapacity,
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KeyTooLarge { required } => write!(
                f,
                "cache key (endpoint, selector, resource) too large: {required} bytes required"
            ),
            Self::TokenTooLarge { required } => write!(
                f,
                "token too large for a cache entry: {required} bytes required"
            ),
            Self::Expired => f.write_str("token already expired; not cached"),
            Self::NoCapacity => f.write_str("token cache has no capacity"),
        }
    }
}

impl core::error::Error for CacheError {}

/// What a cached token is for: endpoint, identity selector and resource.
///
/// Keys compare byte for byte (no case folding): callers that want `https://vault.azure.net`
/// and `https://vault.azure.net/` to share an entry normalise them first. [`Endpoint::Imds`]
/// and an [`Endpoint::Custom`] with the same host, port, path and style are the same endpoint.
/// The resource-ID parameter name (`msi_res_id` / `mi_res_id`) is part of the key, so a token
/// is only reused for the exact request that fetched it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheKey<'a> {
    /// Where the token came from.
    pub endpoint: Endpoint<'a>,
    /// The identity selector, if any.
    pub selector: Option<Selector<'a>>,
    /// The requested resource.
    pub resource: &'a str,
}

impl<'a> CacheKey<'a> {
    /// A key.
    pub const fn new(
        endpoint: Endpoint<'a>,
        selector: Option<Selector<'a>>,
        resource: &'a str,
    ) -> Self {
        Self {
            endpoint,
            selector,
            resource,
        }
    }

    /// The key of `request` sent to `endpoint`.
    pub const fn for_request(request: &TokenRequest<'a>, endpoint: Endpoint<'a>) -> Self {
        Self::new(endpoint, request.selector, request.resource)
    }

    /// Bytes this key takes in a cache entry (the `K` it needs).
    pub fn encoded_len(&self) -> usize {
        let mut c = Count(0);
        encode(self, &mut c);
        c.0
    }
}

// ---- key encoding -------------------------------------------------------------------------

/// Receives the bytes of an encoded key.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl dyn Sink + '_ {
    fn put_str(&mut self, s: &str) {
        let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
        self.put(&len.to_be_bytes());
        self.put(s.as_bytes());
    }
}

struct Count(usize);

impl Sink for Count {
    fn put(&mut self, bytes: &[u8]) {
        self.0 = self.0.saturating_add(bytes.len());
    }
}

struct Fnv(u64);

impl Sink for Fnv {
    fn put(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Writes into a buffer known (by a prior [`Count`]) to be large enough; excess is dropped.
struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl Sink for Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.pos.saturating_add(bytes.len());
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            dst.copy_from_slice(bytes);
        }
        self.pos = end;
    }
}

/// Compares against stored bytes.
struct Compare<'b> {
    stored: &'b [u8],
    pos: usize,
    equal: bool,
}

impl Sink for Compare<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.pos.saturating_add(bytes.len());
        if self.stored.get(self.pos..end) != Some(bytes) {
            self.equal = false;
        }
        self.pos = end;
    }
}

const TAG_IMDS: u8 = 0;
const TAG_EXTENSION: u8 = 1;
const TAG_CUSTOM: u8 = 2;

const SEL_NONE: u8 = 0;
const SEL_CLIENT: u8 = 1;
const SEL_OBJECT: u8 = 2;
const SEL_MSI_RES: u8 = 3;
const SEL_MI_RES: u8 = 4;

/// The injective encoding: endpoint tag [style port host path], selector tag [value], resource;
/// every string is prefixed by its length.
/// One copy of the encoder for every sink (`dyn`). With the `small-code` feature it is never
/// inlined (the compiler would otherwise copy it into each caller with the sink devirtualised):
/// small code matters more than the indirect calls on the bare-metal target. Without it the
/// host gets the devirtualised copies (faster lookups).
#[cfg_attr(feature = "small-code", inline(never))]
fn encode(key: &CacheKey<'_>, sink: &mut dyn Sink) {
    let e = key.endpoint;
    let (host, port, path, style) = (e.host(), e.port(), e.path(), e.style());
    if (host, port, path, style) == (IMDS_HOST, IMDS_PORT, IMDS_TOKEN_PATH, Style::Imds) {
        sink.put(&[TAG_IMDS]);
    } else if (host, port, path, style)
        == (
            EXTENSION_HOST,
            EXTENSION_PORT,
            EXTENSION_TOKEN_PATH,
            Style::Extension,
        )
    {
        sink.put(&[TAG_EXTENSION]);
    } else {
        // The style is part of the key, so one address serving two sources (an emulator
        // switched between them) never hands one source's token to the other's callers.
        let style = Style::ALL
            .iter()
            .position(|s| *s == style)
            .and_then(|i| u8::try_from(i).ok())
            .unwrap_or(0);
        sink.put(&[TAG_CUSTOM, style]);
        sink.put(&port.to_be_bytes());
        sink.put_str(host);
        sink.put_str(path);
    }
    match key.selector {
        None => sink.put(&[SEL_NONE]),
        Some(s) => {
            let tag = match s {
                Selector::ClientId(_) => SEL_CLIENT,
                Selector::ObjectId(_) => SEL_OBJECT,
                Selector::ResourceId {
                    param: ResIdParam::MsiResId,
                    ..
                } => SEL_MSI_RES,
                Selector::ResourceId {
                    param: ResIdParam::MiResId,
                    ..
                } => SEL_MI_RES,
            };
            sink.put(&[tag]);
            sink.put_str(s.value());
        }
    }
    sink.put_str(key.resource);
}

/// Reads back what [`encode`] wrote. Only ever given bytes `encode` wrote, so the defaults
/// for malformed input are unreachable; they exist to stay panic-free.
struct Reader<'b>(&'b [u8]);

impl<'b> Reader<'b> {
    fn bytes(&mut self, n: usize) -> &'b [u8] {
        let (head, tail) = self.0.split_at_checked(n).unwrap_or((self.0, &[]));
        self.0 = tail;
        head
    }

    fn byte(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }

    fn str(&mut self) -> &'b str {
        let len = <[u8; 4]>::try_from(self.bytes(4)).map_or(0, u32::from_be_bytes);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        core::str::from_utf8(self.bytes(len)).unwrap_or_default()
    }
}

fn decode(bytes: &[u8]) -> CacheKey<'_> {
    let mut r = Reader(bytes);
    let endpoint = match r.byte() {
        TAG_IMDS => Endpoint::Imds,
        TAG_EXTENSION => Endpoint::Extension,
        _ => {
            let style = Style::ALL
                .get(usize::from(r.byte()))
                .copied()
                .unwrap_or_default();
            let port = <[u8; 2]>::try_from(r.bytes(2)).map_or(0, u16::from_be_bytes);
            let host = r.str();
            let path = r.str();
            Endpoint::Custom {
                host,
                port,
                path,
                style,
            }
        }
    };
    let selector = match r.byte() {
        SEL_CLIENT => Some(Selector::ClientId(r.str())),
        SEL_OBJECT => Some(Selector::ObjectId(r.str())),
        SEL_MSI_RES => Some(Selector::ResourceId {
            id: r.str(),
            param: ResIdParam::MsiResId,
        }),
        SEL_MI_RES => Some(Selector::ResourceId {
            id: r.str(),
            param: ResIdParam::MiResId,
        }),
        _ => None,
    };
    let resource = r.str();
    CacheKey {
        endpoint,
        selector,
        resource,
    }
}

/// A [`CacheKey`] copied into `K` bytes of its own (the cache's entry encoding), for holding a
/// key beyond the life of the strings it was built from — e.g. the token engine's pending
/// upstream requests.
#[derive(Clone, Copy)]
pub struct OwnedKey<const K: usize> {
    bytes: [u8; K],
    len: usize,
}

impl<const K: usize> OwnedKey<K> {
    /// Copies `key`; fails with the size it needs when that exceeds `K`.
    pub fn new(key: &CacheKey<'_>) -> Result<Self, CacheError> {
        let len = key.encoded_len();
        if len > K {
            return Err(CacheError::KeyTooLarge { required: len });
        }
        let mut bytes = [0; K];
        encode(
            key,
            &mut Writer {
                buf: &mut bytes,
                pos: 0,
            },
        );
        Ok(Self { bytes, len })
    }

    /// The key, borrowing from `self`.
    pub fn key(&self) -> CacheKey<'_> {
        decode(self.bytes.get(..self.len).unwrap_or_default())
    }

    /// True when `key` is the key held.
    pub fn matches(&self, key: &CacheKey<'_>) -> bool {
        let stored = self.bytes.get(..self.len).unwrap_or_default();
        let mut c = Compare {
            stored,
            pos: 0,
            equal: true,
        };
        encode(key, &mut c);
        c.equal && c.pos == stored.len()
    }
}

impl<const K: usize> fmt::Debug for OwnedKey<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.key(), f)
    }
}

fn hash(key: &CacheKey<'_>) -> u64 {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    encode(key, &mut h);
    h.0
}

// ---- entries ------------------------------------------------------------------------------

struct Entry<const T: usize, const K: usize> {
    key: [u8; K],
    key_len: usize,
    /// `access_token`, then `token_type`, then `client_id`.
    text: [u8; T],
    token_len: usize,
    type_len: usize,
    client_id_len: Option<usize>,
    expires_on: Option<u64>,
    not_before: Option<u64>,
    received_at: u64,
    expires_at: u64,
    refresh_at: u64,
    last_used: u64,
}

impl<const T: usize, const K: usize> Entry<T, K> {
    const EMPTY: Self = Self {
        key: [0; K],
        key_len: 0,
        text: [0; T],
        token_len: 0,
        type_len: 0,
        client_id_len: None,
        expires_on: None,
        not_before: None,
        received_at: 0,
        expires_at: 0,
        refresh_at: 0,
        last_used: 0,
    };

    fn matches(&self, key: &CacheKey<'_>) -> bool {
        let stored = self.key.get(..self.key_len).unwrap_or_default();
        let mut c = Compare {
            stored,
            pos: 0,
            equal: true,
        };
        encode(key, &mut c);
        c.equal && c.pos == stored.len()
    }

    fn text(&self, start: usize, len: usize) -> &str {
        let end = start.saturating_add(len);
        core::str::from_utf8(self.text.get(start..end).unwrap_or_default()).unwrap_or_default()
    }

    fn view(&self) -> CachedToken<'_> {
        let type_start = self.token_len;
        let cid_start = type_start.saturating_add(self.type_len);
        CachedToken {
            key: decode(self.key.get(..self.key_len).unwrap_or_default()),
            access_token: Secret::new(self.text(0, self.token_len)),
            token_type: self.text(type_start, self.type_len),
            client_id: self.client_id_len.map(|n| self.text(cid_start, n)),
            expires_on: self.expires_on,
            not_before: self.not_before,
            received_at: self.received_at,
            expires_at: self.expires_at,
            refresh_at: self.refresh_at,
        }
    }

    /// Overwrites the token bytes so a dropped token does not linger in memory.
    fn wipe(&mut self) {
        self.text.fill(0);
        self.token_len = 0;
        self.type_len = 0;
        self.client_id_len = None;
    }
}

/// A cached token, borrowed from the cache. `Debug` redacts the access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CachedToken<'c> {
    /// The entry's key.
    pub key: CacheKey<'c>,
    /// The bearer token.
    pub access_token: Secret<'c>,
    /// `token_type` as received (`Bearer`).
    pub token_type: &'c str,
    /// `client_id` as received, if any.
    pub client_id: Option<&'c str>,
    /// `expires_on` as received (Unix seconds), if any.
    pub expires_on: Option<u64>,
    /// `not_before` as received (Unix seconds), if any.
    pub not_before: Option<u64>,
    /// When the token was inserted (ms).
    pub received_at: u64,
    /// When the token expires (ms): the earlier of `expires_on` and receipt + `expires_in`.
    pub expires_at: u64,
    /// When a refresh is due (ms); at most `expires_at`.
    pub refresh_at: u64,
}

impl CachedToken<'_> {
    /// Whole seconds left at `now` (ms), for re-emitting `expires_in`.
    pub const fn expires_in(&self, now: u64) -> u64 {
        self.expires_at.saturating_sub(now) / MS_PER_S
    }
}

/// The answer of [`TokenCache::get`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Lookup<'c> {
    /// Valid, and no refresh due yet.
    Fresh(CachedToken<'c>),
    /// Still valid, but due for refresh: use it, and refresh.
    Stale(CachedToken<'c>),
    /// No valid token for this key.
    Missing,
}

impl<'c> Lookup<'c> {
    /// The token, fresh or stale.
    pub const fn token(&self) -> Option<&CachedToken<'c>> {
        match self {
            Self::Fresh(t) | Self::Stale(t) => Some(t),
            Self::Missing => None,
        }
    }
}

/// A fixed-capacity token cache: `N` entries, `T` bytes of token text and `K` bytes of key per
/// entry. See the [module](self) docs.
pub struct TokenCache<const N: usize, const T: usize = 4096, const K: usize = 512> {
    /// Each slot's key hash.
    hashes: [u64; N],
    /// `(hash, slot)` of the live slots, sorted by hash: lookups are a binary search.
    index: [(u64, usize); N],
    entries: [Entry<T, K>; N],
    len: usize,
    tick: u64,
}

impl<const N: usize, const T: usize, const K: usize> Default for TokenCache<N, T, K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize, const T: usize, const K: usize> fmt::Debug for TokenCache<N, T, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("len", &self.len)
            .field("capacity", &N)
            .field("entries", &Entries(self.live()))
            .finish_non_exhaustive()
    }
}

struct Entries<'c, const T: usize, const K: usize>(&'c [Entry<T, K>]);

impl<const T: usize, const K: usize> fmt::Debug for Entries<'_, T, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(Entry::view))
            .finish()
    }
}

impl<const N: usize, const T: usize, const K: usize> TokenCache<N, T, K> {
    /// An empty cache.
    pub const fn new() -> Self {
        Self {
            hashes: [0; N],
            index: [(0, 0); N],
            entries: [const { Entry::<T, K>::EMPTY }; N],
            len: 0,
            tick: 0,
        }
    }

    /// Entries held.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// True when no entries are held.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Most entries held (`N`).
    pub const fn capacity(&self) -> usize {
        N
    }

    fn live(&self) -> &[Entry<T, K>] {
        self.entries.get(..self.len).unwrap_or_default()
    }

    fn find(&self, key: &CacheKey<'_>) -> Option<usize> {
        if key.encoded_len() > K {
            return None;
        }
        let h = hash(key);
        let index = self.index.get(..self.len).unwrap_or_default();
        let first = index.partition_point(|&(x, _)| x < h);
        index
            .get(first..)
            .unwrap_or_default()
            .iter()
            .take_while(|&&(x, _)| x == h)
            .map(|&(_, slot)| slot)
            .find(|&i| self.entries.get(i).is_some_and(|e| e.matches(key)))
    }

    /// Adds `(h, slot)` to the sorted index (which holds `live` entries before the call).
    fn index_insert(&mut self, live: usize, h: u64, slot: usize) {
        let pos = self
            .index
            .get(..live)
            .unwrap_or_default()
            .partition_point(|&(x, _)| x < h);
        if let Some(tail) = self.index.get_mut(pos..=live) {
            tail.copy_within(..tail.len().saturating_sub(1), 1);
        }
        if let Some(e) = self.index.get_mut(pos) {
            *e = (h, slot);
        }
    }

    /// Removes `slot`'s entry (hash `h`) from the sorted index of `live` entries.
    fn index_remove(&mut self, live: usize, h: u64, slot: usize) {
        let index = self.index.get(..live).unwrap_or_default();
        let first = index.partition_point(|&(x, _)| x < h);
        let Some(pos) = index
            .get(first..)
            .unwrap_or_default()
            .iter()
            .position(|&e| e == (h, slot))
            .map(|p| first.saturating_add(p))
        else {
            return;
        };
        if let Some(tail) = self.index.get_mut(pos..live) {
            tail.copy_within(1.., 0);
        }
    }

    /// Points the index entry of `from` (hash `h`) at `to` instead.
    fn index_move(&mut self, live: usize, h: u64, from: usize, to: usize) {
        let first = self
            .index
            .get(..live)
            .unwrap_or_default()
            .partition_point(|&(x, _)| x < h);
        if let Some(e) = self
            .index
            .get_mut(first..live)
            .unwrap_or_default()
            .iter_mut()
            .find(|e| **e == (h, from))
        {
            e.1 = to;
        }
    }

    /// Looks `key` up at `now` (ms) and marks it recently used. An expired entry is dropped and
    /// reported [`Lookup::Missing`].
    pub fn get(&mut self, key: &CacheKey<'_>, now: u64) -> Lookup<'_> {
        let Some(i) = self.find(key) else {
            return Lookup::Missing;
        };
        let expired = self.entries.get(i).is_none_or(|e| now >= e.expires_at);
        if expired {
            self.remove_at(i);
            return Lookup::Missing;
        }
        self.tick = self.tick.saturating_add(1);
        let tick = self.tick;
        match self.entries.get_mut(i) {
            Some(e) => {
                e.last_used = tick;
                classify(e, now)
            }
            None => Lookup::Missing,
        }
    }

    /// The token for `key` when it is valid and no refresh is due at `now` (ms)
    /// ([`Lookup::Fresh`]), marked recently used; `None` otherwise, and then nothing changes
    /// (an expired entry is left for [`get`](Self::get) or
    /// [`purge_expired`](Self::purge_expired) to drop).
    pub fn get_fresh(&mut self, key: &CacheKey<'_>, now: u64) -> Option<CachedToken<'_>> {
        let i = self.find(key)?;
        // `refresh_at` ≤ `expires_at`: before it, the token is valid and not due.
        if self.entries.get(i).is_none_or(|e| now >= e.refresh_at) {
            return None;
        }
        self.tick = self.tick.saturating_add(1);
        let tick = self.tick;
        let e = self.entries.get_mut(i)?;
        e.last_used = tick;
        Some(e.view())
    }

    /// Like [`get`](Self::get) but changes nothing: no recency update, no removal.
    pub fn peek(&self, key: &CacheKey<'_>, now: u64) -> Lookup<'_> {
        match self.find(key).and_then(|i| self.entries.get(i)) {
            Some(e) if now < e.expires_at => classify(e, now),
            _ => Lookup::Missing,
        }
    }

    /// Stores `token`, received at `now` (ms), under `key`, replacing an entry for the same key.
    /// When the cache is full, an expired entry or else the least recently used one is evicted.
    ///
    /// Nothing changes on error.
    pub fn insert(
        &mut self,
        key: &CacheKey<'_>,
        token: &Token<'_>,
        now: u64,
    ) -> Result<(), CacheError> {
        if N == 0 {
            return Err(CacheError::NoCapacity);
        }
        let key_len = key.encoded_len();
        if key_len > K {
            return Err(CacheError::KeyTooLarge { required: key_len });
        }
        let access = token.access_token.expose().as_bytes();
        let token_type = token.token_type.as_bytes();
        let client_id = token.client_id.map(str::as_bytes);
        let text_len = access
            .len()
            .saturating_add(token_type.len())
            .saturating_add(client_id.map_or(0, <[u8]>::len));
        if text_len > T {
            return Err(CacheError::TokenTooLarge { required: text_len });
        }
        let (expires_at, refresh_at) = schedule(token, now).ok_or(CacheError::Expired)?;

        let h = hash(key);
        let slot = match self.find(key) {
            Some(i) => i,
            None if self.len < N => {
                let slot = self.len;
                self.index_insert(slot, h, slot);
                self.len = self.len.saturating_add(1);
                slot
            }
            None => {
                let slot = self.victim(now);
                let old = self.hashes.get(slot).copied().unwrap_or_default();
                self.index_remove(self.len, old, slot);
                self.index_insert(self.len.saturating_sub(1), h, slot);
                slot
            }
        };
        self.tick = self.tick.saturating_add(1);
        let tick = self.tick;
        if let Some(x) = self.hashes.get_mut(slot) {
            *x = h;
        }
        let Some(e) = self.entries.get_mut(slot) else {
            return Err(CacheError::NoCapacity);
        };
        e.wipe();
        let mut w = Writer {
            buf: &mut e.key,
            pos: 0,
        };
        encode(key, &mut w);
        e.key_len = key_len;
        let mut pos: usize = 0;
        for part in [Some(access), Some(token_type), client_id]
            .into_iter()
            .flatten()
        {
            let end = pos.saturating_add(part.len());
            if let Some(dst) = e.text.get_mut(pos..end) {
                dst.copy_from_slice(part);
            }
            pos = end;
        }
        e.token_len = access.len();
        e.type_len = token_type.len();
        e.client_id_len = client_id.map(<[u8]>::len);
        e.expires_on = token.expires_on;
        e.not_before = token.not_before;
        e.received_at = now;
        e.expires_at = expires_at;
        e.refresh_at = refresh_at;
        e.last_used = tick;
        Ok(())
    }

    /// The slot to evict in a full cache: an expired entry if there is one, else the least
    /// recently used.
    fn victim(&self, now: u64) -> usize {
        let live = self.live();
        if let Some(i) = live.iter().position(|e| now >= e.expires_at) {
            return i;
        }
        live.iter()
            .enumerate()
            .min_by_key(|(_, e)| e.last_used)
            .map_or(0, |(i, _)| i)
    }

    /// Removes the entry for `key`; true if there was one.
    pub fn remove(&mut self, key: &CacheKey<'_>) -> bool {
        match self.find(key) {
            Some(i) => {
                self.remove_at(i);
                true
            }
            None => false,
        }
    }

    fn remove_at(&mut self, i: usize) {
        if i >= self.len {
            return;
        }
        let last = self.len.saturating_sub(1);
        let hash_i = self.hashes.get(i).copied().unwrap_or_default();
        self.index_remove(self.len, hash_i, i);
        if i != last {
            // The last entry moves into slot `i`.
            let hash_last = self.hashes.get(last).copied().unwrap_or_default();
            self.index_move(last, hash_last, last, i);
            if let Some((a, b)) = self.entries.split_at_mut_checked(last)
                && let (Some(x), Some(y)) = (a.get_mut(i), b.first_mut())
            {
                core::mem::swap(x, y);
            }
            if let Some(&h) = self.hashes.get(last)
                && let Some(slot) = self.hashes.get_mut(i)
            {
                *slot = h;
            }
        }
        if let Some(e) = self.entries.get_mut(last) {
            e.wipe();
        }
        self.len = last;
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        for e in self.entries.iter_mut().take(self.len) {
            e.wipe();
        }
        self.len = 0;
    }

    /// Removes the entries expired at `now` (ms); returns how many.
    pub fn purge_expired(&mut self, now: u64) -> usize {
        let mut removed = 0;
        let mut i = 0;
        while i < self.len {
            if self.entries.get(i).is_some_and(|e| now >= e.expires_at) {
                self.remove_at(i);
                removed += 1;
            } else {
                i += 1;
            }
        }
        removed
    }

    /// The earliest time (ms) any entry is due for refresh, `None` when empty. It may be in the
    /// past. It changes on [`insert`](Self::insert), [`defer_refresh`](Self::defer_refresh)
    /// and removals.
    pub fn next_refresh_at(&self) -> Option<u64> {
        self.live().iter().map(|e| e.refresh_at).min()
    }

    /// The unexpired entry with the earliest refresh time at or before `now`, if any.
    pub fn due(&self, now: u64) -> Option<CachedToken<'_>> {
        self.live()
            .iter()
            .filter(|e| e.refresh_at <= now && now < e.expires_at)
            .min_by_key(|e| e.refresh_at)
            .map(Entry::view)
    }

    /// Moves `key`'s refresh time to `at` (ms), at most its expiry — e.g. while a refresh is in
    /// flight or after one failed. True if the entry exists.
    pub fn defer_refresh(&mut self, key: &CacheKey<'_>, at: u64) -> bool {
        let Some(e) = self.find(key).and_then(|i| self.entries.get_mut(i)) else {
            return false;
        };
        e.refresh_at = at.min(e.expires_at);
        true
    }
}

fn classify<const T: usize, const K: usize>(e: &Entry<T, K>, now: u64) -> Lookup<'_> {
    if now >= e.refresh_at {
        Lookup::Stale(e.view())
    } else {
        Lookup::Fresh(e.view())
    }
}

/// `(expires_at, refresh_at)` in ms for a token received at `now`, or `None` if it is expired.
fn schedule(token: &Token<'_>, now: u64) -> Option<(u64, u64)> {
    let relative = token
        .expires_in
        .map(|s| now.saturating_add(s.saturating_mul(MS_PER_S)));
    let absolute = token.expires_on.map(|s| s.saturating_mul(MS_PER_S));
    let expires_at = match (relative, absolute) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    if expires_at <= now {
        return None;
    }
    let remaining = expires_at - now;
    let lifetime = match (token.expires_on, token.not_before, token.expires_in) {
        (Some(on), Some(nbf), _) if on > nbf => (on - nbf).saturating_mul(MS_PER_S),
        (_, _, Some(secs)) => secs.saturating_mul(MS_PER_S),
        _ => remaining,
    };
    let lead = if lifetime > LONG_LIFETIME_MS {
        lifetime / 2
    } else {
        SHORT_LEAD_MS
    };
    let refresh_at = expires_at
        .saturating_sub(lead)
        .max(now.saturating_add(remaining / 2));
    Some((expires_at, refresh_at))
}
