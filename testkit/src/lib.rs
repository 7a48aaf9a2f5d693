//! Test support shared by the services' integration tests.
//!
//! [`Moto`] runs a real moto server (`scripts/moto_server.py` with the Python
//! from `.tools/venv`, installed by `scripts/tools.sh python`) on a free
//! 127.0.0.1 port. The server watches its standard input, so it stops when the
//! test process that started it exits, however that happens.
//! [`demo_data`] is the data `--seed` puts in it, so tests assert against the
//! same file the local stack uses instead of repeating it.
//! [`Scripted`] answers from a script, for AWS answers moto cannot give.
#![allow(clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use aux_worker::config::AwsSettings;

pub mod http;
mod scripted;
mod worker;
pub use http::{TestResponse, get, send};
pub use scripted::{Canned, Received, Scripted};
pub use worker::Worker;

/// The repository root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives one level below the root")
        .to_path_buf()
}

/// A port free on 127.0.0.1 now, for a server a test starts (a binary told
/// its address). Picked at random *below* the kernel's ephemeral range, where
/// no outgoing connection and no `bind(0)` elsewhere can take it before the
/// server binds it, and never handed out twice by this process (the same
/// rule as `scripts/ports.py`). When the range leaves no room below it, the
/// kernel picks.
pub fn free_port() -> u16 {
    const FLOOR: u16 = 10_000;
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    if low.saturating_sub(FLOOR) >= 1_000 {
        let mut given = GIVEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // xorshift seeded by the clock and the process: tests in parallel
        // processes start from different places.
        let mut x = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            ^ (u64::from(std::process::id()) << 32)
            ^ given.len() as u64;
        for _ in 0..200 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let port = FLOOR + (x % u64::from(low - FLOOR)) as u16;
            if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
                given.push(port);
                return port;
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

/// An address on 127.0.0.1 that refuses connections for as long as the
/// returned socket lives: the socket is bound (so no other test, in this
/// process or another, can be given the port) but never listens, so the
/// kernel answers every connection attempt with a reset. A port that was
/// merely free a moment ago ([`free_port`]) may be taken by a parallel test
/// and answer.
pub fn refusing_addr() -> (std::net::SocketAddr, socket2::Socket) {
    refusing_at(([127, 0, 0, 1], 0).into())
}

/// [`refusing_addr`] on a given address (e.g. `127.0.0.3:PORT`, port `0`
/// for any).
pub fn refusing_at(at: std::net::SocketAddr) -> (std::net::SocketAddr, socket2::Socket) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .expect("a TCP socket");
    socket
        .bind(&at.into())
        .unwrap_or_else(|e| panic!("binding {at}: {e}"));
    let addr = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("an IPv4 local address");
    (addr, socket)
}

/// A TCP endpoint on 127.0.0.1 that accepts connections, holds them open and
/// never answers; the counter tells how many connections were made.
pub async fn black_hole() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::Ordering;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    (addr, accepted)
}

/// The demo data the local stack and `Moto::start_seeded` use.
pub fn demo_data() -> serde_json::Value {
    let path = workspace_root().join("scripts/demo-data.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("demo-data.json is JSON")
}

/// Full names of the demo parameters under the demo prefix, sorted.
pub fn demo_parameter_names() -> Vec<String> {
    let data = demo_data();
    let mut names: Vec<String> = data["parameters"]
        .as_array()
        .expect("parameters array")
        .iter()
        .filter(|p| !p["outside_prefix"].as_bool().unwrap_or(false))
        .map(|p| p["name"].as_str().expect("name").to_owned())
        .collect();
    names.sort();
    names
}

/// The region the demo data lives in.
pub const REGION: &str = "eu-west-1";

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    endpoint: String,
    child: Mutex<Child>,
    // Dropping this closes the server's stdin, which stops it.
    _stdin: Mutex<Option<ChildStdin>>,
}

impl Moto {
    /// Starts an empty moto server.
    pub fn start() -> Moto {
        Self::spawn(false)
    }

    /// Starts a moto server seeded with `scripts/demo-data.json`.
    pub fn start_seeded() -> Moto {
        Self::spawn(true)
    }

    /// One seeded server per test binary, started on first use.
    pub fn shared() -> &'static Moto {
        static SHARED: OnceLock<Moto> = OnceLock::new();
        SHARED.get_or_init(Moto::start_seeded)
    }

    fn spawn(seed: bool) -> Moto {
        let root = workspace_root();
        let python = std::env::var_os("MOTO_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".tools/venv/bin/python"));
        assert!(
            python.exists(),
            "{} not found: run `scripts/tools.sh python` (or set MOTO_PYTHON)",
            python.display()
        );
        let mut cmd = Command::new(&python);
        cmd.arg(root.join("scripts/moto_server.py"))
            .args(["--port", "0", "--watch-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if seed {
            cmd.arg("--seed");
        }
        let mut child = cmd.spawn().expect("starting moto");
        let stdout = child.stdout.take().expect("moto stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reading moto's first line");
        let endpoint = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("moto did not start: {line:?}"))
            .to_owned();
        let stdin = child.stdin.take();
        Moto {
            endpoint,
            child: Mutex::new(child),
            _stdin: Mutex::new(stdin),
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The worker's own SDK configuration (same HTTP client, timeouts and
    /// retries) pointed at this server, with dummy static credentials.
    pub async fn sdk_config(&self, settings: &AwsSettings) -> aws_config::SdkConfig {
        aux_worker::aws::config_loader(settings)
            .credentials_provider(aws_sdk_ssm::config::Credentials::new(
                "test", "test", None, None, "testkit",
            ))
            .load()
            .await
    }

    /// Settings for clients of this server, as the worker parses them.
    pub fn aws_settings(&self) -> AwsSettings {
        AwsSettings {
            region: Some(REGION.to_owned()),
            endpoint_url: Some(self.endpoint.clone()),
            call_timeout: Duration::from_secs(5),
            max_attempts: 1,
        }
    }

    /// An SSM client for arranging test data.
    pub async fn ssm(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&self.sdk_config(&self.aws_settings()).await)
    }

    /// Creates or overwrites a parameter (`secure`: a SecureString).
    pub async fn put_parameter(&self, name: &str, value: &str, secure: bool) {
        let kind = if secure {
            aws_sdk_ssm::types::ParameterType::SecureString
        } else {
            aws_sdk_ssm::types::ParameterType::String
        };
        self.ssm()
            .await
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(kind)
            .overwrite(true)
            .send()
            .await
            .unwrap_or_else(|e| panic!("put_parameter {name}: {e:?}"));
    }

    /// Deletes a parameter.
    pub async fn delete_parameter(&self, name: &str) {
        self.ssm()
            .await
            .delete_parameter()
            .name(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("delete_parameter {name}: {e:?}"));
    }

    /// Environment for a worker process pointed at this server.
    pub fn worker_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
