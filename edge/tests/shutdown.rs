//! SIGTERM on the built binary: readiness fails first while traffic is still
//! served, then the listeners close, in-flight requests complete, idle
//! keep-alive connections are closed, and the process exits 0 well within
//! 30 seconds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use platform_testkit::get;
use support::{Edge, Reply, StandIn, raw_get, read_response, sample};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const BODY: &str =
    r#"{"name":"/p/x","value":"v","type":"String","version":1,"auxiliary_service_version":"s"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_finishes_in_flight_requests_and_exits_zero() {
    let worker = StandIn::start(|path| {
        if path.starts_with("/parameter/slow") {
            Reply::json(200, BODY).delayed(Duration::from_millis(2500))
        } else {
            Reply::json(200, BODY)
        }
    })
    .await;
    let mut edge = Edge::start(
        &worker.url(),
        &[
            ("SHUTDOWN_DRAIN_SECONDS", "2"),
            ("SHUTDOWN_TIMEOUT_SECONDS", "10"),
            ("UPSTREAM_TIMEOUT_SECONDS", "4"),
        ],
    )
    .await;
    let http = edge.http;
    assert_eq!(get(http, "/parameter/fast").await.status, 200);

    // An idle keep-alive connection, opened before the signal.
    let mut idle = BufReader::new(TcpStream::connect(http).await.unwrap());
    idle.get_mut()
        .write_all(b"GET /parameter/fast HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut idle, false).await.unwrap().status, 200);

    // In flight when SIGTERM arrives.
    let first = tokio::spawn(get(http, "/parameter/slow1"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    edge.sigterm();

    // Readiness fails first...
    let mut not_ready = false;
    while signalled.elapsed() < Duration::from_secs(1) {
        if raw_get(edge.admin, "/readyz").await.map(|r| r.status) == Some(503) {
            not_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(not_ready, "/readyz did not turn 503:\n{}", edge.logs());
    let m = edge.metrics().await;
    assert_eq!(sample(&m, "edge_ready", &[]), Some(0.0), "{m}");
    assert_eq!(raw_get(edge.admin, "/healthz").await.unwrap().status, 200);

    // ...while new requests are still served during the drain.
    let res = get(http, "/parameter/fast").await;
    assert_eq!(res.status, 200, "served while draining");
    assert_eq!(res.header("x-cache"), Some("HIT"));
    // This one starts in the drain and ends after the listeners closed.
    let second = tokio::spawn(get(http, "/parameter/slow2"));

    let first = first.await.unwrap();
    assert_eq!(first.status, 200, "in-flight request completed");
    assert_eq!(first.json()["value"], "v");

    // After the drain the listener is closed for new connections.
    tokio::time::sleep(Duration::from_millis(2600).saturating_sub(signalled.elapsed())).await;
    let refused = tokio::time::timeout(Duration::from_secs(2), async {
        match TcpStream::connect(http).await {
            Err(_) => true,
            // Accepted by a closing socket: no answer comes.
            Ok(mut s) => {
                let _ = s
                    .write_all(b"GET /parameters HTTP/1.1\r\nHost: t\r\n\r\n")
                    .await;
                let mut buf = [0u8; 64];
                matches!(s.read(&mut buf).await, Ok(0) | Err(_))
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(refused, "new connections must be refused after the drain");

    let second = second.await.unwrap();
    assert_eq!(
        second.status, 200,
        "request started during the drain completed"
    );

    // The idle keep-alive connection was closed by the edge.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), idle.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "idle connection left open: {closed:?}"
    );

    let status = edge
        .wait_exit(Duration::from_secs(25))
        .await
        .unwrap_or_else(|| panic!("edge did not exit:\n{}", edge.logs()));
    let took = signalled.elapsed();
    assert!(status.success(), "exit status {status}:\n{}", edge.logs());
    assert!(took < Duration::from_secs(20), "exit took {took:?}");
    assert_eq!(worker.count("/parameter/slow1"), 1);
    assert_eq!(worker.count("/parameter/slow2"), 1);
}

#[tokio::test]
async fn check_config_and_help() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_edge"))
            .env_clear()
            .args(args)
            .output()
            .unwrap()
    };
    let ok = run(&["--check-config"]);
    assert_eq!(ok.status.code(), Some(0));
    let bad = run(&[
        "--check-config",
        "--listen-addr",
        "x",
        "--log-format",
        "xml",
    ]);
    assert_eq!(bad.status.code(), Some(64));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("LISTEN_ADDR") && err.contains("LOG_FORMAT"),
        "{err}"
    );
    let help = run(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    // clap wraps long lines; compare on single spaces.
    let text = String::from_utf8_lossy(&help.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    // Every variable in the one place they are spelled.
    for var in [
        edge::config::env::LISTEN_ADDR,
        edge::config::env::TLS_LISTEN_ADDR,
        edge::config::env::TLS_CERT_FILE,
        edge::config::env::TLS_KEY_FILE,
        edge::config::env::STRICT_TRANSPORT_SECURITY,
        edge::config::env::ADMIN_ADDR,
        edge::config::env::AUXILIARY_SERVICE_URL,
        edge::config::env::SERVICE_VERSION,
        edge::config::env::CACHE_TTL_SECONDS,
        edge::config::env::CACHE_STALE_WHILE_REVALIDATE_SECONDS,
        edge::config::env::CACHE_STALE_IF_ERROR_SECONDS,
        edge::config::env::CACHE_NEGATIVE_TTL_SECONDS,
        edge::config::env::CACHE_MAX_ENTRIES,
        edge::config::env::UPSTREAM_CONNECT_TIMEOUT_SECONDS,
        edge::config::env::UPSTREAM_TIMEOUT_SECONDS,
        edge::config::env::UPSTREAM_RETRIES,
        edge::config::env::UPSTREAM_MAX_IN_FLIGHT,
        edge::config::env::UPSTREAM_POOL_IDLE_MAX,
        edge::config::env::UPSTREAM_IDLE_TIMEOUT_SECONDS,
        edge::config::env::UPSTREAM_RESOLVE_INTERVAL_SECONDS,
        edge::config::env::UPSTREAM_MAX_BODY_BYTES,
        edge::config::env::HEADER_READ_TIMEOUT_SECONDS,
        edge::config::env::KEEPALIVE_TIMEOUT_SECONDS,
        edge::config::env::MAX_CONNECTIONS,
        edge::config::env::CLIENT_MISS_RATE_PER_SECOND,
        edge::config::env::TRACE_SAMPLE_RATIO,
        edge::config::env::SHUTDOWN_DRAIN_SECONDS,
        edge::config::env::SHUTDOWN_TIMEOUT_SECONDS,
        edge::config::env::LOG_FORMAT,
        edge::config::env::RUST_LOG,
    ] {
        assert!(
            text.contains(&format!("[env: {var}")),
            "{var} missing from --help"
        );
    }
}

#[tokio::test]
async fn a_busy_port_fails_at_once_with_the_address() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let start = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edge"))
        .env_clear()
        .args([
            "--listen-addr",
            &addr,
            "--admin-addr",
            "127.0.0.1:0",
            "--log-format",
            "text",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(start.elapsed() < Duration::from_secs(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&addr) && err.contains("in use"), "{err}");
}
