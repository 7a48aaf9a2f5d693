//! The admin port both services expose: `/healthz`, `/readyz` and
//! `/metrics`, with the same bodies and the same process metrics.
//!
//! - `/healthz`: `200 {"status":"ok"}` while the process runs.
//! - `/readyz`: `200 {"status":"ready"}`; `503 {"status":"draining"}` once a
//!   shutdown began; `503 {"status":"waiting","reason":"…"}` while something
//!   the instance needs is missing (the edge waits for its TLS certificate).
//! - `/metrics`: Prometheus text, including `process_*` (resident memory,
//!   open descriptors, CPU seconds) and `<service>_log_lines_dropped_total`.

use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;

/// Content type of `/metrics`.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of the probe answers.
pub const PROBE_CONTENT_TYPE: &str = "application/json";

/// Whether the instance should receive traffic.
#[derive(Debug, Default)]
pub struct Readiness {
    draining: AtomicBool,
    waiting: RwLock<Option<&'static str>>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_ready(&self) -> bool {
        !self.is_draining() && self.waiting_for().is_none()
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// From now on `/readyz` answers `503 draining`; there is no way back.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// While set, `/readyz` answers `503 waiting` with this reason.
    pub fn set_waiting(&self, reason: Option<&'static str>) {
        if let Ok(mut w) = self.waiting.write() {
            *w = reason;
        }
    }

    pub fn waiting_for(&self) -> Option<&'static str> {
        self.waiting.read().ok().and_then(|w| *w)
    }
}

/// A probe's answer: status and JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeAnswer {
    pub status: u16,
    pub body: String,
}

/// Answers `/healthz` and `/readyz`; `None` for any other path.
pub fn probe(path: &str, readiness: &Readiness) -> Option<ProbeAnswer> {
    let (status, body) = match path {
        "/healthz" => (200, r#"{"status":"ok"}"#.to_owned()),
        "/readyz" if readiness.is_draining() => (503, r#"{"status":"draining"}"#.to_owned()),
        "/readyz" => match readiness.waiting_for() {
            Some(reason) => (
                503,
                serde_json::json!({"status": "waiting", "reason": reason}).to_string(),
            ),
            None => (200, r#"{"status":"ready"}"#.to_owned()),
        },
        _ => return None,
    };
    Some(ProbeAnswer { status, body })
}

/// The body of an admin 404.
pub const NOT_FOUND_BODY: &str = r#"{"error":{"code":"not_found","message":"no such route"}}"#;

/// `<service>_log_lines_dropped_total`, read from the log writer when
/// scraped.
#[derive(Debug, Clone)]
pub struct LogDropsCollector {
    desc: Desc,
    name: String,
    help: String,
}

impl LogDropsCollector {
    /// `namespace` is the service's metric prefix (`edge`, `aux`).
    pub fn new(namespace: &str) -> Result<Self, prometheus::Error> {
        let name = format!("{namespace}_log_lines_dropped_total");
        let help = "Log lines dropped because the log writer could not keep up (stderr not read fast enough).".to_owned();
        let desc = Desc::new(name.clone(), help.clone(), vec![], Default::default())?;
        Ok(Self { desc, name, help })
    }
}

impl Collector for LogDropsCollector {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let counter = prometheus::IntCounter::new(self.name.clone(), self.help.clone());
        match counter {
            Ok(c) => {
                c.inc_by(crate::telemetry::dropped_lines());
                c.collect()
            }
            Err(_) => Vec::new(),
        }
    }
}

/// Registers the process metrics and the dropped-log-lines counter for a
/// service in `registry`. (The `prometheus` crate's default registry comes
/// with the process metrics already.)
pub fn register_common_metrics(
    registry: &prometheus::Registry,
    namespace: &str,
) -> Result<(), prometheus::Error> {
    match registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    )) {
        Ok(()) | Err(prometheus::Error::AlreadyReg) => {}
        Err(e) => return Err(e),
    }
    registry.register(Box::new(LogDropsCollector::new(namespace)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_follow_readiness() {
        let r = Readiness::new();
        assert_eq!(probe("/healthz", &r).unwrap().status, 200);
        assert_eq!(probe("/readyz", &r).unwrap().status, 200);
        r.set_waiting(Some("waiting for TLS certificate"));
        let w = probe("/readyz", &r).unwrap();
        assert_eq!(w.status, 503);
        assert!(w.body.contains("waiting for TLS certificate"), "{}", w.body);
        r.set_waiting(None);
        assert_eq!(probe("/readyz", &r).unwrap().status, 200);
        r.start_draining();
        assert_eq!(
            probe("/readyz", &r).unwrap().body,
            r#"{"status":"draining"}"#
        );
        assert_eq!(probe("/metrics", &r), None);
    }

    #[test]
    fn common_metrics_are_exported_in_the_default_registry_too() {
        register_common_metrics(prometheus::default_registry(), "dflt").unwrap();
        let names: Vec<String> = prometheus::gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        assert!(names.iter().any(|n| n == "dflt_log_lines_dropped_total"));
        assert!(names.iter().any(|n| n == "process_open_fds"));
    }

    #[test]
    fn common_metrics_are_exported() {
        let registry = prometheus::Registry::new();
        register_common_metrics(&registry, "svc").unwrap();
        let names: Vec<String> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        for want in [
            "svc_log_lines_dropped_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_cpu_seconds_total",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
    }
}
