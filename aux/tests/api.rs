//! The worker's API contract, end to end: a real moto server seeded with the
//! demo data, the worker in-process on 127.0.0.1:0, real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use platform_testkit::{Moto, Worker, demo_data, demo_parameter_names, get, send};

const VERSION_FIELD: &str = "auxiliary_service_version";

async fn worker() -> Worker {
    Worker::start(Moto::shared(), &[]).await
}

#[tokio::test]
async fn lists_every_bucket_with_the_version() {
    let w = worker().await;
    let res = get(w.api, "/s3-buckets").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("application/json"));
    let body = res.json();
    assert_eq!(body[VERSION_FIELD], "test-aux");
    let buckets: Vec<&str> = body["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap())
        .collect();
    for want in demo_data()["buckets"].as_array().unwrap() {
        assert!(
            buckets.contains(&want.as_str().unwrap()),
            "{want} missing from {buckets:?}"
        );
    }
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
}

#[tokio::test]
async fn lists_every_parameter_under_the_prefix_across_pages_sorted() {
    let w = worker().await;
    let res = get(w.api, "/parameters").await;
    assert_eq!(res.status, 200);
    let body = res.json();
    let names: Vec<String> = body["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect();
    let want = demo_parameter_names();
    assert!(
        want.len() > 10,
        "the demo data must span more than one page"
    );
    assert_eq!(names, want);
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("/kantox-challenge/prod/"))
    );
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("/kantox-challenge/devx/"))
    );
    assert_eq!(body[VERSION_FIELD], "test-aux");
}

#[tokio::test]
async fn reads_a_parameter_by_relative_name() {
    let w = worker().await;
    let body = get(w.api, "/parameter/param1").await.json();
    assert_eq!(body["name"], "/kantox-challenge/dev/param1");
    assert_eq!(body["value"], "value1");
    assert_eq!(body["type"], "String");
    assert_eq!(body["version"], 1);
    assert_eq!(body[VERSION_FIELD], "test-aux");

    let list = get(w.api, "/parameter/feature-flags").await.json();
    assert_eq!(list["type"], "StringList");
    assert_eq!(list["value"], "search,checkout,beta-ui");
}

#[tokio::test]
async fn nested_names_plain_or_percent_encoded() {
    let w = worker().await;
    for target in [
        "/parameter/db/host",
        "/parameter/db%2Fhost",
        "/parameter/db%2fhost",
        "/parameter/%64b/host",
    ] {
        let res = get(w.api, target).await;
        assert_eq!(res.status, 200, "{target}");
        let body = res.json();
        assert_eq!(body["name"], "/kantox-challenge/dev/db/host", "{target}");
        assert_eq!(body["value"], "db.dev.internal");
    }
}

#[tokio::test]
async fn query_strings_do_not_change_the_name() {
    let w = worker().await;
    let res = get(w.api, "/parameter/param2?x=1").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["value"], "value2");
}

#[tokio::test]
async fn secure_strings_are_refused_unless_exposed() {
    let w = worker().await;
    let res = get(w.api, "/parameter/api-key").await;
    assert_eq!(res.status, 403);
    assert_eq!(res.error_code(), "secure_parameter");
    let text = String::from_utf8_lossy(&res.body);
    assert!(!text.contains("demo-secret"), "{text}");
    assert_eq!(res.json()[VERSION_FIELD], "test-aux");

    let exposed = Worker::start(Moto::shared(), &["--expose-secure-parameters", "true"]).await;
    let body = get(exposed.api, "/parameter/api-key").await.json();
    assert_eq!(body["type"], "SecureString");
    assert_eq!(body["value"], "demo-secret-not-a-real-key");
}

#[tokio::test]
async fn names_outside_the_prefix_cannot_be_reached() {
    let w = worker().await;
    for target in [
        "/parameter/../prod/param1",
        "/parameter/%2E%2E/prod/param1",
        "/parameter/..%2Fprod%2Fparam1",
        "/parameter/./param1",
        "/parameter//kantox-challenge/prod/param1",
        "/parameter/%2Fkantox-challenge%2Fprod%2Fparam1",
    ] {
        let res = get(w.api, target).await;
        assert_eq!(res.status, 400, "{target}");
        assert_eq!(res.error_code(), "invalid_parameter_name", "{target}");
    }
    // A sibling prefix that merely starts with the same characters is not under it.
    let res = get(w.api, "/parameter/x").await;
    assert_eq!(res.status, 404);
}

#[tokio::test]
async fn invalid_names_get_400_with_the_rule() {
    let w = worker().await;
    let long = format!("/parameter/{}", "a".repeat(1000));
    for (target, fragment) in [
        ("/parameter/", "empty"),
        ("/parameter/a%00b", "control"),
        ("/parameter/a%0Db", "control"),
        ("/parameter/a%252Fb", "character"),
        ("/parameter/a%20b", "character"),
        ("/parameter/a%FFb", "UTF-8"),
        ("/parameter/a//b", "empty segment"),
        (long.as_str(), "longer"),
    ] {
        let res = get(w.api, target).await;
        assert_eq!(res.status, 400, "{target}");
        let body = res.json();
        assert_eq!(body["error"]["code"], "invalid_parameter_name");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(fragment), "{target}: {message}");
        assert_eq!(body[VERSION_FIELD], "test-aux");
    }
}

#[tokio::test]
async fn unknown_parameters_are_404() {
    let w = worker().await;
    let res = get(w.api, "/parameter/does-not-exist").await;
    assert_eq!(res.status, 404);
    assert_eq!(res.error_code(), "parameter_not_found");
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let w = worker().await;
    for target in [
        "/",
        "/parameter",
        "/parameters/",
        "/api/parameters",
        "/s3-buckets/x",
    ] {
        let res = get(w.api, target).await;
        assert_eq!(res.status, 404, "{target}");
        assert_eq!(res.error_code(), "not_found");
        assert_eq!(res.json()[VERSION_FIELD], "test-aux");
    }
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let res = send(w.api, method, "/parameters", &[]).await;
        assert_eq!(res.status, 405, "{method}");
        assert_eq!(res.error_code(), "method_not_allowed");
        assert_eq!(res.header("allow"), Some("GET, HEAD"));
    }
    let head = send(w.api, "HEAD", "/parameter/param1", &[]).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let len: usize = head.header("content-length").unwrap().parse().unwrap();
    assert_eq!(len, get(w.api, "/parameter/param1").await.body.len());
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let w = worker().await;
    let res = send(
        w.api,
        "GET",
        "/parameters",
        &[
            ("x-request-id", "req-123"),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        ],
    )
    .await;
    assert_eq!(res.header("x-request-id"), Some("req-123"));

    let generated = get(w.api, "/parameters").await;
    let id = generated.header("x-request-id").unwrap();
    assert_eq!(id.len(), 36, "{id}");

    let unsafe_id = send(
        w.api,
        "GET",
        "/parameters",
        &[("x-request-id", "a b<script>")],
    )
    .await;
    assert_ne!(unsafe_id.header("x-request-id"), Some("a b<script>"));
    assert_eq!(unsafe_id.header("x-request-id").unwrap().len(), 36);

    let error = get(w.api, "/nope").await;
    assert!(
        error.header("x-request-id").is_some(),
        "errors carry the id too"
    );
}

#[tokio::test]
async fn admin_port_serves_health_readiness_and_metrics_by_template() {
    let w = worker().await;
    assert_eq!(get(w.admin, "/healthz").await.status, 200);
    assert_eq!(get(w.admin, "/readyz").await.status, 200);
    get(w.api, "/parameter/param1").await;
    get(w.api, "/parameter/does-not-exist").await;
    get(w.api, "/nope/at/all").await;
    let metrics = get(w.admin, "/metrics").await;
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8(metrics.body.to_vec()).unwrap();
    for needle in [
        r#"aux_http_requests_total{method="GET",route="/parameter/{name}",status_class="2xx"} 1"#,
        r#"aux_http_requests_total{method="GET",route="/parameter/{name}",status_class="4xx"} 1"#,
        r#"aux_http_requests_total{method="GET",route="unmatched",status_class="4xx"} 1"#,
        r#"aux_aws_calls_total{operation="GetParameter",outcome="ok"} 1"#,
        r#"aux_aws_calls_total{operation="GetParameter",outcome="not_found"} 1"#,
        "aux_http_request_duration_seconds_bucket",
        "aux_aws_call_duration_seconds_bucket",
        r#"aux_build_info{version="test-aux"} 1"#,
        "aux_ready 1",
        "aux_http_requests_in_flight 0",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert!(!text.contains("param1"), "raw paths never become labels");
    assert_eq!(get(w.admin, "/other").await.status, 404);
}

#[tokio::test]
async fn shutdown_fails_readiness_first_then_stops() {
    let w = Worker::start(Moto::shared(), &["--shutdown-drain-seconds", "1"]).await;
    let (api, admin) = (w.api, w.admin);
    let stopping = tokio::spawn(w.stop());
    // During the drain: not ready, still serving.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(800);
    let mut saw_draining = false;
    while tokio::time::Instant::now() < deadline {
        if get(admin, "/readyz").await.status == 503 {
            saw_draining = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        saw_draining,
        "readiness should fail as soon as shutdown starts"
    );
    assert_eq!(
        get(api, "/parameter/param1").await.status,
        200,
        "traffic is served during the drain"
    );
    stopping.await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(api).await.is_err(),
        "listener closed after the drain"
    );
}

#[tokio::test]
async fn keep_alive_serves_many_requests_and_idle_connections_close() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = Worker::start(Moto::shared(), &["--header-read-timeout-seconds", "0.5"]).await;
    let mut conn = tokio::net::TcpStream::connect(w.api).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..20 {
        conn.write_all(b"GET /nope HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let n = conn.read(&mut buf).await.unwrap();
        let head = String::from_utf8_lossy(&buf[..n]);
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    }
    // Idle past the header read timeout: the worker closes the connection.
    let started = std::time::Instant::now();
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut buf))
        .await
        .expect("the idle connection should be closed")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without a response");
    assert!(started.elapsed() >= std::time::Duration::from_millis(400));
}
