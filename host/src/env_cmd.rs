//! `mitoken env SOURCE --endpoint URL`: the `export` lines that point SDKs at a running
//! `mitoken emulate --source SOURCE` (the same variables as its `--env-file`).
//!
//! The secret of App Service, App Service 2017, Azure ML and Service Fabric is not served by the
//! emulator (an endpoint that handed it out would defeat the header that protects against
//! SSRF): give it with `--secret` or `MITOKEN_SECRET`, from the emulator's `--env-file`.

use mitoken_core::source::Source;

use crate::cli::EnvArgs;
use crate::emulate::sources::{env_pairs, has_secret, is_served};
use crate::emulate_tls::env::{exports, vars_for};
use crate::exit::Failure;

/// Prints the `export` lines for `args`.
pub fn run(args: &EnvArgs) -> Result<(), Failure> {
    let source = args.source;
    let secret = args
        .secret
        .clone()
        .or_else(|| std::env::var("MITOKEN_SECRET").ok())
        .filter(|s| !s.is_empty());
    if matches!(source, Source::ServiceFabric | Source::WorkloadIdentity) {
        let mut tls = args.tls.clone();
        tls.secret = secret;
        tls.client_id.clone_from(&args.client_id);
        let vars = vars_for(source, &args.endpoint, &tls).map_err(|e| {
            eprintln!("mitoken env: {e}");
            Failure::Usage
        })?;
        print!("{}", exports(&vars));
        return Ok(());
    }
    if !is_served(source) {
        eprintln!("mitoken env: source {source} is not served by this build's emulator");
        return Err(Failure::Usage);
    }
    let endpoint = args.endpoint.trim_end_matches('/');
    let Some(rest) = endpoint.strip_prefix("http://") else {
        eprintln!("mitoken env: --endpoint must be the emulator's http:// base URL");
        return Err(Failure::Usage);
    };
    if rest.is_empty() || rest.contains('/') {
        eprintln!(
            "mitoken env: --endpoint must be the emulator's base URL (http://HOST:PORT, no path)"
        );
        return Err(Failure::Usage);
    }
    if has_secret(source) && secret.is_none() {
        eprintln!(
            "mitoken env: {source} needs the emulator's secret: --secret or MITOKEN_SECRET \
             (the emulator writes it to its --env-file)"
        );
        return Err(Failure::Usage);
    }
    let pairs = env_pairs(
        source,
        endpoint,
        secret.as_deref(),
        args.client_id.as_deref(),
    );
    print!("{}", exports(&pairs));
    Ok(())
}
