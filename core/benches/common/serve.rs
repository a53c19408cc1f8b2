//! Entry points for the request-build, server and scaling benchmarks, each `#[inline(never)]`
//! and named `run_*` so callgrind can collect inside them alone (`--toggle-collect='*run_…'`).
//! Fixtures (identity tables, caches) are built outside the measured functions.

use core::fmt::Write as _;

use mitoken_core::cache::{CacheKey, TokenCache};
use mitoken_core::identity::{Flavor, Identity, IdentityTable, Selector as IdSelector};
use mitoken_core::request::{Endpoint, Selector, TokenRequest, USER_AGENT};
use mitoken_core::server::{
    Config, Handled, IssueError, IssueRequest, Issued, Issuer, Server, ServerConnection,
};
use mitoken_core::token::Token;

/// The resource every benchmark asks for.
pub const RESOURCE: &str = "https://management.azure.com/";
/// The identity counts the scaling benchmarks use.
pub const SIZES: [usize; 4] = [1, 10, 100, 1000];
/// "Now" for the server, Unix seconds.
pub const NOW: u64 = 1_757_687_322;
/// The largest identity table (IMDS's limit).
pub const MAX_IDENTITIES: usize = 1000;
/// The largest cache the scaling benchmark fills.
pub const MAX_CACHED: usize = 1000;

/// The client ID of user-assigned identity `i` (GUIDs spread so insertion order ≠ sorted order).
pub fn client_id(i: usize) -> String {
    let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{:08x}-0000-4000-8000-{:012x}", h >> 32, i)
}

/// The object ID of user-assigned identity `i`.
pub fn object_id(i: usize) -> String {
    let h = (i as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    format!("{:08x}-1111-4111-8111-{:012x}", h >> 32, i)
}

/// The ARM resource ID of user-assigned identity `i` (long shared prefix, as real ones have).
pub fn resource_id(i: usize) -> String {
    format!(
        "/subscriptions/40000000-0000-4000-8000-000000000000/resourceGroups/mitoken-bench/\
         providers/Microsoft.ManagedIdentity/userAssignedIdentities/uami-{:04}",
        (i as u64).wrapping_mul(7919) % 10_000
    )
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// A VM with a system-assigned identity and `n` user-assigned ones.
pub type Table = IdentityTable<&'static str, MAX_IDENTITIES>;

/// The identity table of a VM with a system-assigned identity and `n` user-assigned ones (boxed:
/// an IMDS-sized table is ~100 KB).
pub fn table(n: usize) -> Box<Table> {
    let mut t = Box::new(IdentityTable::new(Flavor::Imds));
    t.insert(Identity::system_assigned(
        "a0a0a0a0-0000-4000-8000-000000000001",
        "b0b0b0b0-0000-4000-8000-000000000001",
    ))
    .expect("system-assigned identity");
    for i in 0..n {
        t.insert(Identity::user_assigned(
            leak(client_id(i)),
            leak(object_id(i)),
            leak(resource_id(i)),
        ))
        .expect("user-assigned identity");
    }
    t
}

/// Which identity a scaling case asks for: the one inserted last (its place in the sorted
/// indexes is arbitrary).
pub fn probe(n: usize) -> usize {
    n.saturating_sub(1)
}

/// `IdentityTable::resolve` by `client_id`.
#[inline(never)]
pub fn run_resolve_client(table: &Table, client_id: &str) -> usize {
    table
        .resolve(&IdSelector::ClientId(client_id))
        .map_or(0, |r| r.slot.index())
}

/// `IdentityTable::resolve` by `msi_res_id` (case-insensitive compare of long ARM ids).
#[inline(never)]
pub fn run_resolve_resource(table: &Table, resource_id: &str) -> usize {
    table
        .resolve(&IdSelector::ResourceId(resource_id))
        .map_or(0, |r| r.slot.index())
}

// ---- request build -------------------------------------------------------------------------

/// The request the build benchmarks write: IMDS, a `client_id` selector.
pub fn build_request() -> TokenRequest<'static> {
    TokenRequest::new(RESOURCE)
        .with_selector(Selector::ClientId("b9c48cb0-1720-400e-8ca8-2984fcb042d9"))
}

std::thread_local! {
    static REQ_BUF: core::cell::RefCell<[u8; 1024]> = const { core::cell::RefCell::new([0; 1024]) };
}

/// mitoken-core: `TokenRequest::write` (validates every value, percent-encodes) into a reused
/// buffer, as a connection would.
#[inline(never)]
pub fn run_build_mitoken(request: &TokenRequest<'_>) -> usize {
    REQ_BUF.with_borrow_mut(|buf| request.write(&Endpoint::Imds, buf).unwrap_or(0))
}

/// The usual std approach: `format!` the request line and headers into a new `String`,
/// percent-encoding the values with a small helper (no validation).
#[inline(never)]
pub fn run_build_format(resource: &str, client_id: &str) -> usize {
    let request = format!(
        "GET /metadata/identity/oauth2/token?api-version={}&resource={}&client_id={} HTTP/1.1\r\n\
         Host: 169.254.169.254\r\nMetadata: true\r\nConnection: close\r\n\
         Accept: application/json\r\nUser-Agent: {USER_AGENT}\r\n\r\n",
        "2018-02-01",
        encode(resource),
        encode(client_id),
    );
    request.len()
}

/// Percent-encodes everything but RFC 3986 unreserved characters, into a new `String`.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

// ---- server --------------------------------------------------------------------------------

/// An issuer that answers from a ready token, as the emulator's cache hit does: copy it out.
pub struct CachedIssuer {
    token: &'static [u8],
}

impl CachedIssuer {
    /// Serves the fixture's access token.
    pub fn new(body: &[u8]) -> Self {
        let token = Token::parse(body, &mut [])
            .expect("fixture token")
            .access_token
            .expose()
            .to_owned();
        CachedIssuer {
            token: Box::leak(token.into_bytes().into_boxed_slice()),
        }
    }
}

impl Issuer for CachedIssuer {
    fn issue(
        &mut self,
        request: &IssueRequest<'_, '_>,
        out: &mut [u8],
    ) -> Result<Issued, IssueError<'_>> {
        let Some(dst) = out.get_mut(..self.token.len()) else {
            return Err(IssueError::BufferTooSmall {
                required: self.token.len(),
            });
        };
        dst.copy_from_slice(self.token);
        Ok(Issued {
            token_len: self.token.len(),
            not_before: request.now - 300,
            expires_on: request.now + 86_100,
        })
    }
}

/// Buffers of one server connection, reused across requests.
pub struct ServeBuffers {
    input: Vec<u8>,
    work: Vec<u8>,
    out: Vec<u8>,
}

impl Default for ServeBuffers {
    fn default() -> Self {
        ServeBuffers {
            input: vec![0; 8192],
            work: vec![0; 16384],
            out: vec![0; 8192],
        }
    }
}

/// The request a client sends for user-assigned identity `i` (`Connection: keep-alive`).
pub fn serve_request(i: usize) -> Vec<u8> {
    let cid = client_id(i);
    let mut buf = vec![0; 1024];
    let n = TokenRequest::new(RESOURCE)
        .with_selector(Selector::ClientId(&cid))
        .with_connection(mitoken_core::request::Connection::KeepAlive)
        .write(&Endpoint::Imds, &mut buf)
        .expect("request");
    buf.truncate(n);
    buf
}

/// One whole request through `Server::handle`: the bytes are copied into the connection's
/// buffer (as a socket read would), parsed, validated, resolved among the table's identities,
/// issued from the cached token and written as IMDS's response. Returns the response length.
#[inline(never)]
pub fn run_server_handle(
    table: &Table,
    issuer: &mut CachedIssuer,
    bufs: &mut ServeBuffers,
    request: &[u8],
) -> usize {
    let Some(dst) = bufs.input.get_mut(..request.len()) else {
        return 0;
    };
    dst.copy_from_slice(request);
    let config = Config::new(Flavor::Imds);
    let mut server = Server::new(table, config, &mut bufs.work);
    let mut conn = ServerConnection::new(config.limits);
    match server.handle(
        &mut conn,
        &mut bufs.input[..request.len()],
        NOW,
        issuer,
        &mut bufs.out,
    ) {
        Ok(Handled::Response(r)) if r.status == 200 => r.len,
        _ => 0,
    }
}

// ---- token cache ---------------------------------------------------------------------------

/// The core's token cache as the scaling benchmark fills it (the fixture's 2.3 KB token).
pub type Cache = TokenCache<MAX_CACHED, 2400, 128>;

/// A cache holding `n` tokens, one per user-assigned identity `0..n` (client ID selector), for
/// [`RESOURCE`] at IMDS. Boxed (≈ 2.6 MB); build it on a thread with a large stack.
pub fn cache(n: usize, body: &[u8]) -> Box<Cache> {
    let mut c: Box<Cache> = Box::default();
    let token = Token::parse(body, &mut []).expect("fixture token");
    let ids: Vec<String> = (0..n).map(client_id).collect();
    for id in &ids {
        let key = CacheKey::new(Endpoint::Imds, Some(Selector::ClientId(id)), RESOURCE);
        c.insert(&key, &token, NOW * 1000).expect("insert");
    }
    c
}

/// `TokenCache::get` of the entry for identity `client_id`.
#[inline(never)]
pub fn run_cache_get(cache: &mut Cache, client_id: &str) -> usize {
    let key = CacheKey::new(
        Endpoint::Imds,
        Some(Selector::ClientId(client_id)),
        RESOURCE,
    );
    cache
        .get(&key, NOW * 1000 + 1000)
        .token()
        .map_or(0, |t| t.access_token.expose().len())
}
