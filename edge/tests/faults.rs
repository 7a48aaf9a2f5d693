//! The edge when the worker is slow, gone, hanging or failing: coalescing,
//! stale-if-error, timeouts, fast 502/503, and pass-through of worker
//! errors. Fault paths use a small stand-in worker; the stopped-worker case
//! uses the real one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use platform_testkit::{Moto, Worker, get, send};
use support::{Edge, Reply, StandIn, sample};

const PARAM_BODY: &str = r#"{"name":"/p/x","value":"v","type":"String","version":1,"auxiliary_service_version":"stand-in"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_requests_make_exactly_one_worker_request() {
    let worker =
        StandIn::start(|_| Reply::json(200, PARAM_BODY).delayed(Duration::from_millis(1000))).await;
    let edge = Edge::start(&worker.url(), &[]).await;
    const N: usize = 24;
    let tasks: Vec<_> = (0..N)
        .map(|_| tokio::spawn(get(edge.http, "/parameter/x")))
        .collect();
    let mut misses = 0;
    for t in tasks {
        let res = t.await.unwrap();
        assert_eq!(res.status, 200);
        // A client slower to connect than the worker is to answer gets a HIT.
        match res.header("x-cache") {
            Some("MISS") => misses += 1,
            Some("HIT") => {}
            other => panic!("x-cache {other:?}"),
        }
        assert_eq!(res.json()["value"], "v");
        assert_eq!(res.json()["main_api_version"], "test-edge");
    }
    assert!(
        misses > 1,
        "the clients were not concurrent enough to test coalescing"
    );
    assert_eq!(
        worker.count("/parameter/x"),
        1,
        "one worker request for {N} clients"
    );
    // Encoded and aliased spellings of the same name share the entry.
    let res = get(edge.http, "/api/parameter/%78").await;
    assert_eq!(res.header("x-cache"), Some("HIT"));
    assert_eq!(worker.total(), 1);
    let m = edge.metrics().await;
    assert_eq!(
        sample(
            &m,
            "edge_cache_coalesced_waits_total",
            &[r#"route="/parameter/{name}""#]
        ),
        Some(f64::from(misses - 1)),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correlation_and_trace_headers_reach_the_worker_unchanged() {
    let worker = StandIn::start(|_| Reply::json(200, r#"{"buckets":[]}"#)).await;
    let edge = Edge::start(&worker.url(), &[]).await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let trace = [
        ("traceparent", tp),
        ("tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
        (
            "b3",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
        ),
        ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
        ("x-b3-sampled", "1"),
        ("x-b3-flags", "1"),
    ];
    let mut headers = vec![("x-request-id", "fwd-7")];
    headers.extend_from_slice(&trace);
    let res = send(edge.http, "GET", "/api/s3-buckets?ignored=1", &headers).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("traceparent"), Some(tp));
    let heads = worker.heads();
    assert_eq!(heads.len(), 1);
    let head = heads[0].to_ascii_lowercase();
    assert!(head.starts_with("get /s3-buckets http/1.1"), "{head}");
    assert!(head.contains("x-request-id: fwd-7\r\n"), "{head}");
    for (name, value) in trace {
        let line = format!("{name}: {value}\r\n").to_ascii_lowercase();
        assert!(head.contains(&line), "{name} missing: {head}");
    }

    // Without trace context the edge starts a trace: a new W3C traceparent
    // reaches the worker and comes back to the client.
    let res = send(edge.http, "GET", "/s3-buckets", &[]).await;
    let started = res.header("traceparent").expect("a traceparent").to_owned();
    assert!(service_common::TraceParent::parse(started.as_bytes()).is_some());
    let head = worker.heads()[1].to_ascii_lowercase();
    assert!(
        head.contains(&format!("traceparent: {started}\r\n")),
        "{head}"
    );
    assert!(!head.contains("tracestate"), "{head}");

    // An invalid traceparent is replaced by a new trace, not forwarded (and
    // its tracestate, meaningless without it, goes too).
    send(
        edge.http,
        "GET",
        "/s3-buckets",
        &[("traceparent", "garbage"), ("tracestate", "a=b")],
    )
    .await;
    let head = worker.heads()[2].to_ascii_lowercase();
    assert!(!head.contains("garbage"), "{head}");
    assert!(head.contains("traceparent: 00-"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_worker_gives_504_json_in_time_and_stale_answers_cover_it() {
    let hang = Arc::new(AtomicBool::new(false));
    let h = hang.clone();
    let worker = StandIn::start(move |_| {
        if h.load(Ordering::SeqCst) {
            Reply::hang()
        } else {
            Reply::json(200, PARAM_BODY)
        }
    })
    .await;
    let edge = Edge::start(
        &worker.url(),
        &[
            ("UPSTREAM_TIMEOUT_SECONDS", "1"),
            ("UPSTREAM_CONNECT_TIMEOUT_SECONDS", "0.5"),
            ("CACHE_TTL_SECONDS", "1"),
        ],
    )
    .await;
    assert_eq!(get(edge.http, "/parameter/x").await.status, 200);
    hang.store(true, Ordering::SeqCst);

    let start = Instant::now();
    let res = get(edge.http, "/s3-buckets").await;
    let took = start.elapsed();
    assert_eq!(res.status, 504);
    assert_eq!(res.error_code(), "upstream_timeout");
    assert_eq!(res.json()["main_api_version"], "test-edge");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );

    // Expired, the worker hangs: the stale copy is served after the timeout.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let res = get(edge.http, "/parameter/x").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("x-cache"), Some("STALE"));
    assert!(res.header("age").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(res.json()["value"], "v");

    let m = edge.metrics().await;
    assert!(
        sample(
            &m,
            "edge_upstream_requests_total",
            &[r#"route="/s3-buckets""#, r#"outcome="timeout""#]
        ) >= Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "edge_cache_lookups_total",
            &[r#"route="/parameter/{name}""#, r#"result="stale""#]
        ),
        Some(1.0),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_with_the_worker_stopped_then_503_when_the_window_ends() {
    let worker = Worker::start(Moto::shared(), &[]).await;
    let edge = Edge::start(
        &worker.base_url(),
        &[
            ("CACHE_TTL_SECONDS", "1"),
            ("CACHE_STALE_WHILE_REVALIDATE_SECONDS", "0"),
            ("CACHE_STALE_IF_ERROR_SECONDS", "2"),
        ],
    )
    .await;
    let res = get(edge.http, "/parameter/param1").await;
    assert_eq!(res.header("x-cache"), Some("MISS"));
    worker.stop().await;
    tokio::time::sleep(Duration::from_millis(1300)).await;

    let start = Instant::now();
    let res = get(edge.http, "/parameter/param1").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("x-cache"), Some("STALE"));
    assert_eq!(res.json()["value"], "value1");
    assert_eq!(res.json()["auxiliary_service_version"], "test-aux");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "stale served fast"
    );

    // Never cached: the failure itself, fast, as JSON.
    let res = get(edge.http, "/parameter/param2").await;
    assert_eq!(res.status, 503);
    assert_eq!(res.error_code(), "upstream_unavailable");
    assert_eq!(res.header("retry-after"), Some("1"));

    // Past TTL + stale window: no more stale copy.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let res = get(edge.http, "/parameter/param1").await;
    assert_eq!(res.status, 503, "{:?}", res.json());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_or_unresolvable_worker_fails_fast_with_json() {
    let (refusing, _held) = platform_testkit::refusing_addr();
    for url in [
        format!("http://{refusing}"),
        "http://no-such-worker.invalid:8001".to_owned(),
    ] {
        let edge = Edge::start(&url, &[]).await;
        for target in ["/s3-buckets", "/parameters", "/parameter/param1"] {
            let start = Instant::now();
            let res = get(edge.http, target).await;
            assert_eq!(res.status, 503, "{url} {target}");
            assert_eq!(res.error_code(), "upstream_unavailable");
            assert_eq!(res.header("retry-after"), Some("1"));
            assert_eq!(res.json()["main_api_version"], "test-edge");
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "{url}: {:?}",
                start.elapsed()
            );
        }
        // Still alive and ready: the worker's absence is not the edge's.
        assert_eq!(
            support::raw_get(edge.admin, "/readyz")
                .await
                .unwrap()
                .status,
            200
        );
        let m = edge.metrics().await;
        assert!(
            sample(
                &m,
                "edge_upstream_requests_total",
                &[r#"route="/s3-buckets""#, r#"outcome="connect_error""#]
            ) >= Some(1.0),
            "{m}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_errors_keep_their_status_and_body_and_garbage_is_502() {
    let worker = StandIn::start(|path| match path {
        "/parameters" => Reply::json(
            503,
            r#"{"error":{"code":"aws_throttled","message":"AWS is throttling requests; retry later"},"auxiliary_service_version":"s"}"#,
        ),
        "/parameter/html" => Reply::json(200, "<html>oops</html>"),
        _ => Reply::json(
            502,
            r#"{"error":{"code":"aws_error","message":"AWS call failed"},"auxiliary_service_version":"s"}"#,
        ),
    })
    .await;
    let edge = Edge::start(&worker.url(), &[]).await;

    let res = get(edge.http, "/parameters").await;
    assert_eq!(res.status, 503);
    assert_eq!(res.header("retry-after"), Some("1"));
    assert_eq!(res.error_code(), "aws_throttled");
    assert_eq!(res.json()["auxiliary_service_version"], "s");
    assert_eq!(res.json()["main_api_version"], "test-edge");
    // Failures are not cached.
    get(edge.http, "/parameters").await;
    assert_eq!(worker.count("/parameters"), 2);

    let res = get(edge.http, "/s3-buckets").await;
    assert_eq!(res.status, 502);
    assert_eq!(res.error_code(), "aws_error");

    let res = get(edge.http, "/parameter/html").await;
    assert_eq!(res.status, 502);
    assert_eq!(res.error_code(), "upstream_invalid_response");
    assert_eq!(res.json()["main_api_version"], "test-edge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_connections_the_worker_drops_are_retried_on_a_new_one() {
    // The worker drops every reused connection when the next request
    // arrives on it: each such request must be retried on a new connection.
    let worker = StandIn::start(|_| Reply::json(200, r#"{"buckets":[]}"#).then_close()).await;
    let edge = Edge::start(&worker.url(), &[]).await;
    let stream = tokio::net::TcpStream::connect(edge.http).await.unwrap();
    let mut reader = tokio::io::BufReader::new(stream);
    for i in 0..40 {
        use tokio::io::AsyncWriteExt;
        reader
            .get_mut()
            .write_all(b"GET /s3-buckets HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let res = support::read_response(&mut reader, false).await.unwrap();
        assert_eq!(res.status, 200, "request {i}: {:?}", res.json());
    }
    // 40 answered, plus the requests dropped on reused connections.
    assert!(
        worker.count("/s3-buckets") > 40,
        "{}",
        worker.count("/s3-buckets")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_host_name_is_resolved_and_used() {
    let worker = StandIn::start(|_| Reply::json(200, r#"{"buckets":[]}"#)).await;
    let url = format!("http://localhost:{}", worker.addr.port());
    let edge = Edge::start(&url, &[]).await;
    for _ in 0..5 {
        assert_eq!(get(edge.http, "/s3-buckets").await.status, 200);
    }
    assert_eq!(worker.count("/s3-buckets"), 5);
}
