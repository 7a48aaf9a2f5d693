//! A [`Reply`] on the wire: the one place that decides every response
//! header, for HTTP/1 (written as bytes, head and body in one write) and
//! HTTP/2 (a Pingora [`ResponseHeader`]).
//!
//! Every answer carries `content-type`, an exact `content-length`, `date`,
//! `x-request-id`, `traceparent`, `x-cache` and `cache-control`; `age`,
//! `etag`, `retry-after`, `allow` and `strict-transport-security` when they
//! apply. A `304` carries the same validators and freshness, and no body.

use bytes::Bytes;
use http::header::{
    AGE, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, DATE, ETAG, RETRY_AFTER,
    STRICT_TRANSPORT_SECURITY,
};
use pingora::http::ResponseHeader;
use service_common::api::ALLOWED_METHODS;
use service_common::clock;
use service_common::request::REQUEST_ID_HEADER;
use service_common::trace::TRACEPARENT;

use crate::app::Reply;
use crate::metrics::CacheResult;

pub const X_CACHE: &str = "x-cache";
const JSON: &str = "application/json";

/// The status a reply is sent with.
pub fn status(reply: &Reply) -> u16 {
    if reply.not_modified {
        304
    } else {
        reply.answer.status
    }
}

/// Body bytes a reply sends (none for `HEAD` and `304`).
pub fn body_len(reply: &Reply, head: bool) -> usize {
    if head || reply.not_modified {
        0
    } else {
        reply.answer.body.len()
    }
}

fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown")
}

fn push_num(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// How an HTTP/1 connection continues after this answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Keep it open; nothing to say (HTTP/1.1 default).
    KeepAlive,
    /// Keep it open and say so (an HTTP/1.0 client asked for keep-alive).
    KeepAliveAnnounced,
    /// `Connection: close`, then close.
    Close,
}

/// The status line and the headers every answer starts with, for the usual
/// statuses (one copy instead of several).
fn status_prefix(status: u16) -> Option<&'static [u8]> {
    Some(match status {
        200 => b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n",
        304 => b"HTTP/1.1 304 Not Modified\r\ncontent-type: application/json\r\n",
        404 => b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n",
        _ => return None,
    })
}

/// Appends the whole HTTP/1.1 response (head, and the body unless `head`).
pub fn write_h1(
    out: &mut Vec<u8>,
    reply: &Reply,
    head: bool,
    hsts: Option<&str>,
    persistence: Persistence,
) {
    let status = status(reply);
    let answer = &reply.answer;
    out.reserve(384 + answer.body.len());
    match status_prefix(status) {
        Some(prefix) => out.extend_from_slice(prefix),
        None => {
            out.extend_from_slice(b"HTTP/1.1 ");
            push_num(out, u64::from(status));
            out.push(b' ');
            out.extend_from_slice(reason(status).as_bytes());
            out.extend_from_slice(b"\r\ncontent-type: application/json\r\n");
        }
    }
    if status != 304 {
        out.extend_from_slice(b"content-length: ");
        push_num(out, answer.body.len() as u64);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"date: ");
    clock::push_http_date(out);
    out.extend_from_slice(b"\r\nx-request-id: ");
    out.extend_from_slice(reply.request_id.as_str().as_bytes());
    out.extend_from_slice(b"\r\ntraceparent: ");
    out.extend_from_slice(reply.trace.as_str().as_bytes());
    out.extend_from_slice(match reply.cache {
        CacheResult::Hit => b"\r\nx-cache: HIT\r\n",
        CacheResult::Miss => b"\r\nx-cache: MISS\r\n",
        CacheResult::Stale => b"\r\nx-cache: STALE\r\n",
        CacheResult::Bypass => b"\r\nx-cache: BYPASS\r\n",
    });
    if let Some(age) = reply.age {
        out.extend_from_slice(b"age: ");
        push_num(out, age);
        out.extend_from_slice(b"\r\n");
    }
    match (reply.max_age, &answer.etag) {
        (Some(max_age), Some(etag)) => {
            out.extend_from_slice(b"cache-control: max-age=");
            push_num(out, max_age);
            out.extend_from_slice(b"\r\netag: ");
            out.extend_from_slice(etag.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        _ => out.extend_from_slice(b"cache-control: no-store\r\n"),
    }
    if let Some(secs) = answer.retry_after {
        out.extend_from_slice(b"retry-after: ");
        push_num(out, u64::from(secs));
        out.extend_from_slice(b"\r\n");
    }
    if status == 405 {
        push_header(out, "allow", ALLOWED_METHODS.as_bytes());
    }
    if let Some(v) = hsts {
        push_header(out, "strict-transport-security", v.as_bytes());
    }
    out.extend_from_slice(match persistence {
        Persistence::KeepAlive => b"\r\n",
        Persistence::KeepAliveAnnounced => b"connection: keep-alive\r\n\r\n",
        Persistence::Close => b"connection: close\r\n\r\n",
    });
    if !head && status != 304 {
        out.extend_from_slice(&answer.body);
    }
}

/// The HTTP/2 response head for `reply`, and the body to send after it.
pub fn h2(
    reply: &Reply,
    head: bool,
    hsts: Option<&str>,
) -> pingora::Result<(ResponseHeader, Option<Bytes>)> {
    let status = status(reply);
    let answer = &reply.answer;
    let mut resp = ResponseHeader::build(status, Some(12))?;
    resp.insert_header(CONTENT_TYPE, JSON)?;
    if status != 304 {
        resp.insert_header(CONTENT_LENGTH, answer.body.len())?;
    }
    resp.insert_header(DATE, clock::http_date_now())?;
    resp.insert_header(REQUEST_ID_HEADER, reply.request_id.as_str())?;
    resp.insert_header(TRACEPARENT, reply.trace.as_str())?;
    resp.insert_header(X_CACHE, reply.cache.header())?;
    if let Some(age) = reply.age {
        resp.insert_header(AGE, age)?;
    }
    match (reply.max_age, &answer.etag) {
        (Some(max_age), Some(etag)) => {
            resp.insert_header(CACHE_CONTROL, format!("max-age={max_age}"))?;
            resp.insert_header(ETAG, etag.as_ref())?;
        }
        _ => resp.insert_header(CACHE_CONTROL, "no-store")?,
    }
    if let Some(secs) = answer.retry_after {
        resp.insert_header(RETRY_AFTER, secs)?;
    }
    if status == 405 {
        resp.insert_header(ALLOW, ALLOWED_METHODS)?;
    }
    if let Some(v) = hsts {
        resp.insert_header(STRICT_TRANSPORT_SECURITY, v)?;
    }
    let body = (!head && status != 304).then(|| answer.body.clone());
    Ok((resp, body))
}
