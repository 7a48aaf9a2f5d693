//! The admin listener: `/metrics` (Prometheus text, by `pingora-prometheus`),
//! `/healthz` (the process is up) and `/readyz` (`503` once a drain began).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::{HttpServer, ServeHttp};
use pingora::protocols::http::ServerSession;
use pingora_prometheus::PrometheusHttpApp;

use crate::cache::AnswerCache;
use crate::metrics::metrics;

/// Readiness, shared by the admin app and the shutdown watcher.
#[derive(Debug, Default)]
pub struct Readiness {
    draining: AtomicBool,
}

impl Readiness {
    pub fn new() -> Arc<Self> {
        metrics().ready.set(1);
        Arc::new(Self::default())
    }

    pub fn is_ready(&self) -> bool {
        !self.draining.load(Ordering::Acquire)
    }

    /// From now on `/readyz` answers `503`.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
        metrics().ready.set(0);
    }
}

#[derive(Debug)]
pub struct AdminApp {
    readiness: Arc<Readiness>,
    cache: AnswerCache,
}

impl AdminApp {
    pub fn server(readiness: Arc<Readiness>, cache: AnswerCache) -> HttpServer<Self> {
        HttpServer::new_app(Self { readiness, cache })
    }
}

fn text(status: u16, body: &'static str) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(http::header::CONTENT_LENGTH, body.len())
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(body.as_bytes().to_vec())
        .unwrap_or_default()
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        if session.get_keepalive().is_some() {
            session.set_keepalive(Some(60));
        }
        match session.req_header().uri.path() {
            "/metrics" => {
                let m = metrics();
                m.ready.set(i64::from(self.readiness.is_ready()));
                // Counted at scrape time: nothing on the request path.
                let entries = self.cache.settled_entry_count().await;
                m.cache_entries
                    .set(i64::try_from(entries).unwrap_or(i64::MAX));
                PrometheusHttpApp.response(session).await
            }
            "/healthz" => text(200, "ok\n"),
            "/readyz" if self.readiness.is_ready() => text(200, "ready\n"),
            "/readyz" => text(503, "draining\n"),
            _ => text(404, "not found\n"),
        }
    }
}
