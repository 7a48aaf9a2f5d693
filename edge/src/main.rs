//! `edge`: parse the configuration, set up logging, run.

use std::process::ExitCode;

use edge::{Config, ConfigOutcome, EXIT_CONFIG};
use service_common::telemetry;

fn main() -> ExitCode {
    let config = match Config::try_from_args(std::env::args_os()) {
        Ok(c) => c,
        Err(ConfigOutcome::Info(info)) => {
            let _ = info.print();
            return ExitCode::SUCCESS;
        }
        Err(ConfigOutcome::Invalid(errors)) => {
            eprint!("edge: {errors}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    if config.check_only {
        eprintln!("edge: configuration is valid");
        return ExitCode::SUCCESS;
    }
    let _logs = telemetry::init(config.log_format, &config.rust_log);
    match edge::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "edge failed to start");
            ExitCode::FAILURE
        }
    }
}
