//! Structured logs: one JSON object per line by default (for log pipelines), or text for humans.

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Lines queued for the writer thread (about half a second of log at 30k requests/s). Beyond
/// this lines are dropped rather than make requests wait for the log. The queue's slots are
/// allocated up front, so it is kept small: 256k lines cost 8 MB of idle memory.
const QUEUED_LINES: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

/// `RUST_LOG` overrides the default level (`info`). Lines are written to stderr by a background
/// thread, so a slow log pipe never stalls a worker; keep the guard until exit, it flushes them.
pub fn init(format: LogFormat) -> WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(QUEUED_LINES)
        .lossy(true)
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        // Colours only for a terminal: in a file or a pipe the escape codes would split every
        // `key=value` a reader greps for.
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    guard
}
