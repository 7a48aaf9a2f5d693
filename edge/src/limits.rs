//! What bounds the work a client can cause.
//!
//! - [`ConnectionCap`]: open client connections per process
//!   (`MAX_CONNECTIONS`); past it a new connection is closed at once, before
//!   any TLS handshake, while existing ones keep being served.
//! - [`MissLimiter`]: cache misses that would start a worker call, per client
//!   address (`CLIENT_MISS_RATE_PER_SECOND`, bursts of twice that), estimated
//!   with `pingora-limits`' sliding-window [`Rate`].
//! - [`InFlight`]: worker calls in flight for the whole process
//!   (`UPSTREAM_MAX_IN_FLIGHT`).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pingora_limits::rate::Rate;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::metrics;

/// Bounds open client connections.
#[derive(Debug)]
pub struct ConnectionCap {
    max: usize,
    open: AtomicUsize,
}

/// Holds one connection's place; gives it back when dropped.
#[derive(Debug)]
pub struct ConnectionSlot(Arc<ConnectionCap>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        metrics().client_connections.dec();
    }
}

impl ConnectionCap {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: AtomicUsize::new(0),
        })
    }

    /// A place for a new connection, or `None` (counted) when full.
    pub fn try_enter(self: &Arc<Self>) -> Option<ConnectionSlot> {
        let admitted = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        if admitted {
            metrics().client_connections.inc();
            Some(ConnectionSlot(self.clone()))
        } else {
            metrics().client_connections_rejected.inc();
            None
        }
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

/// Width of the sliding window (the estimator's interval) for a limit of
/// `rate` per second with bursts of `2 × rate`: a window of two seconds
/// holds at most `2 × rate` misses, so the burst is `2 × rate` and the
/// sustained rate `rate`.
const WINDOW: Duration = Duration::from_secs(2);
/// Count-min sketch size: 4 rows of 8192 counters per window keep the
/// over-estimate small even with many clients missing at once.
const SKETCH_HASHES: usize = 4;
const SKETCH_SLOTS: usize = 8192;

/// Limits cache misses per client address.
pub struct MissLimiter {
    rate: Option<Rate>,
    burst: f64,
}

impl std::fmt::Debug for MissLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MissLimiter")
            .field("enabled", &self.rate.is_some())
            .field("burst", &self.burst)
            .finish()
    }
}

impl MissLimiter {
    /// `per_second` misses per client, bursts of twice that; 0 disables.
    pub fn new(per_second: u32) -> Self {
        Self {
            rate: (per_second > 0)
                .then(|| Rate::new_with_estimator_config(WINDOW, SKETCH_HASHES, SKETCH_SLOTS)),
            burst: 2.0 * f64::from(per_second),
        }
    }

    /// Whether `client` may start one more worker call now; counts it if so.
    /// A refused request is not counted, so a client that keeps trying still
    /// gets its share.
    pub fn admit(&self, client: Option<IpAddr>) -> bool {
        let (Some(rate), Some(ip)) = (&self.rate, client) else {
            return true;
        };
        // The sliding-window count: the previous window's share that still
        // overlaps the last WINDOW, plus the current window.
        let recent = rate.rate_with(&ip, |c| {
            c.prev_samples as f64 * (1.0 - c.current_interval_fraction) + c.curr_samples as f64
        });
        if recent >= self.burst {
            return false;
        }
        rate.observe(&ip, 1);
        true
    }
}

/// Bounds worker calls in flight for the whole process.
#[derive(Debug, Clone)]
pub struct InFlight(Arc<Semaphore>);

impl InFlight {
    pub fn new(max: usize) -> Self {
        Self(Arc::new(Semaphore::new(max)))
    }

    /// A permit for one worker call, or `None` when the process is at its
    /// bound.
    pub fn try_acquire(&self) -> Option<OwnedSemaphorePermit> {
        self.0.clone().try_acquire_owned().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_admits_up_to_its_bound_and_frees_places() {
        let cap = ConnectionCap::new(2);
        let a = cap.try_enter().unwrap();
        let _b = cap.try_enter().unwrap();
        assert!(cap.try_enter().is_none());
        drop(a);
        assert_eq!(cap.open(), 1);
        assert!(cap.try_enter().is_some());
    }

    #[test]
    fn misses_are_limited_per_client_with_a_burst_of_twice_the_rate() {
        let limiter = MissLimiter::new(5);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let admitted = (0..30).filter(|_| limiter.admit(Some(a))).count();
        assert_eq!(admitted, 10, "the burst");
        assert!(limiter.admit(Some(b)), "another client is not affected");
        assert!(limiter.admit(None), "no address, no limit");
        let off = MissLimiter::new(0);
        assert!((0..100).all(|_| off.admit(Some(a))));
    }

    #[test]
    fn in_flight_permits_are_bounded() {
        let f = InFlight::new(1);
        let p = f.try_acquire().unwrap();
        assert!(f.try_acquire().is_none());
        drop(p);
        assert!(f.try_acquire().is_some());
    }
}
