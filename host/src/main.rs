//! The `mitoken` binary: see `mitoken --help`.

use std::process::ExitCode;

use clap::Parser;
use mitoken_host::cli::{Cli, Command};
use mitoken_host::exit::Failure;

fn main() -> ExitCode {
    let cli = Cli::parse();
    mitoken_host::logging::init(cli.log.as_deref());
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mitoken: cannot start the async runtime: {e}");
            return ExitCode::from(Failure::Internal.code());
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Token(args) => mitoken_host::token_cmd::run(args).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => ExitCode::from(failure.code()),
    }
}
