//! The connection cap and who gives way at it.
//!
//! Every accepted connection holds a [`Slot`]. Below the cap a new connection just takes one.
//! At the cap, the oldest connection that is waiting for the bytes of its *first* request (it
//! has never completed one) is told to close and the new connection takes its place; only when
//! no connection is in that state is the new one refused. So a local process that opens
//! thousands of silent or half-sent connections only ever evicts its own, and a connection that
//! completed a request (keep-alive) or has one in progress is never the victim.
//!
//! A connection is evictable only while it waits in its read (see [`Slot::waiting`]); a
//! victim that is busy when told (its bytes arrived just then) finishes the request it has.
//! Evicted connections close at once, so the count exceeds the cap only for that moment;
//! [`HARD_CAP_FACTOR`] bounds it even if they did not.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// Connections open at once never exceed this multiple of the cap (evicted connections that
/// have not closed yet count until they do).
pub const HARD_CAP_FACTOR: usize = 2;

/// The connection slots of one listener.
#[derive(Debug)]
pub struct Slots {
    max: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Connections admitted and not yet closed.
    open: usize,
    /// The next connection's number (admission order).
    next: u64,
    /// Connections waiting for the bytes of their first request, by admission order: the
    /// candidates for eviction, oldest first.
    waiting: BTreeMap<u64, Arc<Notify>>,
    /// Connections told to close (for logs and tests).
    evicted: u64,
}

/// Why [`Slots::admit`] turned a connection away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Full {
    /// Every slot holds a connection that completed a request or has one in progress.
    #[error("every connection has a request in progress or completed")]
    NoVictim,
    /// Evicted connections have not closed yet and the hard cap is reached.
    #[error("evicted connections are still closing")]
    HardCap,
}

/// What [`Slots::admit`] did.
#[derive(Debug)]
pub struct Admitted {
    /// The new connection's slot.
    pub slot: Slot,
    /// An older connection was told to close to make room.
    pub evicted: bool,
}

impl Slots {
    /// Slots for `max` connections (at least one).
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a new connection: takes a free slot, else evicts the oldest connection still
    /// waiting for its first request, else refuses.
    ///
    /// # Errors
    /// [`Full`] when no connection can give way.
    pub fn admit(self: &Arc<Self>) -> Result<Admitted, Full> {
        let mut inner = self.lock();
        let mut evicted = false;
        if inner.open >= self.max {
            if inner.open >= self.max.saturating_mul(HARD_CAP_FACTOR) {
                return Err(Full::HardCap);
            }
            let Some((_, victim)) = inner.waiting.pop_first() else {
                return Err(Full::NoVictim);
            };
            victim.notify_one();
            inner.evicted += 1;
            evicted = true;
        }
        inner.open += 1;
        let id = inner.next;
        inner.next += 1;
        let evict = Arc::new(Notify::new());
        // A new connection waits for its first request.
        inner.waiting.insert(id, Arc::clone(&evict));
        Ok(Admitted {
            slot: Slot {
                slots: Arc::clone(self),
                id,
                evict,
                proven: false,
            },
            evicted,
        })
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections admitted and not yet closed.
    pub fn open(&self) -> usize {
        self.lock().open
    }

    /// Connections evicted so far.
    pub fn evicted(&self) -> u64 {
        self.lock().evicted
    }
}

/// One connection's hold on a slot; released when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    id: u64,
    evict: Arc<Notify>,
    /// It completed a request: never evicted again.
    proven: bool,
}

impl Slot {
    /// The connection waits for bytes: evictable until [`Slot::busy`] if it never completed a
    /// request. Keeps its place in the admission order.
    pub fn waiting(&self) {
        if !self.proven {
            self.slots
                .lock()
                .waiting
                .insert(self.id, Arc::clone(&self.evict));
        }
    }

    /// Bytes arrived: not evictable while they are handled.
    pub fn busy(&self) {
        if !self.proven {
            self.slots.lock().waiting.remove(&self.id);
        }
    }

    /// The connection completed a request: it keeps its slot until it closes.
    pub fn prove(&mut self) {
        self.busy();
        self.proven = true;
    }

    /// Resolves when the connection is told to give way (never once it is proven).
    pub async fn evicted(&self) {
        if self.proven {
            core::future::pending::<()>().await;
        }
        self.evict.notified().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.slots.lock();
        inner.waiting.remove(&self.id);
        inner.open = inner.open.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_oldest_waiting_connection_gives_way() {
        let slots = Slots::new(2);
        let mut proven = slots.admit().unwrap().slot;
        proven.prove();
        let waiting = slots.admit().unwrap().slot;
        // Full: the waiting one is evicted, the proven one is not.
        let third = slots.admit().unwrap();
        assert!(third.evicted);
        assert_eq!(slots.open(), 3);
        drop(waiting);
        assert_eq!(slots.open(), 2);
        // Now the only waiting connection is the third; it is busy with bytes: nobody gives way.
        third.slot.busy();
        assert_eq!(slots.admit().unwrap_err(), Full::NoVictim);
        // Back to waiting (a partial request): evictable again.
        third.slot.waiting();
        assert!(slots.admit().unwrap().evicted);
        assert_eq!(slots.evicted(), 2);
        drop(proven);
    }

    #[test]
    fn evicted_connections_that_do_not_close_hit_the_hard_cap() {
        let slots = Slots::new(1);
        let kept: Vec<Slot> = (0..HARD_CAP_FACTOR)
            .map(|_| slots.admit().unwrap().slot)
            .collect();
        assert_eq!(slots.admit().unwrap_err(), Full::HardCap);
        drop(kept);
        assert_eq!(slots.open(), 0);
        assert!(!slots.admit().unwrap().evicted);
    }

    #[tokio::test]
    async fn an_evicted_connection_is_told() {
        let slots = Slots::new(1);
        let first = slots.admit().unwrap().slot;
        let _second = slots.admit().unwrap();
        // Told before it waits: the notice is kept.
        tokio::time::timeout(core::time::Duration::from_secs(1), first.evicted())
            .await
            .unwrap();
    }
}
