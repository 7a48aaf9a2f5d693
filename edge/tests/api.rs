//! The edge's public contract end to end: moto seeded with the demo data, the
//! real worker in-process, the built `edge` binary in front of it, and real
//! clients (hyper for HTTP/1.1, raw sockets for HTTP/1.0, keep-alive and
//! HEAD framing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use platform_testkit::{Moto, Worker, demo_parameter_names, get, send};
use support::{Edge, raw_request, read_response, sample};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const EDGE_VERSION: &str = "main_api_version";
const AUX_VERSION: &str = "auxiliary_service_version";

async fn stack(env: &[(&str, &str)]) -> (Worker, Edge) {
    let worker = Worker::start(Moto::shared(), &[]).await;
    let edge = Edge::start(&worker.base_url(), env).await;
    (worker, edge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_with_both_versions_and_caches_parameters() {
    let (_worker, edge) = stack(&[]).await;

    let res = get(edge.http, "/s3-buckets").await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    assert_eq!(res.header("content-type"), Some("application/json"));
    let body = res.json();
    assert_eq!(body[EDGE_VERSION], "test-edge");
    assert_eq!(body[AUX_VERSION], "test-aux");
    assert!(
        body["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b == "kantox-challenge-dev-bucket")
    );
    assert_eq!(
        res.header("x-cache"),
        Some("BYPASS"),
        "/s3-buckets is never cached"
    );
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert_eq!(res.header("etag"), None);
    assert_eq!(
        res.header("content-length"),
        Some(res.body.len().to_string().as_str())
    );

    let res = get(edge.http, "/parameters").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("x-cache"), Some("MISS"));
    assert_eq!(res.header("age"), Some("0"));
    let names: Vec<String> = res.json()["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, demo_parameter_names());
    assert_eq!(res.json()[EDGE_VERSION], "test-edge");
    assert_eq!(res.json()[AUX_VERSION], "test-aux");

    // The /api/ alias shares the cache entry.
    let res = get(edge.http, "/api/parameters").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("x-cache"), Some("HIT"));
    assert!(res.header("age").is_some());

    let res = get(edge.http, "/parameter/param1").await;
    assert_eq!(res.status, 200);
    // Fresh for what is left of the worker's own freshness (max-age minus Age).
    let max_age: u64 = res
        .header("cache-control")
        .and_then(|v| v.strip_prefix("max-age="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("cache-control: {:?}", res.header("cache-control")));
    assert!((28..=30).contains(&max_age), "{max_age}");
    assert!(
        res.header("etag")
            .is_some_and(|t| t.starts_with('"') && t.len() == 18)
    );
    let body = res.json();
    assert_eq!(body["name"], "/kantox-challenge/dev/param1");
    assert_eq!(body["value"], "value1");
    assert_eq!(body[EDGE_VERSION], "test-edge");
    assert_eq!(body[AUX_VERSION], "test-aux");
    assert_eq!(res.header("x-cache"), Some("MISS"));
    let res = get(edge.http, "/api/parameter/param1").await;
    assert_eq!(res.header("x-cache"), Some("HIT"));
    assert_eq!(res.json()["value"], "value1");

    // Nested names, encoded or not, are one entry.
    let res = get(edge.http, "/parameter/db/host").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["value"], "db.dev.internal");
    let res = get(edge.http, "/parameter/db%2Fhost").await;
    assert_eq!(res.header("x-cache"), Some("HIT"));
    assert_eq!(res.json()["name"], "/kantox-challenge/dev/db/host");

    let m = edge.metrics().await;
    assert_eq!(
        sample(
            &m,
            "edge_cache_lookups_total",
            &[r#"route="/parameters""#, r#"result="hit""#]
        ),
        Some(1.0),
        "{m}"
    );
    // Request counters are written in the logging phase, just after the
    // answer went out: allow them a moment.
    edge.wait_for_sample(
        "edge_http_requests_total",
        &[
            r#"route="/parameter/{name}""#,
            r#"method="GET""#,
            r#"status_class="2xx""#,
        ],
        4.0,
    )
    .await;
    assert_eq!(
        sample(&m, "edge_build_info", &[r#"version="test-edge""#]),
        Some(1.0)
    );
    assert_eq!(sample(&m, "edge_ready", &[]), Some(1.0));
    assert!(sample(&m, "edge_cache_entries", &[]).unwrap() >= 3.0, "{m}");
    assert!(
        sample(
            &m,
            "edge_upstream_duration_seconds_count",
            &[r#"route="/s3-buckets""#]
        )
        .is_some()
    );
    assert_eq!(
        sample(
            &m,
            "edge_upstream_requests_total",
            &[r#"route="/parameter/{name}""#, r#"outcome="ok""#]
        ),
        Some(2.0),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_json_with_the_version_and_invalid_names_never_reach_the_worker() {
    let (worker, edge) = stack(&[]).await;

    let res = get(edge.http, "/nope").await;
    assert_eq!(res.status, 404);
    assert_eq!(res.error_code(), "not_found");
    assert_eq!(res.json()[EDGE_VERSION], "test-edge");

    let res = send(edge.http, "POST", "/parameters", &[]).await;
    assert_eq!(res.status, 405);
    assert_eq!(res.header("allow"), Some("GET, HEAD"));
    assert_eq!(res.error_code(), "method_not_allowed");

    // Invalid names: the same 400 the worker gives, without a worker call.
    for target in [
        "/parameter/a%252Fb",
        "/parameter/..%2Fprod%2Fparam1",
        "/parameter/a%20b",
        "/api/parameter/x//y",
    ] {
        let from_edge = get(edge.http, target).await;
        let from_worker = get(worker.api, target.trim_start_matches("/api")).await;
        assert_eq!(from_edge.status, 400, "{target}");
        assert_eq!(from_edge.status, from_worker.status, "{target}");
        assert_eq!(
            from_edge.json()["error"],
            from_worker.json()["error"],
            "{target}"
        );
        assert_eq!(from_edge.json()[EDGE_VERSION], "test-edge");
    }
    let m = edge.metrics().await;
    for outcome in ["ok", "connect_error", "timeout", "error"] {
        assert_eq!(
            sample(
                &m,
                "edge_upstream_requests_total",
                &[
                    r#"route="/parameter/{name}""#,
                    &format!(r#"outcome="{outcome}""#)
                ]
            ),
            Some(0.0),
            "no worker call for invalid names: {m}"
        );
    }

    // Negative caching: the second 404 comes from the cache.
    let res = get(edge.http, "/parameter/does-not-exist").await;
    assert_eq!(res.status, 404);
    assert_eq!(res.error_code(), "parameter_not_found");
    assert_eq!(res.header("x-cache"), Some("MISS"));
    assert_eq!(res.json()[AUX_VERSION], "test-aux");
    assert_eq!(res.json()[EDGE_VERSION], "test-edge");
    let res = get(edge.http, "/parameter/does-not-exist").await;
    assert_eq!(res.status, 404);
    assert_eq!(res.header("x-cache"), Some("HIT"));
    let m = edge.metrics().await;
    assert_eq!(
        sample(
            &m,
            "edge_upstream_requests_total",
            &[r#"route="/parameter/{name}""#, r#"outcome="ok""#]
        ),
        Some(1.0),
        "{m}"
    );

    // A SecureString: the worker's 403 passes through, uncached.
    let res = get(edge.http, "/parameter/api-key").await;
    assert_eq!(res.status, 403);
    assert_eq!(res.error_code(), "secure_parameter");
    assert_eq!(res.json()[EDGE_VERSION], "test-edge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_and_traceparent_are_returned_and_each_request_is_logged_once() {
    let (_worker, edge) = stack(&[("LOG_FORMAT", "json")]).await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    // Without trace context, the edge starts a trace.
    let res = get(edge.http, "/nope").await;
    let started = res.header("traceparent").expect("a traceparent is started");
    assert!(
        service_common::TraceParent::parse(started.as_bytes()).is_some(),
        "{started}"
    );
    assert_ne!(started, tp);
    let res = send(
        edge.http,
        "GET",
        "/s3-buckets",
        &[("x-request-id", "req-42"), ("traceparent", tp)],
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("x-request-id"), Some("req-42"));
    assert_eq!(res.header("traceparent"), Some(tp));
    // Without one, an id is generated.
    let res = get(edge.http, "/s3-buckets").await;
    assert_eq!(res.header("x-request-id").map(str::len), Some(36));
    let generated = res.header("x-request-id").unwrap().to_owned();
    // One JSON access-log line per request, with fields.
    let mut access = Vec::new();
    for _ in 0..40 {
        access = edge
            .logs()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"] == "access")
            .collect::<Vec<_>>();
        if access.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(access.len(), 3, "{}", edge.logs());
    assert_eq!(access[0]["status"], 404);
    assert_eq!(access[0]["trace_id"], &started[3..35]);
    let line = &access[1];
    assert_eq!(line["service"], "edge");
    assert_eq!(line["request_id"], "req-42");
    assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(line["route"], "/s3-buckets");
    assert_eq!(line["path"], "/s3-buckets");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["status"], 200);
    assert_eq!(line["cache"], "BYPASS");
    assert_eq!(line["http_version"], "HTTP/1.1");
    assert!(line["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(line["duration_ms"].as_f64().is_some());
    assert!(line["bytes"].as_u64().unwrap() > 0);
    assert_eq!(access[2]["request_id"], generated.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_0_gets_content_length_never_chunked_and_head_has_no_body() {
    let (_worker, edge) = stack(&[]).await;
    let get10 = raw_request(edge.http, "GET /parameters HTTP/1.0\r\n\r\n", false)
        .await
        .expect("HTTP/1.0 answer");
    assert_eq!(get10.status, 200);
    assert!(get10.header("content-length").is_some());
    assert_eq!(get10.json()[EDGE_VERSION], "test-edge");

    // The 1.0 connection closes after the answer.
    let mut stream = TcpStream::connect(edge.http).await.unwrap();
    stream
        .write_all(b"GET /nope HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut all))
        .await
        .expect("closed after one answer")
        .unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(text.contains(" 404 "), "{text}");
    assert!(
        !text.to_ascii_lowercase().contains("transfer-encoding"),
        "{text}"
    );

    let head = raw_request(
        edge.http,
        "HEAD /parameters HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        true,
    )
    .await
    .unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(get10.body.len().to_string().as_str())
    );
    assert_eq!(head.header("x-cache"), Some("HIT"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_serves_many_requests_on_one_connection_then_times_out_when_idle() {
    let (_worker, edge) = stack(&[("KEEPALIVE_TIMEOUT_SECONDS", "1")]).await;
    let stream = TcpStream::connect(edge.http).await.unwrap();
    let mut reader = BufReader::new(stream);
    let targets = [
        ("GET", "/parameters", 200),
        ("GET", "/parameter/param2", 200),
        ("HEAD", "/parameter/param2", 200),
        ("GET", "/nope", 404),
        ("GET", "/parameter/a%20b", 400),
        ("GET", "/api/parameters", 200),
        ("DELETE", "/parameters", 405),
        ("GET", "/s3-buckets", 200),
    ];
    for i in 0..120 {
        let (method, target, want) = targets[i % targets.len()];
        let req = format!("{method} {target} HTTP/1.1\r\nHost: t\r\nx-request-id: ka-{i}\r\n\r\n");
        reader.get_mut().write_all(req.as_bytes()).await.unwrap();
        let res = tokio::time::timeout(
            Duration::from_secs(10),
            read_response(&mut reader, method == "HEAD"),
        )
        .await
        .expect("answer in time")
        .unwrap_or_else(|| panic!("request {i} ({method} {target}) got no answer"));
        assert_eq!(res.status, want, "request {i}: {method} {target}");
        assert_eq!(res.header("x-request-id"), Some(format!("ka-{i}").as_str()));
        if method != "HEAD" {
            assert_eq!(res.json()[EDGE_VERSION], "test-edge");
        }
    }
    // Idle for longer than the keep-alive timeout: the edge closes.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(3), reader.read_to_end(&mut rest))
        .await
        .expect("the idle connection was closed by the edge")
        .unwrap_or(0);
    assert_eq!(
        n,
        0,
        "no data, just the close: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_probes() {
    let (_worker, edge) = stack(&[]).await;
    let h = support::raw_get(edge.admin, "/healthz").await.unwrap();
    assert_eq!(h.status, 200);
    let r = support::raw_get(edge.admin, "/readyz").await.unwrap();
    assert_eq!(r.status, 200);
    let m = edge.metrics().await;
    for name in [
        "edge_http_requests_total",
        "edge_http_request_duration_seconds",
        "edge_build_info",
        "edge_ready",
        "edge_cache_entries",
    ] {
        assert!(m.contains(name), "{name} missing:\n{m}");
    }
    // The admin port is not the API.
    assert_eq!(
        support::raw_get(edge.admin, "/parameters")
            .await
            .unwrap()
            .status,
        404
    );
}
