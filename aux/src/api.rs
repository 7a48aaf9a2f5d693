//! The API: routing, handlers and the one place errors become responses.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{AGE, ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use service_common::access_log::{self, AccessLine};
use service_common::api::{ALLOWED_METHODS, AUX_VERSION_FIELD, error_body};
use service_common::request::REQUEST_ID_HEADER;
use service_common::{ParameterName, ParameterPrefix, RequestId, Route, labels, trace};
use tokio::sync::Semaphore;

use crate::aws::{Aws, AwsErrorKind, ParameterKind};
use crate::cache::{Fetched, SsmAnswer, SsmCache};
use crate::error::ApiError;
use crate::metrics::Metrics;

/// What the handlers need besides the AWS clients.
#[derive(Debug, Clone)]
pub struct AppSettings {
    pub prefix: ParameterPrefix,
    pub expose_secure: bool,
    /// Empty: every bucket is listed.
    pub bucket_prefix: String,
    pub version: String,
    pub max_concurrent: usize,
}

/// Everything a request handler needs, shared by all connections.
#[derive(Debug)]
pub struct App {
    aws: Aws,
    settings: AppSettings,
    metrics: Metrics,
    permits: Semaphore,
    cache: SsmCache,
}

#[derive(Serialize)]
struct BucketsBody<'a> {
    buckets: &'a [String],
    auxiliary_service_version: &'a str,
}

#[derive(Serialize)]
struct ParametersBody<'a> {
    parameters: &'a [String],
    auxiliary_service_version: &'a str,
}

#[derive(Serialize)]
struct ParameterBody<'a> {
    name: &'a str,
    value: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    version: i64,
    auxiliary_service_version: &'a str,
}

pub type ApiResponse = Response<Full<Bytes>>;

/// What an answer says about its own freshness (RFC 9111).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Freshness {
    /// `Cache-Control: no-store`: errors, bucket lists, SecureString values.
    NoStore,
    /// `Cache-Control: max-age=…` and `Age: …`, from the worker's cache.
    Fresh { max_age: u64, age: u64 },
    /// Nothing said (the worker's cache is off): the edge applies its own TTL.
    Unstated,
}

impl Freshness {
    fn of(fetched: &Fetched, cache_enabled: bool) -> Self {
        if cache_enabled {
            Freshness::Fresh {
                max_age: fetched.max_age_seconds(),
                age: fetched.age_seconds(),
            }
        } else {
            Freshness::Unstated
        }
    }

    fn apply(self, response: &mut ApiResponse) {
        let headers = response.headers_mut();
        match self {
            Freshness::NoStore => {
                headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
            Freshness::Fresh { max_age, age } => {
                if let Ok(v) = HeaderValue::from_str(&format!("max-age={max_age}")) {
                    headers.insert(CACHE_CONTROL, v);
                }
                headers.insert(AGE, HeaderValue::from(age));
            }
            Freshness::Unstated => {}
        }
    }
}

/// Decrements the in-flight gauge when dropped, also when the request is
/// cancelled (the client went away) rather than completed.
struct InFlight<'a>(&'a prometheus::IntGauge);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The `Version` label of an HTTP version, as in the access log.
fn version_label(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    }
}

impl App {
    pub fn new(aws: Aws, settings: AppSettings, metrics: Metrics, cache: SsmCache) -> Self {
        Self {
            aws,
            permits: Semaphore::new(settings.max_concurrent),
            settings,
            metrics,
            cache,
        }
    }

    /// The worker's SSM cache (entries are counted at scrape time).
    pub fn cache(&self) -> &SsmCache {
        &self.cache
    }

    /// Serves one request; never fails, never panics on input.
    pub async fn handle<B>(
        self: Arc<Self>,
        req: Request<B>,
        client: Option<std::net::SocketAddr>,
    ) -> ApiResponse {
        let started = Instant::now();
        let headers = req.headers();
        let header = |name: &str| headers.get(name).map(HeaderValue::as_bytes);
        let request_id = RequestId::from_header(header(REQUEST_ID_HEADER));
        let trace_id = trace::trace_id_hex(header);
        let route = Route::match_path(req.uri().path(), false);
        let method = labels::method(req.method());

        let result = {
            let _in_flight = InFlight::enter(self.metrics.in_flight());
            match self.permits.try_acquire() {
                Ok(_permit) => self.dispatch(req.method(), route).await,
                Err(_) => (Err(ApiError::Overloaded), Freshness::NoStore),
            }
        };

        let (mut response, freshness) = match result {
            (Ok(body), freshness) => (json_response(StatusCode::OK, body), freshness),
            (Err(err), freshness) => (self.error_response(&err, &request_id), freshness),
        };
        freshness.apply(&mut response);
        if let Ok(v) = HeaderValue::from_str(request_id.as_str()) {
            response.headers_mut().insert(REQUEST_ID_HEADER, v);
        }
        let status = response.status().as_u16();
        let elapsed = started.elapsed();
        self.metrics
            .observe_request(route.template(), method, status, elapsed);
        access_log::emit(&AccessLine {
            method,
            path: req.uri().path(),
            route: route.template(),
            status,
            duration: elapsed,
            bytes: hyper::body::Body::size_hint(response.body())
                .exact()
                .unwrap_or(0),
            request_id: request_id.as_str(),
            trace_id: trace_id.as_deref(),
            client,
            http_version: version_label(req.version()),
            cache: None,
            error: None,
        });
        response
    }

    async fn dispatch(
        &self,
        method: &Method,
        route: Route<'_>,
    ) -> (Result<Vec<u8>, ApiError>, Freshness) {
        if matches!(route, Route::Unmatched) {
            return (Err(ApiError::NotFound), Freshness::NoStore);
        }
        if method != Method::GET && method != Method::HEAD {
            return (Err(ApiError::MethodNotAllowed), Freshness::NoStore);
        }
        let version = self.settings.version.as_str();
        match route {
            Route::Buckets => {
                let body = self.aws.list_buckets().await.map(|mut buckets| {
                    let prefix = self.settings.bucket_prefix.as_str();
                    buckets.retain(|b| b.starts_with(prefix));
                    serde_json::to_vec(&BucketsBody {
                        buckets: &buckets,
                        auxiliary_service_version: version,
                    })
                });
                (flatten(body), Freshness::NoStore)
            }
            Route::Parameters => {
                let fetched = self
                    .cached(Route::Parameters.template(), "list".to_owned(), async {
                        self.aws
                            .list_parameters(&self.settings.prefix)
                            .await
                            .map(SsmAnswer::List)
                    })
                    .await;
                match fetched {
                    Ok(f) => {
                        let body = match &f.answer {
                            SsmAnswer::List(parameters) => serde_json::to_vec(&ParametersBody {
                                parameters,
                                auxiliary_service_version: version,
                            })
                            .map_err(|e| ApiError::Internal(e.to_string())),
                            _ => Err(ApiError::Internal("cache kind mismatch".into())),
                        };
                        (body, Freshness::of(&f, self.cache.enabled()))
                    }
                    Err(e) => (Err(e), Freshness::NoStore),
                }
            }
            Route::Parameter(raw) => self.parameter(raw, version).await,
            Route::Unmatched => (Err(ApiError::NotFound), Freshness::NoStore),
        }
    }

    async fn parameter(&self, raw: &str, version: &str) -> (Result<Vec<u8>, ApiError>, Freshness) {
        let full = match ParameterName::from_path_segment(raw)
            .and_then(|name| name.full_name(&self.settings.prefix))
        {
            Ok(full) => full,
            Err(e) => return (Err(e.into()), Freshness::NoStore),
        };
        let expose = self.settings.expose_secure;
        let fetched = self
            .cached(Route::Parameter("").template(), full.clone(), async {
                match self.aws.get_parameter(&full, expose).await {
                    Ok(p) => Ok(SsmAnswer::Parameter(p)),
                    Err(e) if e.kind == AwsErrorKind::NotFound => Ok(SsmAnswer::NotFound),
                    Err(e) => Err(e),
                }
            })
            .await;
        let f = match fetched {
            Ok(f) => f,
            Err(e) => return (Err(e), Freshness::NoStore),
        };
        let freshness = Freshness::of(&f, self.cache.enabled());
        match &f.answer {
            SsmAnswer::NotFound => (Err(ApiError::ParameterNotFound), freshness),
            SsmAnswer::Parameter(p) if p.kind == ParameterKind::SecureString && !expose => {
                (Err(ApiError::SecureParameter), Freshness::NoStore)
            }
            SsmAnswer::Parameter(p) => {
                let body = serde_json::to_vec(&ParameterBody {
                    name: &p.name,
                    value: &p.value,
                    kind: p.kind.as_str(),
                    version: p.version,
                    auxiliary_service_version: version,
                })
                .map_err(|e| ApiError::Internal(e.to_string()));
                // A decrypted secret is never stored by a cache downstream.
                let freshness = if p.kind == ParameterKind::SecureString {
                    Freshness::NoStore
                } else {
                    freshness
                };
                (body, freshness)
            }
            SsmAnswer::List(_) => (
                Err(ApiError::Internal("cache kind mismatch".into())),
                Freshness::NoStore,
            ),
        }
    }

    /// The cached SSM answer for `key`, counted in `aux_cache_lookups_total`.
    async fn cached<F>(
        &self,
        route: &'static str,
        key: String,
        fetch: F,
    ) -> Result<Arc<Fetched>, ApiError>
    where
        F: Future<Output = Result<SsmAnswer, crate::aws::AwsError>>,
    {
        // Boxed: the SDK's futures are large, and moka's wrapper doubles them.
        let (fetched, lookup) = self.cache.get_or_fetch(key, Box::pin(fetch)).await?;
        if self.cache.enabled() {
            self.metrics.observe_cache(route, lookup);
        }
        Ok(fetched)
    }

    /// The one mapping from an error to a response (and its log line).
    fn error_response(&self, err: &ApiError, request_id: &RequestId) -> ApiResponse {
        let code = err.code();
        let status = code.status();
        if status.is_server_error() {
            tracing::warn!(request_id = %request_id, code = code.as_str(), error = %err, "request failed");
        } else {
            tracing::debug!(request_id = %request_id, code = code.as_str(), error = %err, "request refused");
        }
        let body = error_body(
            code,
            &err.public_message(),
            AUX_VERSION_FIELD,
            &self.settings.version,
        );
        let mut response = json_response(status, body);
        if let Some(secs) = code.retry_after_seconds() {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::METHOD_NOT_ALLOWED {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
        }
        response
    }
}

fn flatten(
    r: Result<Result<Vec<u8>, serde_json::Error>, crate::aws::AwsError>,
) -> Result<Vec<u8>, ApiError> {
    match r {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(e)) => Err(ApiError::Internal(e.to_string())),
        Err(e) => Err(e.into()),
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> ApiResponse {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
