//! `mitoken emulate`: the command-line front of [`crate::emulate::serve::Emulator`].
//!
//! Prints the start-up banner on stdout (first line `listening on http://ADDR`), serves until
//! SIGINT or SIGTERM, then shuts down gracefully and exits 0.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;

use crate::cli::EmulateArgs;
use crate::emulate::config::{EmulatorConfig, Flavor};
use crate::emulate::serve::{
    ConnectionLimits, Emulator, EmulatorOptions, StartError, default_listen,
};
use crate::emulate::signing::SigningKey;
use crate::emulate::startup_banner;
use crate::emulate::throttle::ThrottleLimits;
use crate::exit::Failure;

/// Runs `mitoken emulate` until a signal.
pub async fn run(args: EmulateArgs) -> Result<(), Failure> {
    if let Some(source) = args.source {
        return crate::emulate_tls::run(&args, source).await;
    }
    let flavor = Flavor::from(args.flavor);
    let config = match &args.config {
        Some(path) => EmulatorConfig::load(path, flavor).map_err(|e| {
            eprintln!("mitoken emulate: {e}");
            Failure::Usage
        })?,
        None => EmulatorConfig::builtin(),
    };
    let signing_key = match &args.signing_key {
        Some(path) => Some(Arc::new(SigningKey::load(path).map_err(|e| {
            eprintln!("mitoken emulate: --signing-key: {e}");
            Failure::Usage
        })?)),
        None => None,
    };
    let limits = ConnectionLimits {
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        idle_timeout: args.idle_timeout,
        request_timeout: args.request_timeout,
        ..ConnectionLimits::default()
    };
    let options = EmulatorOptions {
        listen: args.listen.unwrap_or_else(|| default_listen(flavor)),
        allow_non_loopback: args.allow_non_loopback,
        signing_key,
        faults: args.faults,
        throttle: args.throttle.then_some(ThrottleLimits::IMDS_IDENTITY),
        limits,
        ..EmulatorOptions::new(flavor, config.clone())
    };
    let running = Emulator::start(options).await.map_err(|e| {
        eprintln!("mitoken emulate: {e}");
        match e {
            StartError::NonLoopback(_) | StartError::Faults(_) => Failure::Usage,
            StartError::Bind { .. } => Failure::Network,
            _ => Failure::Internal,
        }
    })?;
    if let Some(path) = &args.export_signing_key {
        running.signing_key().export_pkcs8_pem(path).map_err(|e| {
            eprintln!("mitoken emulate: --export-signing-key: {e}");
            Failure::Internal
        })?;
    }
    let banner = startup_banner(running.local_addr(), flavor, &config, running.signing_key());
    let mut banner = banner;
    let rules = running.controls().fault_document().rules;
    if !rules.is_empty() {
        let _ = writeln!(banner, "{} fault rule(s) active", rules.len());
    }
    if args.throttle {
        banner.push_str("throttle: 20 requests/s, 5 concurrent\n");
    }
    print_banner(&banner)?;
    wait_for_signal().await;
    tracing::info!("signal received; shutting down");
    running.shutdown().await;
    println!("stopped");
    Ok(())
}

/// Prints a server's start-up banner on stdout (its first line is `listening on http://ADDR`,
/// which tests and scripts wait for) and flushes it.
pub(crate) fn print_banner(banner: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(banner.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|_| Failure::Internal)
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
