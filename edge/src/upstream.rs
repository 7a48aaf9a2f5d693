//! The client for the auxiliary service.
//!
//! - Addresses: the worker's host name is resolved asynchronously (never with
//!   blocking DNS on a request thread), re-resolved every few seconds by
//!   [`Resolver`], and requests rotate over every address it returned, so a
//!   headless Service spreads load over all worker pods. A failed resolution
//!   keeps the previous addresses; with none at all a request fails fast with
//!   `503`.
//! - Connections: Pingora's [`Connector`] keeps idle HTTP/1.1 connections per
//!   address in a pool.
//! - Time: every attempt has a connect timeout, and the whole exchange
//!   (attempts included) a total timeout.
//! - Retries: owned here and only here. Requests to the worker are all `GET`
//!   (idempotent); they are retried, on the next address, only when the
//!   connection could not be made or a pooled connection turned out to be
//!   dead before any answer arrived, at most [`MAX_ATTEMPTS`] times.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error as PError, ErrorType};

use crate::config::UpstreamTarget;
use crate::metrics::{UpstreamOutcome, metrics};

/// Attempts per request, first one included.
pub const MAX_ATTEMPTS: usize = 3;
/// How often the worker's host name is resolved again.
pub const RESOLVE_INTERVAL: Duration = Duration::from_secs(5);
/// Idle time after which a pooled connection to the worker is dropped:
/// below the worker's own idle keep-alive limit (10 s by default), so the
/// edge normally closes first; the rare race is covered by the retry.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(8);
/// Largest worker body accepted.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// A complete worker answer.
#[derive(Debug, Clone)]
pub struct WorkerResponse {
    pub status: u16,
    pub retry_after: Option<u32>,
    pub body: Bytes,
}

/// Why no answer came from the worker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("auxiliary service unreachable: {0}")]
    Unavailable(String),
    #[error("auxiliary service did not answer within {0:?}")]
    Timeout(Duration),
    #[error("auxiliary service answer unusable: {0}")]
    Invalid(String),
}

impl UpstreamError {
    pub fn outcome(&self) -> UpstreamOutcome {
        match self {
            UpstreamError::Unavailable(_) => UpstreamOutcome::ConnectError,
            UpstreamError::Timeout(_) => UpstreamOutcome::Timeout,
            UpstreamError::Invalid(_) => UpstreamOutcome::Error,
        }
    }
}

/// What went wrong in one attempt, and whether another may follow.
enum AttemptError {
    /// Nothing reached the worker (or a pooled connection was dead): retry.
    Retryable(UpstreamError),
    Final(UpstreamError),
}

/// Correlation headers forwarded to the worker.
#[derive(Debug, Clone, Copy)]
pub struct Forwarded<'a> {
    pub request_id: &'a str,
    pub traceparent: Option<&'a str>,
}

/// The worker client, shared by all requests.
pub struct Upstream {
    target: UpstreamTarget,
    authority: String,
    addrs: RwLock<Arc<[SocketAddr]>>,
    next: AtomicUsize,
    connector: Connector,
    connect_timeout: Duration,
    timeout: Duration,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("target", &self.target)
            .field("addrs", &self.addresses())
            .finish_non_exhaustive()
    }
}

impl Upstream {
    pub fn new(target: UpstreamTarget, connect_timeout: Duration, timeout: Duration) -> Self {
        // An IP literal needs no resolution at all.
        let initial: Arc<[SocketAddr]> = match target.host.parse::<IpAddr>() {
            Ok(ip) => Arc::from(vec![SocketAddr::new(ip, target.port)]),
            Err(_) => Arc::from(Vec::new()),
        };
        Self {
            authority: target.authority(),
            target,
            addrs: RwLock::new(initial),
            next: AtomicUsize::new(0),
            connector: Connector::new(None),
            connect_timeout,
            timeout,
        }
    }

    /// The addresses requests currently rotate over.
    pub fn addresses(&self) -> Arc<[SocketAddr]> {
        self.addrs
            .read()
            .map(|a| a.clone())
            .unwrap_or_else(|_| Arc::from(Vec::new()))
    }

    /// Resolves the host again. On failure or an empty answer the previous
    /// addresses stay in use.
    pub async fn resolve(&self) -> Result<usize, String> {
        if self.target.host.parse::<IpAddr>().is_ok() {
            return Ok(1);
        }
        let lookup = tokio::net::lookup_host((self.target.host.as_str(), self.target.port));
        let found =
            match tokio::time::timeout(self.connect_timeout.max(Duration::from_secs(1)), lookup)
                .await
            {
                Ok(Ok(addrs)) => {
                    let mut v: Vec<SocketAddr> = addrs.collect();
                    v.sort();
                    v.dedup();
                    v
                }
                Ok(Err(e)) => return Err(format!("resolving {}: {e}", self.target.host)),
                Err(_) => return Err(format!("resolving {}: timed out", self.target.host)),
            };
        if found.is_empty() {
            return Err(format!("resolving {}: no addresses", self.target.host));
        }
        let n = found.len();
        let changed = self.addresses().as_ref() != found.as_slice();
        if changed {
            tracing::info!(host = %self.target.host, addresses = ?found, "auxiliary service addresses");
            if let Ok(mut guard) = self.addrs.write() {
                *guard = Arc::from(found);
            }
        }
        Ok(n)
    }

    async fn addresses_or_resolve(&self) -> Result<Arc<[SocketAddr]>, UpstreamError> {
        let addrs = self.addresses();
        if !addrs.is_empty() {
            return Ok(addrs);
        }
        self.resolve().await.map_err(UpstreamError::Unavailable)?;
        Ok(self.addresses())
    }

    /// `GET path` on the worker, with the retry and timeout policy above.
    /// Records `edge_upstream_*` under `route`.
    pub async fn get(
        &self,
        route: &'static str,
        path: &str,
        fwd: Forwarded<'_>,
    ) -> Result<WorkerResponse, UpstreamError> {
        let start = Instant::now();
        // Boxed: Pingora's connector futures are large, and this one is
        // only created on a cache miss.
        let exchange = Box::pin(self.get_with_retries(path, fwd));
        let result = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(UpstreamError::Timeout(self.timeout)),
        };
        let outcome = match &result {
            Ok(_) => UpstreamOutcome::Ok,
            Err(e) => e.outcome(),
        };
        metrics().observe_upstream(route, outcome, start.elapsed().as_secs_f64());
        if let Err(error) = &result {
            tracing::warn!(%error, route, request_id = fwd.request_id, "auxiliary service request failed");
        }
        result
    }

    async fn get_with_retries(
        &self,
        path: &str,
        fwd: Forwarded<'_>,
    ) -> Result<WorkerResponse, UpstreamError> {
        let addrs = self.addresses_or_resolve().await?;
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = UpstreamError::Unavailable("no attempt made".to_owned());
        for attempt in 0..MAX_ATTEMPTS {
            let addr = addrs[(first + attempt) % addrs.len()];
            match self.attempt(addr, path, fwd).await {
                Ok(r) => return Ok(r),
                Err(AttemptError::Final(e)) => return Err(e),
                Err(AttemptError::Retryable(e)) => {
                    tracing::debug!(error = %e, %addr, attempt, "retrying auxiliary service request");
                    last = e;
                }
            }
        }
        Err(last)
    }

    async fn attempt(
        &self,
        addr: SocketAddr,
        path: &str,
        fwd: Forwarded<'_>,
    ) -> Result<WorkerResponse, AttemptError> {
        let mut peer = HttpPeer::new(addr, false, String::new());
        peer.options.connection_timeout = Some(self.connect_timeout);
        peer.options.idle_timeout = Some(POOL_IDLE_TIMEOUT);

        let (mut session, reused) = self
            .connector
            .get_http_session(&peer)
            .await
            .map_err(|e| classify_connect(&e, self.connect_timeout))?;

        // A failure before any answer on a pooled connection means the worker
        // closed it while idle: nothing was processed, so it is safe to retry.
        let early = |e: Box<PError>| {
            let err = UpstreamError::Unavailable(format!("{addr}: {e}"));
            if reused {
                AttemptError::Retryable(err)
            } else {
                AttemptError::Final(err)
            }
        };
        let req = build_request(path, &self.authority, fwd)
            .map_err(|e| AttemptError::Final(UpstreamError::Invalid(e.to_string())))?;
        session
            .write_request_header(Box::new(req))
            .await
            .map_err(early)?;
        session.finish_request_body().await.map_err(early)?;
        session.read_response_header().await.map_err(early)?;

        let (status, retry_after) = match session.response_header() {
            Some(h) => (
                h.status.as_u16(),
                h.headers
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse().ok()),
            ),
            None => {
                return Err(AttemptError::Final(UpstreamError::Invalid(
                    "no response header".to_owned(),
                )));
            }
        };
        let mut body = BytesMut::new();
        loop {
            match session.read_response_body().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_BODY_BYTES {
                        return Err(AttemptError::Final(UpstreamError::Invalid(
                            "body too large".to_owned(),
                        )));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(AttemptError::Final(UpstreamError::Invalid(format!(
                        "{addr}: reading body: {e}"
                    ))));
                }
            }
        }
        if session.response_done() {
            self.connector
                .release_http_session(session, &peer, Some(POOL_IDLE_TIMEOUT))
                .await;
        }
        Ok(WorkerResponse {
            status,
            retry_after,
            body: body.freeze(),
        })
    }
}

fn classify_connect(e: &PError, connect_timeout: Duration) -> AttemptError {
    match e.etype() {
        ErrorType::ConnectTimedout => AttemptError::Final(UpstreamError::Timeout(connect_timeout)),
        _ => AttemptError::Retryable(UpstreamError::Unavailable(e.to_string())),
    }
}

fn build_request(
    path: &str,
    authority: &str,
    fwd: Forwarded<'_>,
) -> pingora::Result<RequestHeader> {
    let mut req = RequestHeader::build("GET", path.as_bytes(), Some(4))?;
    req.insert_header(http::header::HOST, authority)?;
    req.insert_header(http::header::ACCEPT, "application/json")?;
    req.insert_header(service_common::request::REQUEST_ID_HEADER, fwd.request_id)?;
    if let Some(tp) = fwd.traceparent {
        req.insert_header(service_common::request::TRACEPARENT_HEADER, tp)?;
    }
    Ok(req)
}

/// Re-resolves the worker's host every [`RESOLVE_INTERVAL`] until shutdown.
#[derive(Debug)]
pub struct Resolver(pub Arc<Upstream>);

#[async_trait]
impl BackgroundService for Resolver {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            if let Err(error) = self.0.resolve().await {
                tracing::warn!(%error, "auxiliary service address refresh failed; keeping the previous addresses");
            }
            tokio::select! {
                _ = tokio::time::sleep(RESOLVE_INTERVAL) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn upstream(host: &str, port: u16) -> Upstream {
        let target = UpstreamTarget {
            host: host.to_owned(),
            port,
        };
        Upstream::new(target, Duration::from_secs(1), Duration::from_secs(2))
    }

    const FWD: Forwarded<'static> = Forwarded {
        request_id: "t",
        traceparent: None,
    };

    /// A minimal worker answering `{}` to every request, counting requests
    /// and connections.
    async fn counting_server() -> (SocketAddr, Arc<AtomicUsize>) {
        let (addr, count, _) = counting_server_with_connections().await;
        (addr, count)
    }

    async fn counting_server_with_connections() -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>)
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let conns = Arc::new(AtomicUsize::new(0));
        let (c, k) = (count.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                k.fetch_add(1, Ordering::SeqCst);
                let c = c.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        c.fetch_add(1, Ordering::SeqCst);
                        let resp = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
                        if s.write_all(resp).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, count, conns)
    }

    async fn ok_status(up: &Upstream) -> u16 {
        up.get("/parameters", "/parameters", FWD)
            .await
            .unwrap()
            .status
    }

    /// Bound then released: nobody listens there.
    fn dead_addr() -> SocketAddr {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    }

    #[tokio::test]
    async fn ip_literals_need_no_dns_and_names_resolve_async() {
        assert_eq!(upstream("127.0.0.1", 1).addresses().len(), 1);
        let up = upstream("localhost", 8001);
        assert!(up.addresses().is_empty());
        assert!(up.resolve().await.unwrap() >= 1);
        assert!(up.addresses().iter().all(|a| a.port() == 8001));
    }

    #[tokio::test]
    async fn dns_failure_is_an_error_not_a_panic_and_keeps_known_addresses() {
        let up = upstream("no-such-host.invalid", 8001);
        assert!(up.resolve().await.is_err());
        let r = up.get("/parameters", "/parameters", FWD).await;
        assert!(matches!(r, Err(UpstreamError::Unavailable(_))), "{r:?}");

        let (addr, _) = counting_server().await;
        *up.addrs.write().unwrap() = Arc::from(vec![addr]);
        assert!(up.resolve().await.is_err());
        assert_eq!(up.addresses().as_ref(), &[addr]);
        assert_eq!(ok_status(&up).await, 200);
    }

    #[tokio::test]
    async fn requests_rotate_over_every_address_and_reuse_connections() {
        let (a, count_a, conns_a) = counting_server_with_connections().await;
        let (b, count_b, conns_b) = counting_server_with_connections().await;
        let up = upstream("127.0.0.1", a.port());
        *up.addrs.write().unwrap() = Arc::from(vec![a, b]);
        for _ in 0..10 {
            let r = up.get("/parameters", "/parameters", FWD).await.unwrap();
            assert_eq!((r.status, &r.body[..]), (200, &b"{}"[..]));
        }
        assert_eq!(count_a.load(Ordering::SeqCst), 5);
        assert_eq!(count_b.load(Ordering::SeqCst), 5);
        // Pooled: sequential requests reuse one connection per address.
        assert_eq!(conns_a.load(Ordering::SeqCst), 1);
        assert_eq!(conns_b.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn refused_connection_fails_fast_after_bounded_retries() {
        let up = upstream("127.0.0.1", dead_addr().port());
        let start = Instant::now();
        let r = up.get("/parameters", "/parameters", FWD).await;
        assert!(matches!(r, Err(UpstreamError::Unavailable(_))), "{r:?}");
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_refused_address_is_skipped_by_the_retry() {
        let dead = dead_addr();
        let (alive, count) = counting_server().await;
        let up = upstream("127.0.0.1", alive.port());
        *up.addrs.write().unwrap() = Arc::from(vec![dead, alive]);
        for _ in 0..4 {
            assert_eq!(ok_status(&up).await, 200);
        }
        assert_eq!(count.load(Ordering::SeqCst), 4);
    }
}
