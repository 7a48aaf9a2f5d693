//! The client for the auxiliary service.
//!
//! - **Addresses.** The worker's host name is resolved by the background
//!   [`Resolver`] only (asynchronously, every `UPSTREAM_RESOLVE_INTERVAL_SECONDS`;
//!   never on a request, so concurrent requests never each resolve). A
//!   failed resolution keeps the previous addresses; a request that finds
//!   none answers `503 upstream_unavailable` at once.
//! - **Selection** by `pingora-load-balancing`: misses for one parameter go
//!   to one address (Ketama consistent hashing over the addresses, so the
//!   worker's own cache sees each key on one worker, and a change in the
//!   worker set moves only the keys of the workers that changed); other
//!   requests are spread round-robin. A retry takes the next address on the
//!   ring (a *keyed fallback*).
//! - **Passive outlier ejection** ([`Ejections`]): an address that refused,
//!   timed out (connecting or answering) or reset is skipped for a while,
//!   doubling from [`EJECT_BASE`] up to [`EJECT_MAX`]; it comes back once a
//!   background connection probe succeeds, so no request waits on a dead
//!   address to find out. The last usable address is never ejected.
//! - **Connections**: Pingora's [`Connector`] keeps idle HTTP/1.1
//!   connections per address (`UPSTREAM_POOL_IDLE_MAX`,
//!   `UPSTREAM_IDLE_TIMEOUT_SECONDS`).
//! - **Time and retries** (owned here and only here): every attempt has a
//!   connect timeout and the whole exchange a total timeout. Requests to the
//!   worker are all `GET`; one is retried on another address only when
//!   nothing reached the worker (refused, connect timeout, a pooled
//!   connection found dead), at most `UPSTREAM_RETRIES` times.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::connectors::ConnectorOptions;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::lb::discovery::ServiceDiscovery;
use pingora::lb::selection::RoundRobin;
use pingora::lb::selection::consistent::KetamaHashing;
use pingora::lb::{Backend, Backends, LoadBalancer};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error as PError, ErrorType};

use crate::answer::WorkerFreshness;
use crate::config::UpstreamConfig;
use crate::metrics::{UpstreamOutcome, metrics};

/// First ejection of an address, doubled on each consecutive one.
pub const EJECT_BASE: Duration = Duration::from_secs(2);
/// Longest ejection.
pub const EJECT_MAX: Duration = Duration::from_secs(30);
/// Steps through the hash ring when looking for a usable address.
const RING_STEPS: usize = 512;

/// A complete worker answer.
#[derive(Debug, Clone)]
pub struct WorkerResponse {
    pub status: u16,
    pub retry_after: Option<u32>,
    pub freshness: WorkerFreshness,
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

/// What went wrong in one attempt.
enum AttemptError {
    /// Nothing reached the worker: the request may be sent again. `eject`
    /// says whether the address is to blame; `stale` marks a pooled
    /// connection the worker had closed while idle, which says nothing
    /// about the address (it stays first choice, on another connection).
    Retryable {
        error: UpstreamError,
        eject: bool,
        stale: bool,
    },
    /// The worker may have seen the request: no retry.
    Final { error: UpstreamError, eject: bool },
}

/// Headers the edge passes to the worker: correlation and trace context.
#[derive(Debug, Clone, Default)]
pub struct Forwarded {
    pub request_id: String,
    pub traceparent: String,
    /// `tracestate` and the B3 headers, exactly as received.
    pub propagated: Vec<(&'static str, Bytes)>,
}

/// Passive outlier ejection: which addresses are being skipped, and for how
/// long.
#[derive(Debug, Default)]
pub struct Ejections {
    state: Mutex<HashMap<SocketAddr, Ejection>>,
}

#[derive(Debug, Clone, Copy)]
struct Ejection {
    /// Consecutive failures (reset by a success).
    failures: u32,
    /// Skipped until a probe succeeds.
    ejected: bool,
}

/// The ejection after `failures` consecutive failures.
pub fn ejection_duration(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    EJECT_BASE.saturating_mul(1u32 << doublings).min(EJECT_MAX)
}

impl Ejections {
    pub fn is_ejected(&self, addr: &SocketAddr) -> bool {
        self.state
            .lock()
            .map(|s| s.get(addr).is_some_and(|e| e.ejected))
            .unwrap_or(false)
    }

    /// Addresses being skipped now.
    pub fn ejected_count(&self) -> usize {
        self.state
            .lock()
            .map(|s| s.values().filter(|e| e.ejected).count())
            .unwrap_or(0)
    }

    /// Records a failure of `addr`. Returns the ejection to start (and to
    /// probe after), unless it is already ejected or would be the last
    /// usable address among `members`.
    pub fn failure(&self, addr: SocketAddr, members: &[SocketAddr]) -> Option<Duration> {
        let Ok(mut state) = self.state.lock() else {
            return None;
        };
        let usable_others = members
            .iter()
            .filter(|m| **m != addr && !state.get(m).is_some_and(|e| e.ejected))
            .count();
        let e = state.entry(addr).or_insert(Ejection {
            failures: 0,
            ejected: false,
        });
        e.failures = e.failures.saturating_add(1);
        if e.ejected || usable_others == 0 {
            return None;
        }
        e.ejected = true;
        Some(ejection_duration(e.failures))
    }

    /// A request succeeded on `addr`: it is healthy again.
    pub fn success(&self, addr: &SocketAddr) {
        if let Ok(mut state) = self.state.lock()
            && state.get(addr).is_some_and(|e| e.failures > 0 || e.ejected)
        {
            state.remove(addr);
        }
    }

    /// A probe reached `addr`: it is tried again (its failure count stays,
    /// so the next ejection lasts longer).
    fn readmit(&self, addr: &SocketAddr) {
        if let Ok(mut state) = self.state.lock()
            && let Some(e) = state.get_mut(addr)
        {
            e.ejected = false;
        }
    }

    /// The failure count of an ejected address, for the probe's back-off.
    fn failures(&self, addr: &SocketAddr) -> Option<u32> {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.get(addr).filter(|e| e.ejected).map(|e| e.failures))
    }

    /// Forgets addresses that are no longer members.
    fn retain(&self, members: &[SocketAddr]) {
        if let Ok(mut state) = self.state.lock() {
            state.retain(|addr, _| members.contains(addr));
        }
    }
}

/// The resolved worker addresses, as a discovery source for the load
/// balancers.
#[derive(Debug, Default)]
struct Members(RwLock<Arc<[SocketAddr]>>);

impl Members {
    fn get(&self) -> Arc<[SocketAddr]> {
        self.0
            .read()
            .map(|a| a.clone())
            .unwrap_or_else(|_| Arc::from(Vec::new()))
    }

    fn set(&self, addrs: Vec<SocketAddr>) {
        if let Ok(mut guard) = self.0.write() {
            *guard = Arc::from(addrs);
        }
    }
}

struct Discovery(Arc<Members>);

#[async_trait]
impl ServiceDiscovery for Discovery {
    async fn discover(&self) -> pingora::Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        let backends = self
            .0
            .get()
            .iter()
            .map(|addr| Backend {
                addr: pingora::protocols::l4::socket::SocketAddr::Inet(*addr),
                weight: 1,
                ext: Default::default(),
            })
            .collect();
        Ok((backends, HashMap::new()))
    }
}

fn inet(b: &Backend) -> Option<SocketAddr> {
    match b.addr {
        pingora::protocols::l4::socket::SocketAddr::Inet(a) => Some(a),
        _ => None,
    }
}

/// The worker client, shared by all requests.
pub struct Upstream {
    config: UpstreamConfig,
    authority: String,
    members: Arc<Members>,
    keyed: LoadBalancer<KetamaHashing>,
    spread: LoadBalancer<RoundRobin>,
    ejections: Arc<Ejections>,
    connector: Connector,
    probes: AtomicUsize,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("target", &self.config.target)
            .field("addrs", &self.addresses())
            .finish_non_exhaustive()
    }
}

impl Upstream {
    pub fn new(config: UpstreamConfig) -> Self {
        let members = Arc::new(Members::default());
        let keyed =
            LoadBalancer::from_backends(Backends::new(Box::new(Discovery(members.clone()))));
        let spread =
            LoadBalancer::from_backends(Backends::new(Box::new(Discovery(members.clone()))));
        let up = Self {
            authority: config.target.authority(),
            connector: Connector::new(Some(ConnectorOptions::new(config.pool_idle_max))),
            config,
            members,
            keyed,
            spread,
            ejections: Arc::new(Ejections::default()),
            probes: AtomicUsize::new(0),
        };
        // An IP literal needs no resolution at all. (Discovery reads memory:
        // updating the selectors completes at once.)
        if let Ok(ip) = up.config.target.host.parse::<IpAddr>() {
            use futures::FutureExt;
            up.members
                .set(vec![SocketAddr::new(ip, up.config.target.port)]);
            let _ = up.keyed.update().now_or_never();
            let _ = up.spread.update().now_or_never();
        }
        up
    }

    /// The addresses requests are spread over.
    pub fn addresses(&self) -> Arc<[SocketAddr]> {
        self.members.get()
    }

    /// Replaces the addresses and rebuilds both selectors.
    pub async fn set_addresses(&self, mut addrs: Vec<SocketAddr>) {
        addrs.sort();
        addrs.dedup();
        if self.addresses().as_ref() == addrs.as_slice() {
            return;
        }
        tracing::info!(host = %self.config.target.host, addresses = ?addrs, "auxiliary service addresses");
        self.ejections.retain(&addrs);
        self.members.set(addrs);
        let (a, b) = tokio::join!(self.keyed.update(), self.spread.update());
        if let Err(error) = a.and(b) {
            tracing::warn!(%error, "rebuilding the worker selection failed");
        }
        metrics()
            .upstream_ejected
            .set(i64::try_from(self.ejections.ejected_count()).unwrap_or(0));
    }

    /// Resolves the host again. On failure or an empty answer the previous
    /// addresses stay in use.
    pub async fn resolve(&self) -> Result<usize, String> {
        let target = &self.config.target;
        if let Ok(ip) = target.host.parse::<IpAddr>() {
            self.set_addresses(vec![SocketAddr::new(ip, target.port)])
                .await;
            return Ok(1);
        }
        let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
        let wait = self.config.connect_timeout.max(Duration::from_secs(1));
        let found: Vec<SocketAddr> = match tokio::time::timeout(wait, lookup).await {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(e)) => return Err(format!("resolving {}: {e}", target.host)),
            Err(_) => return Err(format!("resolving {}: timed out", target.host)),
        };
        if found.is_empty() {
            return Err(format!("resolving {}: no addresses", target.host));
        }
        let n = found.len();
        self.set_addresses(found).await;
        Ok(n)
    }

    /// The address for the next attempt: the key's place on the ring (or
    /// the next round-robin address), preferring addresses not tried yet and
    /// not ejected; with every address ejected or tried, any address. (A
    /// pooled connection found dead does not count its address as tried, so
    /// a key's misses stay on their worker.)
    fn pick(&self, hash_key: Option<&[u8]>, tried: &[SocketAddr]) -> Option<SocketAddr> {
        let choose = |skip_tried: bool, skip_ejected: bool| {
            let usable = |b: &Backend, _healthy: bool| {
                inet(b).is_some_and(|a| {
                    !(skip_tried && tried.contains(&a)
                        || skip_ejected && self.ejections.is_ejected(&a))
                })
            };
            match hash_key {
                Some(key) => self.keyed.select_with(key, RING_STEPS, usable),
                None => self.spread.select_with(b"", RING_STEPS, usable),
            }
        };
        choose(true, true)
            .or_else(|| choose(true, false))
            .or_else(|| choose(false, false))
            .and_then(|b| inet(&b))
    }

    /// Where the keyed selection sends `key` when every address is usable
    /// (tests and the bench compare workers by it).
    pub fn home_of(&self, key: &[u8]) -> Option<SocketAddr> {
        self.keyed
            .select_with(key, RING_STEPS, |b, _| inet(b).is_some())
            .and_then(|b| inet(&b))
    }

    /// `GET path` on the worker, with the retry, ejection and timeout policy
    /// above. `hash_key` routes a parameter's misses to one address.
    /// Records `edge_upstream_*` under `route`.
    pub async fn get(
        self: &Arc<Self>,
        route: &'static str,
        path: &str,
        fwd: &Forwarded,
        hash_key: Option<&[u8]>,
    ) -> Result<WorkerResponse, UpstreamError> {
        let start = Instant::now();
        let current = Mutex::new(None::<SocketAddr>);
        // Boxed: Pingora's connector futures are large, and this one is
        // only created on a miss.
        let exchange = Box::pin(self.get_with_retries(route, path, fwd, hash_key, &current));
        let result = match tokio::time::timeout(self.config.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => {
                // No answer in time: the address being tried is to blame.
                if let Some(addr) = current.lock().ok().and_then(|c| *c) {
                    self.failed(addr);
                }
                Err(UpstreamError::Timeout(self.config.timeout))
            }
        };
        let outcome = match &result {
            Ok(_) => UpstreamOutcome::Ok,
            Err(e) => e.outcome(),
        };
        metrics().observe_upstream(route, outcome, start.elapsed().as_secs_f64());
        if let Err(error) = &result {
            tracing::warn!(%error, route, request_id = %fwd.request_id, "auxiliary service request failed");
        }
        result
    }

    async fn get_with_retries(
        self: &Arc<Self>,
        route: &'static str,
        path: &str,
        fwd: &Forwarded,
        hash_key: Option<&[u8]>,
        current: &Mutex<Option<SocketAddr>>,
    ) -> Result<WorkerResponse, UpstreamError> {
        let mut tried: Vec<SocketAddr> = Vec::new();
        let mut last = UpstreamError::Unavailable("no worker address known".to_owned());
        let home = hash_key.and_then(|k| self.home_of(k));
        for attempt in 0..=self.config.retries {
            let Some(addr) = self.pick(hash_key, &tried) else {
                break;
            };
            if attempt > 0 {
                metrics().upstream_retries.with_label_values(&[route]).inc();
            }
            if hash_key.is_some() && home.is_some_and(|h| h != addr) {
                metrics().upstream_keyed_fallbacks.inc();
            }
            if let Ok(mut c) = current.lock() {
                *c = Some(addr);
            }
            match self.attempt(addr, path, fwd).await {
                Ok(r) => {
                    self.ejections.success(&addr);
                    return Ok(r);
                }
                Err(AttemptError::Final { error, eject }) => {
                    if eject {
                        self.failed(addr);
                    }
                    return Err(error);
                }
                Err(AttemptError::Retryable {
                    error,
                    eject,
                    stale,
                }) => {
                    tracing::debug!(%error, %addr, attempt, "retrying auxiliary service request");
                    if eject {
                        self.failed(addr);
                    }
                    if !stale {
                        tried.push(addr);
                    }
                    last = error;
                }
            }
        }
        Err(last)
    }

    /// Records a failure of `addr`, ejecting it (and starting its probe)
    /// when the policy says so.
    fn failed(self: &Arc<Self>, addr: SocketAddr) {
        let members = self.addresses();
        if let Some(wait) = self.ejections.failure(addr, &members) {
            let m = metrics();
            m.upstream_ejections.inc();
            m.upstream_ejected
                .set(i64::try_from(self.ejections.ejected_count()).unwrap_or(0));
            tracing::warn!(%addr, seconds = wait.as_secs(), "auxiliary service address ejected");
            let this = self.clone();
            self.probes.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                this.probe(addr, wait).await;
                this.probes.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }

    /// Waits, then checks that `addr` accepts connections again; backs off
    /// while it does not. Ends when it is readmitted or no longer a member.
    async fn probe(&self, addr: SocketAddr, mut wait: Duration) {
        loop {
            tokio::time::sleep(wait).await;
            if !self.addresses().contains(&addr) {
                return;
            }
            let connect = tokio::net::TcpStream::connect(addr);
            if let Ok(Ok(_)) = tokio::time::timeout(self.config.connect_timeout, connect).await {
                self.ejections.readmit(&addr);
                metrics()
                    .upstream_ejected
                    .set(i64::try_from(self.ejections.ejected_count()).unwrap_or(0));
                tracing::info!(%addr, "auxiliary service address readmitted");
                return;
            }
            let failures = match self.ejections.failures(&addr) {
                Some(f) => f.saturating_add(1),
                None => return,
            };
            wait = ejection_duration(failures);
        }
    }

    async fn attempt(
        &self,
        addr: SocketAddr,
        path: &str,
        fwd: &Forwarded,
    ) -> Result<WorkerResponse, AttemptError> {
        let mut peer = HttpPeer::new(addr, false, String::new());
        peer.options.connection_timeout = Some(self.config.connect_timeout);
        peer.options.idle_timeout = Some(self.config.idle_timeout);

        let (mut session, reused) = self
            .connector
            .get_http_session(&peer)
            .await
            .map_err(|e| classify_connect(&e, addr))?;

        // A failure before any answer on a pooled connection means the worker
        // closed it while idle: nothing was processed, so it is safe to retry
        // elsewhere, and the address is not to blame. On a new connection it
        // is a reset: the request may have been seen.
        let early = |e: Box<PError>| {
            let error = UpstreamError::Unavailable(format!("{addr}: {e}"));
            if reused {
                AttemptError::Retryable {
                    error,
                    eject: false,
                    stale: true,
                }
            } else {
                AttemptError::Final { error, eject: true }
            }
        };
        let req = build_request(path, &self.authority, fwd).map_err(|e| AttemptError::Final {
            error: UpstreamError::Invalid(e.to_string()),
            eject: false,
        })?;
        session
            .write_request_header(Box::new(req))
            .await
            .map_err(early)?;
        session.finish_request_body().await.map_err(early)?;
        session.read_response_header().await.map_err(early)?;

        let final_err = |error: UpstreamError| AttemptError::Final {
            error,
            eject: false,
        };
        let (status, retry_after, freshness) = match session.response_header() {
            Some(h) => {
                let header = |name: http::header::HeaderName| {
                    h.headers.get(name).map(http::HeaderValue::as_bytes)
                };
                (
                    h.status.as_u16(),
                    header(http::header::RETRY_AFTER)
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .and_then(|v| v.trim().parse().ok()),
                    WorkerFreshness::parse(
                        header(http::header::CACHE_CONTROL),
                        header(http::header::AGE),
                    ),
                )
            }
            None => {
                return Err(final_err(UpstreamError::Invalid(
                    "no response header".to_owned(),
                )));
            }
        };
        let mut body = BytesMut::new();
        loop {
            match session.read_response_body().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > self.config.max_body_bytes {
                        return Err(final_err(UpstreamError::Invalid(format!(
                            "body larger than {} bytes",
                            self.config.max_body_bytes
                        ))));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(final_err(UpstreamError::Invalid(format!(
                        "{addr}: reading body: {e}"
                    ))));
                }
            }
        }
        if session.response_done() {
            self.connector
                .release_http_session(session, &peer, Some(self.config.idle_timeout))
                .await;
        }
        Ok(WorkerResponse {
            status,
            retry_after,
            freshness,
            body: body.freeze(),
        })
    }
}

fn classify_connect(e: &PError, addr: SocketAddr) -> AttemptError {
    let error = UpstreamError::Unavailable(format!("{addr}: {e}"));
    match e.etype() {
        // Refused, timed out, unreachable: nothing was sent.
        ErrorType::ConnectTimedout
        | ErrorType::ConnectRefused
        | ErrorType::ConnectNoRoute
        | ErrorType::ConnectError
        | ErrorType::SocketError => AttemptError::Retryable {
            error,
            eject: true,
            stale: false,
        },
        _ => AttemptError::Retryable {
            error,
            eject: false,
            stale: false,
        },
    }
}

fn build_request(path: &str, authority: &str, fwd: &Forwarded) -> pingora::Result<RequestHeader> {
    let mut req = RequestHeader::build("GET", path.as_bytes(), Some(4 + fwd.propagated.len()))?;
    req.insert_header(http::header::HOST, authority)?;
    req.insert_header(http::header::ACCEPT, "application/json")?;
    req.insert_header(
        service_common::request::REQUEST_ID_HEADER,
        fwd.request_id.as_str(),
    )?;
    req.insert_header(service_common::trace::TRACEPARENT, fwd.traceparent.as_str())?;
    for (name, value) in &fwd.propagated {
        req.append_header(*name, value.as_ref())?;
    }
    Ok(req)
}

/// Resolves the worker's host at start and every
/// `UPSTREAM_RESOLVE_INTERVAL_SECONDS` until shutdown.
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
                _ = tokio::time::sleep(self.0.config.resolve_interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::config::UpstreamTarget;

    fn config(host: &str, port: u16) -> UpstreamConfig {
        UpstreamConfig {
            target: UpstreamTarget {
                host: host.to_owned(),
                port,
            },
            connect_timeout: Duration::from_millis(300),
            timeout: Duration::from_secs(2),
            retries: 2,
            max_in_flight: 16,
            pool_idle_max: 16,
            idle_timeout: Duration::from_secs(8),
            resolve_interval: Duration::from_secs(5),
            max_body_bytes: 1 << 20,
        }
    }

    fn upstream(host: &str, port: u16) -> Arc<Upstream> {
        Arc::new(Upstream::new(config(host, port)))
    }

    fn fwd() -> Forwarded {
        Forwarded {
            request_id: "t".into(),
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            propagated: vec![("tracestate", Bytes::from_static(b"a=b"))],
        }
    }

    /// A minimal worker answering `{}` to every request, counting requests
    /// and connections.
    async fn counting_server() -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
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
                        let resp = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncache-control: max-age=30\r\nage: 3\r\n\r\n{}";
                        if s.write_all(resp).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, count, conns)
    }

    /// Bound then released: nobody listens there.
    #[test]
    fn ejections_double_up_to_the_bound() {
        assert_eq!(ejection_duration(1), EJECT_BASE);
        assert_eq!(ejection_duration(2), EJECT_BASE * 2);
        assert_eq!(ejection_duration(3), EJECT_BASE * 4);
        assert_eq!(ejection_duration(40), EJECT_MAX);
    }

    #[test]
    fn the_last_usable_address_is_never_ejected() {
        let e = Ejections::default();
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:1".parse().unwrap();
        assert_eq!(e.failure(a, &[a]), None, "alone: never ejected");
        assert!(!e.is_ejected(&a));
        assert_eq!(
            e.failure(a, &[a, b]),
            Some(EJECT_BASE * 2),
            "second failure"
        );
        assert!(e.is_ejected(&a));
        assert_eq!(e.failure(b, &[a, b]), None, "b is the last usable one");
        assert_eq!(e.ejected_count(), 1);
        e.readmit(&a);
        assert!(!e.is_ejected(&a));
        e.success(&a);
        assert_eq!(
            e.failure(a, &[a, b]),
            Some(EJECT_BASE),
            "a success resets the count"
        );
    }

    #[tokio::test]
    async fn ip_literals_need_no_dns_and_names_resolve_off_the_request_path() {
        assert_eq!(upstream("127.0.0.1", 1).addresses().len(), 1);
        let up = upstream("localhost", 8001);
        assert!(up.addresses().is_empty());
        // Nothing known yet: a request fails at once, it does not resolve.
        let r = up.get("/parameters", "/parameters", &fwd(), None).await;
        assert!(matches!(r, Err(UpstreamError::Unavailable(_))), "{r:?}");
        assert!(up.resolve().await.unwrap() >= 1);
        assert!(up.addresses().iter().all(|a| a.port() == 8001));
    }

    #[tokio::test]
    async fn a_failed_resolution_keeps_the_known_addresses() {
        let (addr, _, _) = counting_server().await;
        let up = upstream("no-such-host.invalid", addr.port());
        assert!(up.resolve().await.is_err());
        up.set_addresses(vec![addr]).await;
        assert!(up.resolve().await.is_err());
        assert_eq!(up.addresses().as_ref(), &[addr]);
        let r = up
            .get("/parameters", "/parameters", &fwd(), None)
            .await
            .unwrap();
        assert_eq!(
            (r.status, r.freshness.max_age, r.freshness.age),
            (200, Some(30), 3)
        );
    }

    #[tokio::test]
    async fn unkeyed_requests_rotate_over_every_address_and_reuse_connections() {
        let (a, count_a, conns_a) = counting_server().await;
        let (b, count_b, conns_b) = counting_server().await;
        let up = upstream("127.0.0.1", a.port());
        up.set_addresses(vec![a, b]).await;
        for _ in 0..10 {
            let r = up
                .get("/parameters", "/parameters", &fwd(), None)
                .await
                .unwrap();
            assert_eq!((r.status, &r.body[..]), (200, &b"{}"[..]));
        }
        assert_eq!(count_a.load(Ordering::SeqCst), 5);
        assert_eq!(count_b.load(Ordering::SeqCst), 5);
        assert_eq!(conns_a.load(Ordering::SeqCst), 1);
        assert_eq!(conns_b.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_key_always_reaches_the_same_address() {
        let (a, count_a, _) = counting_server().await;
        let (b, count_b, _) = counting_server().await;
        let up = upstream("127.0.0.1", a.port());
        up.set_addresses(vec![a, b]).await;
        for _ in 0..6 {
            up.get(
                "/parameter/{name}",
                "/parameter/x",
                &fwd(),
                Some(b"/parameter/x"),
            )
            .await
            .unwrap();
        }
        let (na, nb) = (
            count_a.load(Ordering::SeqCst),
            count_b.load(Ordering::SeqCst),
        );
        assert!((na, nb) == (6, 0) || (na, nb) == (0, 6), "{na} {nb}");
    }

    #[tokio::test]
    async fn a_change_in_the_worker_set_moves_only_the_keys_of_the_changed_workers() {
        let addrs: Vec<SocketAddr> = (1..=4)
            .map(|i| format!("10.0.0.{i}:8001").parse().unwrap())
            .collect();
        let up = upstream("127.0.0.1", 8001);
        up.set_addresses(addrs.clone()).await;
        let keys: Vec<String> = (0..2000).map(|i| format!("/parameter/p{i}")).collect();
        let before: Vec<SocketAddr> = keys
            .iter()
            .map(|k| up.home_of(k.as_bytes()).unwrap())
            .collect();
        let used: HashSet<_> = before.iter().collect();
        assert_eq!(used.len(), 4, "every worker gets keys");
        // One worker goes away (a restart with a new address, or a scale-in).
        let gone = addrs[2];
        let mut fewer = addrs.clone();
        fewer.remove(2);
        up.set_addresses(fewer).await;
        for (k, old) in keys.iter().zip(&before) {
            let new = up.home_of(k.as_bytes()).unwrap();
            if *old != gone {
                assert_eq!(new, *old, "{k} moved although its worker stayed");
            } else {
                assert_ne!(new, gone);
            }
        }
        // A worker joins: keys move only to it.
        let joined: SocketAddr = "10.0.0.9:8001".parse().unwrap();
        let mut more = addrs.clone();
        more.push(joined);
        up.set_addresses(more).await;
        let mut moved = 0;
        for (k, old) in keys.iter().zip(&before) {
            let new = up.home_of(k.as_bytes()).unwrap();
            if new != *old {
                assert_eq!(new, joined, "{k} moved between unchanged workers");
                moved += 1;
            }
        }
        assert!(
            moved > 200 && moved < 700,
            "about a fifth of the keys move: {moved}"
        );
    }

    #[tokio::test]
    async fn a_refused_address_is_retried_elsewhere_ejected_then_probed_back() {
        let (dead, _held) = platform_testkit::refusing_addr();
        let (alive, count, _) = counting_server().await;
        let up = upstream("127.0.0.1", alive.port());
        up.set_addresses(vec![dead, alive]).await;
        for _ in 0..6 {
            let r = up
                .get("/parameters", "/parameters", &fwd(), None)
                .await
                .unwrap();
            assert_eq!(r.status, 200);
        }
        assert_eq!(count.load(Ordering::SeqCst), 6);
        assert!(up.ejections.is_ejected(&dead));
        // Refused connections fail fast, without waiting for timeouts.
        let (refusing, _held2) = platform_testkit::refusing_addr();
        let up2 = upstream("127.0.0.1", refusing.port());
        let start = Instant::now();
        let r = up2.get("/parameters", "/parameters", &fwd(), None).await;
        assert!(matches!(r, Err(UpstreamError::Unavailable(_))), "{r:?}");
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn correlation_and_trace_headers_reach_the_worker() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                .await
                .unwrap();
            String::from_utf8_lossy(&buf[..n]).to_lowercase()
        });
        let up = upstream("127.0.0.1", addr.port());
        up.get("/parameters", "/parameters", &fwd(), None)
            .await
            .unwrap();
        let head = seen.await.unwrap();
        assert!(head.contains("x-request-id: t\r\n"), "{head}");
        assert!(
            head.contains(
                "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
            ),
            "{head}"
        );
        assert!(head.contains("tracestate: a=b\r\n"), "{head}");
    }
}
