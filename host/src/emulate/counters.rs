//! Request counters, readable as JSON from the admin path so tests can assert how many requests a
//! client really sent, with which outcome, for which identity.
//!
//! ```json
//! {"total":7,"closed":1,"by_status":{"200":4,"429":1,"500":1},
//!  "by_origin":{"emulator":4,"fault":2,"throttle":1},
//!  "by_identity":{"20000000-0000-4000-8000-000000000002":{"total":5,"closed":0,"by_status":{"200":4,"500":1}}},
//!  "in_flight":0,"max_in_flight":2}
//! ```
//!
//! `in_flight` is how many requests to the identity endpoints are being answered right now
//! (from the complete request to the answer written, delays included) and `max_in_flight` the
//! most there were at once since start (or since the counters were last zeroed): what a client
//! that promises "at most N concurrent requests" is checked against.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use super::config::Guid;

/// Who decided a request's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The emulator itself (a token, or a genuine IMDS error such as `Identity not found`).
    Emulator,
    /// A fault rule.
    Fault,
    /// The throttle (`--throttle`).
    Throttle,
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An answer with this status was written.
    Answered(u16),
    /// The connection was closed without an answer (a `close` fault).
    Closed,
}

/// Counts for one identity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityCounts {
    /// All requests resolved to the identity.
    pub total: u64,
    /// Those closed without an answer.
    pub closed: u64,
    /// Those answered, by status.
    pub by_status: BTreeMap<u16, u64>,
}

/// Requests by who decided the answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginCounts {
    /// Decided by the emulator.
    pub emulator: u64,
    /// Decided by a fault rule.
    pub fault: u64,
    /// Refused by the throttle.
    pub throttle: u64,
}

/// A copy of all counters, the admin document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountersSnapshot {
    /// All recorded requests.
    pub total: u64,
    /// Those closed without an answer.
    pub closed: u64,
    /// Those answered, by status.
    pub by_status: BTreeMap<u16, u64>,
    /// All requests by who decided the answer.
    pub by_origin: OriginCounts,
    /// Requests that resolved to an identity, by its client ID.
    #[serde(with = "super::config::guid_serde::map")]
    pub by_identity: BTreeMap<Guid, IdentityCounts>,
    /// Requests being answered now.
    #[serde(default)]
    pub in_flight: u64,
    /// The most requests answered at once.
    #[serde(default)]
    pub max_in_flight: u64,
}

impl CountersSnapshot {
    /// Requests answered with `status`.
    pub fn status(&self, status: u16) -> u64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }

    /// The counts for the identity with this client ID (zero if it had no requests).
    pub fn identity(&self, client_id: &Guid) -> IdentityCounts {
        self.by_identity.get(client_id).cloned().unwrap_or_default()
    }
}

/// Thread-safe counters; share by reference or `Arc`.
#[derive(Debug, Default)]
pub struct Counters {
    inner: Mutex<CountersSnapshot>,
}

impl Counters {
    /// Zeroed counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one request: the identity it resolved to (if any), how it ended, and who decided.
    pub fn record(&self, identity: Option<Guid>, outcome: Outcome, origin: Origin) {
        let mut c = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        c.total += 1;
        match outcome {
            Outcome::Answered(status) => *c.by_status.entry(status).or_default() += 1,
            Outcome::Closed => c.closed += 1,
        }
        match origin {
            Origin::Emulator => c.by_origin.emulator += 1,
            Origin::Fault => c.by_origin.fault += 1,
            Origin::Throttle => c.by_origin.throttle += 1,
        }
        if let Some(id) = identity {
            let entry = c.by_identity.entry(id).or_default();
            entry.total += 1;
            match outcome {
                Outcome::Answered(status) => *entry.by_status.entry(status).or_default() += 1,
                Outcome::Closed => entry.closed += 1,
            }
        }
    }

    /// Marks a request as being answered until the returned guard is dropped (after its answer
    /// is written), for `in_flight` and `max_in_flight`.
    pub fn begin(&self) -> InFlight<'_> {
        let mut c = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        c.in_flight += 1;
        c.max_in_flight = c.max_in_flight.max(c.in_flight);
        InFlight { counters: self }
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> CountersSnapshot {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Returns the counters and zeroes them, atomically (requests still being answered stay
    /// `in_flight`, and `max_in_flight` restarts from them).
    pub fn take(&self) -> CountersSnapshot {
        let mut c = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let in_flight = c.in_flight;
        let taken = core::mem::take(&mut *c);
        c.in_flight = in_flight;
        c.max_in_flight = in_flight;
        taken
    }

    /// The counters as a JSON document.
    pub fn to_json(&self) -> String {
        // Maps with integer and GUID keys serialize as JSON object keys; this cannot fail.
        serde_json::to_string(&self.snapshot()).unwrap_or_default()
    }
}

/// A request being answered; see [`Counters::begin`].
#[derive(Debug)]
#[must_use = "the request counts as in flight until this is dropped"]
pub struct InFlight<'c> {
    counters: &'c Counters,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut c = self
            .counters
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        c.in_flight = c.in_flight.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_status_origin_and_identity() {
        let c = Counters::new();
        let a: Guid = "20000000-0000-4000-8000-000000000002".parse().unwrap();
        let b: Guid = "20000000-0000-4000-8000-000000000003".parse().unwrap();
        for _ in 0..4 {
            c.record(Some(a), Outcome::Answered(200), Origin::Emulator);
        }
        c.record(Some(a), Outcome::Answered(500), Origin::Fault);
        c.record(Some(b), Outcome::Closed, Origin::Fault);
        c.record(None, Outcome::Answered(400), Origin::Emulator);
        c.record(None, Outcome::Answered(429), Origin::Throttle);

        let s = c.snapshot();
        assert_eq!((s.total, s.closed), (8, 1));
        assert_eq!((s.status(200), s.status(500), s.status(404)), (4, 1, 0));
        assert_eq!(
            s.by_origin,
            OriginCounts {
                emulator: 5,
                fault: 2,
                throttle: 1
            }
        );
        assert_eq!(s.identity(&a).total, 5);
        assert_eq!(s.identity(&a).by_status.get(&500), Some(&1));
        assert_eq!(s.identity(&b).closed, 1);
        let unknown: Guid = "20000000-0000-4000-8000-000000000009".parse().unwrap();
        assert_eq!(s.identity(&unknown), IdentityCounts::default());
    }

    #[test]
    fn json_shape_round_trip_and_take() {
        let c = Counters::new();
        let a: Guid = "20000000-0000-4000-8000-000000000002".parse().unwrap();
        c.record(Some(a), Outcome::Answered(200), Origin::Emulator);
        c.record(None, Outcome::Answered(429), Origin::Throttle);
        let json: serde_json::Value = serde_json::from_str(&c.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "total": 2, "closed": 0,
                "by_status": {"200": 1, "429": 1},
                "by_origin": {"emulator": 1, "fault": 0, "throttle": 1},
                "by_identity": {"20000000-0000-4000-8000-000000000002": {"total": 1, "closed": 0, "by_status": {"200": 1}}},
                "in_flight": 0, "max_in_flight": 0
            })
        );
        let parsed: CountersSnapshot = serde_json::from_str(&c.to_json()).unwrap();
        assert_eq!(parsed, c.snapshot());
        assert_eq!(c.take(), parsed);
        assert_eq!(c.snapshot(), CountersSnapshot::default());
    }

    #[test]
    fn in_flight_and_its_maximum() {
        let counters = Counters::new();
        let first = counters.begin();
        let second = counters.begin();
        drop(first);
        let third = counters.begin();
        let snap = counters.snapshot();
        assert_eq!((snap.in_flight, snap.max_in_flight), (2, 2));
        drop((second, third));
        let snap = counters.snapshot();
        assert_eq!((snap.in_flight, snap.max_in_flight), (0, 2));
        let held = counters.begin();
        assert_eq!(counters.take().max_in_flight, 2);
        let snap = counters.snapshot();
        assert_eq!((snap.in_flight, snap.max_in_flight), (1, 1));
        drop(held);
        assert_eq!(counters.snapshot().in_flight, 0);
    }
}
