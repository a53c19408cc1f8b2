//! # mitoken-core
//!
//! `#![no_std]`, heap-free, sans-I/O logic for Azure managed-identity tokens: it builds IMDS and
//! legacy-extension token requests, parses HTTP/1.1 responses and token JSON incrementally in
//! caller-lent buffers, and (server side) validates requests, resolves identities and writes
//! answers in IMDS's wire format. Drivers over `embedded-io` and `embedded-io-async` turn the
//! sans-I/O exchange into a one-call `fetch_token`.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]

#[cfg(feature = "std")]
extern crate std;

pub mod cache;
pub mod client;
pub mod diagnose;
pub mod error;
pub mod http;
pub mod identity;
pub mod io;
pub mod query;
pub mod request;
pub mod retry;
pub mod server;
pub mod token;
pub mod write;

pub use error::Error;
