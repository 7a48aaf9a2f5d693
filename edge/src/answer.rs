//! The answers the edge sends: the worker's JSON with `main_api_version`
//! added, or an edge-made error. Bodies are final bytes with a known length
//! (every response carries an exact `Content-Length`), prepared once and
//! shared by every request they answer.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use service_common::ErrorCode;
use service_common::api::{EDGE_VERSION_FIELD, error_body};

/// What the worker said about caching its answer (RFC 9111).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WorkerFreshness {
    /// `Cache-Control: no-store`: never stored by the edge.
    pub no_store: bool,
    /// `Cache-Control: max-age`, in seconds.
    pub max_age: Option<u64>,
    /// `Age`, in seconds.
    pub age: u64,
}

impl WorkerFreshness {
    /// Reads `Cache-Control` and `Age` header values.
    pub fn parse(cache_control: Option<&[u8]>, age: Option<&[u8]>) -> Self {
        let mut f = WorkerFreshness {
            age: age
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0),
            ..Self::default()
        };
        let Some(cc) = cache_control.and_then(|v| std::str::from_utf8(v).ok()) else {
            return f;
        };
        for directive in cc.split(',') {
            let directive = directive.trim();
            let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("private") {
                f.no_store = true;
            } else if name.eq_ignore_ascii_case("max-age") || name.eq_ignore_ascii_case("s-maxage")
            {
                if let Ok(v) = value.trim_matches('"').parse::<u64>() {
                    f.max_age = Some(f.max_age.map_or(v, |m| m.min(v)));
                }
            } else if name.eq_ignore_ascii_case("no-cache") {
                f.max_age = Some(0);
            }
        }
        f
    }
}

/// A complete answer, ready to be written (and, if cacheable, cached).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
    /// `Retry-After` seconds, for 503s and 429s.
    pub retry_after: Option<u32>,
    /// The worker's (or the edge's) error code, for error answers.
    pub error_code: Option<Box<str>>,
    /// A strong validator, for `200` answers that may be stored downstream.
    pub etag: Option<Box<str>>,
    /// What the worker said about caching it.
    pub freshness: WorkerFreshness,
}

/// What the edge needs to know of a worker body, read in the same pass that
/// checks it is JSON.
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow, default)]
    error: Option<PeekError<'a>>,
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct PeekError<'a> {
    #[serde(borrow, default)]
    code: Option<Cow<'a, str>>,
}

/// FNV-1a, 64 bits: a stable fingerprint of a body (the same on every edge
/// pod, so a client's `If-None-Match` works whichever pod it reaches).
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Answer {
    /// An error made by the edge itself.
    pub fn error(code: ErrorCode, message: &str, version: &str) -> Self {
        Self {
            status: code.status().as_u16(),
            body: Bytes::from(error_body(code, message, EDGE_VERSION_FIELD, version)),
            retry_after: code.retry_after_seconds(),
            error_code: Some(code.as_str().into()),
            etag: None,
            freshness: WorkerFreshness {
                no_store: true,
                ..WorkerFreshness::default()
            },
        }
    }

    pub fn error_default(code: ErrorCode, version: &str) -> Self {
        Self::error(code, code.default_message(), version)
    }

    /// Decorates a worker answer: its status and body are kept, with
    /// `main_api_version` added to the top-level object (inserted as text
    /// into a body checked to be one JSON object, so nothing is re-encoded).
    /// `None` when the body is not a JSON object. `version` is a validated
    /// `SERVICE_VERSION` (no character needs escaping in JSON).
    pub fn from_worker(
        status: u16,
        body: &[u8],
        retry_after: Option<u32>,
        freshness: WorkerFreshness,
        version: &str,
    ) -> Option<Self> {
        let start = body.iter().position(|c| !c.is_ascii_whitespace())?;
        let end = body.iter().rposition(|c| !c.is_ascii_whitespace())?;
        if body[start] != b'{' || body[end] != b'}' {
            return None;
        }
        let peek: Peek<'_> = serde_json::from_slice(body).ok()?;
        let error_code = peek
            .error
            .and_then(|e| e.code)
            .map(|c| Box::<str>::from(c.as_ref()));
        let secret = peek.kind.as_deref() == Some("SecureString");
        let inner_empty = body[start + 1..end].iter().all(u8::is_ascii_whitespace);
        let mut out = BytesMut::with_capacity(end + EDGE_VERSION_FIELD.len() + version.len() + 8);
        if inner_empty {
            out.extend_from_slice(b"{");
        } else {
            out.extend_from_slice(&body[start..end]);
            out.extend_from_slice(b",");
        }
        out.extend_from_slice(b"\"");
        out.extend_from_slice(EDGE_VERSION_FIELD.as_bytes());
        out.extend_from_slice(b"\":\"");
        out.extend_from_slice(version.as_bytes());
        out.extend_from_slice(b"\"}");
        let body = out.freeze();
        let freshness = WorkerFreshness {
            // A decrypted secret is never stored, here or downstream, even if
            // a worker forgot to say so.
            no_store: freshness.no_store || secret,
            ..freshness
        };
        let etag = (status == 200 && !freshness.no_store)
            .then(|| format!("\"{:016x}\"", fnv1a64(&body)).into_boxed_str());
        Some(Self {
            status,
            body,
            retry_after,
            error_code,
            etag,
            freshness,
        })
    }

    /// A definitive "no" for this key: `404 parameter_not_found` or
    /// `403 secure_parameter`. It replaces any cached `200`.
    pub fn is_definitive_negative(&self) -> bool {
        matches!(
            (self.status, self.error_code.as_deref()),
            (404, Some("parameter_not_found")) | (403, Some("secure_parameter"))
        )
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

    fn worker(status: u16, body: &str) -> Answer {
        Answer::from_worker(
            status,
            body.as_bytes(),
            None,
            WorkerFreshness::default(),
            "9.9",
        )
        .unwrap()
    }

    #[test]
    fn worker_body_gets_the_version_and_keeps_its_fields() {
        let a = worker(
            200,
            r#"{"parameters":["/p/a"],"auxiliary_service_version":"1"}"#,
        );
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(v["main_api_version"], "9.9");
        assert_eq!(v["auxiliary_service_version"], "1");
        assert_eq!(v["parameters"][0], "/p/a");
        assert!(!a.is_definitive_negative());
        assert!(a.etag.as_deref().unwrap().starts_with('"'));
        let empty = worker(200, " {  } \n");
        assert_eq!(&empty.body[..], br#"{"main_api_version":"9.9"}"#);
    }

    #[test]
    fn etags_follow_the_body_and_secrets_get_none() {
        let a = worker(200, r#"{"value":"a"}"#);
        let b = worker(200, r#"{"value":"b"}"#);
        assert_ne!(a.etag, b.etag);
        assert_eq!(a.etag, worker(200, r#"{"value":"a"}"#).etag);
        let secret = worker(200, r#"{"value":"s3cr3t","type":"SecureString"}"#);
        assert!(secret.etag.is_none() && secret.freshness.no_store);
        let error = worker(404, r#"{"error":{"code":"parameter_not_found"}}"#);
        assert!(error.etag.is_none());
    }

    #[test]
    fn worker_errors_keep_status_and_code() {
        let a = worker(
            404,
            r#"{"error":{"code":"parameter_not_found","message":"parameter not found"},"auxiliary_service_version":"1"}"#,
        );
        assert!(a.is_definitive_negative());
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(v["error"]["code"], "parameter_not_found");
        assert_eq!(v["main_api_version"], "9.9");
        assert!(worker(403, r#"{"error":{"code":"secure_parameter"}}"#).is_definitive_negative());
        assert!(
            !worker(404, r#"{"error":{"code":"not_found","message":"x"}}"#)
                .is_definitive_negative()
        );
        assert!(worker(503, r#"{"error":{"code":"aws_throttled"}}"#).is_failure());
    }

    #[test]
    fn non_objects_are_rejected() {
        for bad in [
            "[1,2]",
            "<html>",
            "",
            "{",
            "{\"a\":1}}",
            "{\"a\":}",
            "\"{}\"",
        ] {
            assert!(
                Answer::from_worker(200, bad.as_bytes(), None, WorkerFreshness::default(), "1")
                    .is_none(),
                "{bad}"
            );
        }
    }

    #[test]
    fn worker_freshness_headers() {
        let f = WorkerFreshness::parse(Some(b"public, max-age=30"), Some(b"4"));
        assert_eq!((f.no_store, f.max_age, f.age), (false, Some(30), 4));
        assert!(WorkerFreshness::parse(Some(b"no-store"), None).no_store);
        assert_eq!(
            WorkerFreshness::parse(Some(b"no-cache"), None).max_age,
            Some(0)
        );
        assert_eq!(
            WorkerFreshness::parse(None, Some(b"x")),
            WorkerFreshness::default()
        );
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
