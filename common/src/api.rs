//! The public API's routes, error codes and JSON shapes.
//!
//! Both services answer the same three routes; the edge also accepts them
//! under `/api/`. Every error body has one shape,
//! `{"error": {"code": "...", "message": "..."}, "<service>_version": "..."}`,
//! and the code decides the status: [`ErrorCode::status`] is the only place
//! that maps a code to HTTP.

use http::StatusCode;
use serde::Serialize;

/// A matched route. Raw paths never leave this type: metrics and logs use
/// [`Route::template`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    Buckets,
    Parameters,
    /// The still percent-encoded remainder after `/parameter/`.
    Parameter(&'a str),
    Unmatched,
}

impl<'a> Route<'a> {
    /// Matches a request path (without query). With `api_alias`, the same
    /// routes are also served under `/api/`.
    pub fn match_path(path: &'a str, api_alias: bool) -> Self {
        let path = match path.strip_prefix("/api") {
            Some(rest) if api_alias && rest.starts_with('/') => rest,
            _ => path,
        };
        match path {
            "/s3-buckets" => Route::Buckets,
            "/parameters" => Route::Parameters,
            _ => match path.strip_prefix("/parameter/") {
                Some(rest) => Route::Parameter(rest),
                None => Route::Unmatched,
            },
        }
    }

    /// The bounded label metrics and logs use.
    pub fn template(&self) -> &'static str {
        match self {
            Route::Buckets => "/s3-buckets",
            Route::Parameters => "/parameters",
            Route::Parameter(_) => "/parameter/{name}",
            Route::Unmatched => "unmatched",
        }
    }
}

/// Every error the API can answer with. The string codes are a contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidParameterName,
    SecureParameter,
    ParameterNotFound,
    NotFound,
    MethodNotAllowed,
    /// AWS throttled the call, after the SDK's own retries.
    AwsThrottled,
    /// AWS could not be reached or answered 5xx, after retries.
    AwsUnavailable,
    AwsTimeout,
    /// Any other AWS failure (access denied, validation, ...).
    AwsError,
    /// The worker could not be reached (edge only).
    UpstreamUnavailable,
    /// The worker did not answer in time (edge only).
    UpstreamTimeout,
    /// The worker's answer could not be understood (edge only).
    UpstreamInvalid,
    /// Too many requests in flight at this instance.
    Overloaded,
    /// The instance is shutting down.
    ShuttingDown,
    /// This client started too many worker calls (cache misses) recently.
    RateLimited,
    /// The request could not be parsed as HTTP.
    BadRequest,
    /// The request head exceeds the size the server accepts.
    HeaderTooLarge,
    /// The client did not send a complete request head in time.
    RequestTimeout,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidParameterName => "invalid_parameter_name",
            ErrorCode::SecureParameter => "secure_parameter",
            ErrorCode::ParameterNotFound => "parameter_not_found",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::AwsThrottled => "aws_throttled",
            ErrorCode::AwsUnavailable => "aws_unavailable",
            ErrorCode::AwsTimeout => "aws_timeout",
            ErrorCode::AwsError => "aws_error",
            ErrorCode::UpstreamUnavailable => "upstream_unavailable",
            ErrorCode::UpstreamTimeout => "upstream_timeout",
            ErrorCode::UpstreamInvalid => "upstream_invalid_response",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::HeaderTooLarge => "request_header_fields_too_large",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::Internal => "internal_error",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidParameterName | ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::HeaderTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::SecureParameter => StatusCode::FORBIDDEN,
            ErrorCode::ParameterNotFound | ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::AwsThrottled
            | ErrorCode::AwsUnavailable
            | ErrorCode::UpstreamUnavailable
            | ErrorCode::Overloaded
            | ErrorCode::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::AwsTimeout | ErrorCode::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::AwsError | ErrorCode::UpstreamInvalid => StatusCode::BAD_GATEWAY,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Seconds a client should wait before retrying, for the 503s and 429s.
    pub fn retry_after_seconds(self) -> Option<u32> {
        matches!(
            self.status(),
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        )
        .then_some(RETRY_AFTER_SECONDS)
    }

    /// The client-facing message: fixed text, never internal detail.
    pub fn default_message(self) -> &'static str {
        match self {
            ErrorCode::InvalidParameterName => "invalid parameter name",
            ErrorCode::SecureParameter => "SecureString parameters are not exposed by this service",
            ErrorCode::ParameterNotFound => "parameter not found",
            ErrorCode::NotFound => "no such route",
            ErrorCode::MethodNotAllowed => "method not allowed; use GET or HEAD",
            ErrorCode::AwsThrottled => "AWS is throttling requests; retry later",
            ErrorCode::AwsUnavailable => "AWS is unavailable; retry later",
            ErrorCode::AwsTimeout => "AWS did not answer in time",
            ErrorCode::AwsError => "AWS call failed",
            ErrorCode::UpstreamUnavailable => "auxiliary service unavailable; retry later",
            ErrorCode::UpstreamTimeout => "auxiliary service did not answer in time",
            ErrorCode::UpstreamInvalid => "auxiliary service answered with an invalid response",
            ErrorCode::Overloaded => "too many requests in flight; retry later",
            ErrorCode::ShuttingDown => "shutting down; retry on another instance",
            ErrorCode::RateLimited => "too many uncached lookups from this client; retry later",
            ErrorCode::BadRequest => "malformed HTTP request",
            ErrorCode::HeaderTooLarge => "request head too large",
            ErrorCode::RequestTimeout => "request head not received in time",
            ErrorCode::Internal => "internal error",
        }
    }
}

/// `Retry-After` sent with every 503 and 429.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// The `allow` header sent with 405.
pub const ALLOWED_METHODS: &str = "GET, HEAD";

/// Name of the version field the worker adds to every body.
pub const AUX_VERSION_FIELD: &str = "auxiliary_service_version";
/// Name of the version field the edge adds to every body.
pub const EDGE_VERSION_FIELD: &str = "main_api_version";

#[derive(Debug, Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
}

/// Serialises an error body with the given version field.
pub fn error_body(code: ErrorCode, message: &str, version_field: &str, version: &str) -> Vec<u8> {
    let mut map = serde_json::Map::with_capacity(2);
    map.insert(
        "error".to_owned(),
        serde_json::json!(ErrorDetail {
            code: code.as_str(),
            message
        }),
    );
    map.insert(version_field.to_owned(), version.into());
    // Serialising a map of strings cannot fail.
    serde_json::to_vec(&map).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(Route::match_path("/s3-buckets", false), Route::Buckets);
        assert_eq!(Route::match_path("/parameters", false), Route::Parameters);
        assert_eq!(
            Route::match_path("/parameter/db/host", false),
            Route::Parameter("db/host")
        );
        assert_eq!(
            Route::match_path("/parameter/", false),
            Route::Parameter("")
        );
        assert_eq!(Route::match_path("/parameter", false), Route::Unmatched);
        assert_eq!(Route::match_path("/parameters/", false), Route::Unmatched);
        assert_eq!(
            Route::match_path("/api/parameters", false),
            Route::Unmatched
        );
        assert_eq!(
            Route::match_path("/api/parameters", true),
            Route::Parameters
        );
        assert_eq!(
            Route::match_path("/api/parameter/x", true),
            Route::Parameter("x")
        );
        assert_eq!(Route::match_path("/apiparameters", true), Route::Unmatched);
        assert_eq!(Route::match_path("/", true), Route::Unmatched);
        assert_eq!(Route::Parameter("x").template(), "/parameter/{name}");
    }

    #[test]
    fn method_not_allowed_names_every_allowed_method() {
        let message = ErrorCode::MethodNotAllowed.default_message();
        for method in ALLOWED_METHODS.split(", ") {
            assert!(message.contains(method), "{message:?} omits {method}");
        }
    }

    #[test]
    fn error_body_shape() {
        let body = error_body(
            ErrorCode::NotFound,
            "no such route",
            AUX_VERSION_FIELD,
            "1.2.3",
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "not_found");
        assert_eq!(v["error"]["message"], "no such route");
        assert_eq!(v["auxiliary_service_version"], "1.2.3");
        assert_eq!(v.as_object().unwrap().len(), 2);
    }

    #[test]
    fn statuses_and_retry_after() {
        assert_eq!(ErrorCode::InvalidParameterName.status(), 400);
        assert_eq!(ErrorCode::SecureParameter.status(), 403);
        assert_eq!(ErrorCode::ParameterNotFound.status(), 404);
        assert_eq!(ErrorCode::MethodNotAllowed.status(), 405);
        assert_eq!(ErrorCode::AwsThrottled.status(), 503);
        assert_eq!(ErrorCode::AwsTimeout.status(), 504);
        assert_eq!(ErrorCode::AwsError.status(), 502);
        assert_eq!(ErrorCode::AwsThrottled.retry_after_seconds(), Some(1));
        assert_eq!(ErrorCode::AwsError.retry_after_seconds(), None);
        assert_eq!(ErrorCode::RateLimited.status(), 429);
        assert_eq!(ErrorCode::RateLimited.retry_after_seconds(), Some(1));
        assert_eq!(ErrorCode::HeaderTooLarge.status(), 431);
        assert_eq!(ErrorCode::BadRequest.status(), 400);
    }
}
