//! Logging set-up shared by both binaries: `tracing` with a JSON or text
//! formatter and a `RUST_LOG` filter (default `info`), written to stderr by
//! a writer thread.
//!
//! Logs never hold up a request: lines go through a bounded queue
//! ([`QUEUE_LINES`]) to the writer thread, which batches them into few
//! writes. When the queue is full because stderr is not being read (a
//! blocked pipe, a stalled log collector), new lines are dropped and
//! counted ([`dropped_lines`], exported as `<service>_log_lines_dropped_total`)
//! instead of blocking the thread that logs.

use std::io::IsTerminal;
use std::str::FromStr;
use std::sync::OnceLock;

use tracing_appender::non_blocking::{ErrorCounter, NonBlocking};
use tracing_subscriber::EnvFilter;

/// Lines the queue to the writer thread holds before dropping new ones.
pub const QUEUE_LINES: usize = 16 * 1024;

/// Bytes the writer thread gathers before writing; it also writes whenever
/// the queue runs empty, so lines are never held back.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            other => Err(format!("{other:?} is not one of json, text")),
        }
    }
}

/// Checks a `RUST_LOG` value without installing it.
pub fn validate_filter(filter: &str) -> Result<(), String> {
    EnvFilter::try_new(filter)
        .map(|_| ())
        .map_err(|e| format!("{filter:?} is not a valid filter: {e}"))
}

/// What the access log needs from the installed logging.
#[derive(Debug)]
pub(crate) struct Sink {
    pub(crate) service: &'static str,
    pub(crate) format: LogFormat,
    pub(crate) writer: NonBlocking,
    pub(crate) ansi: bool,
    dropped: ErrorCounter,
}

static SINK: OnceLock<Sink> = OnceLock::new();

pub(crate) fn sink() -> Option<&'static Sink> {
    SINK.get()
}

/// Log lines dropped so far because the writer could not keep up (0 before
/// [`init`]).
pub fn dropped_lines() -> u64 {
    SINK.get().map_or(0, |s| {
        u64::try_from(s.dropped.dropped_lines()).unwrap_or(u64::MAX)
    })
}

/// Keeps the log writer thread alive; dropping it flushes what is queued.
/// Hold it until the process exits.
#[must_use = "logs are lost when the guard is dropped"]
#[derive(Debug)]
pub struct LogGuard(#[allow(dead_code)] Option<tracing_appender::non_blocking::WorkerGuard>);

/// Installs the global subscriber for `service` (its name appears in every
/// access line). Colour codes are used only when stderr is a terminal.
/// Calling it twice is harmless (the second call changes nothing).
pub fn init(service: &'static str, format: LogFormat, filter: &str) -> LogGuard {
    init_with_writer(service, format, filter, std::io::stderr())
}

/// [`init`] with another destination (tests pass a pipe).
pub fn init_with_writer<W: std::io::Write + Send + 'static>(
    service: &'static str,
    format: LogFormat,
    filter: &str,
    destination: W,
) -> LogGuard {
    if SINK.get().is_some() {
        return LogGuard(None);
    }
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUE_LINES)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::with_capacity(
            WRITE_BUFFER_BYTES,
            destination,
        ));
    let ansi = std::io::stderr().is_terminal();
    let _ = SINK.set(Sink {
        service,
        format,
        writer: writer.clone(),
        ansi,
        dropped: writer.error_counter(),
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    LogGuard(Some(guard))
}
