//! The edge's Prometheus metrics, registered once in the default registry
//! (which `pingora-prometheus` serves). Names and labels are the contract in
//! `docs/metrics.md`.

use std::sync::OnceLock;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};

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
    Hit,
    Miss,
    Stale,
}

impl CacheResult {
    pub fn label(self) -> &'static str {
        match self {
            CacheResult::Hit => "hit",
            CacheResult::Miss => "miss",
            CacheResult::Stale => "stale",
        }
    }

    pub fn header(self) -> &'static str {
        match self {
            CacheResult::Hit => "HIT",
            CacheResult::Miss => "MISS",
            CacheResult::Stale => "STALE",
        }
    }
}

#[derive(Debug)]
pub struct Metrics {
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub upstream_requests: IntCounterVec,
    pub upstream_duration: HistogramVec,
    pub cache_lookups: IntCounterVec,
    pub cache_coalesced_waits: IntCounterVec,
    pub cache_entries: IntGauge,
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
const HOT_CLASSES: [&str; 3] = ["2xx", "4xx", "5xx"];
const CACHE_RESULTS: [CacheResult; 3] = [CacheResult::Hit, CacheResult::Miss, CacheResult::Stale];

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

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|_| unreachable_metric()),
    )
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
            requests: counter(
                "edge_http_requests_total",
                "Requests answered, by route template, method and status class.",
                &["route", "method", "status_class"],
            ),
            request_duration: histogram(
                "edge_http_request_duration_seconds",
                "Time from request head to response end.",
                &["route", "method"],
            ),
            upstream_requests: counter(
                "edge_upstream_requests_total",
                "Requests sent to the auxiliary service, by outcome (ok is any HTTP answer).",
                &["route", "outcome"],
            ),
            upstream_duration: histogram(
                "edge_upstream_duration_seconds",
                "Round trip to the auxiliary service.",
                &["route"],
            ),
            cache_lookups: counter(
                "edge_cache_lookups_total",
                "Cacheable requests by result: hit, miss, stale.",
                &["route", "result"],
            ),
            cache_coalesced_waits: counter(
                "edge_cache_coalesced_waits_total",
                "Requests that waited for another request's worker call instead of making their own.",
                &["route"],
            ),
            cache_entries: gauge("edge_cache_entries", "Entries in the cache."),
            build_info: register(
                IntGaugeVec::new(
                    Opts::new("edge_build_info", "Always 1; the running SERVICE_VERSION."),
                    &["version"],
                )
                .unwrap_or_else(|_| unreachable_metric()),
            ),
            ready: gauge(
                "edge_ready",
                "1 while /readyz answers 200, 0 while draining.",
            ),
            hot: Hot::default(),
        };
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
        m.requests
            .with_label_values(&["/parameters", "GET", "2xx"])
            .inc();
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
            "edge_cache_lookups_total",
            "edge_cache_entries",
            "edge_build_info",
            "edge_ready",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
        // A second call returns the same instance, no double registration.
        assert!(std::ptr::eq(m, metrics()));
    }
}
