//! `tracing` setup: human-readable logs on stderr, filtered by `--log`, `MITOKEN_LOG` or
//! `RUST_LOG` (else the command's default: `info` for `emulate`, `warn` otherwise). Nothing in
//! mitoken ever logs a token or a key.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls do nothing. `default` applies when neither
/// `filter` nor the environment says.
pub fn init(filter: Option<&str>, default: &str) {
    let filter = filter
        .map(str::to_owned)
        .or_else(|| std::env::var("MITOKEN_LOG").ok())
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| default.to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
