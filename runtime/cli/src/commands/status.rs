//! `ferry status`: endpoints and tasks by state.

use std::process::ExitCode;

use crate::fabric::{ServiceArg, runtime};
use ferry_proto::v1::TaskState;

pub fn status(service: &ServiceArg) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let client = service.connect().await?;
        let s = client.status().await?;
        if !s.durability.is_empty() {
            match s.durability_loses.as_str() {
                "" => println!("durability: {}", s.durability),
                loses => println!("durability: {}: {loses}", s.durability),
            }
            println!();
        }
        println!(
            "{:<16} {:<8} {:>8} {:>9} {:>8} {:>8}  {:<14} {:<16} GPU",
            "ENDPOINT",
            "STATE",
            "SESSIONS",
            "CAPACITY",
            "RUNNING",
            "QUEUED",
            "LAST HEARTBEAT",
            "CAMERAS"
        );
        let now = ferry_proto::now_ms();
        for e in &s.endpoints {
            let beat = if e.last_heartbeat_ms == 0 {
                "never".to_owned()
            } else {
                format!("{:.1}s ago", (now - e.last_heartbeat_ms) as f64 / 1e3)
            };
            let gpu = e.gpu.as_ref().map_or_else(
                || "none".to_owned(),
                |g| format!("{} ({})", g.name, g.backend),
            );
            let cameras: Vec<&str> = e.cameras.iter().map(|c| c.name.as_str()).collect();
            let cameras = if cameras.is_empty() {
                "none".to_owned()
            } else {
                cameras.join(",")
            };
            println!(
                "{:<16} {:<8} {:>8} {:>9} {:>8} {:>8}  {beat:<14} {cameras:<16} {gpu}",
                e.name,
                if e.online { "online" } else { "offline" },
                e.sessions,
                e.capacity,
                e.in_flight,
                e.queued
            );
        }
        for e in &s.endpoints {
            elastic(e, now);
        }
        println!();
        for c in &s.tasks {
            let state = TaskState::try_from(c.state).unwrap_or(TaskState::Unspecified);
            println!("{:<22} {}", state.label(), c.count);
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// An elastic endpoint's blocks as its manager last reported them, and its
/// workers as the service sees them.
fn elastic(e: &ferry_proto::v1::EndpointStatus, now: i64) {
    if e.manager_seen_ms == 0 {
        return;
    }
    let phases = ["submitting", "pending", "running", "draining"];
    let counts: Vec<String> = phases
        .iter()
        .map(|p| {
            let n = e.blocks.iter().filter(|b| b.phase == *p).count();
            format!("{n} {p}")
        })
        .collect();
    println!(
        "\n{} ({} provider, reported {:.1}s ago): blocks {}",
        e.name,
        e.provider,
        (now - e.manager_seen_ms) as f64 / 1e3,
        counts.join(", ")
    );
    if !e.blocks.is_empty() {
        println!(
            "  {:<28} {:<24} {:<11} {:>7} {:>7}",
            "BLOCK", "JOB", "PHASE", "WORKERS", "RUNNING"
        );
        for b in &e.blocks {
            let job = if b.job.is_empty() { "-" } else { &b.job };
            println!(
                "  {:<28} {job:<24} {:<11} {:>7} {:>7}",
                b.id, b.phase, b.workers, b.in_flight
            );
        }
    }
    if !e.workers.is_empty() {
        println!(
            "  {:<10} {:<28} {:>8} {:>7}  STATE",
            "WORKER", "BLOCK", "CAPACITY", "RUNNING"
        );
        for w in &e.workers {
            let block = if w.block.is_empty() {
                "(by hand)"
            } else {
                &w.block
            };
            println!(
                "  {:<10} {block:<28} {:>8} {:>7}  {}",
                w.session_id,
                w.capacity,
                w.in_flight,
                if w.draining { "draining" } else { "serving" }
            );
        }
    }
}
