//! The `mitoken` binary: see `mitoken --help`.

use std::process::ExitCode;

use clap::Parser;
use mitoken_host::cli::{Cli, Command};
use mitoken_host::exit::Failure;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The emulator logs one line per request by default; the other commands only warnings.
    let default_log = match cli.command {
        Command::Emulate(_) | Command::Bridge(_) => "info",
        Command::Token(_) | Command::Demo(_) | Command::Doctor(_) | Command::Env(_) => "warn",
    };
    mitoken_host::logging::init(cli.log.as_deref(), default_log);
    // Servers given one CPU (`taskset`, a container's CPU limit) get a current-thread runtime:
    // with one worker thread the multi-thread scheduler only adds cross-thread wake-ups and
    // atomics to every request.
    if let Command::Env(args) = &cli.command {
        return match mitoken_host::env_cmd::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(failure) => ExitCode::from(failure.code()),
        };
    }
    // Asked only by the servers, once: it reads cgroup files, which `mitoken token` need not
    // pay for.
    let cores = match cli.command {
        Command::Emulate(_) | Command::Bridge(_) => {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        }
        _ => 1,
    };
    let mut builder = match cli.command {
        Command::Token(_) | Command::Doctor(_) | Command::Env(_) => {
            tokio::runtime::Builder::new_current_thread()
        }
        Command::Emulate(_) | Command::Bridge(_) if cores == 1 => {
            let mut b = tokio::runtime::Builder::new_current_thread();
            b.max_blocking_threads(mitoken_host::bridge::MAX_BLOCKING_THREADS);
            b
        }
        Command::Emulate(_) | Command::Demo(_) => tokio::runtime::Builder::new_multi_thread(),
        Command::Bridge(_) => {
            // A small, bounded thread count whatever the VM's size: the systemd unit caps
            // tasks (TasksMax=64), and the cached path needs no more than a few cores.
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(cores.min(mitoken_host::bridge::MAX_WORKER_THREADS))
                .max_blocking_threads(mitoken_host::bridge::MAX_BLOCKING_THREADS);
            b
        }
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mitoken: cannot start the async runtime: {e}");
            return ExitCode::from(Failure::Internal.code());
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Token(args) => mitoken_host::token_cmd::run(args).await,
            Command::Emulate(args) => mitoken_host::emulate_cmd::run(args).await,
            Command::Demo(args) => mitoken_host::demo::run(args).await,
            Command::Bridge(args) => mitoken_host::bridge_cmd::run(args).await,
            Command::Env(args) => mitoken_host::env_cmd::run(&args),
            // Its own exit codes: 0 all good, 1 warnings, 2 failures.
            Command::Doctor(args) => return Ok(mitoken_host::doctor::run(args).await),
        }
        .map(|()| 0)
    });
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(failure) => ExitCode::from(failure.code()),
    }
}
