//! `ferry submit`, `result`, `call`, `graph`, `tasks`, `cancel` and `logs`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use ferry_client::{Client, ClientError, SubmitOptions, TaskInfo};
use ferry_proto::v1::{self as pb, TaskState};

use super::func::function_id;
use crate::fabric::{ServiceArg, runtime};

#[derive(clap::Args)]
pub struct SubmitArgs {
    #[arg(long)]
    endpoint: String,
    /// A function id, or a `.wasm` file to register first.
    function: String,
    export: String,
    /// One JSON value per parameter; text that is not JSON is a string.
    #[arg(allow_negative_numbers = true)]
    args: Vec<String>,
    #[arg(long, value_parser = crate::local::parse_duration_arg)]
    timeout: Option<Duration>,
    #[arg(long, value_parser = crate::local::parse_bytes_arg)]
    memory: Option<u64>,
    /// The task needs the endpoint's GPU: refused at once by an endpoint
    /// known to have none.
    #[arg(long)]
    gpu: bool,
    /// The task needs the endpoint's mount at this guest path (e.g. `/data`)
    /// granted to its function; repeatable.
    #[arg(long = "needs-mount", value_name = "GUEST_PATH")]
    needs_mount: Vec<String>,
    /// The task needs a camera granted to its function (any, or the one
    /// named): refused at once when the endpoint is known to lack it.
    #[arg(long = "needs-camera", value_name = "NAME", num_args = 0..=1, default_missing_value = "")]
    needs_camera: Option<String>,
    /// The task needs the endpoint's variable NAME granted to its function;
    /// repeatable.
    #[arg(long = "needs-env", value_name = "NAME")]
    needs_env: Vec<String>,
    /// Anything the task needs, in its written form: `gpu`, `camera`,
    /// `camera:NAME`, `mount:/GUEST`, `env:NAME`; repeatable.
    #[arg(long = "requires", value_name = "REQUIREMENT", value_parser = |s: &str| s.parse::<ferry_client::Requirement>().map_err(|e| e.to_string()))]
    requires: Vec<ferry_client::Requirement>,
    /// Keep the result; an identical submission later runs nothing.
    #[arg(long)]
    memoize: bool,
    /// Run again up to N times after a failure of a kind in --retry-on.
    #[arg(long, default_value_t = 0)]
    retries: u32,
    /// Failure kinds to retry (timeout, trap, out-of-memory, ..., or *);
    /// repeatable.
    #[arg(long = "retry-on", value_name = "KIND")]
    retry_on: Vec<String>,
    /// `call` only: write the result to this file: bytes (`list<u8>`) as
    /// they are, a string as text, a `blob-ref` downloaded.
    #[arg(long, short = 'o')]
    out: Option<PathBuf>,
}

/// Writes a result value to a file: bytes, text, or the blob a `blob-ref`
/// names (found by `blob`).
pub fn write_out(
    value: &serde_json::Value,
    out: &Path,
    blob: impl FnOnce(&str) -> anyhow::Result<PathBuf>,
) -> anyhow::Result<()> {
    let write = |bytes: &[u8]| {
        std::fs::write(out, bytes).with_context(|| format!("writing {}", out.display()))
    };
    match value {
        serde_json::Value::Array(items) => {
            let bytes: Option<Vec<u8>> = items
                .iter()
                .map(|v| v.as_u64().and_then(|n| u8::try_from(n).ok()))
                .collect();
            write(&bytes.context("the result is a list, but not of bytes")?)
        }
        serde_json::Value::String(text) => write(text.as_bytes()),
        serde_json::Value::Object(o) if o.contains_key("hash") && o.contains_key("size") => {
            let hash = o["hash"].as_str().context("a blob-ref's hash is text")?;
            let from = blob(hash)?;
            std::fs::copy(&from, out)
                .with_context(|| format!("copying blob {hash} to {}", out.display()))?;
            Ok(())
        }
        other => anyhow::bail!(
            "--out takes bytes, text or a blob-ref; the result is {}",
            kind_of(other)
        ),
    }
}

pub(crate) fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a bool",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "text",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a record",
    }
}

pub(crate) fn json_args(args: &[String]) -> String {
    let values: Vec<serde_json::Value> = args
        .iter()
        .map(|a| serde_json::from_str(a).unwrap_or_else(|_| serde_json::Value::String(a.clone())))
        .collect();
    serde_json::Value::Array(values).to_string()
}

pub(crate) async fn submit_one(client: &Client, args: &SubmitArgs) -> anyhow::Result<String> {
    let id = function_id(client, &args.function).await?;
    let limits = (args.timeout.is_some() || args.memory.is_some()).then(|| pb::Limits {
        timeout_ms: args.timeout.map_or(0, |d| d.as_millis() as u64),
        memory_bytes: args.memory.unwrap_or(0),
        output_bytes: 0,
    });
    let options = SubmitOptions {
        limits,
        memoize: args.memoize,
        retries: args.retries,
        retry_on: args.retry_on.clone(),
        requires: requirements(args)?,
    };
    Ok(client
        .submit_json(
            &args.endpoint,
            &id,
            &args.export,
            &json_args(&args.args),
            &options,
        )
        .await?)
}

pub fn submit(service: &ServiceArg, args: SubmitArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let client = service.connect().await?;
        println!("{}", submit_one(&client, &args).await?);
        Ok(ExitCode::SUCCESS)
    })
}

/// Prints a finished task's result as JSON; an `err` result or a failure
/// goes to stderr with exit 1.
pub(crate) async fn print_outcome(client: &Client, info: TaskInfo) -> anyhow::Result<ExitCode> {
    let id = info.id.clone();
    match ferry_client::decode::<serde_json::Value>(&id, info.clone()) {
        Ok(value) => {
            let returns_result = client
                .function(&info.function_id)
                .await
                .ok()
                .and_then(|f| f.exports.into_iter().find(|e| e.name == info.export))
                .is_some_and(|e| e.signature.contains("-> result"));
            if let (true, Some(err)) = (returns_result, value.get("err")) {
                eprintln!(
                    "error: {}",
                    err.as_str().map_or_else(|| err.to_string(), str::to_owned)
                );
                return Ok(ExitCode::FAILURE);
            }
            println!("{value}");
            Ok(ExitCode::SUCCESS)
        }
        Err(ClientError::Task { kind, message, .. }) => {
            eprintln!("error: task {id} failed ({kind}): {message}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

pub fn result(service: &ServiceArg, task_id: String, wait: bool) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let client = service.connect().await?;
        let info = client.task(&task_id).await?;
        let state = TaskState::try_from(info.state).unwrap_or(TaskState::Unspecified);
        if state.is_terminal() {
            return print_outcome(&client, info).await;
        }
        if !wait {
            eprintln!(
                "task {task_id} is {} (use --wait to wait for it)",
                state.label()
            );
            return Ok(ExitCode::from(3));
        }
        let _ = client.result::<serde_json::Value>(&task_id).await;
        let info = client.task(&task_id).await?;
        print_outcome(&client, info).await
    })
}

pub fn call(service: &ServiceArg, args: SubmitArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let client = service.connect().await?;
        let id = submit_one(&client, &args).await?;
        let _ = client.result::<serde_json::Value>(&id).await;
        let info = client.task(&id).await?;
        match &args.out {
            Some(out) if info.state == pb::TaskState::Succeeded as i32 => {
                let value = ferry_client::decode::<serde_json::Value>(&id, info)?;
                if let Some(err) = value.get("err") {
                    eprintln!(
                        "error: {}",
                        err.as_str().map_or_else(|| err.to_string(), str::to_owned)
                    );
                    return Ok(ExitCode::FAILURE);
                }
                let value = value.get("ok").unwrap_or(&value).clone();
                let tmp = out.with_extension("ferry-blob");
                let blob = match value.get("hash").and_then(|h| h.as_str()) {
                    Some(hash) => {
                        client.download(hash, &tmp).await?;
                        Some(tmp.clone())
                    }
                    None => None,
                };
                let written = write_out(&value, out, |_| blob.clone().context("no blob"));
                let _ = std::fs::remove_file(&tmp);
                written?;
                eprintln!("wrote {}", out.display());
                Ok(ExitCode::SUCCESS)
            }
            _ => print_outcome(&client, info).await,
        }
    })
}

pub fn graph(service: &ServiceArg, task_id: &str) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let client = service.connect().await?;
        let mut known: std::collections::HashMap<String, TaskInfo> = Default::default();
        // Depth-first, with an explicit stack: a chain may be long.
        let mut stack = vec![(task_id.to_owned(), 0usize)];
        let mut lines = 0usize;
        while let Some((id, depth)) = stack.pop() {
            let info = match known.get(&id) {
                Some(i) => i.clone(),
                None => {
                    let i = client.task(&id).await?;
                    known.insert(id.clone(), i.clone());
                    i
                }
            };
            let state = TaskState::try_from(info.state).unwrap_or(TaskState::Unspecified);
            let why = info
                .error
                .as_ref()
                .map_or(String::new(), |e| format!(": {}", e.message));
            let indent = if depth == 0 {
                String::new()
            } else {
                format!("{}└─ ", "   ".repeat(depth - 1))
            };
            println!(
                "{indent}{id}  {} on {}  {}{why}",
                info.export,
                info.endpoint,
                state.label()
            );
            lines += 1;
            if lines >= 10_000 {
                println!("(stopped after 10,000 lines)");
                break;
            }
            for d in info.depends_on.iter().rev() {
                stack.push((d.clone(), depth + 1));
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

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
        let client = service.connect().await?;
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
        let client = service.connect().await?;
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
        let client = service.connect().await?;
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

/// What the flags say the task needs, each checked as the service checks it.
fn requirements(args: &SubmitArgs) -> anyhow::Result<Vec<ferry_client::Requirement>> {
    use ferry_client::Requirement;
    let mut needs = Vec::new();
    if args.gpu {
        needs.push(Requirement::gpu());
    }
    if let Some(c) = &args.needs_camera {
        needs.push(if c.is_empty() {
            Requirement::any_camera()
        } else {
            Requirement::camera(c)
        });
    }
    needs.extend(args.needs_mount.iter().map(Requirement::mount));
    needs.extend(args.needs_env.iter().map(Requirement::env));
    for n in &needs {
        n.validate()?;
    }
    needs.extend(args.requires.iter().cloned());
    Ok(needs)
}
