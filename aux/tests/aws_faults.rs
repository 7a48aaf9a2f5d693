//! AWS failures moto cannot produce (throttling, 5xx, access denied) through
//! an endpoint that answers from a script, and timeouts and refused
//! connections through sockets that never answer or refuse. The worker's
//! clients are built by the production constructor in every case, so the
//! SDK's own retry configuration, HTTP client and parsing are what is
//! tested. Each test checks the status, the stable error body, that no
//! internal detail leaks, and how many attempts were made.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use aux_worker::Config;
use aux_worker::aws::Aws;
use aux_worker::metrics::Metrics;
use platform_testkit::{Canned, Scripted, TestResponse, black_hole, get};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The worker's own default (`AWS_MAX_ATTEMPTS`), passed explicitly.
const ATTEMPTS: usize = 3;

fn config(extra: &[&str]) -> Config {
    let mut args = vec![
        "aux-worker",
        "--parameter-prefix",
        "/kantox-challenge/dev",
        "--listen-addr",
        "127.0.0.1:0",
        "--admin-addr",
        "127.0.0.1:0",
        "--shutdown-drain-seconds",
        "0",
        "--service-version",
        "fault-test",
        "--aws-max-attempts",
        "3",
    ];
    args.extend_from_slice(extra);
    Config::try_from_args(args).unwrap_or_else(|e| panic!("{e:?}"))
}

struct Running {
    api: SocketAddr,
    admin: SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn run(config: Config, aws: Aws, metrics: Metrics) -> Running {
    let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (api_addr, admin_addr) = (api.local_addr().unwrap(), admin.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(aux_worker::serve_with(
        config,
        aws,
        metrics,
        api,
        admin,
        async {
            let _ = stopped.await;
        },
    ));
    Running {
        api: api_addr,
        admin: admin_addr,
        _stop: stop,
    }
}

fn assert_clean_error(res: &TestResponse, status: u16, code: &str) {
    assert_eq!(
        res.status,
        status,
        "{:?}",
        String::from_utf8_lossy(&res.body)
    );
    let body = res.json();
    assert_eq!(body["error"]["code"], code);
    assert_eq!(body["auxiliary_service_version"], "fault-test");
    let text = String::from_utf8_lossy(&res.body);
    for secret in [
        "arn:",
        "123456789012",
        "AccessDenied",
        "Rate exceeded",
        "assumed-role",
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

/// The requests `aws` received, each checked to be SSM's GetParameter.
fn get_parameter_calls(aws: &Scripted) -> usize {
    let received = aws.received();
    for r in &received {
        assert_eq!(r.target.as_deref(), Some("AmazonSSM.GetParameter"), "{r:?}");
    }
    received.len()
}

fn throttled() -> Canned {
    Canned::aws_json_error(400, "ThrottlingException", "Rate exceeded")
}

#[tokio::test]
async fn throttling_is_retried_by_the_sdk_only_then_503_with_retry_after() {
    let aws = Scripted::start(vec![throttled()]).await;
    let w = with_endpoint(&aws.endpoint(), "3", &[]).await;
    let res = get(w.api, "/parameter/param1").await;
    assert_clean_error(&res, 503, "aws_throttled");
    assert_eq!(res.header("retry-after"), Some("1"));
    assert_eq!(
        get_parameter_calls(&aws),
        ATTEMPTS,
        "bounded retries, in one layer"
    );
    let metrics = String::from_utf8(get(w.admin, "/metrics").await.body.to_vec()).unwrap();
    assert!(
        metrics.contains(r#"aux_aws_calls_total{operation="GetParameter",outcome="throttled"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn throttling_then_success_is_invisible_to_the_client() {
    let found = serde_json::json!({
        "Parameter": {
            "Name": "/kantox-challenge/dev/param1",
            "Type": "String",
            "Value": "value1",
            "Version": 7,
            "DataType": "text",
        }
    });
    let aws = Scripted::start(vec![
        throttled(),
        throttled(),
        Canned::aws_json(200, found.to_string()),
    ])
    .await;
    let w = with_endpoint(&aws.endpoint(), "3", &[]).await;
    let res = get(w.api, "/parameter/param1").await;
    assert_eq!(res.status, 200, "{:?}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["value"], "value1");
    assert_eq!(res.json()["version"], 7);
    assert_eq!(get_parameter_calls(&aws), 3);
}

#[tokio::test]
async fn server_errors_after_retries_are_503() {
    let aws = Scripted::start(vec![Canned::aws_json_error(
        500,
        "InternalServerError",
        "internal",
    )])
    .await;
    let w = with_endpoint(&aws.endpoint(), "3", &[]).await;
    let res = get(w.api, "/parameter/param1").await;
    assert_clean_error(&res, 503, "aws_unavailable");
    assert!(res.header("retry-after").is_some());
    assert_eq!(get_parameter_calls(&aws), ATTEMPTS);
}

#[tokio::test]
async fn access_denied_is_502_without_the_arn_and_not_retried() {
    let aws = Scripted::start(vec![Canned::aws_json_error(
        400,
        "AccessDeniedException",
        "User: arn:aws:sts::123456789012:assumed-role/aux/x is not authorized to perform: ssm:GetParameter",
    )])
    .await;
    let w = with_endpoint(&aws.endpoint(), "3", &[]).await;
    let res = get(w.api, "/parameter/param1").await;
    assert_clean_error(&res, 502, "aws_error");
    assert!(res.header("retry-after").is_none());
    assert_eq!(
        get_parameter_calls(&aws),
        1,
        "client errors are not retried"
    );
}

fn bucket_page(name: &str, continuation: Option<&str>) -> Canned {
    let token = continuation
        .map(|t| format!("<ContinuationToken>{t}</ContinuationToken>"))
        .unwrap_or_default();
    Canned::xml(
        200,
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Owner><ID>owner</ID></Owner><Buckets><Bucket><Name>{name}</Name><CreationDate>2026-01-01T00:00:00.000Z</CreationDate></Bucket></Buckets>{token}</ListAllMyBucketsResult>"#
        ),
    )
}

#[tokio::test]
async fn bucket_listing_follows_continuation_tokens() {
    let aws = Scripted::start(vec![
        bucket_page("a", Some("page-2")),
        bucket_page("b", None),
    ])
    .await;
    let w = with_endpoint(&aws.endpoint(), "3", &[]).await;
    let res = get(w.api, "/s3-buckets").await;
    assert_eq!(res.status, 200, "{:?}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["buckets"], serde_json::json!(["a", "b"]));
    let received = aws.received();
    assert_eq!(received.len(), 2, "{received:?}");
    assert!(received.iter().all(|r| r.method == "GET"), "{received:?}");
    assert!(
        !received[0].uri.contains("continuation-token"),
        "{received:?}"
    );
    assert!(
        received[1].uri.contains("continuation-token=page-2"),
        "the second page is asked for with the first page's token: {received:?}"
    );
}

/// A worker built by the production constructor, pointed at `endpoint`.
async fn with_endpoint(endpoint: &str, timeout_seconds: &str, extra: &[&str]) -> Running {
    let mut flags = vec![
        "--aws-endpoint-url",
        endpoint,
        "--aws-region",
        "eu-west-1",
        "--aws-call-timeout-seconds",
        timeout_seconds,
    ];
    flags.extend_from_slice(extra);
    let config = config(&flags);
    let metrics = Metrics::new("fault-test").unwrap();
    let sdk = aux_worker::aws::config_loader(&config.aws)
        .credentials_provider(aws_sdk_ssm::config::Credentials::new(
            "k", "s", None, None, "test",
        ))
        .load()
        .await;
    let aws = Aws::from_sdk_config(&sdk, &config.aws, metrics.clone());
    run(config, aws, metrics).await
}

#[tokio::test]
async fn a_hanging_aws_endpoint_gives_504_within_the_call_timeout() {
    let (addr, accepted) = black_hole().await;
    let w = with_endpoint(&format!("http://{addr}"), "0.6", &[]).await;
    let started = Instant::now();
    let res = get(w.api, "/parameter/param1").await;
    let elapsed = started.elapsed();
    assert_clean_error(&res, 504, "aws_timeout");
    assert!(
        elapsed < Duration::from_secs(3),
        "bounded by the call timeout, took {elapsed:?}"
    );
    let attempts = accepted.load(Ordering::SeqCst);
    assert!((1..=ATTEMPTS).contains(&attempts), "{attempts} connections");
}

#[tokio::test]
async fn an_unreachable_aws_endpoint_gives_503() {
    // A port held by a socket that never listens: every connection is refused.
    let (refusing, _held) = platform_testkit::refusing_addr();
    let w = with_endpoint(&format!("http://{refusing}"), "2", &[]).await;
    let res = get(w.api, "/s3-buckets").await;
    assert_clean_error(&res, 503, "aws_unavailable");
    assert_eq!(res.header("retry-after"), Some("1"));
}

#[tokio::test]
async fn too_many_requests_in_flight_get_503_overloaded() {
    let (addr, _) = black_hole().await;
    let w = with_endpoint(
        &format!("http://{addr}"),
        "2",
        &["--max-concurrent-requests", "1"],
    )
    .await;
    let api = w.api;
    let slow = tokio::spawn(async move { get(api, "/parameter/param1").await });
    // Wait until the first request holds the only permit.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let m = String::from_utf8(get(w.admin, "/metrics").await.body.to_vec()).unwrap();
        if m.contains("aux_http_requests_in_flight 1") || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let res = get(w.api, "/parameters").await;
    assert_clean_error(&res, 503, "overloaded");
    assert_eq!(slow.await.unwrap().status, 504);
}
