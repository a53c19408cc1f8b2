//! Building blocks of `mitoken emulate`, an IMDS-compatible emulator for development and tests.
//!
//! Each module is self-contained and I/O-free apart from reading/writing files it is asked to:
//! time (`now`, `Instant`) and randomness come in as arguments so tests run on a virtual clock.
//!
//! - [`config`]: the TOML identity configuration (`--config`, `--flavor`).

pub mod admin;
pub mod cache;
pub mod config;
pub mod counters;
pub mod faults;
pub mod jwks;
pub mod jwt;
pub mod signing;
pub mod throttle;
