//! The edge: the public main API, built on Pingora with rustls.
//!
//! It answers `GET`/`HEAD` on `/s3-buckets`, `/parameters` and
//! `/parameter/{name}` (also under `/api/`) with the auxiliary service's JSON
//! plus `main_api_version`, caches parameter answers, terminates TLS
//! (1.2 and 1.3, ALPN `h2` and `http/1.1`, certificate reloaded from disk),
//! serves metrics and probes on an admin port, and drains on SIGTERM.
//!
//! # Layout
//!
//! - [`config`]: every setting (environment variable and flag), validated at
//!   once before any port is bound.
//! - [`server`]: wiring of the Pingora server: public service, admin service,
//!   resolver, shutdown watch.
//! - [`proxy`]: request handling ([`proxy::EdgeApp`], a `ProxyHttp` that
//!   answers everything in `request_filter` with exact framing), routing as
//!   a pure function ([`proxy::plan`]: route template, cache key or error),
//!   the access log and request metrics.
//! - [`cache`]: the moka answer cache: coalesced misses, negative caching,
//!   stale-if-error.
//! - [`upstream`]: the worker client: async re-resolution, pooled
//!   connections, timeouts, bounded retries.
//! - [`answer`]: the answers themselves (worker JSON plus
//!   `main_api_version`, or an edge error).
//! - [`tls`]: certificate loading and the reloading certificate resolver.
//! - [`admin`]: `/metrics`, `/healthz`, `/readyz` and readiness state.
//! - [`shutdown`]: the drain-first SIGTERM handling.
//! - [`metrics`]: the `edge_*` metrics (see `docs/metrics.md`).
//!
//! # Request flow
//!
//! `request_filter` routes the request ([`proxy::plan`]); a cache hit is
//! answered from memory; a miss goes through [`cache::AnswerCache`], which
//! lets one request per key call the worker ([`upstream::Upstream`]) while
//! concurrent ones wait; the answer (worker JSON plus `main_api_version`, or
//! an edge error) is written whole, and `logging` records metrics and the
//! access line. Pingora's own proxy phases (`upstream_peer`, its retries and
//! error pages) are never reached.
//!
//! # Invariants
//!
//! - No request blocks on DNS; a resolution failure never panics.
//! - Every response is written whole with an exact `Content-Length`.
//! - Metric labels are route templates, methods and classes only — never
//!   raw paths.
//! - Retries of worker calls happen in [`upstream`] only.

#![forbid(unsafe_code)]

pub mod admin;
pub mod answer;
pub mod cache;
pub mod config;
pub mod metrics;
pub mod proxy;
pub mod server;
pub mod shutdown;
pub mod tls;
pub mod upstream;

pub use config::{Config, ConfigOutcome, EXIT_CONFIG};
pub use server::{RunError, run};
