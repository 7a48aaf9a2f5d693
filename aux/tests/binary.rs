//! The `aux-worker` binary as operators run it: `--help`, exit codes on bad
//! configuration, and SIGTERM with requests in flight.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]
// Tests print the figures they measure.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use platform_testkit::{Moto, free_port, get};

const BIN: &str = env!("CARGO_BIN_EXE_aux-worker");

/// Every variable the worker reads.
const VARIABLES: &[&str] = &[
    "LISTEN_ADDR",
    "ADMIN_ADDR",
    "SERVICE_VERSION",
    "PARAMETER_PREFIX",
    "EXPOSE_SECURE_PARAMETERS",
    "S3_BUCKET_PREFIX",
    "CACHE_TTL_SECONDS",
    "CACHE_MAX_ENTRIES",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_CALL_TIMEOUT_SECONDS",
    "AWS_MAX_ATTEMPTS",
    "MAX_CONCURRENT_REQUESTS",
    "HEADER_READ_TIMEOUT_SECONDS",
    "SHUTDOWN_DRAIN_SECONDS",
    "SHUTDOWN_TIMEOUT_SECONDS",
    "LOG_FORMAT",
    "RUST_LOG",
];

fn command() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd
}

#[test]
fn help_documents_every_variable() {
    let out = command().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    // clap wraps long lines; compare on single spaces.
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    for var in VARIABLES {
        assert!(
            help.contains(&format!("[env: {var}")),
            "{var} missing from --help:\n{help}"
        );
    }
}

#[test]
fn bad_configuration_exits_64_and_reports_every_value() {
    let out = command()
        .env("LISTEN_ADDR", "not-an-address")
        .env("EXPOSE_SECURE_PARAMETERS", "maybe")
        .env("LOG_FORMAT", "xml")
        .env("SHUTDOWN_DRAIN_SECONDS", "-1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8(out.stderr).unwrap();
    for var in [
        "LISTEN_ADDR",
        "PARAMETER_PREFIX",
        "EXPOSE_SECURE_PARAMETERS",
        "LOG_FORMAT",
        "SHUTDOWN_DRAIN_SECONDS",
    ] {
        assert!(stderr.contains(var), "{var} missing from:\n{stderr}");
    }
    let unknown = command().arg("--no-such-flag").output().unwrap();
    assert_eq!(unknown.status.code(), Some(64));
}

#[test]
fn bad_configuration_binds_nothing() {
    let port = free_port();
    let out = command()
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("PARAMETER_PREFIX", "relative/prefix")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    // The port is still free: nothing was bound before validation failed.
    std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
}

#[test]
fn check_config_validates_and_exits_zero() {
    let out = command()
        .args([
            "--check-config",
            "--parameter-prefix",
            "/kantox-challenge/dev",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn wait_ready(admin: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if tokio::net::TcpStream::connect(admin).await.is_ok()
            && get(admin, "/readyz").await.status == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "worker did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sigterm_drains_then_exits_zero_with_requests_completed() {
    let moto = Moto::shared();
    // The worker's AWS endpoint is a black hole, so a request stays in flight
    // for the whole call timeout.
    let (hole_addr, _) = platform_testkit::black_hole().await;
    let (api_port, admin_port) = (free_port(), free_port());
    let mut child = tokio::process::Command::new(BIN)
        .envs(moto.worker_env())
        .env("AWS_ENDPOINT_URL", format!("http://{hole_addr}"))
        .env("AWS_CALL_TIMEOUT_SECONDS", "2")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("LISTEN_ADDR", format!("127.0.0.1:{api_port}"))
        .env("ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
        .env("PARAMETER_PREFIX", "/kantox-challenge/dev")
        .env("SHUTDOWN_DRAIN_SECONDS", "1")
        .env("SHUTDOWN_TIMEOUT_SECONDS", "10")
        .env("LOG_FORMAT", "text")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let api: SocketAddr = format!("127.0.0.1:{api_port}").parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    wait_ready(admin).await;

    let in_flight = tokio::spawn(async move { get(api, "/parameter/param1").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pid = child.id().unwrap().to_string();
    let signalled = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );

    // Readiness fails first while the API still answers.
    let deadline = Instant::now() + Duration::from_millis(900);
    let mut draining = false;
    while Instant::now() < deadline {
        if get(admin, "/readyz").await.status == 503 {
            draining = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(draining, "readiness did not fail during the drain");
    assert_eq!(
        get(api, "/nope").await.status,
        404,
        "API still serving during the drain"
    );

    // The in-flight request completes with its own answer, not a reset.
    let res = in_flight.await.unwrap();
    assert_eq!(res.status, 504);
    assert_eq!(res.error_code(), "aws_timeout");

    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "exit well inside the grace period"
    );
}

#[tokio::test]
async fn a_log_pipe_nobody_reads_does_not_stop_the_worker() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let moto = Moto::shared();
    let (api_port, admin_port) = (free_port(), free_port());
    // stderr is a pipe this test never reads: once it and the log queue are
    // full, lines must be dropped, not wait.
    let _child = tokio::process::Command::new(BIN)
        .envs(moto.worker_env())
        .env("LISTEN_ADDR", format!("127.0.0.1:{api_port}"))
        .env("ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
        .env("PARAMETER_PREFIX", "/kantox-challenge/dev")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let api: SocketAddr = format!("127.0.0.1:{api_port}").parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    wait_ready(admin).await;
    let stream = tokio::net::TcpStream::connect(api).await.unwrap();
    let mut r = BufReader::new(stream);
    let n = 25_000;
    let start = Instant::now();
    for _ in 0..n {
        r.get_mut()
            .write_all(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        // Status line, headers, then the body by its length.
        let mut len = 0usize;
        let answered = tokio::time::timeout(Duration::from_secs(5), async {
            let mut line = String::new();
            loop {
                line.clear();
                r.read_line(&mut line).await.unwrap();
                if line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0u8; len];
            r.read_exact(&mut body).await.unwrap();
        })
        .await;
        assert!(answered.is_ok(), "answered while nobody reads the logs");
    }
    let took = start.elapsed();
    let metrics = String::from_utf8(get(admin, "/metrics").await.body.to_vec()).unwrap();
    let dropped: f64 = metrics
        .lines()
        .find(|l| l.starts_with("aux_log_lines_dropped_total "))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no aux_log_lines_dropped_total:\n{metrics}"));
    println!("{n} requests in {took:?} with stderr unread: {dropped} log lines dropped");
    assert!(dropped > 0.0);
}
