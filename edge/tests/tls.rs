//! The HTTPS listener with real clients: curl over HTTP/2 and HTTP/1.1 with
//! a generated CA, a rustls client checking versions and ALPN, and a
//! certificate rotated on disk while the edge runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]
// Tests print the figures they measure.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use platform_testkit::{Moto, Worker};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use support::{Edge, Launch, sample};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

const HOST: &str = "edge.test";

struct Pki {
    dir: PathBuf,
    ca_cert: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("edge-tls-test-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "edge test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
        Pki {
            dir,
            ca_cert,
            ca_key,
        }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn cert_file(&self) -> PathBuf {
        self.dir.join("tls.crt")
    }

    fn key_file(&self) -> PathBuf {
        self.dir.join("tls.key")
    }

    /// Issues a leaf for [`HOST`] and writes it over `tls.crt`/`tls.key`
    /// (key first, then the certificate, each atomically by rename).
    /// Returns the certificate's DER.
    fn issue(&self, cn: &str) -> Vec<u8> {
        let mut params = CertificateParams::new(vec![HOST.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca_cert, &self.ca_key).unwrap();
        write_atomic(&self.key_file(), key.serialize_pem().as_bytes());
        write_atomic(&self.cert_file(), cert.pem().as_bytes());
        cert.der().to_vec()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write_atomic(path: &Path, data: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn curl(args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new("curl")
        .args(args)
        .output()
        .await
        .expect("curl on PATH");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn client_config(
    pki: &Pki,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(pki.ca_cert.der().to_vec()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// Handshakes and returns (negotiated version, ALPN, leaf certificate DER).
async fn handshake(
    addr: SocketAddr,
    config: ClientConfig,
) -> (rustls::ProtocolVersion, Option<Vec<u8>>, Vec<u8>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(HOST).unwrap(), tcp)
        .await
        .expect("TLS handshake");
    let (_, conn) = tls.get_ref();
    (
        conn.protocol_version().unwrap(),
        conn.alpn_protocol().map(<[u8]>::to_vec),
        conn.peer_certificates().unwrap()[0].as_ref().to_vec(),
    )
}

async fn start(pki: &Pki) -> (Worker, Edge) {
    start_with(pki, &[]).await
}

async fn start_with(pki: &Pki, extra: &[(&str, &str)]) -> (Worker, Edge) {
    let worker = Worker::start(Moto::shared(), &[]).await;
    let cert = pki.cert_file().display().to_string();
    let key = pki.key_file().display().to_string();
    let mut env = vec![
        ("TLS_CERT_FILE", cert.as_str()),
        ("TLS_KEY_FILE", key.as_str()),
    ];
    env.extend_from_slice(extra);
    let edge = Edge::start(&worker.base_url(), &env).await;
    (worker, edge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_http2_multiplexes_one_connection_which_closes_when_idle() {
    let pki = Pki::new("h2");
    pki.issue("edge one");
    let (_worker, edge) = start_with(&pki, &[("KEEPALIVE_TIMEOUT_SECONDS", "1")]).await;
    let tcp = TcpStream::connect(edge.tls.unwrap()).await.unwrap();
    let config = client_config(&pki, &[&rustls::version::TLS13]);
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(HOST).unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    let conn = tokio::spawn(conn);

    let targets = [
        "/parameters",
        "/parameter/param1",
        "/api/parameter/db%2Fhost",
        "/s3-buckets",
        "/nope",
    ];
    let requests = (0..20).map(|i| {
        let mut sender = sender.clone();
        let target = targets[i % targets.len()];
        tokio::spawn(async move {
            let req = http::Request::get(format!("https://{HOST}{target}"))
                .header("x-request-id", format!("h2-{i}"))
                .body(Empty::<Bytes>::new())
                .unwrap();
            let res = sender.send_request(req).await.unwrap();
            let (parts, body) = res.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            (i, target, parts, body)
        })
    });
    for r in requests.collect::<Vec<_>>() {
        let (i, target, parts, body) = r.await.unwrap();
        assert_eq!(parts.version, http::Version::HTTP_2);
        let want = if target == "/nope" { 404 } else { 200 };
        assert_eq!(parts.status, want, "{target}");
        assert_eq!(parts.headers["x-request-id"], format!("h2-{i}").as_str());
        assert_eq!(
            parts.headers["content-length"],
            body.len().to_string().as_str()
        );
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["main_api_version"], "test-edge", "{target}");
    }

    // Idle past KEEPALIVE_TIMEOUT_SECONDS: the edge closes the connection
    // (the client keeps its sender, so it would not close it itself).
    let idle_since = std::time::Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(6), conn).await;
    assert!(closed.is_ok(), "idle HTTP/2 connection still open");
    assert!(
        idle_since.elapsed() >= Duration::from_millis(800),
        "closed too early"
    );
    assert!(sender.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_over_http2_and_http1_with_the_generated_ca() {
    let pki = Pki::new("curl");
    pki.issue("edge one");
    let (_worker, edge) = start(&pki).await;
    let tls = edge.tls.unwrap();
    let resolve = format!("{HOST}:{}:127.0.0.1", tls.port());
    let base = format!("https://{HOST}:{}", tls.port());
    let ca = pki.ca_file().display().to_string();

    // HTTP/2, two requests on one connection.
    let (ok, out, err) = curl(&[
        "-sS",
        "--http2",
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
        "-w",
        "\n%{http_version} %{http_code}\n",
        &format!("{base}/parameters"),
        &format!("{base}/api/parameter/param1"),
    ])
    .await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(lines[1], "2 200");
    assert_eq!(lines[3], "2 200");
    let params: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(params["main_api_version"], "test-edge");
    let param: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(param["value"], "value1");

    // HTTP/1.1 over TLS, headers included.
    let (ok, out, err) = curl(&[
        "-sS",
        "--http1.1",
        "-i",
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
        &format!("{base}/parameters"),
    ])
    .await;
    assert!(ok, "{err}");
    let lower = out.to_ascii_lowercase();
    assert!(lower.starts_with("http/1.1 200"), "{out}");
    assert!(lower.contains("x-cache: hit"), "{out}");
    assert!(lower.contains("content-length:"), "{out}");
    assert!(
        lower.contains("strict-transport-security: max-age=31536000\r\n"),
        "HSTS on HTTPS answers: {out}"
    );
    // Never on plain HTTP.
    let plain = support::raw_get(edge.http, "/parameters").await.unwrap();
    assert_eq!(plain.header("strict-transport-security"), None);

    // HTTP/2 errors are JSON too.
    let (ok, out, _) = curl(&[
        "-sS",
        "--http2",
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
        &format!("{base}/nope"),
    ])
    .await;
    assert!(ok);
    assert!(out.contains("\"not_found\""), "{out}");

    // Plain curl without the CA refuses the certificate.
    let (ok, _, _) = curl(&["-sS", "--resolve", &resolve, &format!("{base}/parameters")]).await;
    assert!(!ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_2_and_1_3_with_alpn_and_older_versions_refused() {
    let pki = Pki::new("versions");
    pki.issue("edge one");
    let (_worker, edge) = start(&pki).await;
    let tls = edge.tls.unwrap();

    let (v, alpn, _) = handshake(tls, client_config(&pki, &[&rustls::version::TLS13])).await;
    assert_eq!(v, rustls::ProtocolVersion::TLSv1_3);
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let (v, alpn, _) = handshake(tls, client_config(&pki, &[&rustls::version::TLS12])).await;
    assert_eq!(v, rustls::ProtocolVersion::TLSv1_2);
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let mut h1_only = client_config(&pki, &[&rustls::version::TLS13]);
    h1_only.alpn_protocols = vec![b"http/1.1".to_vec()];
    let (_, alpn, _) = handshake(tls, h1_only).await;
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));

    // TLS 1.1: a client that offers it (security level 0, so the client
    // itself allows it) gets a handshake-failure alert from the edge.
    let out = tokio::process::Command::new("openssl")
        .args([
            "s_client",
            "-tls1_1",
            "-cipher",
            "DEFAULT@SECLEVEL=0",
            "-connect",
            &tls.to_string(),
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("openssl on PATH");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "TLS 1.1 must be refused: {text}");
    assert!(
        text.contains("alert"),
        "the refusal comes from the server: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_rotated_on_disk_is_served_without_restart() {
    let pki = Pki::new("rotate");
    let first = pki.issue("edge one");
    let (_worker, edge) = start(&pki).await;
    let tls = edge.tls.unwrap();
    let config = || client_config(&pki, &[&rustls::version::TLS13, &rustls::version::TLS12]);

    let (_, _, der) = handshake(tls, config()).await;
    assert_eq!(der, first);

    let second = pki.issue("edge two");
    assert_ne!(first, second);
    // The files are looked at, at most, once a second.
    let mut seen = Vec::new();
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        seen = handshake(tls, config()).await.2;
        if seen == second {
            break;
        }
    }
    assert_eq!(seen, second, "the rotated certificate was not picked up");

    // A broken pair on disk keeps the last good one.
    std::fs::write(pki.key_file(), "not a key").unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(handshake(tls, config()).await.2, second);

    // And real clients keep working over the rotated certificate.
    let ca = pki.ca_file().display().to_string();
    let resolve = format!("{HOST}:{}:127.0.0.1", tls.port());
    let (ok, out, err) = curl(&[
        "-sS",
        "--http2",
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
        &format!("https://{HOST}:{}/parameter/param2", tls.port()),
    ])
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("value2"), "{out}");
    assert!(
        edge.logs().contains("TLS certificate reloaded"),
        "{}",
        edge.logs()
    );
}

#[tokio::test]
async fn bad_tls_files_are_rejected_before_start_with_exit_64() {
    let pki = Pki::new("bad");
    pki.issue("edge one");
    let other = Pki::new("bad-other");
    other.issue("other");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_edge"))
        .env_clear()
        .args([
            "--tls-listen-addr",
            "127.0.0.1:0",
            "--tls-cert-file",
            &pki.cert_file().display().to_string(),
            "--tls-key-file",
            &other.key_file().display().to_string(),
            "--cache-ttl-seconds",
            "soon",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not match"), "{err}");
    assert!(
        err.contains("CACHE_TTL_SECONDS"),
        "every error at once: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_is_configurable_and_can_be_turned_off() {
    let pki = Pki::new("hsts");
    pki.issue("edge one");
    for (value, want) in [
        (
            "max-age=63072000; includeSubDomains",
            Some("max-age=63072000; includeSubDomains"),
        ),
        ("", None),
    ] {
        let (_worker, edge) = start_with(&pki, &[("STRICT_TRANSPORT_SECURITY", value)]).await;
        let tls = edge.tls.unwrap();
        let (ok, out, err) = curl(&[
            "-sS",
            "-i",
            "--cacert",
            &pki.ca_file().display().to_string(),
            "--resolve",
            &format!("{HOST}:{}:127.0.0.1", tls.port()),
            &format!("https://{HOST}:{}/parameters", tls.port()),
        ])
        .await;
        assert!(ok, "{err}");
        let got = out
            .lines()
            .find_map(|l| l.strip_prefix("strict-transport-security: "))
            .map(str::trim);
        assert_eq!(got, want, "{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_certificate_is_waited_for_with_readiness_failing_then_served() {
    let pki = Pki::new("late");
    let worker = Worker::start(Moto::shared(), &[]).await;
    let cert = pki.cert_file().display().to_string();
    let key = pki.key_file().display().to_string();
    let edge = Edge::launch(
        &worker.base_url(),
        &[
            ("TLS_CERT_FILE", cert.as_str()),
            ("TLS_KEY_FILE", key.as_str()),
        ],
        Launch {
            no_wait: true,
            ..Launch::default()
        },
    )
    .await;
    let tls = edge.tls.unwrap();

    // Plain HTTP serves; readiness fails and says why; HTTPS refuses.
    assert_eq!(
        support::raw_get(edge.http, "/parameters")
            .await
            .unwrap()
            .status,
        200
    );
    let ready = support::raw_get(edge.admin, "/readyz").await.unwrap();
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["reason"], "waiting for TLS certificate");
    let tcp = TcpStream::connect(tls).await.unwrap();
    let refused = TlsConnector::from(Arc::new(client_config(&pki, &[&rustls::version::TLS13])))
        .connect(ServerName::try_from(HOST).unwrap(), tcp)
        .await;
    assert!(refused.is_err(), "no certificate yet: no handshake");
    assert!(
        edge.logs()
            .contains("waiting for the TLS certificate files"),
        "{}",
        edge.logs()
    );

    // The Secret arrives: within a couple of seconds HTTPS serves and the
    // instance turns ready.
    let der = pki.issue("late one");
    let start = std::time::Instant::now();
    loop {
        let r = support::raw_get(edge.admin, "/readyz").await.unwrap();
        if r.status == 200 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "still not ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "ready {:?} after the certificate files appeared",
        start.elapsed()
    );
    let (_, _, leaf) = handshake(tls, client_config(&pki, &[&rustls::version::TLS13])).await;
    assert_eq!(leaf, der);
    let m = edge.metrics().await;
    let expiry = sample(&m, "edge_tls_certificate_expiry_timestamp_seconds", &[]).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(expiry > now, "{expiry}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_connections_get_goaway_when_the_drain_starts() {
    let pki = Pki::new("goaway");
    pki.issue("edge one");
    let (_worker, mut edge) = start_with(&pki, &[("SHUTDOWN_DRAIN_SECONDS", "4")]).await;
    let tcp = TcpStream::connect(edge.tls.unwrap()).await.unwrap();
    let tls = TlsConnector::from(Arc::new(client_config(&pki, &[&rustls::version::TLS13])))
        .connect(ServerName::try_from(HOST).unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let req = || {
        http::Request::get(format!("https://{HOST}/parameters"))
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    assert_eq!(sender.send_request(req()).await.unwrap().status(), 200);

    edge.sigterm();
    let start = std::time::Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(2), conn).await;
    println!(
        "HTTP/2 connection closed by GOAWAY {:?} after SIGTERM",
        start.elapsed()
    );
    assert!(closed.is_ok(), "no GOAWAY within 2 s of the drain's start");
    assert!(sender.is_closed());
    // Still draining: the listeners are open, so this was the drain's GOAWAY.
    assert_eq!(
        support::raw_get(edge.admin, "/readyz")
            .await
            .map(|r| r.status),
        Some(503)
    );
    assert!(TcpStream::connect(edge.tls.unwrap()).await.is_ok());
    assert!(edge.wait_exit(Duration::from_secs(30)).await.is_some());
}
