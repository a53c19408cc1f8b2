//! `mitoken emulate`: the command-line front of [`crate::emulate::serve::Emulator`].
//!
//! Prints the start-up banner on stdout (first line `listening on http://ADDR`), serves until
//! SIGINT or SIGTERM, then shuts down gracefully and exits 0.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::cli::EmulateArgs;
use crate::emulate::config::{EmulatorConfig, Flavor};
use crate::emulate::serve::{
    ConnectionLimits, Emulator, EmulatorOptions, RunningEmulator, StartError, default_listen,
};
use crate::emulate::signing::SigningKey;
use crate::emulate::sources::{self, SecretValue};
use crate::emulate::startup_banner;
use crate::emulate::throttle::ThrottleLimits;
use crate::exit::Failure;
use crate::process::{print_banner, wait_for_signal};
use mitoken_core::source::Source;

/// Runs `mitoken emulate` until a signal.
pub async fn run(args: EmulateArgs) -> Result<(), Failure> {
    if args.source != Source::Imds && args.flavor != crate::cli::FlavorArg::Imds {
        eprintln!("mitoken emulate: --flavor applies to --source imds only");
        return Err(Failure::Usage);
    }
    if matches!(
        args.source,
        Source::ServiceFabric | Source::WorkloadIdentity
    ) {
        return crate::emulate_tls::run(&args, args.source).await;
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
    let source = args.source;
    if !sources::is_served(source) {
        eprintln!("mitoken emulate: --source {source} is not served by this build's emulator");
        return Err(Failure::Usage);
    }
    let listen = args.listen.unwrap_or_else(|| {
        sources::default_listen(source).unwrap_or_else(|| default_listen(flavor))
    });
    let options = EmulatorOptions {
        listen,
        source,
        arc_tokens_dir: args.arc_tokens_dir.clone(),
        arc_key_lifetime: args.arc_key_lifetime,
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
            StartError::NonLoopback(_)
            | StartError::Faults(_)
            | StartError::UnsupportedSource(_)
            | StartError::ArcKeys(_) => Failure::Usage,
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
    let mut banner = startup_banner(running.local_addr(), flavor, &config, running.signing_key());
    if source != Source::Imds {
        banner = source_banner(&banner, &running);
    }
    let rules = running.controls().fault_document().rules;
    if !rules.is_empty() {
        let _ = writeln!(banner, "{} fault rule(s) active", rules.len());
    }
    if args.throttle {
        banner.push_str("throttle: 20 requests/s, 5 concurrent\n");
    }
    if let Some(path) = &args.env_file {
        write_env(path, &running, &config, &mut banner)?;
    }
    print_banner(&banner)?;
    wait_for_signal().await;
    tracing::info!("signal received; shutting down");
    running.shutdown().await;
    println!("stopped");
    Ok(())
}

/// The banner with its second line naming the source's endpoint instead of IMDS's, and the
/// Arc key directory.
fn source_banner(banner: &str, running: &RunningEmulator) -> String {
    let imds_line = banner.lines().nth(1).unwrap_or_default();
    let source_line = format!(
        "mitoken emulate: {} source, token endpoint {}",
        running.source(),
        running.token_url()
    );
    let mut banner = banner.replacen(imds_line, &source_line, 1);
    if let Some(dir) = running.arc_key_dir() {
        let _ = writeln!(banner, "Arc key files in {}", dir.display());
    }
    banner
}

/// Writes the `--env-file` (the secret included, mode 0600) and says so in the banner.
fn write_env(
    path: &std::path::Path,
    running: &RunningEmulator,
    config: &EmulatorConfig,
    banner: &mut String,
) -> Result<(), Failure> {
    let source = running.source();
    let default_client = (source == Source::AzureMl)
        .then(|| config.identities().next().map(|i| i.client_id.to_string()))
        .flatten();
    let pairs = sources::env_pairs(
        source,
        &running.base_url(),
        running.secret().map(SecretValue::expose),
        default_client.as_deref(),
    );
    sources::write_env_file(path, &pairs).map_err(|e| {
        eprintln!("mitoken emulate: --env-file {}: {e}", path.display());
        Failure::Internal
    })?;
    let _ = writeln!(banner, "environment written to {}", path.display());
    Ok(())
}
