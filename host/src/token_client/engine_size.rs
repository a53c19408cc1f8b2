//! How large a client's engine is, and the one interface both sizes are driven through.
//!
//! The core's [`Engine`] has its capacities in its type and holds its cache inline (no heap):
//! the service size below is about 1.2 MB, which a process must write and fault in before its
//! first request (a millisecond or more on a VM) and keeps resident. A process that asks for
//! one token and exits (`mitoken token`, `mitoken demo`) takes the one-shot size (about 41 KB)
//! instead. The client drives either through [`TokenEngine`], so nothing else in the shell
//! depends on the size.

use mitoken_core::cache::{CacheKey, CachedToken, Lookup};
use mitoken_core::engine::{
    Ask, Engine, EngineConfig, EngineError, FlightId, Reply, Ticket, Transmit, Wake,
};

/// Largest token kept (access token + type + client id), at either size. A larger one is
/// handed to the callers waiting for it as received, and not cached.
pub const CACHE_TOKEN_BYTES: usize = 8192;
/// Largest cache key (endpoint, selector, resource), at either size.
pub const CACHE_KEY_BYTES: usize = 512;

/// Distinct (identity, resource) tokens kept by a service-size client; least recently used
/// evicted first. Twice what the VM extension's 32 user-assigned identities and the
/// system-assigned one need for two resources each; each entry holds [`CACHE_TOKEN_BYTES`] +
/// [`CACHE_KEY_BYTES`] resident (256 entries made the bridge's RSS 8.1 MB, 128 make it 6.7).
pub const CACHE_ENTRIES: usize = 128;
/// Distinct (identity, resource) tokens a service-size client fetches at once.
pub const MAX_FLIGHTS: usize = 64;
/// Callers a service-size client keeps waiting at once.
pub const MAX_WAITERS: usize = 1024;

/// Tokens kept by a one-shot client.
pub const ONE_SHOT_ENTRIES: usize = 4;
/// Tokens a one-shot client fetches at once.
pub const ONE_SHOT_FLIGHTS: usize = 4;
/// Callers a one-shot client keeps waiting at once.
pub const ONE_SHOT_WAITERS: usize = 16;

/// How many tokens, fetches and waiting callers a client's engine holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineSize {
    /// A long-running client (the bridge, a library user): [`CACHE_ENTRIES`] tokens,
    /// [`MAX_FLIGHTS`] fetches, [`MAX_WAITERS`] callers.
    #[default]
    Service,
    /// A process that asks for a token or two and exits: [`ONE_SHOT_ENTRIES`] tokens,
    /// [`ONE_SHOT_FLIGHTS`] fetches, [`ONE_SHOT_WAITERS`] callers. Beyond that, callers get
    /// [`EngineError`]'s "too many" answers, as at the service size beyond its own.
    OneShot,
}

type ServiceEngine =
    Engine<CACHE_ENTRIES, CACHE_TOKEN_BYTES, CACHE_KEY_BYTES, MAX_FLIGHTS, MAX_WAITERS>;
type OneShotEngine = Engine<
    ONE_SHOT_ENTRIES,
    CACHE_TOKEN_BYTES,
    CACHE_KEY_BYTES,
    ONE_SHOT_FLIGHTS,
    ONE_SHOT_WAITERS,
>;

/// The engine calls the client makes, whatever the engine's capacities. Each method is the
/// core [`Engine`]'s method of the same name.
pub trait TokenEngine: Send {
    /// [`Engine::cached`].
    fn cached(&mut self, key: &CacheKey<'_>, now: u64) -> Option<CachedToken<'_>>;
    /// [`Engine::lookup`].
    fn lookup(&mut self, key: &CacheKey<'_>, now: u64) -> Lookup<'_>;
    /// [`Engine::request`].
    fn request(
        &mut self,
        key: &CacheKey<'_>,
        now: u64,
        deadline: u64,
        bypass_cache: bool,
    ) -> Result<Ask<'_>, EngineError>;
    /// [`Engine::cancel`].
    fn cancel(&mut self, ticket: Ticket) -> bool;
    /// [`Engine::poll_transmit`].
    fn poll_transmit(&mut self, now: u64) -> Option<Transmit<'_>>;
    /// [`Engine::handle_reply`].
    fn handle_reply(
        &mut self,
        flight: FlightId,
        now: u64,
        reply: Reply<'_>,
    ) -> Result<(), EngineError>;
    /// [`Engine::handle_timeout`].
    fn handle_timeout(&mut self, now: u64);
    /// [`Engine::poll_wake`].
    fn poll_wake(&mut self, now: u64) -> Option<Wake<'_>>;
    /// [`Engine::poll_at`].
    fn poll_at(&self) -> Option<u64>;
}

impl<const N: usize, const T: usize, const K: usize, const F: usize, const W: usize> TokenEngine
    for Engine<N, T, K, F, W>
{
    fn cached(&mut self, key: &CacheKey<'_>, now: u64) -> Option<CachedToken<'_>> {
        Engine::cached(self, key, now)
    }
    fn lookup(&mut self, key: &CacheKey<'_>, now: u64) -> Lookup<'_> {
        Engine::lookup(self, key, now)
    }
    fn request(
        &mut self,
        key: &CacheKey<'_>,
        now: u64,
        deadline: u64,
        bypass_cache: bool,
    ) -> Result<Ask<'_>, EngineError> {
        Engine::request(self, key, now, deadline, bypass_cache)
    }
    fn cancel(&mut self, ticket: Ticket) -> bool {
        Engine::cancel(self, ticket)
    }
    fn poll_transmit(&mut self, now: u64) -> Option<Transmit<'_>> {
        Engine::poll_transmit(self, now)
    }
    fn handle_reply(
        &mut self,
        flight: FlightId,
        now: u64,
        reply: Reply<'_>,
    ) -> Result<(), EngineError> {
        Engine::handle_reply(self, flight, now, reply)
    }
    fn handle_timeout(&mut self, now: u64) {
        Engine::handle_timeout(self, now);
    }
    fn poll_wake(&mut self, now: u64) -> Option<Wake<'_>> {
        Engine::poll_wake(self, now)
    }
    fn poll_at(&self) -> Option<u64> {
        Engine::poll_at(self)
    }
}

/// A new engine of `size`.
///
/// The service size is built on a helper thread with a large stack: the core builds an engine
/// by value, so the function that builds it has a 1.2 MB stack frame (an unoptimised build
/// holds the engine there before moving it to the heap; an optimised one still reserves the
/// frame and probes every page of it). The one-shot size fits any stack. Each size is built in
/// its own function that is never inlined, so a caller's frame holds neither.
pub fn new_engine(size: EngineSize, config: EngineConfig, seed: u32) -> Box<dyn TokenEngine> {
    match size {
        EngineSize::OneShot => one_shot_engine(config, seed),
        EngineSize::Service => std::thread::Builder::new()
            .name("mitoken-engine-init".into())
            .stack_size(32 << 20)
            .spawn(move || service_engine(config, seed))
            .ok()
            .and_then(|h| h.join().ok())
            .unwrap_or_else(|| service_engine(config, seed)),
    }
}

#[inline(never)]
fn one_shot_engine(config: EngineConfig, seed: u32) -> Box<dyn TokenEngine> {
    Box::new(OneShotEngine::new(config, seed))
}

#[inline(never)]
fn service_engine(config: EngineConfig, seed: u32) -> Box<dyn TokenEngine> {
    Box::new(ServiceEngine::new(config, seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_shot_engine_is_a_small_fraction_of_the_service_one() {
        let one_shot = size_of::<OneShotEngine>();
        let service = size_of::<ServiceEngine>();
        assert!(one_shot * 20 < service, "{one_shot} B vs {service} B");
        assert!(one_shot < 64 * 1024, "{one_shot} B");
    }
}
