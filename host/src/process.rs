//! What a serving process does around its server: print its start-up banner, wait for the
//! signal that stops it. Shared by `mitoken emulate` (every source) and `mitoken bridge`.

use std::io::Write as _;

use crate::exit::Failure;

/// Prints a server's start-up banner on stdout (its first line is `listening on http://ADDR`,
/// which tests and scripts wait for) and flushes it.
pub fn print_banner(banner: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(banner.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|_| Failure::Internal)
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn wait_for_signal() {
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
