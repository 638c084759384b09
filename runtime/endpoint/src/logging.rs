//! Logging for ferry's binaries: `tracing` events on stderr, filtered by
//! `RUST_LOG` (default `info`), as text or, with `FERRY_LOG_FORMAT=json`,
//! one JSON object per line for a log collector.

use tracing_subscriber::EnvFilter;

/// Keeps the log's writer thread. Dropping it writes out what is still
/// queued, so a binary holds it until it returns from `main`.
#[must_use = "dropping the guard stops the log's writer"]
pub struct LogGuard {
    _writer: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// Installs the subscriber once; later calls do nothing.
pub fn init_logging() -> LogGuard {
    init_logging_with("info")
}

/// [`init_logging`] with another filter when `RUST_LOG` is unset: `ferry
/// up`, whose endpoint shares the terminal with the demo, leaves out the
/// endpoint's per-task trail (`ferry::audit`).
///
/// Lines are written by a thread of their own, in batches: a service or an
/// endpoint logs a line per task (the audit trail), and a write to stderr
/// per line on the task's path cost a quarter of a no-op task. The writer
/// blocks when its queue is full rather than drop a line.
pub fn init_logging_with(default: &str) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let json = std::env::var("FERRY_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("ferry-log")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(true);
    let installed = if json {
        builder.json().try_init()
    } else {
        builder.with_ansi(false).compact().try_init()
    };
    LogGuard {
        _writer: installed.is_ok().then_some(guard),
    }
}
