//! The waiter table: callers waiting for an upstream request, each with its deadline.

/// Names one waiting caller; [`Engine::poll_wake`](super::Engine::poll_wake) hands it back
/// with the caller's answer. A stale ticket is never confused with a newer caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket {
    pub(super) slot: u16,
    pub(super) serial: u32,
}

/// One waiting caller.
#[derive(Debug, Clone, Copy)]
pub(super) struct Waiter {
    pub(super) serial: u32,
    /// The flight slot it waits on; `None` once its deadline passed (answer pending).
    pub(super) flight: Option<u16>,
    /// When the caller stops waiting (ms).
    pub(super) deadline: u64,
}
