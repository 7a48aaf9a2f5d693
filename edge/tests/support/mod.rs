//! What the edge's integration tests share: the built `edge` binary run as a
//! process on free 127.0.0.1 ports, a raw HTTP/1.x client (for framing
//! checks), and a small stand-in worker for the fault paths (hangs, counted
//! requests, stopped worker). The happy path runs against the real worker and
//! moto.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use platform_testkit::free_port;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The edge binary, running.
#[derive(Debug)]
pub struct Edge {
    pub http: SocketAddr,
    pub admin: SocketAddr,
    pub tls: Option<SocketAddr>,
    pub log: PathBuf,
    child: Child,
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// How to run the edge beyond its environment.
#[derive(Debug, Default, Clone)]
pub struct Launch {
    /// Host names the edge resolves, as `/etc/hosts` lines seen by the edge
    /// alone (a private mount namespace: `unshare -m`, which needs root or
    /// user namespaces).
    pub hosts: Vec<(String, std::net::IpAddr)>,
    /// stderr goes to a pipe nobody reads (instead of the log file).
    pub stderr_unread: bool,
    /// Do not wait for `/readyz` (it may be failing on purpose).
    pub no_wait: bool,
}

impl Edge {
    /// Starts the edge in front of `upstream` (a base URL) with extra
    /// environment. Ports are chosen by binding 127.0.0.1:0 and releasing.
    /// With `TLS_CERT_FILE` in `env`, a TLS listener is added.
    pub async fn start(upstream: &str, env: &[(&str, &str)]) -> Edge {
        Self::launch(upstream, env, Launch::default()).await
    }

    /// [`Edge::start`] with launch options.
    pub async fn launch(upstream: &str, env: &[(&str, &str)], launch: Launch) -> Edge {
        let http = local(free_port());
        let admin = local(free_port());
        let tls = env
            .iter()
            .any(|(k, _)| *k == "TLS_CERT_FILE")
            .then(|| local(free_port()));
        let log = std::env::temp_dir().join(format!("edge-test-{}.log", http.port()));
        let log_file = std::fs::File::create(&log).unwrap();
        let bin = env!("CARGO_BIN_EXE_edge");
        let mut cmd = if launch.hosts.is_empty() {
            Command::new(bin)
        } else {
            let hosts = std::env::temp_dir().join(format!("edge-test-hosts-{}", http.port()));
            let mut text = String::from("127.0.0.1 localhost\n");
            for (name, ip) in &launch.hosts {
                text.push_str(&format!("{ip} {name}\n"));
            }
            std::fs::write(&hosts, text).unwrap();
            let root = running_as_root();
            let mut c = Command::new("unshare");
            if !root {
                c.arg("-r");
            }
            c.args([
                "-m",
                "sh",
                "-c",
                "mount --bind \"$1\" /etc/hosts && exec \"$0\"",
                bin,
            ])
            .arg(&hosts);
            c
        };
        cmd.env_clear()
            .env("LISTEN_ADDR", http.to_string())
            .env("ADMIN_ADDR", admin.to_string())
            .env("AUXILIARY_SERVICE_URL", upstream)
            .env("SERVICE_VERSION", "test-edge")
            .env("LOG_FORMAT", "text")
            .env("RUST_LOG", "info")
            .env("SHUTDOWN_DRAIN_SECONDS", "0")
            .env("UPSTREAM_TIMEOUT_SECONDS", "2")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if launch.stderr_unread {
            cmd.stderr(Stdio::piped());
        } else {
            cmd.stderr(Stdio::from(log_file));
        }
        if let Some(tls) = tls {
            cmd.env("TLS_LISTEN_ADDR", tls.to_string());
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn edge");
        let mut edge = Edge {
            http,
            admin,
            tls,
            log,
            child,
        };
        if launch.no_wait {
            edge.wait_listening().await;
        } else {
            edge.wait_ready().await;
        }
        edge
    }

    /// Waits until the public port accepts connections.
    pub async fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(40);
        while TcpStream::connect(self.http).await.is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("edge exited early ({status}):\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "edge not listening:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("edge exited early ({status}):\n{}", self.logs());
            }
            let ready = raw_get(self.admin, "/readyz")
                .await
                .is_some_and(|r| r.status == 200);
            let serving = TcpStream::connect(self.http).await.is_ok();
            let tls_up = match self.tls {
                Some(addr) => TcpStream::connect(addr).await.is_ok(),
                None => true,
            };
            if ready && serving && tls_up {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "edge not ready:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM to this process (and nothing else).
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits up to `limit` for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Waits up to two seconds for a sample to reach `want`.
    pub async fn wait_for_sample(&self, name: &str, labels: &[&str], want: f64) {
        let mut last = String::new();
        for _ in 0..40 {
            last = self.metrics().await;
            if sample(&last, name, labels) == Some(want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{name}{labels:?} never reached {want}:\n{last}");
    }

    /// `/metrics` as text.
    pub async fn metrics(&self) -> String {
        let r = raw_get(self.admin, "/metrics").await.expect("metrics");
        String::from_utf8(r.body).unwrap()
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether this process runs as root (then `unshare -m` works without a
/// user namespace).
fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A response read off the wire by the raw client.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub version: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// Reads one response with `Content-Length` framing (chunked is refused:
/// the edge never sends it). `head` means no body follows.
pub async fn read_response<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    head: bool,
) -> Option<RawResponse> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let version = parts.next()?.to_owned();
    let status: u16 = parts.next()?.parse().ok()?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).await.ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let mut resp = RawResponse {
        version,
        status,
        headers,
        body: Vec::new(),
    };
    assert!(
        resp.header("transfer-encoding").is_none(),
        "unexpected transfer-encoding: {resp:?}"
    );
    if !head {
        let len: usize = resp.header("content-length")?.parse().ok()?;
        resp.body.resize(len, 0);
        reader.read_exact(&mut resp.body).await.ok()?;
    }
    Some(resp)
}

/// One `GET` on a fresh HTTP/1.1 connection.
pub async fn raw_get(addr: SocketAddr, path: &str) -> Option<RawResponse> {
    raw_request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
        false,
    )
    .await
}

/// Sends raw bytes on a fresh connection and reads one response.
pub async fn raw_request(addr: SocketAddr, request: &str, head: bool) -> Option<RawResponse> {
    let stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    let mut reader = BufReader::new(stream);
    reader.get_mut().write_all(request.as_bytes()).await.ok()?;
    tokio::time::timeout(Duration::from_secs(15), read_response(&mut reader, head))
        .await
        .ok()?
}

/// What the stand-in worker answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
    /// Never answer (hold the connection open).
    pub hang: bool,
    /// Answer only the first request of each connection; drop the
    /// connection, unanswered, when a second one arrives on it (a worker
    /// closing an idle keep-alive connection just as it is reused).
    pub close: bool,
}

impl Reply {
    pub fn json(status: u16, body: &str) -> Self {
        Self {
            status,
            body: body.to_owned(),
            delay: Duration::ZERO,
            hang: false,
            close: false,
        }
    }

    pub fn then_close(mut self) -> Self {
        self.close = true;
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn hang() -> Self {
        Self {
            hang: true,
            ..Self::json(200, "{}")
        }
    }
}

/// A stand-in for the worker: HTTP/1.1 with keep-alive, counts requests by
/// path and answers as `reply` says.
pub struct StandIn {
    pub addr: SocketAddr,
    requests: Arc<std::sync::Mutex<Vec<String>>>,
    heads: Arc<std::sync::Mutex<Vec<String>>>,
    active: Arc<AtomicUsize>,
    stopped: Arc<std::sync::atomic::AtomicBool>,
    task: JoinHandle<()>,
}

impl StandIn {
    pub async fn start(reply: impl Fn(&str) -> Reply + Send + Sync + 'static) -> StandIn {
        Self::start_on("127.0.0.1:0".parse().unwrap(), reply).await
    }

    /// [`StandIn::start`] on a given address (e.g. `127.0.0.2:PORT`).
    pub async fn start_on(
        addr: SocketAddr,
        reply: impl Fn(&str) -> Reply + Send + Sync + 'static,
    ) -> StandIn {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let active = Arc::new(AtomicUsize::new(0));
        let reply = Arc::new(reply);
        let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (req2, active2, stopped2, heads2) = (
            requests.clone(),
            active.clone(),
            stopped.clone(),
            heads.clone(),
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (requests, reply, active, stopped, heads) = (
                    req2.clone(),
                    reply.clone(),
                    active2.clone(),
                    stopped2.clone(),
                    heads2.clone(),
                );
                tokio::spawn(async move {
                    let mut reader = BufReader::new(stream);
                    let mut answered = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let path = line.split(' ').nth(1).unwrap_or("").to_owned();
                        let mut head = line.clone();
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if h.trim_end().is_empty() {
                                break;
                            }
                            head.push_str(&h);
                        }
                        heads.lock().unwrap().push(head);
                        if stopped.load(Ordering::SeqCst) {
                            return;
                        }
                        requests.lock().unwrap().push(path.clone());
                        let r = reply(&path);
                        if r.close && answered > 0 {
                            return;
                        }
                        active.fetch_add(1, Ordering::SeqCst);
                        if r.hang {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                        }
                        tokio::time::sleep(r.delay).await;
                        active.fetch_sub(1, Ordering::SeqCst);
                        let retry = if r.status == 503 {
                            "retry-after: 1\r\n"
                        } else {
                            ""
                        };
                        let out = format!(
                            "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{retry}\r\n{}",
                            r.status,
                            r.body.len(),
                            r.body
                        );
                        if reader.get_mut().write_all(out.as_bytes()).await.is_err() {
                            return;
                        }
                        answered += 1;
                    }
                });
            }
        });
        StandIn {
            addr,
            requests,
            heads,
            active,
            stopped,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received for `path`.
    pub fn count(&self, path: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|p| *p == path)
            .count()
    }

    /// Every request head received (request line and headers), in order.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    pub fn total(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// Stops accepting; open connections are dropped with the runtime.
    /// Stops accepting and drops every connection at its next request.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.task.abort();
    }

    /// Requests being answered right now.
    pub fn in_flight(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The value of a sample in Prometheus text, e.g.
/// `edge_cache_lookups_total{result="hit",route="/parameters"}`; labels are
/// matched as a set of `name="value"` strings.
pub fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with(name)
                && (l[name.len()..].starts_with('{') || l[name.len()..].starts_with(' '))
        })
        .find(|l| labels.iter().all(|lab| l.contains(lab)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
