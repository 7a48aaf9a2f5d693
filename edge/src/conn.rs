//! Client connections: Pingora accepts them; this module serves them.
//!
//! [`EdgeServer`] is a Pingora [`ServerApp`]: for each accepted connection it
//! takes a place under `MAX_CONNECTIONS` (or closes the connection at once),
//! does the TLS handshake itself on the HTTPS port (so the header deadline
//! covers it), then serves HTTP/2 through Pingora's HTTP/2 server (when ALPN
//! chose `h2`) or HTTP/1 with its own keep-alive loop.
//!
//! # Why its own HTTP/1 loop
//!
//! A cache hit is the common request and it is cheap to answer: an answer
//! prepared once, a map read, a few per-request headers. Pingora's HTTP/1
//! session costs more than all of that per request (two header maps per
//! request and response, a fresh 4 KiB read buffer, boxed futures per
//! phase), and it keeps buffers while a connection sits idle. The loop here
//! parses the request head with `httparse` from a 1 KiB buffer that lives in
//! the connection's task (larger heads spill to the heap, up to
//! [`MAX_HEAD_BYTES`], then `431`), writes head and body with one write, and
//! holds nothing else while idle. It also owns the deadlines: the request
//! head must be complete within `HEADER_READ_TIMEOUT_SECONDS` of the
//! connection's start (TLS handshake included) or of a later request's first
//! byte; an idle keep-alive connection is closed after
//! `KEEPALIVE_TIMEOUT_SECONDS`. While an answer is being prepared the
//! connection is watched, so a client that leaves is recorded as `499`
//! (`client_closed`), never as a server error. From the start of a drain,
//! answers carry `Connection: close`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use http::Method;
use pingora::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream, ServerApp};
use pingora::listeners::tls::Acceptor;
use pingora::protocols::http::ServerSession;
use pingora::protocols::http::v2::server::{H2Options, default_h2_options};
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{ALPN, Stream};
use pingora::server::ShutdownWatch;
use service_common::access_log::{self, AccessLine};
use service_common::{ErrorCode, RequestId, labels};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::app::{EdgeApp, Headers, Reply, Request};
use crate::limits::ConnectionCap;
use crate::metrics::{CacheResult, metrics};
use crate::respond::{self, Persistence};

/// Request head bytes kept in the connection's own task.
const INLINE_BYTES: usize = 1024;
/// Largest request head accepted; a longer one gets `431`.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most header fields in one request head; more get `431`.
const MAX_HEADERS: usize = 64;

/// Connection settings.
#[derive(Debug, Clone, Copy)]
pub struct ConnSettings {
    pub header_read_timeout: Duration,
    pub keepalive_timeout: Duration,
}

/// The HTTPS side: which local port it is, and its acceptor.
pub struct TlsListener {
    pub port: u16,
    pub acceptor: Acceptor,
    pub hsts: Option<Arc<str>>,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// The public listeners' application.
#[derive(Debug)]
pub struct EdgeServer {
    app: Arc<EdgeApp>,
    cap: Arc<ConnectionCap>,
    tls: Option<TlsListener>,
    settings: ConnSettings,
    /// Turns `true` when the drain starts.
    draining: watch::Receiver<bool>,
    h2: Arc<H2App>,
}

impl EdgeServer {
    pub fn new(
        app: Arc<EdgeApp>,
        cap: Arc<ConnectionCap>,
        tls: Option<TlsListener>,
        settings: ConnSettings,
        draining: watch::Receiver<bool>,
    ) -> Self {
        let mut options = HttpServerOptions::default();
        options.h2_idle_timeout = Some(settings.keepalive_timeout);
        let h2 = Arc::new(H2App {
            app: app.clone(),
            hsts: tls.as_ref().and_then(|t| t.hsts.clone()),
            options,
        });
        Self {
            app,
            cap,
            tls,
            settings,
            draining,
            h2,
        }
    }
}

fn std_addr(a: Option<&pingora::protocols::l4::socket::SocketAddr>) -> Option<SocketAddr> {
    a.and_then(|a| a.as_inet().copied())
}

#[async_trait]
impl ServerApp for EdgeServer {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // Past MAX_CONNECTIONS the connection is dropped here, before any
        // TLS handshake; the place is given back when this task ends.
        let _slot = self.cap.try_enter()?;
        let started = Instant::now();
        let digest = stream.get_socket_digest();
        let client = digest.as_ref().and_then(|d| std_addr(d.peer_addr()));
        let local = digest.as_ref().and_then(|d| std_addr(d.local_addr()));
        let tls = self
            .tls
            .as_ref()
            .filter(|t| local.is_some_and(|l| l.port() == t.port));
        let stream = match tls {
            None => stream,
            Some(t) => {
                // The listener is plain TCP: the handshake happens here, within
                // the header deadline (Pingora's own would allow a minute).
                let Ok(l4) = stream.into_any().downcast::<L4Stream>() else {
                    return None;
                };
                let deadline =
                    tokio::time::Instant::from_std(started + self.settings.header_read_timeout);
                // Boxed: the handshake's state is large (about 7 KiB) and
                // needed only until it completes, while this task lives as
                // long as the connection.
                let handshake = Box::pin(t.acceptor.tls_handshake(*l4));
                match tokio::time::timeout_at(deadline, handshake).await {
                    Ok(Ok(s)) => Box::new(s) as Stream,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, ?client, "TLS handshake failed");
                        return None;
                    }
                    Err(_) => {
                        metrics().client_header_timeouts.inc();
                        tracing::debug!(?client, "TLS handshake not completed in time");
                        return None;
                    }
                }
            }
        };
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            // Pingora's HTTP/2 server; our drain watch makes it send GOAWAY
            // as soon as the drain starts.
            return ServerApp::process_new(&self.h2, stream, &self.draining).await;
        }
        let conn = Connection {
            app: &self.app,
            settings: self.settings,
            draining: &self.draining,
            shutdown,
            client,
            hsts: tls.and_then(|t| t.hsts.as_deref()),
            started,
        };
        conn.serve(stream).await;
        None
    }
}

/// The request head bytes of one connection: a small inline buffer, spilling
/// to the heap for long heads (and giving that back once it is not needed).
struct ReadBuf {
    inline: [u8; INLINE_BYTES],
    spill: Vec<u8>,
    len: usize,
}

impl ReadBuf {
    fn new() -> Self {
        Self {
            inline: [0; INLINE_BYTES],
            spill: Vec::new(),
            len: 0,
        }
    }

    fn data(&self) -> &[u8] {
        if self.spill.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spill[..self.len]
        }
    }

    fn storage(&mut self) -> &mut [u8] {
        if self.spill.is_empty() {
            &mut self.inline
        } else {
            &mut self.spill
        }
    }

    /// Room for more bytes, growing up to [`MAX_HEAD_BYTES`]; `None` when
    /// full.
    fn spare(&mut self) -> Option<&mut [u8]> {
        if self.spill.is_empty() && self.len == INLINE_BYTES {
            let mut v = vec![0u8; 4 * INLINE_BYTES];
            v[..self.len].copy_from_slice(&self.inline);
            self.spill = v;
        }
        if !self.spill.is_empty() && self.len == self.spill.len() {
            if self.spill.len() >= MAX_HEAD_BYTES {
                return None;
            }
            let grown = (self.spill.len() * 2).min(MAX_HEAD_BYTES);
            self.spill.resize(grown, 0);
        }
        let len = self.len;
        Some(&mut self.storage()[len..])
    }

    /// The first `head` bytes to read, and the free room after what is
    /// buffered (to watch the connection without moving anything).
    fn split(&mut self, head: usize) -> (&[u8], &mut [u8]) {
        let len = self.len;
        let (filled, free) = self.storage().split_at_mut(len);
        (&filled[..head], free)
    }

    /// Drops the first `n` bytes (a request that was answered).
    fn consume(&mut self, n: usize) {
        let rest = self.len - n;
        if self.spill.is_empty() {
            self.inline.copy_within(n..self.len, 0);
        } else if rest <= INLINE_BYTES {
            self.inline[..rest].copy_from_slice(&self.spill[n..self.len]);
            self.spill = Vec::new();
        } else {
            self.spill.copy_within(n..self.len, 0);
        }
        self.len = rest;
    }
}

/// Header fields the edge reads, by their index in [`KNOWN`].
const KNOWN: [&str; 10] = [
    service_common::request::REQUEST_ID_HEADER,
    service_common::trace::TRACEPARENT,
    service_common::trace::TRACESTATE,
    service_common::trace::B3,
    service_common::trace::X_B3_TRACEID,
    service_common::trace::X_B3_SPANID,
    service_common::trace::X_B3_PARENTSPANID,
    service_common::trace::X_B3_SAMPLED,
    service_common::trace::X_B3_FLAGS,
    "if-none-match",
];

/// A parsed HTTP/1 request head, as ranges into the read buffer (so nothing
/// is copied and nothing large lives across an await).
#[derive(Debug, Clone)]
struct Head {
    len: usize,
    method: Method,
    path: Span,
    http10: bool,
    /// The client asked for the connection to close (or, for HTTP/1.0, did
    /// not ask to keep it).
    close: bool,
    /// A request body follows (not read: the answer closes the connection).
    body: bool,
    known: [Option<Span>; KNOWN.len()],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeadError {
    Malformed,
    TooLarge,
}

/// Where a part of the head lies in the read buffer (heads are at most
/// [`MAX_HEAD_BYTES`], so 16 bits are enough and the head stays small).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span(u16, u16);

impl Span {
    fn of(buf: &[u8], part: &[u8]) -> Self {
        let start = part.as_ptr() as usize - buf.as_ptr() as usize;
        Span(start as u16, (start + part.len()) as u16)
    }

    fn in_buf(self, buf: &[u8]) -> &[u8] {
        buf.get(usize::from(self.0)..usize::from(self.1))
            .unwrap_or_default()
    }
}

fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&c| c == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Parses a request head from `buf`: `Ok(None)` while incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, HeadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Malformed),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HeadError::Malformed);
    };
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| HeadError::Malformed)?;
    // Origin form (`/path?query`, the usual one) or absolute form
    // (`http://host/path`).
    let path = if target.starts_with('/') {
        target
    } else {
        match target.find("://") {
            Some(i) => target[i + 3..]
                .find('/')
                .map_or("/", |j| &target[i + 3 + j..]),
            None => target,
        }
    };
    let path = match path.bytes().position(|b| b == b'?') {
        Some(q) => &path[..q],
        None => path,
    };
    let http10 = version == 0;
    let mut head = Head {
        len,
        method,
        path: Span::of(buf, path.as_bytes()),
        http10,
        close: http10,
        body: false,
        known: [None; KNOWN.len()],
    };
    for field in req.headers.iter() {
        let name = field.name;
        if name.eq_ignore_ascii_case("connection") {
            if has_token(field.value, "close") {
                head.close = true;
            } else if http10 && has_token(field.value, "keep-alive") {
                head.close = false;
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            let n: u64 = std::str::from_utf8(field.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or(HeadError::Malformed)?;
            head.body |= n > 0;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.body = true;
        } else if let Some(i) = KNOWN.iter().position(|k| name.eq_ignore_ascii_case(k))
            && head.known[i].is_none()
        {
            head.known[i] = Some(Span::of(buf, field.value));
        }
    }
    Ok(Some(head))
}

/// The known headers of an HTTP/1 request, read from the buffer.
struct H1Headers<'a> {
    buf: &'a [u8],
    known: &'a [Option<Span>; KNOWN.len()],
}

impl Headers for H1Headers<'_> {
    fn get(&self, name: &str) -> Option<&[u8]> {
        let i = KNOWN.iter().position(|k| *k == name)?;
        self.known[i].map(|span| span.in_buf(self.buf))
    }
}

/// How an exchange ended, for metrics and the access log.
struct Exchange<'a> {
    route: &'static str,
    method: &'a Method,
    /// Raw path bytes; read only when an access line is written.
    path: &'a [u8],
    status: u16,
    cache: Option<CacheResult>,
    request_id: &'a str,
    trace_id: Option<&'a str>,
    bytes: usize,
    started: Instant,
    client: Option<SocketAddr>,
    http_version: &'static str,
    /// The client left before its answer was written.
    client_closed: bool,
}

impl<'a> Exchange<'a> {
    /// An exchange that produced `reply`; `written` is whether it reached
    /// the client.
    fn answered(
        reply: &'a Reply,
        method: &'a Method,
        path: &'a [u8],
        head_only: bool,
        started: Instant,
        (client, http_version): (Option<SocketAddr>, &'static str),
        written: bool,
    ) -> Self {
        Exchange {
            route: reply.route,
            method,
            path,
            status: respond::status(reply),
            cache: Some(reply.cache),
            request_id: reply.request_id.as_str(),
            trace_id: Some(reply.trace.trace_id()),
            bytes: respond::body_len(reply, head_only),
            started,
            client,
            http_version,
            client_closed: !written,
        }
    }
}

/// Counts an exchange and writes its access line; returns when that was.
fn record(x: &Exchange<'_>) -> Instant {
    let now = Instant::now();
    let elapsed = now.saturating_duration_since(x.started);
    let class = if x.client_closed {
        labels::CLIENT_CLOSED
    } else {
        labels::status_class(x.status)
    };
    metrics().observe_request(
        x.route,
        labels::method(x.method),
        class,
        elapsed.as_secs_f64(),
    );
    if access_log::enabled() {
        access_log::emit(&AccessLine {
            method: x.method.as_str(),
            path: std::str::from_utf8(x.path).unwrap_or("-"),
            route: x.route,
            status: if x.client_closed { 499 } else { x.status },
            duration: elapsed,
            bytes: x.bytes as u64,
            request_id: x.request_id,
            trace_id: x.trace_id,
            client: x.client,
            http_version: x.http_version,
            cache: x.cache.map(CacheResult::header),
            error: x.client_closed.then_some("client_closed"),
        });
    }
    now
}

/// One HTTP/1 connection.
struct Connection<'a> {
    app: &'a Arc<EdgeApp>,
    settings: ConnSettings,
    draining: &'a watch::Receiver<bool>,
    shutdown: &'a ShutdownWatch,
    client: Option<SocketAddr>,
    hsts: Option<&'a str>,
    started: Instant,
}

impl Connection<'_> {
    async fn serve(self, mut stream: Stream) {
        let mut buf = ReadBuf::new();
        let mut first = true;
        // Both watches are armed once per connection, not per request: the
        // shutdown notification, and the idle timer, which is re-armed only
        // when it fires (to the last activity plus the keep-alive timeout).
        let mut shutdown = self.shutdown.clone();
        let shutdown_changed = shutdown.changed();
        tokio::pin!(shutdown_changed);
        let idle_timer = tokio::time::sleep(self.settings.keepalive_timeout);
        tokio::pin!(idle_timer);
        let mut last_active = self.started;
        loop {
            // Wait for the next request's first byte: within the header
            // deadline on a new connection, the keep-alive timeout later.
            let head_deadline = if first {
                self.started + self.settings.header_read_timeout
            } else {
                if buf.len == 0 {
                    let Some(spare) = buf.spare() else {
                        return;
                    };
                    let n = loop {
                        tokio::select! {
                            biased;
                            r = stream.read(spare) => break r,
                            () = idle_timer.as_mut() => {
                                let until = last_active + self.settings.keepalive_timeout;
                                if Instant::now() >= until {
                                    return;
                                }
                                idle_timer.as_mut().reset(until.into());
                            }
                            _ = shutdown_changed.as_mut() => return,
                        }
                    };
                    match n {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.len += n,
                    }
                }
                Instant::now() + self.settings.header_read_timeout
            };
            // Read until the head is complete, by the deadline (a timer only
            // while a head has not arrived whole).
            let head = loop {
                match parse_head(buf.data()) {
                    Ok(Some(head)) => break head,
                    Ok(None) => {}
                    Err(e) => {
                        let code = match e {
                            HeadError::Malformed => ErrorCode::BadRequest,
                            HeadError::TooLarge => ErrorCode::HeaderTooLarge,
                        };
                        self.refuse(&mut stream, code).await;
                        return;
                    }
                }
                let Some(spare) = buf.spare() else {
                    self.refuse(&mut stream, ErrorCode::HeaderTooLarge).await;
                    return;
                };
                let read = tokio::time::timeout_at(head_deadline.into(), stream.read(spare));
                match read.await {
                    Ok(Ok(0) | Err(_)) => return,
                    Ok(Ok(n)) => buf.len += n,
                    Err(_) => {
                        metrics().client_header_timeouts.inc();
                        // A connection that never sent a byte is just closed.
                        if buf.len > 0 {
                            self.refuse(&mut stream, ErrorCode::RequestTimeout).await;
                        }
                        return;
                    }
                }
            };
            first = false;
            match self.exchange(&mut stream, &mut buf, head).await {
                Some(done) => last_active = done,
                None => return,
            }
        }
    }

    /// Answers a request that could not be read, then the connection closes.
    async fn refuse(&self, stream: &mut Stream, code: ErrorCode) {
        let started = Instant::now();
        let reply = Reply::bypass(
            service_common::Route::Unmatched.template(),
            self.app.edge_error(code),
            RequestId::generate(),
            service_common::TraceParent::start(false),
        );
        let mut out = Vec::new();
        respond::write_h1(&mut out, &reply, false, self.hsts, Persistence::Close);
        let written = tokio::time::timeout(Duration::from_secs(1), async {
            stream.write_all(&out).await?;
            stream.flush().await
        })
        .await;
        record(&Exchange {
            route: reply.route,
            method: &Method::GET,
            path: b"",
            status: reply.answer.status,
            cache: None,
            request_id: reply.request_id.as_str(),
            trace_id: None,
            bytes: reply.answer.body.len(),
            started,
            client: self.client,
            http_version: "HTTP/1.1",
            client_closed: !matches!(written, Ok(Ok(()))),
        });
    }

    /// Serves one parsed request; when the connection stays open, returns
    /// when the answer went out.
    async fn exchange(
        &self,
        stream: &mut Stream,
        buf: &mut ReadBuf,
        head: Head,
    ) -> Option<Instant> {
        let started = Instant::now();
        let head_only = head.method == Method::HEAD;
        let (reply, fresh_bytes) = {
            let (request_bytes, free) = buf.split(head.len);
            let path = std::str::from_utf8(head.path.in_buf(request_bytes)).unwrap_or("");
            let headers = H1Headers {
                buf: request_bytes,
                known: &head.known,
            };
            let request = Request {
                method: &head.method,
                path,
                headers: &headers,
                client: self.client,
                received: started,
            };
            let answer = self.app.handle(&request);
            tokio::pin!(answer);
            let mut fresh_bytes = 0;
            let reply = match futures::poll!(answer.as_mut()) {
                Poll::Ready(r) => Some(r),
                // Not at once (a miss): watch the connection meanwhile.
                Poll::Pending => loop {
                    let room = &mut free[fresh_bytes..];
                    if room.is_empty() {
                        break Some(answer.as_mut().await);
                    }
                    tokio::select! {
                        biased;
                        r = answer.as_mut() => break Some(r),
                        n = stream.read(room) => match n {
                            Ok(0) | Err(_) => break None,
                            // Pipelined bytes: kept for the next request.
                            Ok(n) => fresh_bytes += n,
                        },
                    }
                },
            };
            match reply {
                Some(r) => (r, fresh_bytes),
                None => {
                    record(&Exchange {
                        route: crate::app::plan(&head.method, path).0,
                        method: &head.method,
                        path: path.as_bytes(),
                        status: 499,
                        cache: None,
                        request_id: "-",
                        trace_id: None,
                        bytes: 0,
                        started,
                        client: self.client,
                        http_version: if head.http10 { "HTTP/1.0" } else { "HTTP/1.1" },
                        client_closed: true,
                    });
                    return None;
                }
            }
        };
        buf.len += fresh_bytes;

        let draining = *self.draining.borrow();
        let close = head.close || head.body || draining;
        let persistence = match (close, head.http10) {
            (true, _) => Persistence::Close,
            (false, true) => Persistence::KeepAliveAnnounced,
            (false, false) => Persistence::KeepAlive,
        };
        let mut out = Vec::new();
        respond::write_h1(&mut out, &reply, head_only, self.hsts, persistence);
        let written = async {
            stream.write_all(&out).await?;
            stream.flush().await
        }
        .await;
        drop(out);
        let done = record(&Exchange::answered(
            &reply,
            &head.method,
            head.path.in_buf(buf.data()),
            head_only,
            started,
            (
                self.client,
                if head.http10 { "HTTP/1.0" } else { "HTTP/1.1" },
            ),
            written.is_ok(),
        ));
        if written.is_err() || close {
            return None;
        }
        buf.consume(head.len);
        Some(done)
    }
}

/// HTTP/2, through Pingora's HTTP/2 server: one call per stream.
#[derive(Debug)]
pub struct H2App {
    app: Arc<EdgeApp>,
    hsts: Option<Arc<str>>,
    options: HttpServerOptions,
}

#[async_trait]
impl HttpServerApp for H2App {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        _shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let started = Instant::now();
        let client = std_addr(session.client_addr());
        let req = session.req_header();
        let method = req.method.clone();
        // HTTP/2 request URIs are absolute: the path is what routes.
        let path = req.uri.path().to_owned();
        let reply = self
            .app
            .handle(&Request {
                method: &method,
                path: &path,
                headers: &req.headers,
                client,
                received: started,
            })
            .await;
        let head_only = method == Method::HEAD;
        let written = async {
            let (resp, body) = respond::h2(&reply, head_only, self.hsts.as_deref())?;
            session.write_response_header(Box::new(resp)).await?;
            match body {
                Some(b) => session.write_response_body(b, true).await,
                None => session.finish_body().await,
            }
        }
        .await;
        record(&Exchange::answered(
            &reply,
            &method,
            path.as_bytes(),
            head_only,
            started,
            (client, "HTTP/2.0"),
            written.is_ok(),
        ));
        None
    }

    fn h2_options(&self) -> Option<H2Options> {
        Some(default_h2_options())
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        Some(&self.options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_parsed_into_ranges() {
        let raw = b"GET /api/parameter/x?y=1 HTTP/1.1\r\nHost: a\r\nX-Request-Id: r1\r\nConnection: keep-alive, Close\r\n\r\nGET /next";
        let head = parse_head(raw).unwrap().unwrap();
        assert_eq!(head.path.in_buf(raw), b"/api/parameter/x");
        assert_eq!(head.len, raw.len() - "GET /next".len());
        assert!(head.close && !head.body && !head.http10);
        let h = H1Headers {
            buf: raw,
            known: &head.known,
        };
        assert_eq!(h.get("x-request-id"), Some(&b"r1"[..]));
        assert_eq!(h.get("traceparent"), None);
    }

    #[test]
    fn http_1_0_closes_unless_asked_and_bodies_are_noticed() {
        let h = parse_head(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(h.http10 && h.close);
        let h = parse_head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.close);
        let h = parse_head(b"POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
            .unwrap()
            .unwrap();
        assert!(h.body);
        let h = parse_head(b"GET http://edge.example/parameters?x HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            h.path
                .in_buf(b"GET http://edge.example/parameters?x HTTP/1.1\r\n\r\n"),
            b"/parameters"
        );
    }

    #[test]
    fn bad_heads_are_told_apart() {
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nHost")
                .unwrap()
                .map(|h| h.len),
            None
        );
        assert_eq!(
            parse_head(b"\x01\x02 / HTTP/1.1\r\n\r\n").unwrap_err(),
            HeadError::Malformed
        );
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n").unwrap_err(),
            HeadError::Malformed
        );
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..(MAX_HEADERS + 1) {
            many.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse_head(&many).unwrap_err(), HeadError::TooLarge);
    }

    #[test]
    fn the_read_buffer_spills_and_comes_back() {
        let mut b = ReadBuf::new();
        assert_eq!(b.spare().unwrap().len(), INLINE_BYTES);
        b.len = INLINE_BYTES;
        // Full inline: spills to the heap, keeping what was read.
        b.inline[..4].copy_from_slice(b"GET ");
        assert!(b.spare().unwrap().len() >= INLINE_BYTES);
        assert_eq!(&b.data()[..4], b"GET ");
        b.len = b.spill.len();
        // Grows up to the bound, then refuses.
        while b.spare().is_some() {
            b.len = b.spill.len();
        }
        assert_eq!(b.spill.len(), MAX_HEAD_BYTES);
        // Once the request is consumed, a short rest goes back inline.
        let keep = b"0123456789";
        let n = b.len;
        b.storage()[n - 10..n].copy_from_slice(keep);
        b.consume(n - 10);
        assert!(b.spill.is_empty(), "back inline");
        assert_eq!(b.data(), keep);
    }
}
