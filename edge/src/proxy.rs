//! The public API as a Pingora [`ProxyHttp`]: every request is answered in
//! `request_filter`, so every response has a body of known length and an
//! exact `Content-Length` (chunked encoding is never needed, so HTTP/1.0
//! clients are served correctly), and misses can be coalesced by the cache.
//! The proxy phases after `request_filter` (upstream peer, retries,
//! `fail_to_proxy`) are never reached; [`crate::upstream`] owns the worker
//! call, its timeouts and its retries.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use http::Method;
use http::header::{AGE, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use pingora::http::ResponseHeader;
use pingora::proxy::{ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error as PError, ErrorType};
use service_common::api::ALLOWED_METHODS;
use service_common::request::{REQUEST_ID_HEADER, TRACEPARENT_HEADER};
use service_common::{ErrorCode, ParameterName, RequestId, Route, TraceParent, labels};

use crate::answer::Answer;
use crate::cache::{AnswerCache, Lookup};
use crate::metrics::{CacheResult, metrics};
use crate::upstream::{Forwarded, Upstream, UpstreamError, WorkerResponse};

const X_CACHE: &str = "x-cache";
const JSON: &str = "application/json";

/// The edge's request handling, shared by every connection.
#[derive(Debug)]
pub struct EdgeApp {
    upstream: Arc<Upstream>,
    cache: AnswerCache,
    version: Arc<str>,
    keepalive_secs: u64,
    not_found: Arc<Answer>,
    method_not_allowed: Arc<Answer>,
}

/// Per-request state, read by `logging`.
#[derive(Debug)]
pub struct RequestCtx {
    start: Instant,
    route: &'static str,
    request_id: Option<RequestId>,
    cache: Option<CacheResult>,
}

impl EdgeApp {
    pub fn new(
        upstream: Arc<Upstream>,
        cache: AnswerCache,
        version: &str,
        keepalive_secs: u64,
    ) -> Self {
        Self {
            upstream,
            cache,
            version: Arc::from(version),
            keepalive_secs,
            not_found: Arc::new(Answer::error_default(ErrorCode::NotFound, version)),
            method_not_allowed: Arc::new(Answer::error_default(
                ErrorCode::MethodNotAllowed,
                version,
            )),
        }
    }

    /// Turns what the worker said (or why it said nothing) into an answer.
    fn worker_answer(&self, r: Result<WorkerResponse, UpstreamError>) -> Answer {
        match r {
            Ok(w) => Answer::from_worker(w.status, &w.body, w.retry_after, &self.version)
                .unwrap_or_else(|| {
                    tracing::warn!(
                        status = w.status,
                        "auxiliary service answered with a body that is not a JSON object"
                    );
                    Answer::error_default(ErrorCode::UpstreamInvalid, &self.version)
                }),
            Err(UpstreamError::Unavailable(_)) => {
                Answer::error_default(ErrorCode::UpstreamUnavailable, &self.version)
            }
            Err(UpstreamError::Timeout(_)) => {
                Answer::error_default(ErrorCode::UpstreamTimeout, &self.version)
            }
            Err(UpstreamError::Invalid(_)) => {
                Answer::error_default(ErrorCode::UpstreamInvalid, &self.version)
            }
        }
    }

    async fn cached(
        &self,
        route: &'static str,
        key: &str,
        fwd: Forwarded<'_>,
    ) -> (Arc<Answer>, CacheResult) {
        let m = metrics();
        // The hot path: no allocation, no lock beyond moka's.
        if let Some(answer) = self.cache.get_fresh(key).await {
            m.observe_cache(route, CacheResult::Hit);
            return (answer, CacheResult::Hit);
        }
        let lookup = self
            .cache
            .get_or_fetch(key, async {
                self.worker_answer(self.upstream.get(route, key, fwd).await)
            })
            .await;
        let (answer, result, coalesced) = match lookup {
            Lookup::Cached {
                answer,
                result,
                coalesced,
            } => (answer, result, coalesced),
            Lookup::Uncached { answer, coalesced } => (answer, CacheResult::Miss, coalesced),
        };
        m.observe_cache(route, result);
        if coalesced {
            m.cache_coalesced_waits.with_label_values(&[route]).inc();
        }
        (answer, result)
    }
}

/// Writes a complete answer with exact framing.
async fn respond(
    session: &mut Session,
    answer: &Answer,
    cache: Option<CacheResult>,
    request_id: &str,
    traceparent: Option<&TraceParent>,
) -> pingora::Result<()> {
    let head = session.req_header().method == Method::HEAD;
    let mut resp = ResponseHeader::build(answer.status, Some(8))?;
    resp.insert_header(CONTENT_TYPE, JSON)?;
    resp.insert_header(CONTENT_LENGTH, answer.body.len())?;
    resp.insert_header(REQUEST_ID_HEADER, request_id)?;
    if let Some(tp) = traceparent {
        resp.insert_header(TRACEPARENT_HEADER, tp.as_str())?;
    }
    if let Some(c) = cache {
        resp.insert_header(X_CACHE, c.header())?;
        resp.insert_header(AGE, answer.stored_at.elapsed().as_secs())?;
    }
    if let Some(secs) = answer.retry_after {
        resp.insert_header(RETRY_AFTER, secs)?;
    }
    if answer.status == 405 {
        resp.insert_header(ALLOW, ALLOWED_METHODS)?;
    }
    session.write_response_header(Box::new(resp), head).await?;
    if !head {
        let body: Bytes = answer.body.clone();
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

#[async_trait]
impl ProxyHttp for EdgeApp {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        RequestCtx {
            start: Instant::now(),
            route: Route::Unmatched.template(),
            request_id: None,
            cache: None,
        }
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<bool> {
        // Bound the idle time of connections the client keeps alive; leave
        // closing ones (HTTP/1.0 without keep-alive, `Connection: close`) be.
        if session.get_keepalive().is_some() {
            session.set_keepalive(Some(self.keepalive_secs));
        }
        let request_id =
            RequestId::from_header(session.get_header(REQUEST_ID_HEADER).map(|v| v.as_bytes()));
        let traceparent = session
            .get_header(TRACEPARENT_HEADER)
            .and_then(|v| TraceParent::parse(v.as_bytes()));
        let fwd = Forwarded {
            request_id: request_id.as_str(),
            traceparent: traceparent.as_ref().map(TraceParent::as_str),
        };
        let req = session.req_header();
        let method_ok = req.method == Method::GET || req.method == Method::HEAD;
        // `path()` also works for HTTP/2's absolute request URIs.
        let path = req.uri.path();
        let route = Route::match_path(path, true);
        ctx.route = route.template();

        let (answer, cache): (Arc<Answer>, Option<CacheResult>) = match route {
            Route::Unmatched => (self.not_found.clone(), None),
            _ if !method_ok => (self.method_not_allowed.clone(), None),
            Route::Buckets => {
                let w = self.upstream.get(ctx.route, "/s3-buckets", fwd).await;
                (Arc::new(self.worker_answer(w)), None)
            }
            Route::Parameters => {
                let (a, c) = self.cached(ctx.route, "/parameters", fwd).await;
                (a, Some(c))
            }
            Route::Parameter(raw) => match ParameterName::from_path_segment(raw) {
                Err(e) => (
                    Arc::new(Answer::error(
                        ErrorCode::InvalidParameterName,
                        &e.to_string(),
                        &self.version,
                    )),
                    None,
                ),
                Ok(name) => {
                    let mut key = String::with_capacity(11 + name.as_str().len());
                    key.push_str("/parameter/");
                    key.push_str(name.as_str());
                    let (a, c) = self.cached(ctx.route, &key, fwd).await;
                    (a, Some(c))
                }
            },
        };
        ctx.cache = cache;
        respond(
            session,
            &answer,
            cache,
            request_id.as_str(),
            traceparent.as_ref(),
        )
        .await?;
        ctx.request_id = Some(request_id);
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> pingora::Result<Box<HttpPeer>> {
        // Every request is answered in `request_filter`.
        Err(PError::explain(
            ErrorType::InternalError,
            "the edge answers every request in request_filter",
        ))
    }

    async fn logging(&self, session: &mut Session, error: Option<&PError>, ctx: &mut Self::CTX) {
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        let req = session.req_header();
        let method = labels::method(&req.method);
        let elapsed = ctx.start.elapsed();
        metrics().observe_request(
            ctx.route,
            method,
            labels::status_class(status),
            elapsed.as_secs_f64(),
        );
        tracing::info!(
            target: "edge::access",
            method = %req.method,
            path = req.uri.path(),
            route = ctx.route,
            status,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            request_id = ctx.request_id.as_ref().map(RequestId::as_str),
            cache = ctx.cache.map(CacheResult::header),
            http_version = ?req.version,
            client = session.client_addr().map(ToString::to_string),
            error = error.map(ToString::to_string),
            "request"
        );
    }
}
