//! Wiring: one Pingora [`Server`] with the public service (plain and TLS
//! listeners, accepted by [`PublicService`] and served by [`EdgeServer`]),
//! the admin service, the worker address resolver, the certificate watch,
//! and the drain-first shutdown.
//!
//! The binary binds its listeners itself from addresses (before anything
//! starts); tests pick free ports by binding `127.0.0.1:0` and releasing
//! them, then run the binary.

use std::sync::Arc;

use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use service_common::admin::Readiness;
use tokio::sync::watch;

use crate::admin::AdminApp;
use crate::app::EdgeApp;
use crate::cache::AnswerCache;
use crate::config::Config;
use crate::conn::{ConnSettings, EdgeServer, TlsListener};
use crate::limits::ConnectionCap;
use crate::listen::{self, PublicService};
use crate::metrics::metrics;
use crate::shutdown::{DrainWatch, grace_periods};
use crate::tls::{CertificateWatch, ReloadingResolver, TlsFileError, WAITING_REASON};
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

/// Worker threads for the public service: one per core available to the
/// process (its CPU quota or affinity included).
fn proxy_threads() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// Resolves the worker's host once before anything is served, so a new pod
/// does not answer its first misses `503` for want of addresses it could
/// have known (the listeners are bound; connections wait in the accept
/// queue). Bounded by the resolver's own timeout; a failure is only logged:
/// the background resolver keeps trying, and a request that finds no
/// address still answers `503 upstream_unavailable` at once.
fn resolve_before_serving(upstream: &Upstream) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(error) => {
            tracing::warn!(%error, "no runtime for the first resolution; the background resolver does it");
            return;
        }
    };
    match runtime.block_on(upstream.resolve()) {
        Ok(n) => tracing::debug!(addresses = n, "auxiliary service resolved"),
        Err(error) => {
            tracing::warn!(%error, "auxiliary service not resolved yet; the background resolver keeps trying")
        }
    }
    // A lookup that timed out may still hold a blocking thread: do not wait for it.
    runtime.shutdown_background();
}

/// Runs the edge until it is told to stop (SIGTERM drains first, SIGINT
/// stops at once). Returns once every service has stopped.
pub fn run(config: Config) -> Result<(), RunError> {
    // The public listeners are bound here, before anything starts; the admin
    // one (Pingora binds it) is checked.
    check_bindable(&[config.admin_addr])?;
    let mut public_addrs = vec![config.listen_addr];
    public_addrs.extend(config.tls.as_ref().map(|t| t.listen_addr));
    let listeners = public_addrs
        .iter()
        .map(|&addr| listen::bind(addr).map_err(|source| RunError::Bind { addr, source }))
        .collect::<Result<Vec<_>, _>>()?;
    let m = metrics();
    m.set_version(&config.service_version);
    let readiness = Arc::new(Readiness::new());

    let (grace, runtime_timeout) = grace_periods(config.shutdown_timeout, config.upstream.timeout);
    let conf = ServerConf {
        threads: proxy_threads(),
        // One single-threaded runtime per core: a connection stays on the
        // thread that accepted it, which is cheaper than work stealing for
        // short requests.
        work_stealing: false,
        grace_period_seconds: Some(grace),
        graceful_shutdown_timeout_seconds: Some(runtime_timeout),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let upstream = Arc::new(Upstream::new(config.upstream.clone()));
    resolve_before_serving(&upstream);
    let cache = AnswerCache::new(config.cache);
    let app = Arc::new(EdgeApp::new(&config, upstream.clone(), cache.clone()));
    let (draining_tx, draining_rx) = watch::channel(false);

    let mut tls_listener = None;
    let mut certificate_watch = None;
    if let Some(tls) = &config.tls {
        let resolver = Arc::new(ReloadingResolver::new(
            tls.cert_file.clone(),
            tls.key_file.clone(),
        )?);
        if !resolver.is_loaded() {
            readiness.set_waiting(Some(WAITING_REASON));
        }
        let mut settings =
            TlsSettings::intermediate("", "").map_err(|e| RunError::TlsSettings(e.to_string()))?;
        settings.set_cert_resolver(resolver.clone());
        settings.enable_h2();
        tls_listener = Some(TlsListener {
            port: tls.listen_addr.port(),
            acceptor: settings.build(),
            hsts: tls.hsts.as_deref().map(Arc::from),
        });
        certificate_watch = Some(CertificateWatch {
            resolver,
            readiness: readiness.clone(),
        });
    }

    let settings = ConnSettings {
        header_read_timeout: config.client.header_read_timeout,
        keepalive_timeout: config.client.keepalive_timeout,
    };
    let edge = EdgeServer::new(
        app,
        ConnectionCap::new(config.client.max_connections),
        tls_listener,
        settings,
        draining_rx,
    );
    // No L4 buffering (requests are read into the connection's own small
    // buffer, and rustls buffers records itself); the TLS handshake is made
    // by `EdgeServer`, within the header deadline.
    let public = PublicService::new(edge, listeners, proxy_threads());

    let mut admin = Service::new(
        "admin".to_owned(),
        AdminApp::server(readiness.clone(), cache),
    );
    admin.add_tcp(&config.admin_addr.to_string());
    admin.threads = Some(1);

    server.add_service(public);
    server.add_service(admin);
    server.add_service(background_service(
        "worker address resolver",
        Resolver(upstream),
    ));
    if let Some(watch) = certificate_watch {
        server.add_service(background_service("TLS certificate watch", watch));
    }

    tracing::info!(
        listen = %config.listen_addr,
        tls = ?config.tls.as_ref().map(|t| t.listen_addr),
        admin = %config.admin_addr,
        upstream = %config.upstream.target.authority(),
        version = %config.service_version,
        grace_period_seconds = grace,
        "edge starting"
    );
    server.run(RunArgs {
        shutdown_signal: Box::new(DrainWatch {
            readiness,
            drain: config.shutdown_drain,
            draining: draining_tx,
        }),
    });
    tracing::info!("edge stopped");
    Ok(())
}
