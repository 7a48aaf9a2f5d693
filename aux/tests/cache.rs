//! What the worker adds for a fleet of edges: its SSM cache and the
//! freshness its answers state, the bucket filter, and an in-flight gauge
//! that survives cancelled requests. Against a real moto server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use platform_testkit::{Moto, Worker, get};

fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(name))
        .find(|l| labels.iter().all(|lab| l.contains(lab)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn metrics(w: &Worker) -> String {
    String::from_utf8(get(w.admin, "/metrics").await.body.to_vec()).unwrap()
}

#[tokio::test]
async fn answers_state_their_freshness_and_repeat_lookups_skip_ssm() {
    let w = Worker::start(Moto::shared(), &["--cache-ttl-seconds", "30"]).await;
    let first = get(w.api, "/parameter/param2").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("cache-control"), Some("max-age=30"));
    assert_eq!(first.header("age"), Some("0"));
    let second = get(w.api, "/parameter/param2").await;
    assert_eq!(second.json(), first.json());
    let list = get(w.api, "/parameters").await;
    assert_eq!(list.header("cache-control"), Some("max-age=30"));
    // A missing parameter is a definitive answer, kept a short while.
    let missing = get(w.api, "/parameter/not-there").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("cache-control"), Some("max-age=5"));
    // Never stored downstream: bucket lists, other errors.
    for (path, status) in [
        ("/s3-buckets", 200),
        ("/nope", 404),
        ("/parameter/a%20b", 400),
        ("/parameter/api-key", 403),
    ] {
        let res = get(w.api, path).await;
        assert_eq!(res.status, status, "{path}");
        assert_eq!(res.header("cache-control"), Some("no-store"), "{path}");
        assert_eq!(res.header("age"), None, "{path}");
    }
    let m = metrics(&w).await;
    let calls = |op: &str| {
        sample(
            &m,
            "aux_aws_calls_total",
            &[&format!("operation=\"{op}\""), "outcome=\"ok\""],
        )
    };
    assert_eq!(
        calls("GetParameter"),
        Some(2.0),
        "param2 once, api-key once: {m}"
    );
    assert_eq!(
        sample(
            &m,
            "aux_cache_lookups_total",
            &["route=\"/parameter/{name}\"", "result=\"hit\""]
        ),
        Some(1.0)
    );
    assert!(sample(&m, "aux_cache_entries", &[]).unwrap() >= 3.0, "{m}");
}

#[tokio::test]
async fn concurrent_lookups_of_one_key_make_one_ssm_call() {
    let w = Worker::start(Moto::shared(), &[]).await;
    let api = w.api;
    let answers = futures_join(
        (0..16)
            .map(|_| async move { get(api, "/parameter/param3").await.status })
            .collect(),
    )
    .await;
    assert!(answers.iter().all(|s| *s == 200));
    let m = metrics(&w).await;
    assert_eq!(
        sample(
            &m,
            "aux_aws_calls_total",
            &["operation=\"GetParameter\"", "outcome=\"ok\""]
        ),
        Some(1.0),
        "{m}"
    );
}

async fn futures_join<F: std::future::Future<Output = u16> + Send + 'static>(
    fs: Vec<F>,
) -> Vec<u16> {
    let handles: Vec<_> = fs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_zero_ttl_turns_the_cache_and_its_freshness_headers_off() {
    let w = Worker::start(Moto::shared(), &["--cache-ttl-seconds", "0"]).await;
    for _ in 0..2 {
        let res = get(w.api, "/parameter/param4").await;
        assert_eq!(res.header("cache-control"), None);
        assert_eq!(res.header("age"), None);
    }
    let m = metrics(&w).await;
    assert_eq!(
        sample(
            &m,
            "aux_aws_calls_total",
            &["operation=\"GetParameter\"", "outcome=\"ok\""]
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn the_bucket_prefix_filters_the_listing() {
    let w = Worker::start(
        Moto::shared(),
        &["--s3-bucket-prefix", "kantox-challenge-dev-a"],
    )
    .await;
    let res = get(w.api, "/s3-buckets").await;
    assert_eq!(
        res.json()["buckets"],
        serde_json::json!(["kantox-challenge-dev-assets"])
    );
    let all = Worker::start(Moto::shared(), &[]).await;
    assert_eq!(
        get(all.api, "/s3-buckets").await.json()["buckets"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn a_cancelled_request_leaves_the_in_flight_gauge_at_zero() {
    // AWS never answers, so the request is still in flight when its client
    // goes away.
    let (hole, _) = platform_testkit::black_hole().await;
    let url = format!("http://{hole}");
    let w = Worker::start(
        Moto::shared(),
        &[
            "--aws-endpoint-url",
            &url,
            "--aws-call-timeout-seconds",
            "30",
        ],
    )
    .await;
    let api = w.api;
    let client = tokio::spawn(async move { get(api, "/parameter/param5").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sample(&metrics(&w).await, "aux_http_requests_in_flight", &[]),
        Some(1.0)
    );
    client.abort();
    let mut last = None;
    for _ in 0..40 {
        last = sample(&metrics(&w).await, "aux_http_requests_in_flight", &[]);
        if last == Some(0.0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("in-flight gauge stuck at {last:?} after the client left");
}
