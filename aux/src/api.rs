//! The API: routing, handlers and the one place errors become responses.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use service_common::api::{ALLOWED_METHODS, AUX_VERSION_FIELD, error_body};
use service_common::request::{REQUEST_ID_HEADER, TRACEPARENT_HEADER};
use service_common::{ParameterName, ParameterPrefix, RequestId, Route, TraceParent, labels};
use tokio::sync::Semaphore;

use crate::aws::{Aws, ParameterKind};
use crate::error::ApiError;
use crate::metrics::Metrics;

/// Everything a request handler needs, shared by all connections.
#[derive(Debug)]
pub struct App {
    aws: Aws,
    prefix: ParameterPrefix,
    expose_secure: bool,
    version: String,
    metrics: Metrics,
    permits: Semaphore,
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

impl App {
    pub fn new(
        aws: Aws,
        prefix: ParameterPrefix,
        expose_secure: bool,
        version: String,
        metrics: Metrics,
        max_concurrent: usize,
    ) -> Self {
        Self {
            aws,
            prefix,
            expose_secure,
            version,
            metrics,
            permits: Semaphore::new(max_concurrent),
        }
    }

    /// Serves one request; never fails, never panics on input.
    pub async fn handle<B>(self: Arc<Self>, req: Request<B>) -> ApiResponse {
        let started = Instant::now();
        let headers = req.headers();
        let request_id =
            RequestId::from_header(headers.get(REQUEST_ID_HEADER).map(HeaderValue::as_bytes));
        let trace = headers
            .get(TRACEPARENT_HEADER)
            .and_then(|v| TraceParent::parse(v.as_bytes()));
        let route = Route::match_path(req.uri().path(), false);
        let method = labels::method(req.method());

        self.metrics.in_flight().inc();
        let result = match self.permits.try_acquire() {
            Ok(_permit) => self.dispatch(req.method(), route).await,
            Err(_) => Err(ApiError::Overloaded),
        };
        self.metrics.in_flight().dec();

        let mut response = match result {
            Ok(body) => json_response(StatusCode::OK, body),
            Err(err) => self.error_response(&err, &request_id),
        };
        if let Ok(v) = HeaderValue::from_str(request_id.as_str()) {
            response.headers_mut().insert(REQUEST_ID_HEADER, v);
        }
        let status = response.status().as_u16();
        let elapsed = started.elapsed();
        self.metrics
            .observe_request(route.template(), method, status, elapsed);
        tracing::info!(
            target: "access",
            request_id = %request_id,
            trace_id = trace.as_ref().map(TraceParent::trace_id),
            method,
            route = route.template(),
            status,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
        response
    }

    async fn dispatch(&self, method: &Method, route: Route<'_>) -> Result<Vec<u8>, ApiError> {
        if matches!(route, Route::Unmatched) {
            return Err(ApiError::NotFound);
        }
        if method != Method::GET && method != Method::HEAD {
            return Err(ApiError::MethodNotAllowed);
        }
        let version = self.version.as_str();
        let body = match route {
            Route::Buckets => {
                let buckets = self.aws.list_buckets().await?;
                serde_json::to_vec(&BucketsBody {
                    buckets: &buckets,
                    auxiliary_service_version: version,
                })
            }
            Route::Parameters => {
                let parameters = self.aws.list_parameters(&self.prefix).await?;
                serde_json::to_vec(&ParametersBody {
                    parameters: &parameters,
                    auxiliary_service_version: version,
                })
            }
            Route::Parameter(raw) => {
                let name = ParameterName::from_path_segment(raw)?;
                let full = name.full_name(&self.prefix)?;
                let p = self.aws.get_parameter(&full, self.expose_secure).await?;
                if p.kind == ParameterKind::SecureString && !self.expose_secure {
                    return Err(ApiError::SecureParameter);
                }
                serde_json::to_vec(&ParameterBody {
                    name: &p.name,
                    value: &p.value,
                    kind: p.kind.as_str(),
                    version: p.version,
                    auxiliary_service_version: version,
                })
            }
            Route::Unmatched => return Err(ApiError::NotFound),
        };
        body.map_err(|e| ApiError::Internal(e.to_string()))
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
            &self.version,
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

fn json_response(status: StatusCode, body: Vec<u8>) -> ApiResponse {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
