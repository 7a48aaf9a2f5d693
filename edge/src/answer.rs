//! The answers the edge sends: the worker's JSON with `main_api_version`
//! added, or an edge-made error. Bodies are final bytes with a known length,
//! so every response carries an exact `Content-Length`.

use std::time::Instant;

use bytes::Bytes;
use service_common::ErrorCode;
use service_common::api::{EDGE_VERSION_FIELD, error_body};

/// A complete answer, ready to be written (and, if cacheable, cached).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
    /// `Retry-After` seconds, for 503s.
    pub retry_after: Option<u32>,
    /// When the worker produced it; `Age` is counted from here.
    pub stored_at: Instant,
    /// The worker's (or the edge's) error code, for error answers.
    pub error_code: Option<String>,
}

impl Answer {
    /// An error made by the edge itself.
    pub fn error(code: ErrorCode, message: &str, version: &str) -> Self {
        Self {
            status: code.status().as_u16(),
            body: Bytes::from(error_body(code, message, EDGE_VERSION_FIELD, version)),
            retry_after: code.retry_after_seconds(),
            stored_at: Instant::now(),
            error_code: Some(code.as_str().to_owned()),
        }
    }

    pub fn error_default(code: ErrorCode, version: &str) -> Self {
        Self::error(code, code.default_message(), version)
    }

    /// Decorates a worker answer: its status and body are kept, with
    /// `main_api_version` added. `None` when the body is not a JSON object.
    pub fn from_worker(
        status: u16,
        body: &[u8],
        retry_after: Option<u32>,
        version: &str,
    ) -> Option<Self> {
        let mut map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(body).ok()?;
        let error_code = map
            .get("error")
            .and_then(|e| e.get("code"))
            .and_then(|c| c.as_str())
            .map(str::to_owned);
        map.insert(EDGE_VERSION_FIELD.to_owned(), version.into());
        let body = serde_json::to_vec(&map).ok()?;
        Some(Self {
            status,
            body: Bytes::from(body),
            retry_after,
            stored_at: Instant::now(),
            error_code,
        })
    }

    /// A `404 parameter_not_found`: cached briefly.
    pub fn is_negative(&self) -> bool {
        self.status == 404
            && self.error_code.as_deref() == Some(ErrorCode::ParameterNotFound.as_str())
    }

    /// The worker (or AWS behind it) failed: a stale answer may be served
    /// instead.
    pub fn is_failure(&self) -> bool {
        self.status >= 500
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_body_gets_the_version_and_keeps_its_fields() {
        let a = Answer::from_worker(
            200,
            br#"{"parameters":["/p/a"],"auxiliary_service_version":"1"}"#,
            None,
            "9.9",
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(v["main_api_version"], "9.9");
        assert_eq!(v["auxiliary_service_version"], "1");
        assert_eq!(v["parameters"][0], "/p/a");
        assert!(!a.is_negative());
    }

    #[test]
    fn worker_errors_keep_status_and_code() {
        let a = Answer::from_worker(
            404,
            br#"{"error":{"code":"parameter_not_found","message":"parameter not found"},"auxiliary_service_version":"1"}"#,
            None,
            "9.9",
        )
        .unwrap();
        assert!(a.is_negative());
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(v["error"]["code"], "parameter_not_found");
        assert_eq!(v["main_api_version"], "9.9");
        let route_404 = Answer::from_worker(
            404,
            br#"{"error":{"code":"not_found","message":"x"}}"#,
            None,
            "1",
        )
        .unwrap();
        assert!(!route_404.is_negative());
    }

    #[test]
    fn non_objects_are_rejected() {
        assert!(Answer::from_worker(200, b"[1,2]", None, "1").is_none());
        assert!(Answer::from_worker(200, b"<html>", None, "1").is_none());
        assert!(Answer::from_worker(200, b"", None, "1").is_none());
    }

    #[test]
    fn edge_errors() {
        let a = Answer::error_default(ErrorCode::UpstreamUnavailable, "2.0");
        assert_eq!(a.status, 503);
        assert_eq!(a.retry_after, Some(1));
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(v["error"]["code"], "upstream_unavailable");
        assert_eq!(v["main_api_version"], "2.0");
    }
}
