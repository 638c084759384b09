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
        println!();
        for c in &s.tasks {
            let state = TaskState::try_from(c.state).unwrap_or(TaskState::Unspecified);
            println!("{:<22} {}", state.label(), c.count);
        }
        Ok(ExitCode::SUCCESS)
    })
}
