//! What the edge and the worker share.
//!
//! # Layout
//!
//! - [`parameter`]: the validated [`ParameterPrefix`] and [`ParameterName`]
//!   newtypes. Every parameter name that reaches AWS or a cache key went
//!   through [`ParameterName::from_path_segment`].
//! - [`api`]: the routes, the error codes with their HTTP status, and the JSON
//!   shapes both services put on the wire.
//! - [`request`]: `x-request-id` and W3C `traceparent` handling.
//! - [`labels`]: the bounded label values metrics use.
//! - [`telemetry`]: the `tracing` subscriber (JSON or text, `RUST_LOG`).
//! - [`duration`]: parsing of `*_SECONDS` configuration values.

pub mod api;
pub mod duration;
pub mod labels;
pub mod parameter;
pub mod request;
pub mod telemetry;

pub use api::{ErrorCode, Route};
pub use parameter::{ParameterName, ParameterNameError, ParameterPrefix};
pub use request::{RequestId, TraceParent};
