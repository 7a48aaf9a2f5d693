//! The edge under client abuse, black-box over the real binary: trickling
//! clients, too many connections, floods of misses, clients that leave, a
//! log pipe nobody reads, and the drain. Each test prints its figures.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]
// Tests print the figures they measure.

mod support;

use std::time::{Duration, Instant};

use platform_testkit::{Moto, Worker, get};
use support::{Edge, Launch, Reply, StandIn, raw_get, raw_request, read_response, sample};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Reads until the edge closes the connection; returns what it sent and
/// when it closed.
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Instant) {
    let mut all = Vec::new();
    let _ = tokio::time::timeout(limit, stream.read_to_end(&mut all)).await;
    (all, Instant::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_client_is_cut_off_at_the_header_deadline() {
    let worker = StandIn::start(|_| Reply::json(200, r#"{"parameters":[]}"#)).await;
    let edge = Edge::start(&worker.url(), &[("HEADER_READ_TIMEOUT_SECONDS", "1")]).await;

    // A new connection trickling one byte every 100 ms.
    let mut s = TcpStream::connect(edge.http).await.unwrap();
    let start = Instant::now();
    let request = b"GET /parameters HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut cut = None;
    for byte in request {
        if s.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut probe = [0u8; 512];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut probe)).await
        {
            cut = Some((
                start.elapsed(),
                String::from_utf8_lossy(&probe[..n]).into_owned(),
            ));
            break;
        }
    }
    let (elapsed, answer) = cut.expect("the edge cut the trickling client off");
    println!("trickling new connection cut off after {elapsed:?}");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2000),
        "{elapsed:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");

    // Between keep-alive requests: the deadline runs from the next
    // request's first byte.
    let s = TcpStream::connect(edge.http).await.unwrap();
    let mut r = BufReader::new(s);
    r.get_mut()
        .write_all(b"GET /parameters HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut r, false).await.unwrap().status, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let start = Instant::now();
    r.get_mut().write_all(b"GET /par").await.unwrap();
    let (rest, closed) = until_closed(r.get_mut(), Duration::from_secs(5)).await;
    let waited = closed - start;
    println!("trickling keep-alive request cut off {waited:?} after its first byte");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(2000),
        "{waited:?}"
    );
    assert!(String::from_utf8_lossy(&rest).contains(" 408 "));
    let m = edge.metrics().await;
    assert!(
        sample(&m, "edge_client_header_timeouts_total", &[]).unwrap() >= 2.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_while_others_are_served() {
    let worker = StandIn::start(|_| Reply::json(200, r#"{"parameters":[]}"#)).await;
    let edge = Edge::start(&worker.url(), &[("MAX_CONNECTIONS", "5")]).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(BufReader::new(TcpStream::connect(edge.http).await.unwrap()));
    }
    // Let the edge take them in.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut refused = 0;
    for _ in 0..3 {
        let mut s = TcpStream::connect(edge.http).await.unwrap();
        let _ = s
            .write_all(b"GET /parameters HTTP/1.1\r\nHost: t\r\n\r\n")
            .await;
        let (got, _) = until_closed(&mut s, Duration::from_secs(2)).await;
        if got.is_empty() {
            refused += 1;
        }
    }
    // The held connections are still served.
    for r in &mut held {
        r.get_mut()
            .write_all(b"GET /parameters HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(read_response(r, false).await.unwrap().status, 200);
    }
    let m = edge.metrics().await;
    let rejected = sample(&m, "edge_client_connections_rejected_total", &[]).unwrap();
    let open = sample(&m, "edge_client_connections", &[]).unwrap();
    println!(
        "cap 5: {refused} of 3 extra connections closed unanswered, {rejected} counted, {open} open"
    );
    assert_eq!(refused, 3);
    assert!(rejected >= 3.0);
    assert_eq!(open, 5.0);
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_random_names_is_rate_limited_while_hits_keep_answering() {
    let worker = Worker::start(Moto::shared(), &[]).await;
    let edge = Edge::start(&worker.base_url(), &[("CLIENT_MISS_RATE_PER_SECOND", "5")]).await;
    assert_eq!(get(edge.http, "/parameter/param1").await.status, 200);

    let flood = async {
        let start = Instant::now();
        let mut codes = std::collections::BTreeMap::<u16, usize>::new();
        for i in 0..60 {
            let res = get(edge.http, &format!("/parameter/flood-{i}")).await;
            if res.status == 429 {
                assert_eq!(res.error_code(), "rate_limited");
                assert_eq!(res.header("retry-after"), Some("1"));
                assert!(res.json()["main_api_version"].is_string());
            }
            *codes.entry(res.status).or_default() += 1;
        }
        (codes, start.elapsed())
    };
    let hits = async {
        let mut ok = 0;
        for _ in 0..60 {
            let res = get(edge.http, "/parameter/param1").await;
            assert_eq!(res.header("x-cache"), Some("HIT"));
            ok += usize::from(res.status == 200);
        }
        ok
    };
    let ((codes, took), ok) = tokio::join!(flood, hits);
    println!(
        "60 random names from one client in {took:?}: {codes:?}; 60 hits on a cached key: {ok} x 200"
    );
    assert_eq!(ok, 60);
    let limited = codes.get(&429).copied().unwrap_or(0);
    let answered = codes.get(&404).copied().unwrap_or(0);
    // The burst (2 x 5), plus 5 per second the flood lasted; the first
    // request for param1 was a miss from this client too.
    let misses = answered + 1;
    let allowed = 10 + (5.0 * took.as_secs_f64()).ceil() as usize + 1;
    assert!(misses >= 10 && misses <= allowed, "{codes:?} in {took:?}");
    assert_eq!(limited + answered, 60, "{codes:?}");
    let m = edge.metrics().await;
    assert_eq!(
        sample(
            &m,
            "edge_rate_limited_requests_total",
            &[r#"route="/parameter/{name}""#]
        ),
        Some(limited as f64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_calls_in_flight_are_bounded_for_the_process() {
    let worker = StandIn::start(|_| {
        Reply::json(200, r#"{"value":"v"}"#).delayed(Duration::from_millis(800))
    })
    .await;
    let edge = Edge::start(
        &worker.url(),
        &[
            ("UPSTREAM_MAX_IN_FLIGHT", "2"),
            ("CLIENT_MISS_RATE_PER_SECOND", "0"),
        ],
    )
    .await;
    let start = Instant::now();
    let results = futures::future::join_all((0..6).map(|i| async move {
        let t = Instant::now();
        let res = get(edge.http, &format!("/parameter/k{i}")).await;
        (
            res.status,
            res.header("x-cache").map(str::to_owned),
            t.elapsed(),
        )
    }))
    .await;
    let overloaded: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
    println!(
        "6 distinct misses, bound 2: {results:?} in {:?}",
        start.elapsed()
    );
    assert_eq!(overloaded.len(), 4, "{results:?}");
    assert!(
        overloaded.iter().all(|r| r.2 < Duration::from_millis(500)),
        "refused at once"
    );
    assert_eq!(results.iter().filter(|r| r.0 == 200).count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_is_counted_as_client_closed_not_as_an_error() {
    let worker = StandIn::start(|_| {
        Reply::json(200, r#"{"value":"v"}"#).delayed(Duration::from_millis(700))
    })
    .await;
    let edge = Edge::start(&worker.url(), &[("LOG_FORMAT", "json")]).await;
    let mut s = TcpStream::connect(edge.http).await.unwrap();
    s.write_all(b"GET /parameter/slow HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    drop(s);
    let want = [
        r#"route="/parameter/{name}""#,
        r#"method="GET""#,
        r#"status_class="client_closed""#,
    ];
    edge.wait_for_sample("edge_http_requests_total", &want, 1.0)
        .await;
    let m = edge.metrics().await;
    assert_eq!(
        sample(
            &m,
            "edge_http_requests_total",
            &[r#"route="/parameter/{name}""#, r#"status_class="5xx""#]
        ),
        Some(0.0)
    );
    let line = edge
        .logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["target"] == "access" && v["status"] == 499)
        .unwrap_or_else(|| panic!("no 499 access line:\n{}", edge.logs()));
    assert_eq!(line["error"], "client_closed");
    // The worker call went on and filled the cache for the next client.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        get(edge.http, "/parameter/slow").await.header("x-cache"),
        Some("HIT")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_pipe_nobody_reads_does_not_stop_the_edge() {
    let worker = StandIn::start(|_| Reply::json(200, r#"{"parameters":[]}"#)).await;
    let edge = Edge::launch(
        &worker.url(),
        &[("RUST_LOG", "info"), ("LOG_FORMAT", "json")],
        Launch {
            stderr_unread: true,
            ..Launch::default()
        },
    )
    .await;
    // Enough access lines to fill the pipe and the writer's queue.
    let s = TcpStream::connect(edge.http).await.unwrap();
    let mut r = BufReader::new(s);
    let start = Instant::now();
    let n = 25_000;
    for _ in 0..n {
        r.get_mut()
            .write_all(b"GET /parameters HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let res = tokio::time::timeout(Duration::from_secs(5), read_response(&mut r, false))
            .await
            .expect("answered while nobody reads the logs")
            .unwrap();
        assert_eq!(res.status, 200);
    }
    let took = start.elapsed();
    let m = edge.metrics().await;
    let dropped = sample(&m, "edge_log_lines_dropped_total", &[]).unwrap();
    println!("{n} requests in {took:?} with stderr unread: {dropped} log lines dropped");
    assert!(dropped > 0.0, "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_the_start_of_the_drain_answers_carry_connection_close() {
    let worker = StandIn::start(|_| Reply::json(200, r#"{"parameters":[]}"#)).await;
    let mut edge = Edge::start(&worker.url(), &[("SHUTDOWN_DRAIN_SECONDS", "3")]).await;
    let s = TcpStream::connect(edge.http).await.unwrap();
    let mut r = BufReader::new(s);
    let req = b"GET /parameters HTTP/1.1\r\nHost: t\r\n\r\n";
    r.get_mut().write_all(req).await.unwrap();
    let before = read_response(&mut r, false).await.unwrap();
    assert_eq!(before.header("connection"), None);

    edge.sigterm();
    // Wait for the drain to begin (readiness fails first).
    for _ in 0..100 {
        if raw_get(edge.admin, "/readyz")
            .await
            .is_some_and(|r| r.status == 503)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    r.get_mut().write_all(req).await.unwrap();
    let during = read_response(&mut r, false).await.unwrap();
    println!(
        "answer during the drain: {} connection: {:?}",
        during.status,
        during.header("connection")
    );
    assert_eq!(during.status, 200);
    assert_eq!(during.header("connection"), Some("close"));
    let (rest, _) = until_closed(r.get_mut(), Duration::from_secs(2)).await;
    assert!(rest.is_empty(), "closed after that answer");
    // New connections are still served during the drain, and told to go.
    let fresh = raw_request(
        edge.http,
        "GET /parameters HTTP/1.1\r\nHost: t\r\n\r\n",
        false,
    )
    .await
    .unwrap();
    assert_eq!(fresh.header("connection"), Some("close"));
    assert_eq!(
        edge.wait_exit(Duration::from_secs(20))
            .await
            .map(|s| s.success()),
        Some(true)
    );
}
