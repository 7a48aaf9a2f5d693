//! Request handling, the same for HTTP/1 and HTTP/2: routing, the cache,
//! coalesced worker calls, admission control, and the answer.
//!
//! [`EdgeApp::handle`] turns a request into a [`Reply`]; the connection code
//! ([`crate::conn`]) parses requests and writes replies. A cache hit takes
//! one map read and no allocation; everything else is on the miss path.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::Method;
use service_common::request::REQUEST_ID_HEADER;
use service_common::trace::{self, TraceParent};
use service_common::{ErrorCode, ParameterName, ParameterNameError, RequestId, Route};
use tokio::sync::OwnedSemaphorePermit;

use crate::answer::Answer;
use crate::cache::{AnswerCache, Entry, Found, Stored};
use crate::config::Config;
use crate::flight::{Flights, Joined};
use crate::limits::{InFlight, MissLimiter};
use crate::metrics::{CacheResult, metrics};
use crate::upstream::{Forwarded, Upstream, UpstreamError, WorkerResponse};

/// Request headers, by lower-case name, as either protocol presents them.
pub trait Headers {
    fn get(&self, name: &str) -> Option<&[u8]>;
}

impl Headers for http::HeaderMap {
    fn get(&self, name: &str) -> Option<&[u8]> {
        http::HeaderMap::get(self, name).map(http::HeaderValue::as_bytes)
    }
}

/// What the handler needs of a request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a, H: Headers + ?Sized> {
    pub method: &'a Method,
    /// The path, without the query.
    pub path: &'a str,
    pub headers: &'a H,
    pub client: Option<SocketAddr>,
    /// When the request head was complete.
    pub received: Instant,
}

/// A complete answer to one request, before it is put on the wire.
#[derive(Debug, Clone)]
pub struct Reply {
    pub route: &'static str,
    pub answer: Arc<Answer>,
    /// `x-cache`.
    pub cache: CacheResult,
    /// `Age`, for answers that came through the cache.
    pub age: Option<u64>,
    /// `Some(n)`: `Cache-Control: max-age=n` (and the answer's `ETag`);
    /// `None`: `Cache-Control: no-store`.
    pub max_age: Option<u64>,
    /// `304 Not Modified`: the client's `If-None-Match` matched.
    pub not_modified: bool,
    pub request_id: RequestId,
    pub trace: TraceParent,
}

impl Reply {
    /// An answer that never goes through the cache (`x-cache: BYPASS`,
    /// `Cache-Control: no-store`).
    pub fn bypass(
        route: &'static str,
        answer: Arc<Answer>,
        request_id: RequestId,
        trace: TraceParent,
    ) -> Self {
        Reply {
            route,
            answer,
            cache: CacheResult::Bypass,
            age: None,
            max_age: None,
            not_modified: false,
            request_id,
            trace,
        }
    }
}

/// What a request asks for, decided from its method and path alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    NotFound,
    MethodNotAllowed,
    InvalidName(ParameterNameError),
    /// Ask the worker for this path; never cached (concurrent requests
    /// share one call).
    Uncached(&'static str),
    /// Ask the cache, then the worker, for this normalised path. It is both
    /// the cache key and the path sent to the worker: `/parameters` or
    /// `/parameter/<decoded, validated name>`, so every spelling of a name
    /// (`/api/` alias, percent-encoding) shares one entry.
    Cached(Cow<'static, str>),
}

const PARAMETER_PREFIX: &str = "/parameter/";

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

/// The cache key a request can be looked up under without parsing: the path
/// itself (minus `/api`) when it is already in normal form. Stored keys only
/// ever hold validated names, which contain no `%`, so an exact match is the
/// same resource; anything else goes through [`plan`].
fn fast_key(path: &str) -> Option<(&'static str, &str)> {
    let p = match path.strip_prefix("/api") {
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    };
    if p == "/parameters" {
        return Some(("/parameters", p));
    }
    let name = p.strip_prefix(PARAMETER_PREFIX)?;
    (!name.is_empty() && !name.contains('%')).then_some(("/parameter/{name}", p))
}

/// What a worker call produced, shared by every request that waited for it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub answer: Arc<Answer>,
    /// The cache entry it made or fell back on.
    pub entry: Option<Arc<Entry>>,
    pub cache: CacheResult,
}

/// Answers the edge makes itself, prepared once.
#[derive(Debug)]
struct Canned {
    not_found: Arc<Answer>,
    method_not_allowed: Arc<Answer>,
    rate_limited: Arc<Answer>,
    overloaded: Arc<Answer>,
    lost: Arc<Answer>,
}

/// The edge's request handling, shared by every connection.
#[derive(Debug)]
pub struct EdgeApp {
    cache: AnswerCache,
    flights: Flights<Outcome>,
    upstream: Arc<Upstream>,
    misses: MissLimiter,
    in_flight: InFlight,
    version: Arc<str>,
    trace_sample_ratio: f64,
    canned: Canned,
}

impl EdgeApp {
    pub fn new(config: &Config, upstream: Arc<Upstream>, cache: AnswerCache) -> Self {
        let v = config.service_version.as_str();
        let canned = |code| Arc::new(Answer::error_default(code, v));
        Self {
            cache,
            flights: Flights::new(),
            upstream,
            misses: MissLimiter::new(config.client.miss_rate_per_second),
            in_flight: InFlight::new(config.upstream.max_in_flight),
            version: Arc::from(v),
            trace_sample_ratio: config.client.trace_sample_ratio,
            canned: Canned {
                not_found: canned(ErrorCode::NotFound),
                method_not_allowed: canned(ErrorCode::MethodNotAllowed),
                rate_limited: canned(ErrorCode::RateLimited),
                overloaded: canned(ErrorCode::Overloaded),
                lost: canned(ErrorCode::Internal),
            },
        }
    }

    /// An answer the edge makes when it cannot read a request at all.
    pub fn edge_error(&self, code: ErrorCode) -> Arc<Answer> {
        Arc::new(Answer::error_default(code, &self.version))
    }

    pub fn cache(&self) -> &AnswerCache {
        &self.cache
    }

    /// Serves one request.
    pub async fn handle<H: Headers + ?Sized>(self: &Arc<Self>, req: &Request<'_, H>) -> Reply {
        let request_id = RequestId::from_header(req.headers.get(REQUEST_ID_HEADER));
        let (trace, _) = trace::resolve(|n| req.headers.get(n), self.trace_sample_ratio);
        let now = req.received;

        // The hot path: a fresh entry under the path as written.
        if (*req.method == Method::GET || *req.method == Method::HEAD)
            && let Some((route, key)) = fast_key(req.path)
            && let Some(entry) = self.cache.fresh(key, now)
        {
            metrics().observe_cache(route, CacheResult::Hit);
            return self.reply_from(route, &entry, CacheResult::Hit, now, req, request_id, trace);
        }

        let (route, plan) = plan(req.method, req.path);
        let plain = |answer: &Arc<Answer>, request_id, trace| {
            Reply::bypass(route, answer.clone(), request_id, trace)
        };
        match plan {
            Plan::NotFound => plain(&self.canned.not_found, request_id, trace),
            Plan::MethodNotAllowed => plain(&self.canned.method_not_allowed, request_id, trace),
            Plan::InvalidName(e) => plain(
                &Arc::new(Answer::error(
                    ErrorCode::InvalidParameterName,
                    &e.to_string(),
                    &self.version,
                )),
                request_id,
                trace,
            ),
            Plan::Uncached(path) => {
                let outcome = self
                    .fetch(route, path, None, req, &request_id, &trace)
                    .await;
                plain(&outcome.answer, request_id, trace)
            }
            Plan::Cached(key) => self.cached(route, &key, req, request_id, trace).await,
        }
    }

    async fn cached<H: Headers + ?Sized>(
        self: &Arc<Self>,
        route: &'static str,
        key: &str,
        req: &Request<'_, H>,
        request_id: RequestId,
        trace: TraceParent,
    ) -> Reply {
        let now = Instant::now();
        let m = metrics();
        let stale = match self.cache.lookup(key, now) {
            Found::Fresh(e) => {
                m.observe_cache(route, CacheResult::Hit);
                return self.reply_from(route, &e, CacheResult::Hit, now, req, request_id, trace);
            }
            Found::Revalidate(e) => {
                self.refresh(route, key, req, &request_id, &trace);
                m.observe_cache(route, CacheResult::Stale);
                return self.reply_from(route, &e, CacheResult::Stale, now, req, request_id, trace);
            }
            Found::RecentFailure(e) => {
                m.observe_cache(route, CacheResult::Stale);
                return self.reply_from(route, &e, CacheResult::Stale, now, req, request_id, trace);
            }
            Found::Miss(stale) => stale,
        };
        let outcome = self
            .fetch(route, key, stale, req, &request_id, &trace)
            .await;
        m.observe_cache(route, outcome.cache);
        match &outcome.entry {
            Some(e) => self.reply_from(
                route,
                e,
                outcome.cache,
                Instant::now(),
                req,
                request_id,
                trace,
            ),
            None => Reply::bypass(route, outcome.answer, request_id, trace),
        }
    }

    /// A reply from a cache entry: `Age`, freshness for clients, and `304`
    /// when the client already has it.
    #[allow(clippy::too_many_arguments)]
    fn reply_from<H: Headers + ?Sized>(
        &self,
        route: &'static str,
        entry: &Entry,
        cache: CacheResult,
        now: Instant,
        req: &Request<'_, H>,
        request_id: RequestId,
        trace: TraceParent,
    ) -> Reply {
        let answer = entry.answer.clone();
        let storable = answer.etag.is_some();
        let max_age = storable.then(|| match cache {
            CacheResult::Stale => 0,
            _ => entry.fresh_for(now),
        });
        let not_modified = match (&answer.etag, req.headers.get("if-none-match")) {
            (Some(tag), Some(inm)) => etag_matches(inm, tag),
            _ => false,
        };
        Reply {
            route,
            answer,
            cache,
            age: Some(entry.age(now)),
            max_age,
            not_modified,
            request_id,
            trace,
        }
    }

    /// The headers the worker call carries: correlation and trace context.
    fn forwarded<H: Headers + ?Sized>(
        req: &Request<'_, H>,
        request_id: &RequestId,
        trace: &TraceParent,
    ) -> Forwarded {
        // `tracestate` means nothing without the `traceparent` it came with.
        let received = req
            .headers
            .get(trace::TRACEPARENT)
            .and_then(TraceParent::parse)
            .is_some();
        let propagated = trace::PROPAGATED
            .iter()
            .filter(|name| received || **name != trace::TRACESTATE)
            .filter_map(|name| {
                let v = req.headers.get(name)?;
                trace::propagatable(v).then(|| (*name, Bytes::copy_from_slice(v)))
            })
            .collect();
        Forwarded {
            request_id: request_id.as_str().to_owned(),
            traceparent: trace.as_str().to_owned(),
            propagated,
        }
    }

    /// Starts one background refresh of `key` unless one is in flight or the
    /// process is at its worker-call bound (the stale answer is served
    /// either way; the client's miss budget is not charged).
    fn refresh<H: Headers + ?Sized>(
        self: &Arc<Self>,
        route: &'static str,
        key: &str,
        req: &Request<'_, H>,
        request_id: &RequestId,
        trace: &TraceParent,
    ) {
        let joined = self.flights.join_or_start(key, || {
            let permit = self.in_flight.try_acquire()?;
            let fwd = Self::forwarded(req, request_id, trace);
            Some(
                self.clone()
                    .flight(route, key.to_owned(), true, fwd, permit),
            )
        });
        if matches!(joined, Joined::Leader(_)) {
            metrics().cache_refreshes.inc();
        }
    }

    /// The worker's answer for `path`: joins the call in flight for it, or
    /// starts one if the client's miss budget and the process's in-flight
    /// bound allow; otherwise answers from `stale` if there is one, else
    /// `429`/`503`.
    async fn fetch<H: Headers + ?Sized>(
        self: &Arc<Self>,
        route: &'static str,
        path: &str,
        stale: Option<Arc<Entry>>,
        req: &Request<'_, H>,
        request_id: &RequestId,
        trace: &TraceParent,
    ) -> Outcome {
        let cacheable = path != "/s3-buckets";
        let mut refused = None;
        let joined = self.flights.join_or_start(path, || {
            if !self.misses.admit(req.client.map(|c| c.ip())) {
                refused = Some(ErrorCode::RateLimited);
                return None;
            }
            let Some(permit) = self.in_flight.try_acquire() else {
                refused = Some(ErrorCode::Overloaded);
                return None;
            };
            let fwd = Self::forwarded(req, request_id, trace);
            Some(
                self.clone()
                    .flight(route, path.to_owned(), cacheable, fwd, permit),
            )
        });
        let m = metrics();
        let landing = match joined {
            Joined::Leader(l) => l,
            Joined::Follower(l) => {
                m.cache_coalesced_waits.with_label_values(&[route]).inc();
                l
            }
            Joined::Declined => {
                let code = refused.unwrap_or(ErrorCode::Overloaded);
                if code == ErrorCode::RateLimited {
                    m.rate_limited.with_label_values(&[route]).inc();
                } else {
                    m.overloaded.with_label_values(&[route]).inc();
                }
                let stale = stale.or_else(|| {
                    cacheable
                        .then(|| self.cache.stale_copy(path, Instant::now()))
                        .flatten()
                });
                if let Some(e) = stale {
                    return Outcome {
                        answer: e.answer.clone(),
                        entry: Some(e),
                        cache: CacheResult::Stale,
                    };
                }
                let answer = if code == ErrorCode::RateLimited {
                    self.canned.rate_limited.clone()
                } else {
                    self.canned.overloaded.clone()
                };
                return Outcome {
                    answer,
                    entry: None,
                    cache: CacheResult::Bypass,
                };
            }
        };
        landing.await.unwrap_or_else(|| Outcome {
            answer: self.canned.lost.clone(),
            entry: None,
            cache: CacheResult::Bypass,
        })
    }

    /// One worker call, run as a flight: its answer is stored by the cache
    /// rules and shared with every request waiting for it.
    async fn flight(
        self: Arc<Self>,
        route: &'static str,
        path: String,
        cacheable: bool,
        fwd: Forwarded,
        permit: OwnedSemaphorePermit,
    ) -> Outcome {
        {
            let _permit = permit;
            let hash_key = path
                .starts_with(PARAMETER_PREFIX)
                .then_some(path.as_bytes());
            let result = self.upstream.get(route, &path, &fwd, hash_key).await;
            let answer = Arc::new(self.worker_answer(result));
            if !cacheable {
                return Outcome {
                    answer,
                    entry: None,
                    cache: CacheResult::Bypass,
                };
            }
            match self.cache.store(&path, answer.clone(), Instant::now()) {
                Stored::Cached(e) => Outcome {
                    answer,
                    entry: Some(e),
                    cache: CacheResult::Miss,
                },
                Stored::StaleOnError(e) => Outcome {
                    answer: e.answer.clone(),
                    entry: Some(e),
                    cache: CacheResult::Stale,
                },
                Stored::NotCached => Outcome {
                    answer,
                    entry: None,
                    cache: CacheResult::Bypass,
                },
            }
        }
    }

    /// Turns what the worker said (or why it said nothing) into an answer.
    fn worker_answer(&self, r: Result<WorkerResponse, UpstreamError>) -> Answer {
        match r {
            Ok(w) => {
                Answer::from_worker(w.status, &w.body, w.retry_after, w.freshness, &self.version)
                    .unwrap_or_else(|| {
                        tracing::warn!(
                            status = w.status,
                            "auxiliary service answered with a body that is not a JSON object"
                        );
                        Answer::error_default(ErrorCode::UpstreamInvalid, &self.version)
                    })
            }
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
}

/// `If-None-Match` (a list of entity tags, or `*`) against our strong tag,
/// with the weak comparison RFC 9110 prescribes for it.
pub fn etag_matches(if_none_match: &[u8], etag: &str) -> bool {
    let Ok(list) = std::str::from_utf8(if_none_match) else {
        return false;
    };
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
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

    #[test]
    fn fast_keys_are_only_normal_forms() {
        assert_eq!(
            fast_key("/api/parameter/db/host"),
            Some(("/parameter/{name}", "/parameter/db/host"))
        );
        assert_eq!(
            fast_key("/parameters"),
            Some(("/parameters", "/parameters"))
        );
        assert_eq!(fast_key("/parameter/db%2Fhost"), None);
        assert_eq!(fast_key("/parameter/"), None);
        assert_eq!(fast_key("/s3-buckets"), None);
        assert_eq!(fast_key("/apiparameters"), None);
    }

    #[test]
    fn if_none_match() {
        let tag = "\"00ff\"";
        assert!(etag_matches(b"\"00ff\"", tag));
        assert!(etag_matches(b"\"a\", W/\"00ff\"", tag));
        assert!(etag_matches(b"*", tag));
        assert!(!etag_matches(b"\"00fe\"", tag));
        assert!(!etag_matches(b"00ff", tag));
    }

    proptest! {
        /// Whatever the path, routing never panics, and a cache key is a
        /// normalised path made only of safe characters, which the fast path
        /// finds under itself.
        #[test]
        fn keys_are_normalised_and_safe(path in "(/api)?/(parameter/|parameters|s3-buckets)?[a-zA-Z0-9/%._~ -]{0,40}") {
            if let (route, Plan::Cached(key)) = plan(&Method::GET, &path) {
                prop_assert!(key == "/parameters" || key.starts_with(PARAMETER_PREFIX));
                prop_assert!(key.bytes().all(|c| c.is_ascii_alphanumeric() || b"/_.-".contains(&c)), "{}", key);
                prop_assert!(!key.contains("//") && !key.contains("/../") && !key.ends_with('/'));
                prop_assert_ne!(route, "unmatched");
                // Normalising is idempotent: the key routes to itself.
                prop_assert_eq!(plan(&Method::GET, &key).1, Plan::Cached(key.clone()));
                prop_assert_eq!(fast_key(&key).map(|(_, k)| k), Some(key.as_ref()));
            }
        }

        #[test]
        fn arbitrary_paths_never_panic(path in any::<String>()) {
            let _ = plan(&Method::GET, &path);
            let _ = fast_key(&path);
        }
    }
}
