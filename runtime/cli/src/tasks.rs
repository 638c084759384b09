//! The task commands: `ferry tasks` (a listing), `ferry cancel` and `ferry
//! logs`.

use std::io::Write;
use std::process::ExitCode;

use ferry_proto::v1::TaskState;

use crate::fabric::{ServiceArg, connect, runtime};

#[derive(clap::Args)]
pub struct ListArgs {
    /// Only tasks in this state (repeatable): waiting-for-endpoint,
    /// dispatched, running, succeeded, failed, cancelled,
    /// waiting-for-dependencies.
    #[arg(long = "state", value_parser = parse_state)]
    states: Vec<TaskState>,
    /// Only tasks for this endpoint.
    #[arg(long, default_value = "")]
    endpoint: String,
    /// Tasks per page.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Start after this task id (what the last page ended with).
    #[arg(long, default_value = "")]
    after: String,
    /// Every page, not just the first.
    #[arg(long)]
    all: bool,
}

fn parse_state(s: &str) -> Result<TaskState, String> {
    let all = [
        TaskState::WaitingForEndpoint,
        TaskState::Dispatched,
        TaskState::Running,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Cancelled,
        TaskState::WaitingForDependencies,
    ];
    all.into_iter().find(|t| t.label() == s).ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|t| t.label()).collect();
        format!("unknown state `{s}`; one of: {}", names.join(", "))
    })
}

pub fn list(service: &ServiceArg, args: ListArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let client = connect(service.url()).await?;
        let mut after = args.after;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{:<36} {:<26} {:<14} {:<10} error",
            "task", "state", "endpoint", "export"
        )?;
        loop {
            let page = client
                .list_tasks(&args.states, &args.endpoint, &after, args.limit)
                .await?;
            for t in &page.tasks {
                let state = TaskState::try_from(t.state).unwrap_or(TaskState::Unspecified);
                let error = t
                    .error
                    .as_ref()
                    .map(|e| format!("{}: {}", e.kind, e.message))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{:<36} {:<26} {:<14} {:<10} {error}",
                    t.id,
                    state.label(),
                    t.endpoint,
                    t.export
                )?;
            }
            if !args.all || page.next_after.is_empty() {
                if !page.next_after.is_empty() {
                    eprintln!("more: --after {}", page.next_after);
                }
                return Ok(ExitCode::SUCCESS);
            }
            after = page.next_after;
        }
    })
}

pub fn cancel(service: &ServiceArg, task_ids: Vec<String>) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let client = connect(service.url()).await?;
        let mut code = ExitCode::SUCCESS;
        for id in task_ids {
            match client.cancel(&id).await {
                Ok(info) => {
                    let state = TaskState::try_from(info.state).unwrap_or(TaskState::Unspecified);
                    if state == TaskState::Cancelled {
                        println!("{id} cancelled");
                    } else {
                        println!("{id} had already ended: {}", state.label());
                    }
                }
                Err(e) => {
                    eprintln!("error: {id}: {e}");
                    code = ExitCode::FAILURE;
                }
            }
        }
        Ok(code)
    })
}

pub fn logs(service: &ServiceArg, task_id: &str) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let client = connect(service.url()).await?;
        let info = client.task(task_id).await?;
        let state = TaskState::try_from(info.state).unwrap_or(TaskState::Unspecified);
        let Some(output) = info.output else {
            if state.is_terminal() {
                eprintln!(
                    "task {task_id} ({}) printed and logged nothing",
                    state.label()
                );
            } else {
                eprintln!(
                    "task {task_id} is {}; its output comes when it ends",
                    state.label()
                );
            }
            return Ok(ExitCode::SUCCESS);
        };
        for line in &output.logs {
            eprintln!("[log] {line}");
        }
        std::io::stderr().write_all(&output.stderr)?;
        std::io::stdout().write_all(&output.stdout)?;
        if output.truncated > 0 {
            eprintln!(
                "({} bytes past the endpoint's bound were dropped)",
                output.truncated
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}
