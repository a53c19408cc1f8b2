//! mitoken-host: the tokio shell around mitoken-core for ordinary VMs.
//!
//! The binary `mitoken` is a thin front over these modules; tests and other programs can use
//! them as a library.
#![forbid(unsafe_code)]

pub mod bridge;
pub mod bridge_cmd;
pub mod cli;
pub mod client;
pub mod demo;
pub mod doctor;
pub mod emulate;
pub mod emulate_cmd;
pub mod emulate_tls;
pub mod env_cmd;
pub mod exit;
pub mod logging;
pub mod output;
pub mod process;
pub mod procnet;
pub mod serve_loop;
pub mod sf_client;
pub mod source_fetch;
pub mod tls;
pub mod token_client;
pub mod token_cmd;
pub mod token_source;
