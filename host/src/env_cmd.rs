//! `mitoken env SOURCE --endpoint URL`: prints, as `export` lines for a shell, the environment
//! that points the Azure SDKs at a running emulator of SOURCE.

use clap::Args;
use mitoken_core::source::Source;

use crate::emulate_tls::env::{TlsEnvArgs, exports, vars_for};
use crate::exit::Failure;

/// Arguments of `mitoken env`.
#[derive(Debug, Args)]
pub struct EnvArgs {
    /// The source the emulator imitates.
    #[arg(value_name = "SOURCE", value_parser = crate::cli::parse_source)]
    pub source: Source,
    /// The emulator's base URL (`https://127.0.0.1:PORT`) or token URL.
    #[arg(long, value_name = "URL")]
    pub endpoint: String,
    /// Options of the HTTPS sources.
    #[command(flatten)]
    pub tls: TlsEnvArgs,
}

/// Runs `mitoken env`.
pub fn run(args: &EnvArgs) -> Result<(), Failure> {
    match args.source {
        Source::ServiceFabric | Source::WorkloadIdentity => {
            let vars = vars_for(args.source, &args.endpoint, &args.tls).map_err(|e| {
                eprintln!("mitoken env: {e}");
                Failure::Usage
            })?;
            print!("{}", exports(&vars));
            Ok(())
        }
        other => {
            eprintln!(
                "mitoken env: {other}: not available in this build (service-fabric and workload-identity are)"
            );
            Err(Failure::Usage)
        }
    }
}
