//! AWS failures moto cannot produce: throttling, 5xx and access denied through
//! the SDK's own mock clients, and timeouts and refused connections through
//! real sockets. Each checks the status, the stable error body, that no
//! internal detail leaks, and how many attempts were made.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use aux_worker::Config;
use aux_worker::aws::Aws;
use aux_worker::metrics::Metrics;
use aws_sdk_s3::operation::list_buckets::ListBucketsOutput;
use aws_sdk_s3::types::Bucket;
use aws_sdk_ssm::operation::get_parameter::GetParameterOutput;
use aws_sdk_ssm::types::{Parameter, ParameterType};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::RetryConfig;
use platform_testkit::{TestResponse, black_hole, get};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const ATTEMPTS: u32 = 3;

fn retry() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(ATTEMPTS)
        .with_initial_backoff(Duration::from_millis(5))
}

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

/// A worker whose SSM client answers from the given rules.
async fn with_ssm_rules(rules: &[&Rule]) -> Running {
    let metrics = Metrics::new("fault-test").unwrap();
    let ssm = mock_client!(
        aws_sdk_ssm,
        RuleMode::Sequential,
        rules.iter().copied(),
        |c| c.retry_config(retry())
    );
    let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, [] as [&Rule; 0], |c| c
        .retry_config(retry()));
    run(
        config(&[]),
        Aws::from_clients(s3, ssm, metrics.clone()),
        metrics,
    )
    .await
}

fn json_error(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::new(
        StatusCode::try_from(status).unwrap(),
        SdkBody::from(format!(r#"{{"__type":"{code}","message":"{message}"}}"#)),
    )
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

#[tokio::test]
async fn throttling_is_retried_by_the_sdk_only_then_503_with_retry_after() {
    let rule = mock!(aws_sdk_ssm::Client::get_parameter)
        .sequence()
        .http_response(|| json_error(400, "ThrottlingException", "Rate exceeded"))
        .times(10)
        .build();
    let w = with_ssm_rules(&[&rule]).await;
    let res = get(w.api, "/parameter/param1").await;
    assert_clean_error(&res, 503, "aws_throttled");
    assert_eq!(res.header("retry-after"), Some("1"));
    assert_eq!(
        rule.num_calls(),
        ATTEMPTS as usize,
        "bounded retries, in one layer"
    );
    let metrics = String::from_utf8(get(w.admin, "/metrics").await.body.to_vec()).unwrap();
    assert!(
        metrics.contains(r#"aux_aws_calls_total{operation="GetParameter",outcome="throttled"} 1"#)
    );
}

#[tokio::test]
async fn throttling_then_success_is_invisible_to_the_client() {
    let rule = mock!(aws_sdk_ssm::Client::get_parameter)
        .sequence()
        .http_response(|| json_error(400, "ThrottlingException", "Rate exceeded"))
        .times(2)
        .output(|| {
            GetParameterOutput::builder()
                .parameter(
                    Parameter::builder()
                        .name("/kantox-challenge/dev/param1")
                        .value("value1")
                        .r#type(ParameterType::String)
                        .version(7)
                        .build(),
                )
                .build()
        })
        .build();
    let w = with_ssm_rules(&[&rule]).await;
    let res = get(w.api, "/parameter/param1").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["version"], 7);
    assert_eq!(rule.num_calls(), 3);
}

#[tokio::test]
async fn server_errors_after_retries_are_503() {
    let rule = mock!(aws_sdk_ssm::Client::get_parameter)
        .sequence()
        .http_response(|| json_error(500, "InternalServerError", "internal"))
        .times(10)
        .build();
    let w = with_ssm_rules(&[&rule]).await;
    let res = get(w.api, "/parameter/param1").await;
    assert_clean_error(&res, 503, "aws_unavailable");
    assert!(res.header("retry-after").is_some());
    assert_eq!(rule.num_calls(), ATTEMPTS as usize);
}

#[tokio::test]
async fn access_denied_is_502_without_the_arn_and_not_retried() {
    let rule = mock!(aws_sdk_ssm::Client::get_parameter)
        .sequence()
        .http_response(|| {
            json_error(
                400,
                "AccessDeniedException",
                "User: arn:aws:sts::123456789012:assumed-role/aux/x is not authorized to perform: ssm:GetParameter",
            )
        })
        .times(10)
        .build();
    let w = with_ssm_rules(&[&rule]).await;
    let res = get(w.api, "/parameter/param1").await;
    assert_clean_error(&res, 502, "aws_error");
    assert!(res.header("retry-after").is_none());
    assert_eq!(rule.num_calls(), 1, "client errors are not retried");
}

#[tokio::test]
async fn bucket_listing_follows_continuation_tokens() {
    let rule = mock!(aws_sdk_s3::Client::list_buckets)
        .sequence()
        .output(|| {
            ListBucketsOutput::builder()
                .buckets(Bucket::builder().name("a").build())
                .continuation_token("page-2")
                .build()
        })
        .output(|| {
            ListBucketsOutput::builder()
                .buckets(Bucket::builder().name("b").build())
                .build()
        })
        .build();
    let metrics = Metrics::new("fault-test").unwrap();
    let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&rule], |c| c
        .retry_config(retry()));
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::Sequential, [] as [&Rule; 0], |c| c
        .retry_config(retry()));
    let w = run(
        config(&[]),
        Aws::from_clients(s3, ssm, metrics.clone()),
        metrics,
    )
    .await;
    let body = get(w.api, "/s3-buckets").await.json();
    assert_eq!(body["buckets"], serde_json::json!(["a", "b"]));
    assert_eq!(rule.num_calls(), 2);
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
    assert!(
        (1..=ATTEMPTS as usize).contains(&attempts),
        "{attempts} connections"
    );
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
