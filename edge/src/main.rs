//! `edge`: parse the configuration, set up logging, run.

use std::process::ExitCode;

use edge::{Config, ConfigOutcome, EXIT_CONFIG};
use service_common::telemetry;

/// mimalloc: many small, short-lived allocations per request, and the
/// static musl binary the images ship would otherwise use musl's much slower
/// allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let config = match Config::try_from_args(std::env::args_os()) {
        Ok(c) => c,
        Err(ConfigOutcome::Info(info)) => {
            let _ = info.print();
            return ExitCode::SUCCESS;
        }
        Err(ConfigOutcome::Invalid(errors)) => {
            eprintln!("edge: {errors}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if config.check_only {
        eprintln!("edge: configuration is valid");
        return ExitCode::SUCCESS;
    }
    let _logs = telemetry::init("edge", config.log_format, &config.rust_log);
    match edge::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "edge failed to start");
            ExitCode::FAILURE
        }
    }
}
