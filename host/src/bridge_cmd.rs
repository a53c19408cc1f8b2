//! `mitoken bridge`: the command-line front of [`crate::bridge::Bridge`].
//!
//! Prints `listening on http://ADDR` and the upstream on stdout, serves until SIGINT or
//! SIGTERM, then shuts down gracefully (answers in progress get 5 s) and exits 0.

use crate::bridge::report::{default_status_socket, fetch_report, serving_status_socket};
use crate::bridge::{Bridge, BridgeOptions, StartError, startup_banner};
use crate::cli::{BridgeAction, BridgeArgs, BridgeStatusArgs};
use crate::client::unix_now;
use crate::exit::Failure;
use crate::process::{print_banner, wait_for_signal};
use crate::serve_loop::ConnectionLimits;

/// Runs `mitoken bridge` until a signal (or `mitoken bridge status`).
pub async fn run(args: BridgeArgs) -> Result<(), Failure> {
    if let Some(BridgeAction::Status(status)) = args.action {
        return print_status(status).await;
    }
    let options = BridgeOptions {
        status_socket: args.status_socket.or_else(serving_status_socket),
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

/// `mitoken bridge status`: the running bridge's migration report.
async fn print_status(args: BridgeStatusArgs) -> Result<(), Failure> {
    let path = args.socket.unwrap_or_else(default_status_socket);
    let report = fetch_report(&path).await.map_err(|e| {
        eprintln!("mitoken bridge status: {e}");
        Failure::Network
    })?;
    let text = if args.json {
        serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
    } else {
        report.text(unix_now())
    };
    print!("{text}");
    Ok(())
}
