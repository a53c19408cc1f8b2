//! A virtual-clock harness for the token engine: a simulated IMDS that answers each attempt
//! with real HTTP bytes (parsed by the core's client exchange), latency, and bookkeeping of
//! what the engine sent and what every caller got.

#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt::Write as _;

use mitoken_core::cache::CacheKey;
use mitoken_core::client::{Exchange, Progress};
use mitoken_core::engine::{
    Answer, Ask, Engine, EngineConfig, FlightId, Limiter, Limits, Reply, Ticket,
};
use mitoken_core::http::Limits as HttpLimits;
use mitoken_core::request::{Endpoint, Selector};

pub const S: u64 = 1_000;
pub const MIN: u64 = 60 * S;
pub const H: u64 = 60 * MIN;
/// Unix ms at the start of every simulation.
pub const T0: u64 = 1_800_000_000 * S;

/// Engine under test: 16 cache entries, 128 flights, 512 waiters.
pub type TestEngine = Engine<16, 2048, 256, 128, 512>;

/// How the simulated upstream answers one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// 200 with a token valid `expires_in` seconds (IMDS's shape: `expires_on`, `not_before`).
    Token { expires_in: u64 },
    /// An error status with an optional `Retry-After` (seconds) and an error JSON body.
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
    /// The connection is refused.
    Refused,
    /// Bytes that are not HTTP.
    Garbage,
}

/// One caller: which key, when it asked, its deadline, what it got.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key: usize,
    pub asked_at: u64,
    pub deadline: u64,
    pub bypass_cache: bool,
    pub answer: Option<(u64, Got)>,
}

/// What a caller got, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    Token(String),
    Failed {
        status: u16,
        error: String,
        text: String,
        retry_after: Option<u64>,
    },
    DeadlinePassed,
}

/// One upstream attempt the engine started.
#[derive(Debug, Clone)]
pub struct Sent {
    pub key: usize,
    pub at: u64,
    pub attempt: u32,
    pub bypass_cache: bool,
    pub request: String,
}

struct Pending {
    flight: FlightId,
    key: usize,
    bypass_cache: bool,
    reply_at: u64,
}

/// Keys: resource `https://r<i>.example` with identity `client_id=c<i % 3>` (none for i % 3 = 0).
pub struct Keys {
    resources: Vec<String>,
    clients: Vec<Option<String>>,
}

impl Keys {
    pub fn new(n: usize) -> Self {
        Self {
            resources: (0..n).map(|i| format!("https://r{i}.example")).collect(),
            clients: (0..n)
                .map(|i| (i % 3 != 0).then(|| format!("c{}", i % 3)))
                .collect(),
        }
    }

    pub fn key(&self, i: usize) -> CacheKey<'_> {
        CacheKey::new(
            Endpoint::Imds,
            self.clients[i].as_deref().map(Selector::ClientId),
            &self.resources[i],
        )
    }

    fn index_of(&self, key: &CacheKey<'_>) -> usize {
        self.resources
            .iter()
            .position(|r| r == key.resource)
            .expect("a key of this simulation")
    }
}

/// The simulation.
pub struct Sim {
    pub engine: Box<TestEngine>,
    pub now: u64,
    pub keys: Keys,
    /// The answer to an attempt: `(key, attempt number, time)` → answer.
    pub upstream: Box<dyn FnMut(usize, u32, u64) -> Upstream>,
    pub latency: u64,
    pub callers: Vec<Caller>,
    tickets: HashMap<Ticket, usize>,
    pending: Vec<Pending>,
    pub sent: Vec<Sent>,
    pub max_in_flight: usize,
    /// IMDS's own throttle, modelled with the same limits: counts what it would refuse.
    imds_throttle: Limiter,
    pub throttled_by_imds: usize,
    serial: u64,
}

impl Sim {
    pub fn new(keys: usize, config: EngineConfig) -> Self {
        Self {
            engine: Box::new(TestEngine::new(config, 42)),
            now: T0,
            keys: Keys::new(keys),
            upstream: Box::new(|_, _, _| Upstream::Token { expires_in: 86_400 }),
            latency: 20,
            callers: Vec::new(),
            tickets: HashMap::new(),
            pending: Vec::new(),
            sent: Vec::new(),
            max_in_flight: 0,
            imds_throttle: Limiter::new(Limits::IMDS_IDENTITY),
            throttled_by_imds: 0,
            serial: 0,
        }
    }

    pub fn with_upstream(mut self, f: impl FnMut(usize, u32, u64) -> Upstream + 'static) -> Self {
        self.upstream = Box::new(f);
        self
    }

    /// A caller asks for key `key` now, waiting at most `wait` ms. Returns its index.
    pub fn ask(&mut self, key: usize, wait: u64, bypass_cache: bool) -> usize {
        let index = self.callers.len();
        let deadline = self.now + wait;
        self.callers.push(Caller {
            key,
            asked_at: self.now,
            deadline,
            bypass_cache,
            answer: None,
        });
        let k = self.keys.key(key);
        match self.engine.request(&k, self.now, deadline, bypass_cache) {
            Ok(Ask::Ready(t)) => {
                let got = Got::Token(t.access_token.expose().to_owned());
                self.callers[index].answer = Some((self.now, got));
            }
            Ok(Ask::Wait(ticket)) => {
                assert!(
                    self.tickets.insert(ticket, index).is_none(),
                    "ticket reused"
                );
            }
            Err(e) => panic!("request refused: {e}"),
        }
        self.pump();
        index
    }

    /// Drains the engine's transmits and wakes, checking the invariants.
    pub fn pump(&mut self) {
        while let Some(t) = self.engine.poll_transmit(self.now) {
            let key = self.keys.index_of(&t.key);
            let request = t.request("2018-02-01");
            let mut buf = [0u8; 2048];
            let n = request
                .write(&t.key.endpoint, &mut buf)
                .expect("request bytes");
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            assert!(
                self.pending
                    .iter()
                    .all(|p| p.key != key || p.bypass_cache != t.bypass_cache),
                "two requests in flight for key {key}"
            );
            self.sent.push(Sent {
                key,
                at: self.now,
                attempt: t.attempt,
                bypass_cache: t.bypass_cache,
                request: text,
            });
            self.pending.push(Pending {
                flight: t.flight,
                key,
                bypass_cache: t.bypass_cache,
                reply_at: self.now + self.latency,
            });
            if self.imds_throttle.try_acquire(self.now).is_err() {
                self.throttled_by_imds += 1;
            }
        }
        self.max_in_flight = self.max_in_flight.max(self.engine.in_flight());
        if self.engine.config().limits.is_some() {
            assert!(self.engine.in_flight() <= 5, "more than 5 in flight");
        }
        assert_eq!(self.engine.in_flight(), self.pending.len());
        while let Some(w) = self.engine.poll_wake(self.now) {
            let index = self
                .tickets
                .remove(&w.ticket)
                .expect("a wake for a live ticket, once");
            let got = match w.answer {
                Answer::Token(t) => Got::Token(t.access_token.expose().to_owned()),
                Answer::DeadlinePassed => Got::DeadlinePassed,
                other => {
                    let a = other.error_answer().expect("an error answer");
                    Got::Failed {
                        status: a.status,
                        error: a.error.to_owned(),
                        text: a.description.to_string(),
                        retry_after: a.retry_after,
                    }
                }
            };
            let caller = &mut self.callers[index];
            assert!(caller.answer.is_none(), "answered twice");
            if got == Got::DeadlinePassed {
                assert_eq!(self.now, caller.deadline, "deadline answered on time");
            } else {
                assert!(self.now <= caller.deadline, "answered after its deadline");
            }
            caller.answer = Some((self.now, got));
        }
    }

    /// The response bytes for `answer` to attempt `attempt` of key `key`.
    fn response(&mut self, key: usize, answer: &Upstream) -> Option<Vec<u8>> {
        self.serial += 1;
        let (status, reason, retry_after, body) = match answer {
            Upstream::Token { expires_in } => {
                let now_s = self.now / S;
                (
                    200,
                    "OK",
                    None,
                    format!(
                        r#"{{"access_token":"tok-{key}-{}","client_id":"cid","expires_in":"{expires_in}","expires_on":"{}","ext_expires_in":"{expires_in}","not_before":"{now_s}","resource":"r","token_type":"Bearer"}}"#,
                        self.serial,
                        now_s + expires_in,
                    ),
                )
            }
            Upstream::Status {
                status,
                retry_after,
            } => (
                *status,
                "Status",
                *retry_after,
                format!(r#"{{"error":"e{status}","error_description":"simulated {status}"}}"#),
            ),
            Upstream::Refused => return None,
            Upstream::Garbage => return Some(b"\x16\x03\x01 not http\r\n\r\n".to_vec()),
        };
        let mut head = format!("HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n");
        if let Some(r) = retry_after {
            write!(head, "Retry-After: {r}\r\n").unwrap();
        }
        write!(head, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        Some(head.into_bytes())
    }

    /// Delivers the answers due at `now`.
    fn deliver_due(&mut self) {
        while let Some(i) = self.pending.iter().position(|p| p.reply_at <= self.now) {
            let p = self.pending.remove(i);
            self.imds_throttle.release();
            let attempt = self.sent.iter().filter(|s| s.key == p.key).count();
            let answer = (self.upstream)(p.key, u32::try_from(attempt).unwrap(), self.now);
            let bytes = self.response(p.key, &answer);
            let k = self.keys.key(p.key);
            let request = mitoken_core::request::TokenRequest::new(k.resource);
            let mut buf = [0u8; 4096];
            let reply = match &bytes {
                None => {
                    self.engine
                        .handle_reply(p.flight, self.now, Reply::ConnectFailed)
                        .unwrap();
                    self.pump();
                    continue;
                }
                Some(bytes) => {
                    let mut ex =
                        Exchange::new(&request, &Endpoint::Imds, &mut buf, HttpLimits::default())
                            .unwrap();
                    let n = ex.to_send().len();
                    ex.sent(n);
                    let rb = ex.receive_buf().unwrap();
                    rb[..bytes.len()].copy_from_slice(bytes);
                    match ex.received(bytes.len()) {
                        Ok(Progress::Complete) => match ex.finish(self.now / S) {
                            Ok(o) => Reply::from(o),
                            Err(e) => Reply::from(e),
                        },
                        Ok(Progress::NeedMore) => Reply::Io,
                        Err(e) => Reply::from(e),
                    }
                }
            };
            self.engine.handle_reply(p.flight, self.now, reply).unwrap();
            self.pump();
        }
    }

    /// Runs the simulation until `end` (ms): replies, timers, transmits, wakes.
    pub fn run_until(&mut self, end: u64) {
        loop {
            self.pump();
            let reply_at = self.pending.iter().map(|p| p.reply_at).min();
            let next = [self.engine.poll_at(), reply_at]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next else { break };
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            self.deliver_due();
            self.engine.handle_timeout(self.now);
            self.pump();
        }
        self.now = self.now.max(end);
        self.engine.handle_timeout(self.now);
        self.pump();
    }

    /// Requests sent for key `key`.
    pub fn sent_for(&self, key: usize) -> Vec<&Sent> {
        self.sent.iter().filter(|s| s.key == key).collect()
    }

    /// The answer caller `i` got.
    pub fn got(&self, i: usize) -> &Got {
        &self.callers[i].answer.as_ref().expect("an answer").1
    }
}
