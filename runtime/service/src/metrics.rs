//! Prometheus metrics for the service, in the text exposition format, on a
//! listen address of their own (`ferry serve --metrics ADDR`).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::Service;
use crate::core::{EndpointView, TaskState};

/// Upper bounds of the latency buckets, in seconds.
const BOUNDS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    10.0,
];

/// A latency histogram that many threads add to without a lock.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (b, bound) in self.buckets.iter().zip(BOUNDS) {
            if secs <= bound {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (b, bound) in self.buckets.iter().zip(BOUNDS) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                b.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// The broker's latencies.
#[derive(Default)]
pub struct Metrics {
    /// One store commit.
    pub commit: Histogram,
    /// One whole transition, commit included.
    pub transition: Histogram,
    /// From queued to dispatched.
    pub dispatch_wait: Histogram,
    /// Transitions committed, however many shared each commit: over the
    /// commit count, the size of a group.
    pub committed: AtomicU64,
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The whole exposition.
pub fn render(service: &Service) -> String {
    let broker = service.broker();
    let mut out = String::new();
    let counts = broker.counts();
    out.push_str(
        "# HELP ferry_tasks Tasks held by the service, by state.\n# TYPE ferry_tasks gauge\n",
    );
    for state in TaskState::ALL {
        let n = counts.get(&state).copied().unwrap_or(0);
        let _ = writeln!(out, "ferry_tasks{{state=\"{}\"}} {n}", state.label());
    }
    let endpoints = broker.endpoints();
    let per_endpoint =
        |out: &mut String, name: &str, help: &str, value: &dyn Fn(&EndpointView) -> u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for e in &endpoints {
                let _ = writeln!(
                    out,
                    "{name}{{endpoint=\"{}\"}} {}",
                    label(&e.name),
                    value(e)
                );
            }
        };
    per_endpoint(
        &mut out,
        "ferry_queue_depth",
        "Tasks queued per endpoint name.",
        &|e| e.queued,
    );
    per_endpoint(
        &mut out,
        "ferry_sessions",
        "Connected endpoint sessions per endpoint name.",
        &|e| u64::from(e.sessions),
    );
    per_endpoint(
        &mut out,
        "ferry_in_flight",
        "Tasks leased to sessions per endpoint name.",
        &|e| u64::from(e.in_flight),
    );
    let (expired, refused) = broker.lease_counters();
    let _ = writeln!(
        out,
        "# HELP ferry_leases_expired_total Leases that expired and whose tasks came back.\n# TYPE ferry_leases_expired_total counter\nferry_leases_expired_total {expired}"
    );
    let _ = writeln!(
        out,
        "# HELP ferry_outcomes_refused_total Outcomes dropped because their session held no current lease.\n# TYPE ferry_outcomes_refused_total counter\nferry_outcomes_refused_total {refused}"
    );
    let m = broker.metrics();
    let committed = m.committed.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP ferry_transitions_committed_total Transitions committed; over ferry_commit_seconds_count, how many share a commit.\n# TYPE ferry_transitions_committed_total counter\nferry_transitions_committed_total {committed}"
    );
    m.commit.render(
        &mut out,
        "ferry_commit_seconds",
        "Store commits of the broker's transitions.",
    );
    m.transition.render(
        &mut out,
        "ferry_transition_seconds",
        "Broker transitions, commit included.",
    );
    m.dispatch_wait.render(
        &mut out,
        "ferry_dispatch_wait_seconds",
        "Time from queued to dispatched (millisecond resolution).",
    );
    out
}

/// A minimal HTTP/1.1 server: `GET /metrics`, nothing else.
pub(crate) async fn serve(service: Service, listener: TcpListener) -> anyhow::Result<()> {
    loop {
        let (mut socket, _) = listener.accept().await?;
        let service = service.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut n = 0;
            // The request line and headers; bodies are not read.
            while n < buf.len() {
                match socket.read(&mut buf[n..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(k) => n += k,
                }
                if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let path = head.split_whitespace().nth(1).unwrap_or("");
            let (code, body) = if head.starts_with("GET ") && (path == "/metrics" || path == "/") {
                ("200 OK", render(&service))
            } else {
                (
                    "404 Not Found",
                    "only GET /metrics is served here\n".to_owned(),
                )
            };
            let response = format!(
                "HTTP/1.1 {code}\r\ncontent-type: text/plain; version=0.0.4; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
}
