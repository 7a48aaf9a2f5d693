//! The admin listener (never the public one): `/metrics` (Prometheus text,
//! by `pingora-prometheus`), `/healthz`, `/readyz` (the probes both services
//! share), and the cache purge endpoints:
//!
//! - `DELETE /cache/parameter/{name}`: removes one parameter (the name as in
//!   the public route, relative to the worker's prefix, percent-encoding
//!   allowed);
//! - `DELETE /cache/parameters`: removes the parameter list;
//! - `DELETE /cache`: removes everything.
//!
//! Each answers `200 {"purged": <entries removed>}` and is counted in
//! `edge_cache_purges_total`. A purge only affects this process: reach each
//! pod (e.g. `kubectl port-forward pod/<name> 9000`) to purge a fleet.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Method, Response};
use pingora::apps::http_app::{HttpServer, ServeHttp};
use pingora::protocols::http::ServerSession;
use pingora_prometheus::PrometheusHttpApp;
use service_common::admin::{self, Readiness};
use service_common::{ErrorCode, ParameterName};

use crate::cache::AnswerCache;
use crate::metrics::metrics;

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

fn json(status: u16, body: String) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, admin::PROBE_CONTENT_TYPE)
        .header(http::header::CONTENT_LENGTH, body.len())
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(body.into_bytes())
        .unwrap_or_default()
}

fn error(code: ErrorCode, message: &str) -> Response<Vec<u8>> {
    json(
        code.status().as_u16(),
        serde_json::json!({"error": {"code": code.as_str(), "message": message}}).to_string(),
    )
}

/// What a purge request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purge {
    All,
    Key(String),
}

/// Reads a purge path: `/cache`, `/cache/parameters` or
/// `/cache/parameter/{name}`.
pub fn purge_target(path: &str) -> Option<Result<Purge, String>> {
    let rest = path.strip_prefix("/cache")?;
    Some(match rest {
        "" | "/" => Ok(Purge::All),
        "/parameters" => Ok(Purge::Key("/parameters".to_owned())),
        _ => match rest.strip_prefix("/parameter/") {
            Some(raw) => ParameterName::from_path_segment(raw)
                .map(|name| Purge::Key(format!("/parameter/{}", name.as_str())))
                .map_err(|e| e.to_string()),
            None => return None,
        },
    })
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        if session.get_keepalive().is_some() {
            session.set_keepalive(Some(60));
        }
        let req = session.req_header();
        let path = req.uri.path().to_owned();
        let method = req.method.clone();
        if let Some(target) = purge_target(&path) {
            if method != Method::DELETE {
                let mut r = error(ErrorCode::MethodNotAllowed, "purge with DELETE");
                r.headers_mut().insert(
                    http::header::ALLOW,
                    http::HeaderValue::from_static("DELETE"),
                );
                return r;
            }
            let (scope, purged) = match target {
                Err(message) => return error(ErrorCode::InvalidParameterName, &message),
                Ok(Purge::All) => ("all", self.cache.purge_all()),
                Ok(Purge::Key(key)) => ("key", self.cache.purge(&key)),
            };
            metrics().cache_purges.with_label_values(&[scope]).inc();
            tracing::info!(path = %path, purged, "cache purged");
            return json(200, serde_json::json!({ "purged": purged }).to_string());
        }
        if path == "/metrics" {
            let m = metrics();
            m.ready.set(i64::from(self.readiness.is_ready()));
            // Counted at scrape time: nothing on the request path.
            let entries = self.cache.settled_entry_count();
            m.cache_entries
                .set(i64::try_from(entries).unwrap_or(i64::MAX));
            return PrometheusHttpApp.response(session).await;
        }
        match admin::probe(&path, &self.readiness) {
            Some(p) => json(p.status, p.body),
            None => json(404, admin::NOT_FOUND_BODY.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_paths() {
        assert_eq!(purge_target("/cache"), Some(Ok(Purge::All)));
        assert_eq!(
            purge_target("/cache/parameter/db%2Fhost"),
            Some(Ok(Purge::Key("/parameter/db/host".into())))
        );
        assert_eq!(
            purge_target("/cache/parameters"),
            Some(Ok(Purge::Key("/parameters".into())))
        );
        assert!(matches!(
            purge_target("/cache/parameter/..%2Fx"),
            Some(Err(_))
        ));
        assert_eq!(purge_target("/cachex"), None);
        assert_eq!(purge_target("/metrics"), None);
    }
}
