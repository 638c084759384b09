//! `ferry`: the command-line face of the ferry function fabric.

mod commands;
mod demos;
mod fabric;
mod local;
mod pybuild;
mod scaffold;
mod tls;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The service, the endpoint and the client allocate and free small
/// messages and records from many threads at once: glibc's allocator
/// contends on its arena locks there, and mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "A function fabric for science on WebAssembly components"
)]
struct Cli {
    #[command(flatten)]
    service: fabric::ServiceArg,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a component's blake3 id and its exports in WIT syntax.
    Inspect {
        /// The component (`.wasm`).
        file: PathBuf,
    },
    /// Run one export of a component locally and print the result as JSON.
    Run(local::RunArgs),
    /// Create a new function crate that builds out of the box.
    New(scaffold::NewArgs),
    /// Build a Python module into a component: its functions' type hints
    /// become the WIT signature (needs the Python package, `python/`).
    Build(pybuild::BuildArgs),
    /// Run a service and a local endpoint named `local` in one process.
    Up(fabric::UpArgs),
    /// Run the service alone.
    Serve(fabric::ServeArgs),
    /// Run an endpoint that dials a service.
    #[command(subcommand)]
    Endpoint(commands::EndpointCommand),
    /// Put, get and look up blobs: large data passed by reference.
    #[command(subcommand)]
    Blob(commands::BlobCommand),
    /// Register, list and show functions on the service.
    #[command(subcommand, name = "fn")]
    Fn(commands::FnCommand),
    /// Memoized results.
    #[command(subcommand)]
    Cache(commands::CacheCommand),
    /// Submit a task; prints its id.
    Submit(commands::SubmitArgs),
    /// Print a task's result as JSON.
    Result {
        task_id: String,
        /// Wait for the task to finish.
        #[arg(long)]
        wait: bool,
    },
    /// Register (if needed), submit, wait and print the result. An argument
    /// written `{"$task": "<id>"}` is that task's result.
    Call(commands::SubmitArgs),
    /// List tasks, a page at a time, by state and endpoint.
    Tasks(commands::ListArgs),
    /// Cancel tasks (and the tasks waiting for their results).
    Cancel {
        #[arg(required = true)]
        task_ids: Vec<String>,
    },
    /// Print what a task printed (stdout, stderr) and logged.
    Logs { task_id: String },
    /// A task and its ancestors (the tasks whose results it takes), with
    /// their states.
    Graph { task_id: String },
    /// Endpoints (state, capacity, last heartbeat) and task counts by state.
    Status,
    /// Check a token against a service and save it for that service's URL.
    Login {
        /// The service, e.g. `https://ferry.example.org:7171`.
        url: String,
        /// The token (default: read a line from stdin).
        #[arg(long = "with-token")]
        with_token: Option<String>,
    },
    /// Who the token in use speaks for.
    Whoami,
    /// Users of the service (admin only).
    #[command(subcommand)]
    User(commands::UserCommand),
    /// Your tokens: create, list, revoke.
    #[command(subcommand)]
    Token(commands::TokenCommand),
    /// Run a demonstration.
    #[command(subcommand)]
    Demo(demos::DemoCommand),
    /// Measure ferry (medians over repeated runs; not a test): one
    /// benchmark, or with none the whole suite (`--service URL` measures that
    /// service instead of a fabric started here).
    Bench(ferry_bench::BenchArgs),
}

/// A closed stdout (`ferry run … | head -c 10`) ends the command quietly, as
/// it ends a Unix tool, with the status a SIGPIPE gives (141). std's print
/// macros panic on it instead; only that panic is quieted.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info)
    }));
}

/// The service `--service` names, for `ferry bench` to measure instead of a
/// fabric of its own.
fn bench_remote(service: &fabric::ServiceArg) -> anyhow::Result<Option<ferry_bench::Remote>> {
    let Some(url) = &service.service else {
        return Ok(None);
    };
    Ok(Some(ferry_bench::Remote {
        url: url.clone(),
        token: ferry_proto::credentials::token_for(url, service.token.as_deref()),
        tls: service.tls()?,
    }))
}

fn main() -> ExitCode {
    // SAFETY: first thing in main, before any thread starts.
    unsafe { ferry_host::prepare_environment() };
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    let _log = if matches!(cli.command, Command::Up(_)) {
        ferry_endpoint::init_logging_with("info,ferry::audit=warn")
    } else {
        ferry_endpoint::init_logging()
    };
    let result = match cli.command {
        Command::Inspect { file } => local::inspect(&file),
        Command::Run(args) => local::run(args),
        Command::New(args) => scaffold::new(args),
        Command::Build(args) => pybuild::build(args),
        Command::Up(args) => fabric::up(&cli.service, args),
        Command::Serve(args) => fabric::serve(args),
        Command::Endpoint(cmd) => commands::endpoint(&cli.service, cmd),
        Command::Fn(cmd) => commands::func(&cli.service, cmd),
        Command::Cache(cmd) => commands::cache(&cli.service, cmd),
        Command::Blob(cmd) => commands::blob(&cli.service, cmd),
        Command::Submit(args) => commands::submit(&cli.service, args),
        Command::Result { task_id, wait } => commands::result(&cli.service, task_id, wait),
        Command::Call(args) => commands::call(&cli.service, args),
        Command::Tasks(args) => commands::list(&cli.service, args),
        Command::Cancel { task_ids } => commands::cancel(&cli.service, task_ids),
        Command::Logs { task_id } => commands::logs(&cli.service, &task_id),
        Command::Graph { task_id } => commands::graph(&cli.service, &task_id),
        Command::Status => commands::status(&cli.service),
        Command::Login { url, with_token } => cli
            .service
            .tls()
            .and_then(|tls| commands::login(&url, with_token.or(cli.service.token.clone()), &tls)),
        Command::Whoami => commands::whoami(&cli.service),
        Command::User(cmd) => commands::user(&cli.service, cmd),
        Command::Token(cmd) => commands::token(&cli.service, cmd),
        Command::Demo(cmd) => demos::run(&cli.service, cmd),
        Command::Bench(args) => {
            bench_remote(&cli.service).and_then(|remote| ferry_bench::run_args(args, remote))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
