//! # mitoken-core
//!
//! `#![no_std]`, heap-free, sans-I/O logic for Azure managed-identity tokens: every protocol
//! and policy decision, with time passed in and caller-lent or fixed-capacity buffers. The
//! shells (the tokio host, the bare-metal firmware, tests on a virtual clock) only move bytes
//! and time.
//!
//! | module | what it decides |
//! |---|---|
//! | [`engine`] | getting a token: cache with refresh-ahead, single-flight, the upstream limiter, retries, the stale fallback, callers' deadlines, what a failed caller is answered |
//! | [`arc`] | Azure Arc's key-file challenge, the key-path rules and the user-assigned echo check |
//! | [`cache`] | the fixed-capacity token cache: expiry, when a refresh is due, LRU eviction |
//! | [`retry`] | IMDS's retry rules: which failures retry, after how long (410 window, `Retry-After`) |
//! | [`catalogue`] | the error catalogue: status → IMDS `error` code and text |
//! | [`client`] | one token exchange: request bytes out, response bytes in, an [`client::Outcome`] |
//! | [`request`] | token requests for IMDS, the legacy extension and other endpoints, as bytes |
//! | [`token`] | token JSON in and out (own scanner; secrets redacted in `Debug`) |
//! | [`http`] | HTTP/1.1 heads and bodies, parsed incrementally, written into `&mut [u8]` |
//! | [`query`] | percent-encoding and query strings |
//! | [`identity`] | a VM's identities, selectors and the default-identity rules |
//! | [`server`] | the IMDS / extension server: request bytes → a validated, resolved answer |
//! | [`service_fabric`] | Service Fabric's endpoint: request checks, its error codes, token and error bodies, the thumbprint rule |
//! | [`workload`] | workload identity's token exchange: the form, the assertion's claims, Entra's checks and `AADSTS` errors, both bodies |
//! | [`source`] | the managed-identity sources (IMDS, App Service, Arc, Cloud Shell, Service Fabric, Azure ML, workload identity) and each one's wire vocabulary |
//! | [`diagnose`] | what an answer from 169.254.169.254 says: IMDS or not, which IMDS error, clock skew (for `mitoken doctor`) |
//! | [`io`] | small drivers over `embedded-io` (blocking and async): one-call fetch and serve |
//! | [`write`](mod@write) | bounded writers into caller-lent buffers |
//! | [`secret`] | [`secret::Secret`]: text that never shows in `Debug` or `Display` |
//! | [`error`] | [`Error`], every layer's error rolled up |
//!
//! # Example: the token engine on a virtual clock
//!
//! The shell asks, sends what [`engine::Engine::poll_transmit`] says, reports the answer, and
//! hands out what [`engine::Engine::poll_wake`] returns; then it sleeps until
//! [`engine::Engine::poll_at`].
//!
//! ```
//! use mitoken_core::cache::CacheKey;
//! use mitoken_core::client::{Exchange, Progress};
//! use mitoken_core::engine::{Answer, Ask, Engine, EngineConfig, Reply};
//! use mitoken_core::http::Limits;
//! use mitoken_core::request::Endpoint;
//!
//! let mut engine: Engine<4, 2048, 256, 4, 8> = Engine::new(EngineConfig::DEFAULT, 1);
//! let key = CacheKey::new(Endpoint::Imds, None, "https://vault.azure.net");
//! let now = 1_800_000_000_000; // Unix ms
//! let Ok(Ask::Wait(ticket)) = engine.request(&key, now, now + 30_000, false) else { panic!() };
//!
//! // The engine asks for one upstream request; the shell writes and sends its bytes.
//! let t = engine.poll_transmit(now).unwrap();
//! let (flight, request, endpoint) = (t.flight, t.request("2018-02-01"), t.key.endpoint);
//! let mut buf = [0u8; 2048];
//! let mut exchange = Exchange::new(&request, &endpoint, &mut buf, Limits::default()).unwrap();
//! assert!(exchange.to_send().starts_with(b"GET /metadata/identity/oauth2/token?"));
//! let n = exchange.to_send().len();
//! exchange.sent(n);
//! // IMDS is being updated: 410. The engine schedules a retry 10-12 s later.
//! let answer = b"HTTP/1.1 410 Gone\r\nContent-Length: 0\r\n\r\n";
//! exchange.receive_buf().unwrap()[..answer.len()].copy_from_slice(answer);
//! assert_eq!(exchange.received(answer.len()).unwrap(), Progress::Complete);
//! let outcome = exchange.finish(now / 1000).unwrap();
//! engine.handle_reply(flight, now + 5, Reply::from(outcome)).unwrap();
//! assert!(engine.poll_wake(now + 5).is_none());
//! let retry_at = engine.poll_at().unwrap();
//! assert!((now + 10_005..=now + 12_005).contains(&retry_at));
//! assert!(engine.poll_transmit(retry_at - 1).is_none());
//! let flight = engine.poll_transmit(retry_at).unwrap().flight;
//! # let body = br#"{"access_token":"x","expires_in":"3600","resource":"r","token_type":"Bearer"}"#;
//! # let token = mitoken_core::token::Token::parse(body, &mut []).unwrap();
//! engine.handle_reply(flight, retry_at + 5, Reply::Token(token)).unwrap();
//! let wake = engine.poll_wake(retry_at + 5).unwrap();
//! assert_eq!(wake.ticket, ticket);
//! assert!(matches!(wake.answer, Answer::Token(_)));
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]

#[cfg(feature = "std")]
extern crate std;

pub mod arc;
pub mod cache;
pub mod catalogue;
pub mod client;
pub mod diagnose;
pub mod engine;
pub mod error;
pub mod http;
pub mod identity;
pub mod io;
pub mod query;
pub mod request;
pub mod retry;
pub mod secret;
pub mod server;
pub mod service_fabric;
pub mod source;
pub mod token;
#[cfg(feature = "sources")]
pub mod workload;
pub mod write;

pub use error::Error;
