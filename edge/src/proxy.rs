//! The public API as a Pingora [`ProxyHttp`]: every request is answered in
//! `request_filter`, so every response has a body of known length and an
//! exact `Content-Length` (chunked encoding is never needed, so HTTP/1.0
//! clients are served correctly), and misses can be coalesced by the cache.
//! The proxy phases after `request_filter` (upstream peer, retries,
//! `fail_to_proxy`) are never reached; [`crate::upstream`] owns the worker
//! call, its timeouts and its retries.

use std::borrow::Cow;
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
use service_common::{
    ErrorCode, ParameterName, ParameterNameError, RequestId, Route, TraceParent, labels,
};

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

/// What a request asks for, decided from its method and path alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    NotFound,
    MethodNotAllowed,
    InvalidName(ParameterNameError),
    /// Ask the worker for this path; never cached.
    Uncached(&'static str),
    /// Ask the cache, then the worker, for this normalised path. It is both
    /// the cache key and the path sent to the worker: `/parameters` or
    /// `/parameter/<decoded, validated name>`, so every spelling of a name
    /// (`/api/` alias, percent-encoding) shares one entry.
    Cached(Cow<'static, str>),
}

/// Routes a request: its route template (for metrics and logs) and the plan.
/// Unknown paths are `404` whatever the method; other methods than `GET`
/// and `HEAD` on a known route are `405`.
pub fn plan(method: &Method, path: &str) -> (&'static str, Plan) {
    let route = Route::match_path(path, true);
    let plan = match route {
        Route::Unmatched => Plan::NotFound,
        _ if *method != Method::GET && *method != Method::HEAD => Plan::MethodNotAllowed,
        Route::Buckets => Plan::Uncached("/s3-buckets"),
        Route::Parameters => Plan::Cached(Cow::Borrowed("/parameters")),
        Route::Parameter(raw) => match ParameterName::from_path_segment(raw) {
            Err(e) => Plan::InvalidName(e),
            Ok(name) => {
                let mut key = String::with_capacity(PARAMETER_PREFIX.len() + name.as_str().len());
                key.push_str(PARAMETER_PREFIX);
                key.push_str(name.as_str());
                Plan::Cached(Cow::Owned(key))
            }
        },
    };
    (route.template(), plan)
}

const PARAMETER_PREFIX: &str = "/parameter/";

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
        // `path()` also works for HTTP/2's absolute request URIs.
        let (route, plan) = plan(&req.method, req.uri.path());
        ctx.route = route;

        let (answer, cache): (Arc<Answer>, Option<CacheResult>) = match plan {
            Plan::NotFound => (self.not_found.clone(), None),
            Plan::MethodNotAllowed => (self.method_not_allowed.clone(), None),
            Plan::InvalidName(e) => (
                Arc::new(Answer::error(
                    ErrorCode::InvalidParameterName,
                    &e.to_string(),
                    &self.version,
                )),
                None,
            ),
            Plan::Uncached(path) => {
                let w = self.upstream.get(route, path, fwd).await;
                (Arc::new(self.worker_answer(w)), None)
            }
            Plan::Cached(key) => {
                let (a, c) = self.cached(route, &key, fwd).await;
                (a, Some(c))
            }
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn routes_and_methods() {
        let get = Method::GET;
        assert_eq!(
            plan(&get, "/s3-buckets"),
            ("/s3-buckets", Plan::Uncached("/s3-buckets"))
        );
        assert_eq!(
            plan(&Method::HEAD, "/api/parameters"),
            ("/parameters", Plan::Cached(Cow::Borrowed("/parameters")))
        );
        assert_eq!(plan(&get, "/nope"), ("unmatched", Plan::NotFound));
        assert_eq!(plan(&Method::POST, "/nope"), ("unmatched", Plan::NotFound));
        assert_eq!(
            plan(&Method::POST, "/parameters"),
            ("/parameters", Plan::MethodNotAllowed)
        );
        assert_eq!(
            plan(&get, "/parameter/a%20b").1,
            Plan::InvalidName(ParameterNameError::InvalidCharacter)
        );
        assert_eq!(
            plan(&get, "/parameter/").1,
            Plan::InvalidName(ParameterNameError::Empty)
        );
        assert_eq!(
            plan(&get, "/parameter/..%2Fprod").1,
            Plan::InvalidName(ParameterNameError::DotSegment)
        );
    }

    #[test]
    fn every_spelling_of_a_name_shares_one_key() {
        let want = Plan::Cached(Cow::Owned("/parameter/db/host".to_owned()));
        for path in [
            "/parameter/db/host",
            "/parameter/db%2Fhost",
            "/api/parameter/db/host",
            "/api/parameter/%64b%2fhost",
        ] {
            assert_eq!(plan(&Method::GET, path).1, want, "{path}");
        }
    }

    proptest! {
        /// Whatever the path, routing never panics, and a cache key is a
        /// normalised path made only of safe characters.
        #[test]
        fn keys_are_normalised_and_safe(path in "(/api)?/(parameter/|parameters|s3-buckets)?[a-zA-Z0-9/%._~ -]{0,40}") {
            if let (route, Plan::Cached(key)) = plan(&Method::GET, &path) {
                prop_assert!(key == "/parameters" || key.starts_with(PARAMETER_PREFIX));
                prop_assert!(key.bytes().all(|c| c.is_ascii_alphanumeric() || b"/_.-".contains(&c)), "{}", key);
                prop_assert!(!key.contains("//") && !key.contains("/../") && !key.ends_with('/'));
                prop_assert_ne!(route, "unmatched");
                // Normalising is idempotent: the key routes to itself.
                prop_assert_eq!(plan(&Method::GET, &key).1, Plan::Cached(key.clone()));
            }
        }

        #[test]
        fn arbitrary_paths_never_panic(path in any::<String>()) {
            let _ = plan(&Method::GET, &path);
        }
    }
}
