//! `mitoken bridge`: the command-line front of [`crate::bridge::Bridge`].
//!
//! Prints `listening on http://ADDR` and the upstream on stdout, serves until SIGINT or
//! SIGTERM, then shuts down gracefully (answers in progress get 5 s) and exits 0.

use crate::bridge::{Bridge, BridgeOptions, StartError, startup_banner};
use crate::cli::BridgeArgs;
use crate::emulate_cmd::{print_banner, wait_for_signal};
use crate::exit::Failure;
use crate::serve_loop::ConnectionLimits;

/// Runs `mitoken bridge` until a signal.
pub async fn run(args: BridgeArgs) -> Result<(), Failure> {
    let options = BridgeOptions {
        listen: args.listen,
        allow_non_loopback: args.allow_non_loopback,
        limits: ConnectionLimits {
            max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
            idle_timeout: args.idle_timeout,
            request_timeout: args.request_timeout,
            ..ConnectionLimits::default()
        },
        ..BridgeOptions::new(args.upstream)
    };
    let client_config = options.client.clone();
    let running = Bridge::start(options).await.map_err(|e| {
        eprintln!("mitoken bridge: {e}");
        match e {
            StartError::Bind { .. } => Failure::Network,
            _ => Failure::Usage,
        }
    })?;
    let banner = startup_banner(running.local_addr(), &client_config);
    print_banner(&banner)?;
    wait_for_signal().await;
    tracing::info!("signal received; shutting down");
    running.shutdown().await;
    println!("stopped");
    Ok(())
}
