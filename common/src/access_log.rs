//! The access log both services write: one line per answered request, with
//! the same field names in both (`service` tells them apart).
//!
//! JSON (`LOG_FORMAT=json`):
//!
//! ```text
//! {"timestamp":"2026-12-01T01:02:03.123456Z","level":"INFO","target":"access",
//!  "message":"request","service":"edge","method":"GET","path":"/parameter/db/host",
//!  "route":"/parameter/{name}","status":200,"duration_ms":0.412,"bytes":159,
//!  "request_id":"…","trace_id":"…","client":"10.0.0.7:51234",
//!  "http_version":"HTTP/1.1","cache":"HIT"}
//! ```
//!
//! `cache` and `error` appear only when set. Lines are formatted here without
//! going through `tracing`'s formatter (this is the per-request hot path) and
//! go to the same lossy writer thread as every other log line. They are
//! written when the `access` target is enabled at `info` by `RUST_LOG`.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

use crate::clock;
use crate::telemetry::{self, LogFormat};

/// The `target` of access lines (what `RUST_LOG` filters on).
pub const TARGET: &str = "access";

/// Longest path logged, in bytes; longer paths are cut (with `…`).
const MAX_PATH: usize = 256;

/// One answered request.
#[derive(Debug, Clone, Copy)]
pub struct AccessLine<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// Route template (bounded), as in metrics.
    pub route: &'static str,
    /// `499` when the client left before its answer was written.
    pub status: u16,
    pub duration: Duration,
    /// Body bytes sent.
    pub bytes: u64,
    pub request_id: &'a str,
    pub trace_id: Option<&'a str>,
    pub client: Option<SocketAddr>,
    pub http_version: &'static str,
    /// Edge only: `HIT`, `MISS`, `STALE` or `BYPASS`.
    pub cache: Option<&'static str>,
    /// A short machine-readable reason when the exchange did not end
    /// normally (e.g. `client_closed`).
    pub error: Option<&'static str>,
}

/// Whether access lines are being written (cheap: a cached filter check).
pub fn enabled() -> bool {
    tracing::enabled!(target: "access", tracing::Level::INFO) && telemetry::sink().is_some()
}

thread_local! {
    static LINE: RefCell<String> = RefCell::new(String::with_capacity(512));
}

/// Writes `line` if access logging is enabled. Never blocks: when the log
/// writer is behind, the line is dropped and counted.
pub fn emit(line: &AccessLine<'_>) {
    if !enabled() {
        return;
    }
    let Some(sink) = telemetry::sink() else {
        return;
    };
    LINE.with(|buf| {
        let Ok(mut out) = buf.try_borrow_mut() else {
            return;
        };
        out.clear();
        match sink.format {
            LogFormat::Json => format_json(&mut out, sink.service, line),
            LogFormat::Text => format_text(&mut out, sink.service, line, sink.ansi),
        }
        out.push('\n');
        let _ = sink.writer.make_writer().write_all(out.as_bytes());
    });
}

/// Cuts `path` to [`MAX_PATH`] bytes on a character boundary.
fn clipped(path: &str) -> (&str, bool) {
    if path.len() <= MAX_PATH {
        return (path, false);
    }
    let mut end = MAX_PATH;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    (&path[..end], true)
}

/// Appends `s` as a JSON string body (without quotes).
fn json_escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

fn push_duration_ms(out: &mut String, d: Duration) {
    let micros = d.as_micros();
    let _ = write!(out, "{}.{:03}", micros / 1000, micros % 1000);
}

fn json_str(out: &mut String, key: &str, value: &str) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":\"");
    json_escape(out, value);
    out.push('"');
}

fn format_json(out: &mut String, service: &str, l: &AccessLine<'_>) {
    out.push_str("{\"timestamp\":\"");
    clock::push_rfc3339_micros(out);
    out.push_str("\",\"level\":\"INFO\",\"target\":\"access\",\"message\":\"request\"");
    json_str(out, "service", service);
    json_str(out, "method", l.method);
    let (path, cut) = clipped(l.path);
    json_str(out, "path", path);
    if cut {
        out.pop();
        out.push_str("…\"");
    }
    json_str(out, "route", l.route);
    let _ = write!(out, ",\"status\":{}", l.status);
    out.push_str(",\"duration_ms\":");
    push_duration_ms(out, l.duration);
    let _ = write!(out, ",\"bytes\":{}", l.bytes);
    json_str(out, "request_id", l.request_id);
    if let Some(t) = l.trace_id {
        json_str(out, "trace_id", t);
    }
    if let Some(c) = l.client {
        let _ = write!(out, ",\"client\":\"{c}\"");
    }
    json_str(out, "http_version", l.http_version);
    if let Some(c) = l.cache {
        json_str(out, "cache", c);
    }
    if let Some(e) = l.error {
        json_str(out, "error", e);
    }
    out.push('}');
}

fn format_text(out: &mut String, service: &str, l: &AccessLine<'_>, ansi: bool) {
    clock::push_rfc3339_micros(out);
    out.push_str(if ansi {
        "  \x1b[32m INFO\x1b[0m access: request"
    } else {
        "  INFO access: request"
    });
    let _ = write!(out, " service={service} method={} path=\"", l.method);
    let (path, cut) = clipped(l.path);
    json_escape(out, path);
    if cut {
        out.push('…');
    }
    let _ = write!(out, "\" route={} status={} duration_ms=", l.route, l.status);
    push_duration_ms(out, l.duration);
    let _ = write!(out, " bytes={} request_id={}", l.bytes, l.request_id);
    if let Some(t) = l.trace_id {
        let _ = write!(out, " trace_id={t}");
    }
    if let Some(c) = l.client {
        let _ = write!(out, " client={c}");
    }
    let _ = write!(out, " http_version={}", l.http_version);
    if let Some(c) = l.cache {
        let _ = write!(out, " cache={c}");
    }
    if let Some(e) = l.error {
        let _ = write!(out, " error={e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(path: &'a str) -> AccessLine<'a> {
        AccessLine {
            method: "GET",
            path,
            route: "/parameter/{name}",
            status: 200,
            duration: Duration::from_micros(1_234),
            bytes: 159,
            request_id: "req-1",
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736"),
            client: Some("10.0.0.7:51234".parse().unwrap()),
            http_version: "HTTP/1.1",
            cache: Some("HIT"),
            error: None,
        }
    }

    #[test]
    fn json_lines_parse_and_carry_every_field() {
        let mut out = String::new();
        format_json(&mut out, "edge", &line("/parameter/a\"b\\c\u{1}"));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["target"], TARGET);
        assert_eq!(v["service"], "edge");
        assert_eq!(v["path"], "/parameter/a\"b\\c\u{1}");
        assert_eq!(v["status"], 200);
        assert_eq!(v["duration_ms"], 1.234);
        assert_eq!(v["bytes"], 159);
        assert_eq!(v["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(v["client"], "10.0.0.7:51234");
        assert_eq!(v["cache"], "HIT");
        assert!(v.get("error").is_none());
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn long_paths_are_cut_on_a_character_boundary() {
        let long = format!("/{}", "é".repeat(400));
        let mut out = String::new();
        format_json(&mut out, "edge", &line(&long));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let path = v["path"].as_str().unwrap();
        assert!(path.len() <= MAX_PATH + '…'.len_utf8(), "{}", path.len());
        assert!(path.ends_with('…'));
    }

    #[test]
    fn text_lines_have_no_escape_codes_unless_asked() {
        let mut out = String::new();
        format_text(&mut out, "aux-worker", &line("/x"), false);
        assert!(!out.contains('\x1b'), "{out}");
        assert!(out.contains("status=200") && out.contains("service=aux-worker"));
    }
}
