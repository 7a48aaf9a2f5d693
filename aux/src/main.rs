//! `aux-worker`: parse and validate the configuration, bind, serve until
//! SIGTERM or SIGINT, drain, exit.

use std::process::ExitCode;

use anyhow::Context;
use aux_worker::{ArgsError, Config};

use service_common::config::EXIT_CONFIG;

fn main() -> ExitCode {
    let config = match Config::try_from_args(std::env::args_os()) {
        Ok(config) => config,
        Err(ArgsError::Display(e)) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(ArgsError::Usage(e)) => {
            let _ = e.print();
            return ExitCode::from(EXIT_CONFIG);
        }
        Err(ArgsError::Invalid(errors)) => {
            eprintln!("aux-worker: {errors}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if config.check_config {
        eprintln!("aux-worker: configuration is valid: {config:#?}");
        return ExitCode::SUCCESS;
    }
    let _logs =
        service_common::telemetry::init("aux-worker", config.log_format, &config.log_filter);
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "aux-worker failed");
            ExitCode::FAILURE
        }
    }
}

fn run(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let api = aux_worker::server::bind(config.listen_addr).await?;
        let admin = aux_worker::server::bind(config.admin_addr).await?;
        aux_worker::serve(config, api, admin, shutdown_signal()).await?;
        Ok(())
    })
}

/// Resolves on SIGTERM (Kubernetes) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!(signal = "SIGTERM", "signal received"),
                _ = int.recv() => tracing::info!(signal = "SIGINT", "signal received"),
            }
        }
        _ => {
            tracing::error!("cannot install signal handlers; stopping only on Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
