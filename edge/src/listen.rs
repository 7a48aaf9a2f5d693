//! The public listeners: a Pingora [`Service`] that accepts connections and
//! hands each to [`EdgeServer`] (a Pingora `ServerApp`).
//!
//! Pingora's own listening service spawns every connection as a task sized
//! for its largest state — the TLS handshake it would make on a TLS
//! listener, several KiB — and keeps that allocation for the connection's
//! whole life, TLS or not. An idle keep-alive connection would cost that
//! much. This accept loop spawns a task that holds only the connection's
//! own future, so an idle plain-HTTP connection costs a few KiB; the TLS
//! handshake (made by [`EdgeServer`], within the header deadline) is
//! allocated only while it runs. Everything else stays Pingora's: the
//! service runs on Pingora's runtimes (one single-threaded runtime per core,
//! connections placed on a random one, as Pingora does), streams are
//! Pingora's L4 streams with their socket digest (so HTTP/2 sessions know
//! their client), and shutdown follows Pingora's watch.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{GetSocketDigest, SocketDigest, Stream};
use pingora::server::{ListenFds, ShutdownWatch};
use pingora::services::Service;
use tokio::net::TcpListener;

use crate::conn::EdgeServer;

/// Connections the kernel queues for a listener before they are accepted.
const BACKLOG: i32 = 4096;

/// Binds a public listener now (before the server starts), so a busy port
/// fails the start at once.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Accepts on the public listeners and serves each connection.
#[derive(Debug)]
pub struct PublicService {
    edge: Arc<EdgeServer>,
    listeners: Vec<std::net::TcpListener>,
    threads: usize,
}

impl PublicService {
    pub fn new(edge: EdgeServer, listeners: Vec<std::net::TcpListener>, threads: usize) -> Self {
        Self {
            edge: Arc::new(edge),
            listeners,
            threads,
        }
    }
}

/// One listener's accept loop, until shutdown.
async fn accept_loop(listener: TcpListener, edge: Arc<EdgeServer>, mut shutdown: ShutdownWatch) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _peer)) => tcp,
            Err(error) => {
                // Out of descriptors and the like: back off, do not spin.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let fd = tcp.as_raw_fd();
        let mut l4 = L4Stream::from(tcp);
        l4.set_socket_digest(SocketDigest::from_raw_fd(fd));
        let stream: Stream = Box::new(l4);
        let edge = edge.clone();
        let shutdown = shutdown.clone();
        pingora_runtime::current_handle().spawn(async move {
            ServerApp::process_new(&edge, stream, &shutdown).await;
        });
    }
}

#[async_trait]
impl Service for PublicService {
    async fn start_service(
        &mut self,
        _fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
    ) {
        let mut loops = Vec::new();
        for std_listener in self.listeners.drain(..) {
            match TcpListener::from_std(std_listener) {
                Ok(listener) => loops.push(tokio::spawn(accept_loop(
                    listener,
                    self.edge.clone(),
                    shutdown.clone(),
                ))),
                Err(error) => tracing::error!(%error, "cannot serve a public listener"),
            }
        }
        for l in loops {
            let _ = l.await;
        }
    }

    fn name(&self) -> &str {
        "edge"
    }

    fn threads(&self) -> Option<usize> {
        Some(self.threads)
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        Some(
            self.listeners
                .iter()
                .filter_map(|l| l.local_addr().ok())
                .map(|a| a.to_string())
                .collect(),
        )
    }
}
