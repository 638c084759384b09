//! `ferry:host/log`: structured log lines and progress from the guest.
//!
//! Events are kept per task (bounded, the overflow counted) and, when a sink is
//! set, handed to it as they happen so that watchers see progress live.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Linker};

use ferry_policy::Offer;

use super::bindings::ferry::host::log as wit;
use super::{Capability, Prepare, TaskState};
use crate::{Error, Host};

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// One thing a guest reported.
#[derive(Debug, Clone, PartialEq)]
pub enum LogEvent {
    Line {
        /// Time since the task started.
        at: Duration,
        level: Level,
        message: String,
        fields: Vec<(String, String)>,
    },
    Progress {
        at: Duration,
        done: u64,
        total: u64,
        message: String,
    },
}

impl std::fmt::Display for LogEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogEvent::Line {
                at,
                level,
                message,
                fields,
            } => {
                write!(
                    f,
                    "[{:>8.3}s {:<5}] {message}",
                    at.as_secs_f64(),
                    level.as_str()
                )?;
                for (k, v) in fields {
                    write!(f, " {k}={v}")?;
                }
                Ok(())
            }
            LogEvent::Progress {
                at,
                done,
                total,
                message,
            } => write!(
                f,
                "[{:>8.3}s progress] {done}/{total} {message}",
                at.as_secs_f64()
            ),
        }
    }
}

/// Receives events as they happen (for streaming to watchers).
pub type LogSink = Arc<dyn Fn(&LogEvent) + Send + Sync>;

/// Per-task state of the log capability.
pub(crate) struct LogState {
    started: Instant,
    capacity: usize,
    pub(crate) events: Vec<LogEvent>,
    pub(crate) dropped: u64,
    sink: Option<LogSink>,
}

impl LogState {
    pub(crate) fn new(capacity: usize, sink: Option<LogSink>) -> Self {
        LogState {
            started: Instant::now(),
            capacity,
            events: Vec::new(),
            dropped: 0,
            sink,
        }
    }

    fn record(&mut self, event: LogEvent) {
        if let Some(sink) = &self.sink {
            sink(&event);
        }
        if self.events.len() < self.capacity {
            self.events.push(event);
        } else {
            self.dropped += 1;
        }
    }
}

impl wit::Host for LogState {
    fn emit(&mut self, level: wit::Level, message: String, fields: Vec<(String, String)>) {
        let level = match level {
            wit::Level::Trace => Level::Trace,
            wit::Level::Debug => Level::Debug,
            wit::Level::Info => Level::Info,
            wit::Level::Warn => Level::Warn,
            wit::Level::Error => Level::Error,
        };
        let at = self.started.elapsed();
        self.record(LogEvent::Line {
            at,
            level,
            message,
            fields,
        });
    }

    fn progress(&mut self, done: u64, total: u64, message: String) {
        let at = self.started.elapsed();
        self.record(LogEvent::Progress {
            at,
            done,
            total,
            message,
        });
    }
}

/// `ferry:host/log`: every endpoint has it, for every function.
pub(crate) struct Factor;

impl Capability for Factor {
    const INTERFACE: Option<&'static str> = Some("ferry:host/log");
    /// Where events go as they happen, besides the task's own record.
    type Grant = Option<LogSink>;
    type State = LogState;

    fn add_to_linker(
        linker: &mut Linker<TaskState>,
        get: fn(&mut TaskState) -> &mut LogState,
    ) -> wasmtime::Result<()> {
        wit::add_to_linker::<TaskState, HasSelf<LogState>>(linker, get)
    }

    fn advertise(_: &Option<LogSink>, _: &Host) -> Vec<Offer> {
        Vec::new()
    }

    fn prepare(sink: &Option<LogSink>, task: &mut Prepare<'_>) -> Result<LogState, Error> {
        Ok(LogState::new(task.limits.log_events, sink.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use wit::Host as _;

    #[test]
    fn keeps_events_up_to_capacity_and_streams_all() {
        let seen = Arc::new(Mutex::new(0usize));
        let counter = seen.clone();
        let sink: LogSink = Arc::new(move |_| *counter.lock().unwrap() += 1);
        let mut state = LogState::new(2, Some(sink));
        state.emit(
            wit::Level::Info,
            "one".into(),
            vec![("k".into(), "v".into())],
        );
        state.progress(1, 3, "steps".into());
        state.emit(wit::Level::Warn, "three".into(), vec![]);
        assert_eq!(state.events.len(), 2);
        assert_eq!(state.dropped, 1);
        assert_eq!(*seen.lock().unwrap(), 3);
        let first = state.events[0].to_string();
        assert!(
            first.contains("info") && first.contains("one k=v"),
            "{first}"
        );
        assert!(state.events[1].to_string().contains("1/3 steps"));
    }
}
