//! The auxiliary service: a small hyper worker that lists S3 buckets and
//! reads SSM parameters under one configured prefix, and says which version
//! of itself answered.
//!
//! # Layout
//!
//! - [`config`]: every environment variable and flag, validated together
//!   before anything is bound ([`Config::try_from_args`]).
//! - [`aws`]: the one constructor of the AWS clients and every AWS call,
//!   with error classification. The SDK is the only layer that retries.
//! - [`api`]: routing and handlers; [`api::App::handle`] serves one request.
//! - [`cache`]: the SSM answer cache (`CACHE_TTL_SECONDS`, coalesced misses)
//!   and the freshness it reports (`Cache-Control: max-age`, `Age`).
//! - [`error`]: [`error::ApiError`] and its one mapping to a status and code.
//! - [`metrics`]: the metrics registry served on the admin port.
//! - [`server`]: accept loops, `/healthz` `/readyz` `/metrics`, and the
//!   drain-then-stop shutdown sequence.
//!
//! [`serve`] wires them; `main.rs` only parses, binds and waits for a signal,
//! so tests run the whole worker in-process on `127.0.0.1:0`.

pub mod api;
pub mod aws;
pub mod cache;
pub mod config;
pub mod error;
pub mod metrics;
pub mod server;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use config::{ArgsError, Config, ConfigErrors};

use crate::aws::Aws;
use crate::metrics::Metrics;
use crate::server::ServerSettings;

/// Why the worker could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("registering metrics failed: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Runs the worker on the given listeners until `shutdown` resolves, then
/// drains and returns.
pub async fn serve(
    config: Config,
    api: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let metrics = Metrics::new(&config.service_version)?;
    let aws = Aws::from_settings(&config.aws, metrics.clone()).await;
    serve_with(config, aws, metrics, api, admin, shutdown).await;
    Ok(())
}

/// [`serve`] with AWS clients built by the caller (tests build them with the
/// production constructor, pointed at the endpoint the test controls).
pub async fn serve_with(
    config: Config,
    aws: Aws,
    metrics: Metrics,
    api: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let app = Arc::new(api::App::new(
        aws,
        api::AppSettings {
            prefix: config.parameter_prefix.clone(),
            expose_secure: config.expose_secure_parameters,
            bucket_prefix: config.s3_bucket_prefix.clone(),
            version: config.service_version.clone(),
            max_concurrent: config.max_concurrent_requests,
        },
        metrics.clone(),
        cache::SsmCache::new(config.cache_ttl, config.cache_max_entries),
    ));
    let settings = ServerSettings {
        header_read_timeout: config.header_read_timeout,
        shutdown_drain: config.shutdown_drain,
        shutdown_timeout: config.shutdown_timeout,
    };
    if let (Ok(a), Ok(m)) = (api.local_addr(), admin.local_addr()) {
        tracing::info!(
            api = %a,
            admin = %m,
            prefix = %config.parameter_prefix,
            version = %config.service_version,
            expose_secure_parameters = config.expose_secure_parameters,
            s3_bucket_prefix = %config.s3_bucket_prefix,
            cache_ttl_seconds = config.cache_ttl.as_secs_f64(),
            "aux-worker listening"
        );
    }
    server::run(app, metrics, settings, api, admin, shutdown).await;
}
