//! The edge: the public main API, built on Pingora with rustls.
//!
//! It answers `GET`/`HEAD` on `/s3-buckets`, `/parameters` and
//! `/parameter/{name}` (also under `/api/`) with the auxiliary service's JSON
//! plus `main_api_version`, caches parameter answers (with HTTP validators),
//! terminates TLS (1.2 and 1.3, ALPN `h2` and `http/1.1`, certificate
//! reloaded from disk), protects itself and the worker (connection cap,
//! header deadline, per-client miss rate, in-flight bound, outlier
//! ejection), serves metrics and probes on an admin port, and drains on
//! SIGTERM.
//!
//! # Layout
//!
//! - [`config`]: every setting (environment variable and flag), validated at
//!   once before any port is bound.
//! - [`server`]: wiring of the Pingora server: public service, admin service,
//!   resolver, certificate watch, shutdown watch.
//! - [`listen`]: the public listeners, a Pingora service whose accept loop
//!   spawns each connection with only its own state.
//! - [`conn`]: client connections: the connection cap, the TLS handshake, the
//!   HTTP/1 keep-alive loop (parsing, deadlines, client aborts, drain) and
//!   HTTP/2 through Pingora's server.
//! - [`app`]: request handling for both protocols: routing ([`app::plan`]),
//!   the hot path, coalesced worker calls, admission control.
//! - [`respond`]: every response header, decided in one place.
//! - [`cache`]: one moka entry per key with fresh, revalidate and stale
//!   deadlines; [`flight`]: one worker call in flight per key.
//! - [`upstream`]: the worker client: background resolution, keyed and
//!   spread selection (`pingora-load-balancing`), outlier ejection, pooled
//!   connections, timeouts, bounded retries.
//! - [`limits`]: connection cap, per-client miss rate (`pingora-limits`),
//!   in-flight bound.
//! - [`answer`]: the answers themselves (worker JSON plus
//!   `main_api_version`, validators, or an edge error).
//! - [`tls`]: certificate loading, the reloading resolver, the late
//!   certificate wait, the expiry gauge.
//! - [`admin`]: `/metrics`, probes and cache purge; [`shutdown`]: the
//!   drain-first SIGTERM handling; [`metrics`]: the `edge_*` metrics (see
//!   `docs/metrics.md`).
//!
//! # Request flow
//!
//! Pingora accepts a connection and hands it to [`conn::EdgeServer`], which
//! parses each request and calls [`app::EdgeApp::handle`]. A fresh cache
//! entry under the path as written is answered at once from its prepared
//! bytes. Otherwise the request is routed; a miss joins the worker call in
//! flight for its key or starts one (if the client's miss budget and the
//! in-flight bound allow), and the answer is stored by the cache rules,
//! shared with every request that waited, and written whole with an exact
//! `Content-Length`.
//!
//! # Invariants
//!
//! - No request blocks on DNS or on the log pipe; a resolution failure
//!   never panics.
//! - Every response is written whole with an exact `Content-Length`.
//! - At most one worker call is in flight per key.
//! - Metric labels are route templates, methods and classes only — never
//!   raw paths.
//! - Retries of worker calls happen in [`upstream`] only.

#![forbid(unsafe_code)]

pub mod admin;
pub mod answer;
pub mod app;
pub mod cache;
pub mod config;
pub mod conn;
pub mod flight;
pub mod limits;
pub mod listen;
pub mod metrics;
pub mod respond;
pub mod server;
pub mod shutdown;
pub mod tls;
pub mod upstream;

pub use config::{Config, ConfigOutcome, EXIT_CONFIG};
pub use server::{RunError, run};
