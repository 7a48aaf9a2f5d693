//! Listeners, connections and the shutdown sequence.
//!
//! On the shutdown signal: `/readyz` turns 503 and stays so for the drain
//! period while both listeners keep serving; then the API listener closes,
//! in-flight requests get up to the shutdown timeout, and the admin listener
//! closes last.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use service_common::admin::{self, Readiness};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::App;
use crate::metrics::Metrics;

/// Timing of the shutdown sequence and connection limits.
#[derive(Debug, Clone, Copy)]
pub struct ServerSettings {
    pub header_read_timeout: Duration,
    pub shutdown_drain: Duration,
    pub shutdown_timeout: Duration,
}

/// Readiness, shared between the shutdown sequence and `/readyz`, mirrored
/// in `aux_ready`.
#[derive(Debug)]
pub struct Health {
    readiness: Readiness,
    metrics: Metrics,
}

impl Health {
    fn new(metrics: Metrics) -> Self {
        metrics.set_ready(true);
        Self {
            readiness: Readiness::new(),
            metrics,
        }
    }

    fn set_draining(&self) {
        self.readiness.start_draining();
        self.metrics.set_ready(false);
    }
}

/// Serves the API and admin listeners until `shutdown` resolves, then drains.
pub async fn run(
    app: Arc<App>,
    metrics: Metrics,
    settings: ServerSettings,
    api: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let health = Arc::new(Health::new(metrics.clone()));
    // `stop_api` closes the API listener; `stop_admin` the admin one.
    let (stop_api, api_stopped) = watch::channel(false);
    let (stop_admin, admin_stopped) = watch::channel(false);

    let api_task = {
        let app = app.clone();
        tokio::spawn(accept_loop(api, settings, api_stopped, move |req, peer| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.handle(req, Some(peer)).await) }
        }))
    };
    let admin_task = {
        let health = health.clone();
        let metrics = metrics.clone();
        let app = app.clone();
        tokio::spawn(accept_loop(
            admin,
            settings,
            admin_stopped,
            move |req, _peer| {
                let health = health.clone();
                let metrics = metrics.clone();
                let app = app.clone();
                async move {
                    if req.uri().path() == "/metrics" {
                        metrics.set_cache_entries(app.cache().entry_count().await);
                    }
                    Ok::<_, Infallible>(admin_response(&req, &health, &metrics))
                }
            },
        ))
    };

    shutdown.await;
    tracing::info!(
        drain_seconds = settings.shutdown_drain.as_secs_f64(),
        "shutdown requested: readiness fails, traffic is still served"
    );
    health.set_draining();
    tokio::time::sleep(settings.shutdown_drain).await;

    tracing::info!("closing the API listener; waiting for in-flight requests");
    let _ = stop_api.send(true);
    let _ = api_task.await;
    let _ = stop_admin.send(true);
    let _ = admin_task.await;
    tracing::info!("shutdown complete");
}

/// Accepts connections until told to stop, then gives open connections up to
/// the shutdown timeout to finish their requests.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    settings: ServerSettings,
    mut stop: watch::Receiver<bool>,
    handler: F,
) where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .max_concurrent_streams(256);
    let graceful = GracefulShutdown::new();

    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: back off briefly.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let conn = builder
                    .serve_connection(
                        TokioIo::new(stream),
                        service_fn(move |req| handler(req, peer)),
                    )
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                    }
                });
            }
            () = async { let _ = stop.wait_for(|stopped| *stopped).await; } => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(settings.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown timeout reached; closing the remaining connections");
    }
}

fn admin_response(
    req: &Request<Incoming>,
    health: &Health,
    metrics: &Metrics,
) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let (status, content_type, body) = if path == "/metrics" {
        (
            StatusCode::OK,
            admin::METRICS_CONTENT_TYPE,
            Bytes::from(metrics.encode()),
        )
    } else if let Some(p) = admin::probe(path, &health.readiness) {
        (
            StatusCode::from_u16(p.status).unwrap_or(StatusCode::OK),
            admin::PROBE_CONTENT_TYPE,
            Bytes::from(p.body),
        )
    } else {
        (
            StatusCode::NOT_FOUND,
            admin::PROBE_CONTENT_TYPE,
            Bytes::from_static(admin::NOT_FOUND_BODY.as_bytes()),
        )
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Binds a listener, with the address in the error.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}
