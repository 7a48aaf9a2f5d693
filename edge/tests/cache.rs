//! The cache's semantics, black-box over the real binaries: the edge binary
//! in front of the real worker and moto (or a stand-in worker where the
//! worker must be slow or hang on cue). Each test prints what it measured.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]
// Tests print the figures they measure.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use platform_testkit::{Moto, Worker, get, send};
use support::{Edge, Reply, StandIn, sample};

const PREFIX: &str = "/kantox-challenge/dev";

/// A worker that asks SSM on every request (its own cache off), so the
/// edge's rules are what the test sees.
async fn uncached_worker(extra: &[&str]) -> Worker {
    let mut args = vec!["--cache-ttl-seconds", "0"];
    args.extend_from_slice(extra);
    Worker::start(Moto::shared(), &args).await
}

const SHORT: &[(&str, &str)] = &[
    ("CACHE_TTL_SECONDS", "1"),
    ("CACHE_STALE_WHILE_REVALIDATE_SECONDS", "0"),
    ("CACHE_STALE_IF_ERROR_SECONDS", "300"),
    ("CACHE_NEGATIVE_TTL_SECONDS", "1"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_parameter_never_comes_back_as_stale() {
    let moto = Moto::shared();
    let name = "cache-tests/deleted";
    moto.put_parameter(&format!("{PREFIX}/{name}"), "v1", false)
        .await;
    let worker = uncached_worker(&[]).await;
    let edge = Edge::start(&worker.base_url(), SHORT).await;
    let path = format!("/parameter/{name}");

    let res = get(edge.http, &path).await;
    assert_eq!((res.status, res.header("x-cache")), (200, Some("MISS")));

    moto.delete_parameter(&format!("{PREFIX}/{name}")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let res = get(edge.http, &path).await;
    assert_eq!(
        res.status, 404,
        "the deletion is seen once the 200 is stale"
    );
    assert_eq!(res.error_code(), "parameter_not_found");

    // The worker fails from now on: the old 200 must not come back.
    worker.stop().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let res = get(edge.http, &path).await;
    println!(
        "deleted parameter, worker down: {} {:?}",
        res.status,
        res.header("x-cache")
    );
    assert_eq!(res.status, 503, "{:?}", res.json());
    assert_eq!(res.error_code(), "upstream_unavailable");
    assert_eq!(res.header("x-cache"), Some("BYPASS"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parameter_turned_into_a_secure_string_never_comes_back() {
    let moto = Moto::shared();
    let name = "cache-tests/turned";
    let full = format!("{PREFIX}/{name}");
    moto.put_parameter(&full, "plain", false).await;
    let worker = uncached_worker(&[]).await;
    let edge = Edge::start(&worker.base_url(), SHORT).await;
    let path = format!("/parameter/{name}");
    assert_eq!(get(edge.http, &path).await.json()["value"], "plain");

    moto.put_parameter(&full, "now-secret", true).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let res = get(edge.http, &path).await;
    assert_eq!(res.status, 403);
    assert_eq!(res.error_code(), "secure_parameter");
    // A definitive answer is cached briefly, like a 404.
    assert_eq!(get(edge.http, &path).await.header("x-cache"), Some("HIT"));

    worker.stop().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let res = get(edge.http, &path).await;
    println!("turned secret, worker down: {}", res.status);
    assert_eq!(res.status, 503, "{:?}", res.json());
}

/// A stand-in worker whose answer is `{"value": "v<generation>"}`, delayed
/// by `delay_ms`.
struct Switchable {
    worker: StandIn,
    generation: Arc<AtomicU64>,
    delay_ms: Arc<AtomicU64>,
    hang: Arc<AtomicUsize>,
}

async fn switchable() -> Switchable {
    let generation = Arc::new(AtomicU64::new(1));
    let delay_ms = Arc::new(AtomicU64::new(0));
    let hang = Arc::new(AtomicUsize::new(0));
    let (g, d, h) = (generation.clone(), delay_ms.clone(), hang.clone());
    let worker = StandIn::start(move |_| {
        if h.load(Ordering::SeqCst) == 1 {
            return Reply::hang();
        }
        let body = format!(r#"{{"value":"v{}"}}"#, g.load(Ordering::SeqCst));
        Reply::json(200, &body).delayed(Duration::from_millis(d.load(Ordering::SeqCst)))
    })
    .await;
    Switchable {
        worker,
        generation,
        delay_ms,
        hang,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_answers_at_once_while_one_refresh_runs() {
    let w = switchable().await;
    let edge = Edge::start(
        &w.worker.url(),
        &[
            ("CACHE_TTL_SECONDS", "1"),
            ("CACHE_STALE_WHILE_REVALIDATE_SECONDS", "10"),
        ],
    )
    .await;
    let res = get(edge.http, "/parameter/swr").await;
    assert_eq!(
        (res.header("x-cache"), res.json()["value"].as_str()),
        (Some("MISS"), Some("v1"))
    );

    // The worker turns slow and has a new value; the entry goes stale.
    w.delay_ms.store(1500, Ordering::SeqCst);
    w.generation.store(2, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = w.worker.count("/parameter/swr");
    let start = Instant::now();
    let answers = futures::future::join_all(
        (0..10).map(|_| async { get(edge.http, "/parameter/swr").await }),
    )
    .await;
    let took = start.elapsed();
    for res in &answers {
        assert_eq!(res.status, 200);
        assert_eq!(res.header("x-cache"), Some("STALE"));
        assert_eq!(res.json()["value"], "v1");
        assert_eq!(res.header("cache-control"), Some("max-age=0"));
    }
    println!("10 stale-while-revalidate answers in {took:?} while the worker takes 1.5 s");
    assert!(took < Duration::from_millis(1000), "{took:?}");
    // Exactly one background refresh reached the worker.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert_eq!(w.worker.count("/parameter/swr") - before, 1);
    let res = get(edge.http, "/parameter/swr").await;
    assert_eq!(
        (res.header("x-cache"), res.json()["value"].as_str()),
        (Some("HIT"), Some("v2"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_is_remembered_so_requests_do_not_each_wait_for_a_hanging_worker() {
    let w = switchable().await;
    let edge = Edge::start(
        &w.worker.url(),
        &[
            ("CACHE_TTL_SECONDS", "1"),
            ("CACHE_STALE_WHILE_REVALIDATE_SECONDS", "0"),
            ("UPSTREAM_TIMEOUT_SECONDS", "1.5"),
        ],
    )
    .await;
    assert_eq!(get(edge.http, "/parameter/hang").await.status, 200);
    w.hang.store(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // The first request waits for the timeout, then gets the stale copy.
    let start = Instant::now();
    let res = get(edge.http, "/parameter/hang").await;
    let first = start.elapsed();
    assert_eq!((res.status, res.header("x-cache")), (200, Some("STALE")));
    assert!(first >= Duration::from_millis(1400), "{first:?}");
    // Within the next second: the stale copy at once, no new worker call.
    let calls = w.worker.count("/parameter/hang");
    let start = Instant::now();
    for _ in 0..5 {
        let res = get(edge.http, "/parameter/hang").await;
        assert_eq!((res.status, res.header("x-cache")), (200, Some("STALE")));
    }
    let next = start.elapsed() / 5;
    println!(
        "hanging worker: first request {first:?}, then {next:?} each while the failure is remembered"
    );
    assert!(next < Duration::from_millis(300), "{next:?}");
    assert_eq!(w.worker.count("/parameter/hang"), calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validators_give_304_and_secrets_are_never_stored() {
    let worker = Worker::start(Moto::shared(), &["--expose-secure-parameters", "true"]).await;
    let edge = Edge::start(&worker.base_url(), &[]).await;

    let res = get(edge.http, "/parameter/param1").await;
    let etag = res.header("etag").expect("an ETag").to_owned();
    for (inm, want) in [
        (etag.clone(), 304),
        (format!("W/{etag}"), 304),
        (format!("\"other\", {etag}"), 304),
        ("*".to_owned(), 304),
        ("\"other\"".to_owned(), 200),
    ] {
        let res = send(
            edge.http,
            "GET",
            "/api/parameter/param1",
            &[("if-none-match", &inm)],
        )
        .await;
        assert_eq!(res.status, want, "If-None-Match: {inm}");
        assert_eq!(res.header("etag"), Some(etag.as_str()));
        assert!(res.header("cache-control").unwrap().starts_with("max-age="));
        if want == 304 {
            assert!(res.body.is_empty());
            assert_eq!(res.header("x-cache"), Some("HIT"));
        }
    }

    // A decrypted SecureString: no-store, no validator, never cached here.
    for _ in 0..2 {
        let res = get(edge.http, "/parameter/api-key").await;
        assert_eq!(res.status, 200);
        assert_eq!(res.json()["type"], "SecureString");
        assert_eq!(res.header("cache-control"), Some("no-store"));
        assert_eq!(res.header("etag"), None);
        assert_eq!(res.header("x-cache"), Some("BYPASS"));
    }

    // Errors and routes never cached say so.
    for (path, status) in [
        ("/nope", 404),
        ("/parameter/a%20b", 400),
        ("/s3-buckets", 200),
    ] {
        let res = get(edge.http, path).await;
        assert_eq!(res.status, status, "{path}");
        assert_eq!(res.header("x-cache"), Some("BYPASS"), "{path}");
        assert_eq!(res.header("cache-control"), Some("no-store"), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_on_the_admin_port_only() {
    let worker = Worker::start(Moto::shared(), &[]).await;
    let edge = Edge::start(&worker.base_url(), &[]).await;
    for path in ["/parameter/param1", "/parameter/db/host", "/parameters"] {
        get(edge.http, path).await;
        assert_eq!(get(edge.http, path).await.header("x-cache"), Some("HIT"));
    }
    let res = send(edge.admin, "DELETE", "/cache/parameter/db%2Fhost", &[]).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json(), serde_json::json!({"purged": 1}));
    assert_eq!(
        get(edge.http, "/parameter/db/host").await.header("x-cache"),
        Some("MISS")
    );
    assert_eq!(
        get(edge.http, "/parameter/param1").await.header("x-cache"),
        Some("HIT")
    );

    let res = send(edge.admin, "DELETE", "/cache", &[]).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["purged"], 3);
    assert_eq!(
        get(edge.http, "/parameter/param1").await.header("x-cache"),
        Some("MISS")
    );

    assert_eq!(send(edge.admin, "GET", "/cache", &[]).await.status, 405);
    assert_eq!(
        send(edge.admin, "DELETE", "/cache/parameter/..%2Fx", &[])
            .await
            .status,
        400
    );
    // The public port knows no purge.
    assert_eq!(send(edge.http, "DELETE", "/cache", &[]).await.status, 404);
    let m = edge.metrics().await;
    assert_eq!(
        sample(&m, "edge_cache_purges_total", &[r#"scope="key""#]),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, "edge_cache_purges_total", &[r#"scope="all""#]),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_is_never_older_than_one_ttl_end_to_end() {
    // Worker and edge both keep answers 2 s. Without the Age contract the edge
    // would keep a 1.5 s old worker answer 2 s more (3.5 s in all).
    let moto = Moto::shared();
    let name = "cache-tests/age";
    let full = format!("{PREFIX}/{name}");
    moto.put_parameter(&full, "old", false).await;
    let worker = Worker::start(moto, &["--cache-ttl-seconds", "2"]).await;
    // No stale-while-revalidate: it would (by design) serve the old value,
    // marked STALE, while refreshing.
    let edge = Edge::start(
        &worker.base_url(),
        &[
            ("CACHE_TTL_SECONDS", "2"),
            ("CACHE_STALE_WHILE_REVALIDATE_SECONDS", "0"),
        ],
    )
    .await;
    let path = format!("/parameter/{name}");
    let t0 = Instant::now();
    // Load the worker's cache through a direct request.
    let direct = get(worker.api, &path).await;
    assert_eq!(direct.header("cache-control"), Some("max-age=2"));
    assert_eq!(direct.header("age"), Some("0"));
    moto.put_parameter(&full, "new", false).await;
    // Just past one second: Age is whole seconds (rounded down), so ask
    // when the worker's answer is barely over 1 s old.
    while t0.elapsed() < Duration::from_millis(1100) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let res = get(edge.http, &path).await;
    assert_eq!(res.json()["value"], "old", "the worker's cached answer");
    assert_eq!(res.header("x-cache"), Some("MISS"));
    assert_eq!(res.header("age"), Some("1"), "the worker's age travels on");
    assert_eq!(
        res.header("cache-control"),
        Some("max-age=0"),
        "fresh for what is left"
    );

    // Past one TTL since SSM answered (plus the rounding of Age to whole
    // seconds), the new value shows; compounding the two caches' TTLs
    // would keep the old one until t0 + 3.1 s.
    while t0.elapsed() < Duration::from_millis(2400) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let res = get(edge.http, &path).await;
    println!(
        "after {:?}: {} ({:?})",
        t0.elapsed(),
        res.json()["value"],
        res.header("x-cache")
    );
    assert_eq!(res.json()["value"], "new");
}
