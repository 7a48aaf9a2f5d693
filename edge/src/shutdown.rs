//! Shutdown in the order Kubernetes needs.
//!
//! Pingora's stock SIGTERM handling closes every listener at once, probes
//! included, so readiness can never fail first. [`DrainWatch`] instead:
//!
//! 1. on SIGTERM (or SIGQUIT, since listener hand-off means nothing in a
//!    pod) marks the instance not ready: `/readyz` answers `503` and
//!    `edge_ready` is 0, while every listener keeps serving, for
//!    `SHUTDOWN_DRAIN_SECONDS`. From that moment HTTP/1 answers carry
//!    `Connection: close` and HTTP/2 connections get a GOAWAY, so keep-alive
//!    clients move to another instance before the listeners close;
//! 2. then asks Pingora for a graceful terminate: listeners close, idle
//!    keep-alive connections close, in-flight requests complete during the
//!    grace period, and the process exits 0.
//!
//! SIGINT shuts down at once. [`grace_periods`] splits
//! `SHUTDOWN_TIMEOUT_SECONDS` into Pingora's two settings.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use service_common::admin::Readiness;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::metrics::metrics;

#[derive(Debug)]
pub struct DrainWatch {
    pub readiness: Arc<Readiness>,
    pub drain: Duration,
    /// Set to `true` when the drain starts (connections read it).
    pub draining: watch::Sender<bool>,
}

#[async_trait]
impl ShutdownSignalWatch for DrainWatch {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut term), Ok(mut quit), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::quit()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers; waiting forever");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = int.recv() => {
                tracing::info!("SIGINT: shutting down now");
                return ShutdownSignal::FastShutdown;
            }
            _ = term.recv() => tracing::info!(drain_seconds = self.drain.as_secs_f64(), "SIGTERM: draining"),
            _ = quit.recv() => tracing::info!(drain_seconds = self.drain.as_secs_f64(), "SIGQUIT: draining"),
        }
        self.readiness.start_draining();
        metrics().ready.set(0);
        let _ = self.draining.send(true);
        tokio::select! {
            _ = tokio::time::sleep(self.drain) => {
                tracing::info!("drain over: closing listeners, finishing in-flight requests");
                ShutdownSignal::GracefulTerminate
            }
            _ = int.recv() => {
                tracing::info!("SIGINT during drain: shutting down now");
                ShutdownSignal::FastShutdown
            }
        }
    }
}

/// Splits the shutdown bound into Pingora's `grace_period_seconds` (time for
/// in-flight requests after the listeners close; it always elapses in full)
/// and `graceful_shutdown_timeout_seconds` (time for the runtimes to stop).
/// The grace period covers the longest request, which the upstream timeout
/// bounds, and never exceeds the shutdown bound minus one second.
pub fn grace_periods(shutdown_timeout: Duration, upstream_timeout: Duration) -> (u64, u64) {
    let total = shutdown_timeout.as_secs().max(2);
    let grace = (upstream_timeout.as_secs_f64().ceil() as u64 + 1).min(total - 1);
    (grace, total - grace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_covers_the_longest_request_within_the_bound() {
        assert_eq!(
            grace_periods(Duration::from_secs(15), Duration::from_secs(5)),
            (6, 9)
        );
        assert_eq!(
            grace_periods(Duration::from_secs(3), Duration::from_secs(5)),
            (2, 1)
        );
        assert_eq!(
            grace_periods(Duration::from_secs(15), Duration::from_millis(500)),
            (2, 13)
        );
    }
}
