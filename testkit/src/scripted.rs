//! An HTTP endpoint that answers from a script, for AWS answers moto cannot
//! give (throttling, server errors, access denied): the worker's real SDK
//! client, built by the production constructor, sends real requests over a
//! real socket and parses real HTTP answers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// One answer of the script.
#[derive(Debug, Clone)]
pub struct Canned {
    status: u16,
    content_type: &'static str,
    body: String,
}

impl Canned {
    /// An answer of the AWS JSON 1.1 protocol (SSM).
    pub fn aws_json(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "application/x-amz-json-1.1",
            body: body.into(),
        }
    }

    /// An AWS JSON 1.1 error: `{"__type": code, "message": message}`.
    pub fn aws_json_error(status: u16, code: &str, message: &str) -> Self {
        Self::aws_json(
            status,
            serde_json::json!({ "__type": code, "message": message }).to_string(),
        )
    }

    /// An XML answer (S3).
    pub fn xml(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "application/xml",
            body: body.into(),
        }
    }
}

/// A request the endpoint received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Method, path and query, as sent.
    pub method: String,
    pub uri: String,
    /// `X-Amz-Target` (the operation, for JSON protocols such as SSM's).
    pub target: Option<String>,
}

/// The endpoint: the n-th request gets the n-th answer, the last answer
/// repeats, and every request is recorded. It stops when dropped.
#[derive(Debug)]
pub struct Scripted {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Scripted {
    /// Starts it on 127.0.0.1 (a port the kernel picks: the test hands the
    /// address to a client, nothing else binds it). The script must not be
    /// empty.
    pub async fn start(script: Vec<Canned>) -> Scripted {
        assert!(!script.is_empty(), "a script needs at least one answer");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(script);
        let log = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (script, log) = (script.clone(), log.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let answer = {
                            let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
                            log.push(Received {
                                method: req.method().to_string(),
                                uri: req.uri().to_string(),
                                target: req
                                    .headers()
                                    .get("x-amz-target")
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_owned),
                            });
                            script[(log.len() - 1).min(script.len() - 1)].clone()
                        };
                        async move {
                            let response = Response::builder()
                                .status(answer.status)
                                .header("content-type", answer.content_type)
                                .header("x-amzn-requestid", "scripted")
                                .body(Full::new(Bytes::from(answer.body)))
                                .expect("a valid canned response");
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Scripted {
            addr,
            received,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`, for `--aws-endpoint-url`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}
