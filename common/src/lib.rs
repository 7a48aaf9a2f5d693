//! What the edge and the worker share.
//!
//! # Layout
//!
//! - [`parameter`]: the validated [`ParameterPrefix`] and [`ParameterName`]
//!   newtypes. Every parameter name that reaches AWS or a cache key went
//!   through [`ParameterName::from_path_segment`].
//! - [`api`]: the routes, the error codes with their HTTP status, and the JSON
//!   shapes both services put on the wire.
//! - [`request`]: `x-request-id`; [`trace`]: W3C and B3 trace context.
//! - [`config`]: parsing helpers and the every-problem-at-once collector
//!   behind both configurations.
//! - [`telemetry`]: the `tracing` subscriber and the lossy log writer
//!   (JSON or text, `RUST_LOG`); [`access_log`]: the one access-line format.
//! - [`admin`]: the admin port's probes, readiness and process metrics.
//! - [`labels`]: the bounded label values metrics use.
//! - [`clock`]: `Date` headers and log timestamps, formatted once a second.

pub mod access_log;
pub mod admin;
pub mod api;
pub mod clock;
pub mod config;
pub mod labels;
pub mod parameter;
pub mod request;
pub mod telemetry;
pub mod trace;

pub use api::{ErrorCode, Route};
pub use parameter::{ParameterName, ParameterNameError, ParameterPrefix};
pub use request::RequestId;
pub use trace::TraceParent;
