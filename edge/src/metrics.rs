//! The edge's Prometheus metrics, registered once in the default registry
//! (which `pingora-prometheus` serves). Names and labels are the contract in
//! `docs/metrics.md`.

use std::sync::OnceLock;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};
use service_common::labels::CLIENT_CLOSED;

/// Buckets for request and upstream durations, in seconds.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Outcome label values of `edge_upstream_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamOutcome {
    /// Any HTTP answer from the worker.
    Ok,
    ConnectError,
    Timeout,
    Error,
}

impl UpstreamOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamOutcome::Ok => "ok",
            UpstreamOutcome::ConnectError => "connect_error",
            UpstreamOutcome::Timeout => "timeout",
            UpstreamOutcome::Error => "error",
        }
    }
}

/// `result` label values of `edge_cache_lookups_total`, also the `x-cache`
/// header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    /// Fresh in the cache.
    Hit,
    /// Fetched from the worker and stored.
    Miss,
    /// Served past its freshness: while being refreshed, or in place of a
    /// worker failure (or of a request the edge refused to send).
    Stale,
    /// Never cached: errors, `/s3-buckets`, `no-store` answers.
    Bypass,
}

impl CacheResult {
    pub fn label(self) -> &'static str {
        match self {
            CacheResult::Hit => "hit",
            CacheResult::Miss => "miss",
            CacheResult::Stale => "stale",
            CacheResult::Bypass => "bypass",
        }
    }

    pub fn header(self) -> &'static str {
        match self {
            CacheResult::Hit => "HIT",
            CacheResult::Miss => "MISS",
            CacheResult::Stale => "STALE",
            CacheResult::Bypass => "BYPASS",
        }
    }
}

#[derive(Debug)]
pub struct Metrics {
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub upstream_requests: IntCounterVec,
    pub upstream_duration: HistogramVec,
    pub upstream_retries: IntCounterVec,
    pub upstream_keyed_fallbacks: IntCounter,
    pub upstream_ejections: IntCounter,
    pub upstream_ejected: IntGauge,
    pub cache_lookups: IntCounterVec,
    pub cache_coalesced_waits: IntCounterVec,
    pub cache_refreshes: IntCounter,
    pub cache_purges: IntCounterVec,
    pub cache_entries: IntGauge,
    pub rate_limited: IntCounterVec,
    pub overloaded: IntCounterVec,
    pub client_connections: IntGauge,
    pub client_connections_rejected: IntCounter,
    pub client_header_timeouts: IntCounter,
    pub tls_certificate_expiry: IntGauge,
    pub build_info: IntGaugeVec,
    pub ready: IntGauge,
    hot: Hot,
}

/// Route templates, in the order [`Hot`] indexes them.
const ROUTES: [&str; 4] = [
    "/s3-buckets",
    "/parameters",
    "/parameter/{name}",
    "unmatched",
];
const CACHED: [&str; 2] = ["/parameters", "/parameter/{name}"];
const HOT_METHODS: [&str; 2] = ["GET", "HEAD"];
const HOT_CLASSES: [&str; 4] = ["2xx", "4xx", "5xx", CLIENT_CLOSED];
const CACHE_RESULTS: [CacheResult; 4] = [
    CacheResult::Hit,
    CacheResult::Miss,
    CacheResult::Stale,
    CacheResult::Bypass,
];

/// Handles on the series every request touches, taken once.
#[derive(Debug, Default)]
struct Hot {
    /// ROUTES x HOT_METHODS x HOT_CLASSES
    requests: Vec<IntCounter>,
    /// ROUTES x HOT_METHODS
    durations: Vec<Histogram>,
    /// CACHED x CACHE_RESULTS
    lookups: Vec<IntCounter>,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// The process-wide metrics, registered in the default registry on first use.
pub fn metrics() -> &'static Metrics {
    METRICS.get_or_init(Metrics::register)
}

fn register<C: prometheus::core::Collector + Clone + 'static>(c: C) -> C {
    // Registration only fails for a duplicate name, which `OnceLock` rules out.
    if let Err(error) = prometheus::register(Box::new(c.clone())) {
        tracing::error!(%error, "metric registration failed");
    }
    c
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|_| unreachable_metric()),
    )
}

fn counter(name: &str, help: &str) -> IntCounter {
    register(IntCounter::new(name, help).unwrap_or_else(|_| unreachable_metric()))
}

fn histogram(name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    register(
        HistogramVec::new(
            HistogramOpts::new(name, help).buckets(DURATION_BUCKETS.to_vec()),
            labels,
        )
        .unwrap_or_else(|_| unreachable_metric()),
    )
}

fn gauge(name: &str, help: &str) -> IntGauge {
    register(IntGauge::new(name, help).unwrap_or_else(|_| unreachable_metric()))
}

/// Metric construction only fails on an invalid name or label, which the
/// constants here are not; a unit test builds every metric.
#[cold]
#[allow(clippy::panic)]
fn unreachable_metric<T>() -> T {
    panic!("invalid metric definition")
}

impl Metrics {
    fn register() -> Self {
        let mut m = Metrics {
            requests: counter_vec(
                "edge_http_requests_total",
                "Requests answered, by route template, method and status class (client_closed: the client left before its answer).",
                &["route", "method", "status_class"],
            ),
            request_duration: histogram(
                "edge_http_request_duration_seconds",
                "Time from request head to response end.",
                &["route", "method"],
            ),
            upstream_requests: counter_vec(
                "edge_upstream_requests_total",
                "Requests sent to the auxiliary service, by outcome (ok is any HTTP answer).",
                &["route", "outcome"],
            ),
            upstream_duration: histogram(
                "edge_upstream_duration_seconds",
                "Round trip to the auxiliary service, retries included.",
                &["route"],
            ),
            upstream_retries: counter_vec(
                "edge_upstream_retries_total",
                "Worker requests retried on another address because nothing reached the first one.",
                &["route"],
            ),
            upstream_keyed_fallbacks: counter(
                "edge_upstream_keyed_fallbacks_total",
                "Parameter misses sent to another worker than the key's own (it was ejected or failed).",
            ),
            upstream_ejections: counter(
                "edge_upstream_ejections_total",
                "Worker addresses ejected after refusing, timing out or resetting.",
            ),
            upstream_ejected: gauge(
                "edge_upstream_ejected_addresses",
                "Worker addresses being skipped now.",
            ),
            cache_lookups: counter_vec(
                "edge_cache_lookups_total",
                "Cacheable requests by result: hit, miss, stale, bypass.",
                &["route", "result"],
            ),
            cache_coalesced_waits: counter_vec(
                "edge_cache_coalesced_waits_total",
                "Requests that waited for another request's worker call instead of making their own.",
                &["route"],
            ),
            cache_refreshes: counter(
                "edge_cache_background_refreshes_total",
                "Background refreshes started for answers served stale-while-revalidate.",
            ),
            cache_purges: counter_vec(
                "edge_cache_purges_total",
                "Purges through the admin port, by scope (key, all).",
                &["scope"],
            ),
            cache_entries: gauge("edge_cache_entries", "Entries in the cache."),
            rate_limited: counter_vec(
                "edge_rate_limited_requests_total",
                "Misses refused (429 rate_limited, or a stale answer) because the client exceeded CLIENT_MISS_RATE_PER_SECOND.",
                &["route"],
            ),
            overloaded: counter_vec(
                "edge_upstream_overloaded_requests_total",
                "Misses refused (503 overloaded, or a stale answer) because UPSTREAM_MAX_IN_FLIGHT worker calls were in flight.",
                &["route"],
            ),
            client_connections: gauge("edge_client_connections", "Client connections open now."),
            client_connections_rejected: counter(
                "edge_client_connections_rejected_total",
                "Client connections closed at once because MAX_CONNECTIONS were open.",
            ),
            client_header_timeouts: counter(
                "edge_client_header_timeouts_total",
                "Connections closed because a request head (or TLS handshake) was not complete within HEADER_READ_TIMEOUT_SECONDS.",
            ),
            tls_certificate_expiry: gauge(
                "edge_tls_certificate_expiry_timestamp_seconds",
                "notAfter of the TLS certificate being served, as Unix time (0 while none is loaded).",
            ),
            build_info: register(
                IntGaugeVec::new(
                    Opts::new("edge_build_info", "Always 1; the running SERVICE_VERSION."),
                    &["version"],
                )
                .unwrap_or_else(|_| unreachable_metric()),
            ),
            ready: gauge(
                "edge_ready",
                "1 while /readyz answers 200, 0 while draining or waiting for the TLS certificate.",
            ),
            hot: Hot::default(),
        };
        if let Err(error) =
            service_common::admin::register_common_metrics(prometheus::default_registry(), "edge")
        {
            tracing::error!(%error, "process metrics registration failed");
        }
        m.ready.set(1);
        m.preset();
        m
    }

    /// Creates the common series at zero, so that rates and alerts see them
    /// from the first scrape, and keeps handles on the request-path ones.
    fn preset(&mut self) {
        for (r, route) in ROUTES.iter().enumerate() {
            for method in HOT_METHODS {
                for class in HOT_CLASSES {
                    self.hot
                        .requests
                        .push(self.requests.with_label_values(&[route, method, class]));
                }
                self.hot
                    .durations
                    .push(self.request_duration.with_label_values(&[route, method]));
            }
            if r < 3 {
                for outcome in [
                    UpstreamOutcome::Ok,
                    UpstreamOutcome::ConnectError,
                    UpstreamOutcome::Timeout,
                    UpstreamOutcome::Error,
                ] {
                    self.upstream_requests
                        .with_label_values(&[route, outcome.as_str()]);
                }
                self.upstream_duration.with_label_values(&[route]);
                self.upstream_retries.with_label_values(&[route]);
                self.rate_limited.with_label_values(&[route]);
                self.overloaded.with_label_values(&[route]);
            }
        }
        for route in CACHED {
            for result in CACHE_RESULTS {
                self.hot.lookups.push(
                    self.cache_lookups
                        .with_label_values(&[route, result.label()]),
                );
            }
            self.cache_coalesced_waits.with_label_values(&[route]);
        }
        for scope in ["key", "all"] {
            self.cache_purges.with_label_values(&[scope]);
        }
    }

    /// Counts an answered request. The usual label sets use handles taken at
    /// start-up: no label hashing or lock on the request path.
    pub fn observe_request(&self, route: &str, method: &str, status_class: &str, seconds: f64) {
        let r = ROUTES.iter().position(|x| *x == route);
        let m = HOT_METHODS.iter().position(|x| *x == method);
        let c = HOT_CLASSES.iter().position(|x| *x == status_class);
        match (r, m, c) {
            (Some(r), Some(m), Some(c)) => {
                let rm = r * HOT_METHODS.len() + m;
                self.hot.requests[rm * HOT_CLASSES.len() + c].inc();
                self.hot.durations[rm].observe(seconds);
            }
            _ => {
                self.requests
                    .with_label_values(&[route, method, status_class])
                    .inc();
                self.request_duration
                    .with_label_values(&[route, method])
                    .observe(seconds);
            }
        }
    }

    pub fn set_version(&self, version: &str) {
        self.build_info.with_label_values(&[version]).set(1);
    }

    pub fn observe_upstream(&self, route: &str, outcome: UpstreamOutcome, seconds: f64) {
        self.upstream_requests
            .with_label_values(&[route, outcome.as_str()])
            .inc();
        self.upstream_duration
            .with_label_values(&[route])
            .observe(seconds);
    }

    pub fn observe_cache(&self, route: &str, result: CacheResult) {
        let i = CACHE_RESULTS.iter().position(|x| *x == result);
        match (CACHED.iter().position(|x| *x == route), i) {
            (Some(r), Some(i)) => self.hot.lookups[r * CACHE_RESULTS.len() + i].inc(),
            _ => self
                .cache_lookups
                .with_label_values(&[route, result.label()])
                .inc(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_metrics_register_and_encode() {
        let m = metrics();
        m.set_version("1.2.3");
        m.observe_request("/parameters", "GET", "2xx", 0.001);
        m.observe_request("/parameters", "GET", CLIENT_CLOSED, 0.001);
        m.observe_cache("/parameters", CacheResult::Hit);
        m.observe_upstream("/parameters", UpstreamOutcome::Timeout, 0.1);
        let names: Vec<String> = prometheus::gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        for want in [
            "edge_http_requests_total",
            "edge_upstream_requests_total",
            "edge_upstream_duration_seconds",
            "edge_upstream_retries_total",
            "edge_upstream_keyed_fallbacks_total",
            "edge_upstream_ejected_addresses",
            "edge_cache_lookups_total",
            "edge_cache_entries",
            "edge_cache_purges_total",
            "edge_rate_limited_requests_total",
            "edge_client_connections",
            "edge_client_connections_rejected_total",
            "edge_tls_certificate_expiry_timestamp_seconds",
            "edge_log_lines_dropped_total",
            "process_resident_memory_bytes",
            "edge_build_info",
            "edge_ready",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
        // A second call returns the same instance, no double registration.
        assert!(std::ptr::eq(m, metrics()));
    }
}
