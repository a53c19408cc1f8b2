//! mitoken-host: the tokio shell around mitoken-core for ordinary VMs.
//!
//! The binary `mitoken` is a thin front over these modules; tests and other programs can use
//! them as a library.
#![forbid(unsafe_code)]

pub mod cli;
pub mod client;
pub mod emulate;
pub mod exit;
pub mod logging;
pub mod output;
pub mod token_client;
pub mod token_cmd;
