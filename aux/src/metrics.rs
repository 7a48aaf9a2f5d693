//! The worker's metrics, registered once in one registry and served on the
//! admin port. Names and labels are the contract in `docs/metrics.md`.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::aws::{AwsError, Operation};

const NAMESPACE: &str = "aux";

/// Buckets for request and AWS call durations, in seconds.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Handles to every metric; cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    in_flight: IntGauge,
    aws_calls: IntCounterVec,
    aws_duration: HistogramVec,
    cache_lookups: IntCounterVec,
    cache_entries: IntGauge,
    ready: IntGauge,
}

impl Metrics {
    /// Registers every metric in a new registry.
    pub fn new(version: &str) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "Requests answered, by route template, method and status class.",
            )
            .namespace(NAMESPACE),
            &["route", "method", "status_class"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time from request head to response head, by route template and method.",
            )
            .namespace(NAMESPACE)
            .buckets(DURATION_BUCKETS.to_vec()),
            &["route", "method"],
        )?;
        let in_flight = IntGauge::with_opts(
            Opts::new("http_requests_in_flight", "Requests being served now.").namespace(NAMESPACE),
        )?;
        let aws_calls = IntCounterVec::new(
            Opts::new(
                "aws_calls_total",
                "AWS operations by operation and outcome (SDK retries included in one call).",
            )
            .namespace(NAMESPACE),
            &["operation", "outcome"],
        )?;
        let aws_duration = HistogramVec::new(
            HistogramOpts::new(
                "aws_call_duration_seconds",
                "Duration of AWS operations, retries included.",
            )
            .namespace(NAMESPACE)
            .buckets(DURATION_BUCKETS.to_vec()),
            &["operation"],
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "build_info",
                "Always 1; the version label is SERVICE_VERSION.",
            )
            .namespace(NAMESPACE),
            &["version"],
        )?;
        let cache_lookups = IntCounterVec::new(
            Opts::new(
                "cache_lookups_total",
                "SSM answers looked up in the worker's cache, by route template and result (hit, miss).",
            )
            .namespace(NAMESPACE),
            &["route", "result"],
        )?;
        let cache_entries = IntGauge::with_opts(
            Opts::new("cache_entries", "SSM answers held in the worker's cache.")
                .namespace(NAMESPACE),
        )?;
        let ready = IntGauge::with_opts(
            Opts::new("ready", "1 while /readyz answers 200, 0 while draining.")
                .namespace(NAMESPACE),
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(aws_calls.clone()))?;
        registry.register(Box::new(aws_duration.clone()))?;
        registry.register(Box::new(build_info.clone()))?;
        registry.register(Box::new(cache_lookups.clone()))?;
        registry.register(Box::new(cache_entries.clone()))?;
        registry.register(Box::new(ready.clone()))?;
        service_common::admin::register_common_metrics(&registry, NAMESPACE)?;
        for route in ["/parameters", "/parameter/{name}"] {
            for result in ["hit", "miss"] {
                cache_lookups.with_label_values(&[route, result]);
            }
        }
        build_info.with_label_values(&[version]).set(1);
        // Pre-create the series dashboards and alerts expect, so they read 0
        // rather than "no data" before the first call.
        for op in [
            Operation::ListBuckets,
            Operation::DescribeParameters,
            Operation::GetParameter,
        ] {
            for outcome in [
                "ok",
                "not_found",
                "throttled",
                "unavailable",
                "timeout",
                "error",
            ] {
                aws_calls.with_label_values(&[op.as_str(), outcome]);
            }
        }
        Ok(Self {
            registry,
            requests,
            request_duration,
            in_flight,
            aws_calls,
            aws_duration,
            cache_lookups,
            cache_entries,
            ready,
        })
    }

    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let class = service_common::labels::status_class(status);
        self.requests
            .with_label_values(&[route, method, class])
            .inc();
        self.request_duration
            .with_label_values(&[route, method])
            .observe(elapsed.as_secs_f64());
    }

    pub fn observe_aws<T>(&self, op: Operation, result: &Result<T, AwsError>, elapsed: Duration) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(e) => e.kind.outcome(),
        };
        self.aws_calls
            .with_label_values(&[op.as_str(), outcome])
            .inc();
        self.aws_duration
            .with_label_values(&[op.as_str()])
            .observe(elapsed.as_secs_f64());
    }

    pub fn observe_cache(&self, route: &str, lookup: crate::cache::Lookup) {
        self.cache_lookups
            .with_label_values(&[route, lookup.label()])
            .inc();
    }

    pub fn set_cache_entries(&self, entries: u64) {
        self.cache_entries
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
    }

    pub fn in_flight(&self) -> &IntGauge {
        &self.in_flight
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(8 * 1024);
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        buf
    }
}
