//! Logging for ferry's binaries: `tracing` events on stderr, filtered by
//! `RUST_LOG` (default `info`), as text or, with `FERRY_LOG_FORMAT=json`,
//! one JSON object per line for a log collector.

use tracing_subscriber::EnvFilter;

/// Installs the subscriber once; later calls do nothing.
pub fn init_logging() {
    init_logging_with("info");
}

/// [`init_logging`] with another filter when `RUST_LOG` is unset: `ferry
/// up`, whose endpoint shares the terminal with the demo, leaves out the
/// endpoint's per-task trail (`ferry::audit`).
pub fn init_logging_with(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let json = std::env::var("FERRY_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.with_ansi(false).compact().try_init()
    };
}
