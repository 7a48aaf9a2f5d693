//! Wiring: one Pingora [`Server`] with three services — the public proxy
//! (plain and TLS listeners), the admin listener, and the worker address
//! resolver — and the drain-first shutdown watch.
//!
//! Pingora binds its listeners itself from addresses, so listeners cannot be
//! injected; tests pick free ports by binding `127.0.0.1:0` and releasing them,
//! then run the binary.

use std::sync::Arc;

use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use crate::admin::{AdminApp, Readiness};
use crate::cache::AnswerCache;
use crate::config::Config;
use crate::metrics::metrics;
use crate::proxy::EdgeApp;
use crate::shutdown::{DrainWatch, grace_periods};
use crate::tls::{ReloadingResolver, TlsFileError};
use crate::upstream::{Resolver, Upstream};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("TLS: {0}")]
    Tls(#[from] TlsFileError),
    #[error("TLS listener: {0}")]
    TlsSettings(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Pingora retries a busy port for half a minute; fail at once instead, with
/// the address in the message. The probe socket is closed again before
/// Pingora binds.
fn check_bindable(addrs: &[std::net::SocketAddr]) -> Result<(), RunError> {
    for &addr in addrs {
        std::net::TcpListener::bind(addr).map_err(|source| RunError::Bind { addr, source })?;
    }
    Ok(())
}

/// Worker threads for the public service: one per core.
fn proxy_threads() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// Runs the edge until it is told to stop (SIGTERM drains first, SIGINT
/// stops at once). Returns once every service has stopped.
pub fn run(config: Config) -> Result<(), RunError> {
    let mut addrs = vec![config.listen_addr, config.admin_addr];
    addrs.extend(config.tls.as_ref().map(|t| t.listen_addr));
    check_bindable(&addrs)?;
    let m = metrics();
    m.set_version(&config.service_version);
    let readiness = Readiness::new();

    let (grace, runtime_timeout) = grace_periods(config.shutdown_timeout, config.upstream_timeout);
    let conf = ServerConf {
        threads: proxy_threads(),
        grace_period_seconds: Some(grace),
        graceful_shutdown_timeout_seconds: Some(runtime_timeout),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let upstream = Arc::new(Upstream::new(
        config.upstream.clone(),
        config.upstream_connect_timeout,
        config.upstream_timeout,
    ));
    let cache = AnswerCache::new(
        config.cache_ttl,
        config.cache_stale_if_error,
        config.cache_max_entries,
    );
    let keepalive = config.keepalive_timeout.as_secs().max(1);
    let app = EdgeApp::new(
        upstream.clone(),
        cache.clone(),
        &config.service_version,
        keepalive,
    );

    let mut proxy =
        pingora::proxy::http_proxy_service_with_name(&server.configuration, app, "edge");
    if let Some(logic) = proxy.app_logic_mut() {
        let mut options = HttpServerOptions::default();
        options.h2_idle_timeout = Some(config.keepalive_timeout);
        logic.server_options = Some(options);
    }
    proxy.add_tcp(&config.listen_addr.to_string());
    if let Some(tls) = &config.tls {
        let resolver = ReloadingResolver::new(tls.cert_file.clone(), tls.key_file.clone())?;
        let mut settings =
            TlsSettings::intermediate("", "").map_err(|e| RunError::TlsSettings(e.to_string()))?;
        settings.set_cert_resolver(Arc::new(resolver));
        settings.enable_h2();
        proxy.add_tls_with_settings(&tls.listen_addr.to_string(), None, settings);
    }

    let mut admin = Service::new(
        "admin".to_owned(),
        AdminApp::server(readiness.clone(), cache),
    );
    admin.add_tcp(&config.admin_addr.to_string());
    admin.threads = Some(1);

    server.add_service(proxy);
    server.add_service(admin);
    server.add_service(background_service(
        "worker address resolver",
        Resolver(upstream),
    ));

    tracing::info!(
        listen = %config.listen_addr,
        tls = ?config.tls.as_ref().map(|t| t.listen_addr),
        admin = %config.admin_addr,
        upstream = %config.upstream.authority(),
        version = %config.service_version,
        grace_period_seconds = grace,
        "edge starting"
    );
    server.run(RunArgs {
        shutdown_signal: Box::new(DrainWatch {
            readiness,
            drain: config.shutdown_drain,
        }),
    });
    tracing::info!("edge stopped");
    Ok(())
}
