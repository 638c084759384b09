//! The fabric commands: `up`, `serve`, `endpoint start`, `fn`, `submit`,
//! `result`, `call`, `status` and `demo pi`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use ferry_client::{Client, ClientError, SubmitOptions, TaskInfo};
use ferry_endpoint::EndpointConfig;
use ferry_proto::v1::{self as pb, TaskState};
use ferry_service::{Service, ServiceConfig};

pub const DEFAULT_SERVICE: &str = "http://127.0.0.1:7171";

#[derive(clap::Args, Clone)]
pub struct ServiceArg {
    /// The ferry service to talk to (default: http://127.0.0.1:7171; an
    /// endpoint's config file may name its own).
    #[arg(long, env = "FERRY_SERVICE", global = true)]
    pub service: Option<String>,
}

impl ServiceArg {
    pub fn url(&self) -> &str {
        self.service.as_deref().unwrap_or(DEFAULT_SERVICE)
    }
}

#[derive(clap::Args)]
pub struct UpArgs {
    /// Where the store, components and compiled cache live.
    #[arg(long, env = "FERRY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1:7171")]
    listen: SocketAddr,
    /// Tasks the local endpoint runs at once (default: cores).
    #[arg(long)]
    concurrency: Option<u32>,
    /// Run the pi seed experiment against this fabric, then stop.
    #[arg(long)]
    demo: bool,
    #[command(flatten)]
    caps: StoreCaps,
}

/// Settings of the service, for `serve` and `up`.
#[derive(clap::Args, Clone)]
pub struct StoreCaps {
    /// Largest blob the service accepts.
    #[arg(long, env = "FERRY_MAX_BLOB", default_value = "64GiB", value_parser = crate::local::parse_bytes_arg)]
    max_blob: u64,
    /// Most bytes the blob store holds (default: no cap).
    #[arg(long, env = "FERRY_MAX_STORE", value_parser = crate::local::parse_bytes_arg)]
    max_store: Option<u64>,
    /// Serve Prometheus metrics on this address (`GET /metrics`).
    #[arg(long, env = "FERRY_METRICS")]
    metrics: Option<SocketAddr>,
    /// A task lost this many times with its endpoints fails as
    /// `endpoint-lost`.
    #[arg(long, default_value_t = 3)]
    max_attempts: u32,
    /// A lease not renewed by a heartbeat for this long expires and its task
    /// comes back.
    #[arg(long, default_value = "30s", value_parser = crate::local::parse_duration_arg)]
    lease_timeout: Duration,
    /// Most tasks queued for one endpoint.
    #[arg(long, default_value_t = 1_000_000)]
    max_queued: usize,
    /// Finished tasks are kept this long, then pruned.
    #[arg(long, default_value = "7d", value_parser = crate::local::parse_duration_arg)]
    retention: Duration,
}

impl StoreCaps {
    fn config(&self, dir: &Path) -> ServiceConfig {
        let mut c = ServiceConfig::new(dir);
        c.max_blob_bytes = self.max_blob;
        c.max_store_bytes = self.max_store.unwrap_or(u64::MAX);
        c.metrics = self.metrics;
        c.rules.max_attempts = self.max_attempts.max(1);
        c.rules.lease_timeout = self.lease_timeout;
        c.rules.max_queued_per_endpoint = self.max_queued;
        c.result_retention = self.retention;
        c
    }
}

/// A service and a local endpoint in this process.
pub struct Fabric {
    pub url: String,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Fabric {
    pub async fn start(
        dir: &Path,
        listen: SocketAddr,
        concurrency: Option<u32>,
    ) -> anyhow::Result<Fabric> {
        Fabric::start_with(ServiceConfig::new(dir), listen, concurrency).await
    }

    pub async fn start_with(
        config: ServiceConfig,
        listen: SocketAddr,
        concurrency: Option<u32>,
    ) -> anyhow::Result<Fabric> {
        let dir = config.data_dir.clone();
        let service = Service::open(config)?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let url = format!("http://{}", listener.local_addr()?);
        let mut endpoint = EndpointConfig::new("local", url.clone());
        endpoint.cache_dir = Some(dir.join("endpoint-cache"));
        // Same machine: the endpoint reads the service's blobs in place.
        endpoint.shared_blob_store = Some(dir.join("blobs"));
        // A synthetic camera, so that camera functions run anywhere.
        endpoint.cameras.push(ferry_endpoint::CameraConfig {
            open: ferry_host::OpenAt::FirstUse,
            ..ferry_endpoint::CameraConfig::from_spec("pattern=test-pattern:1280x720@30")?
        });
        if let Some(c) = concurrency {
            endpoint.concurrency = c.max(1);
        }
        let (stop, rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            tokio::select! {
                _ = rx.wait_for(|s| *s) => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        let tasks = vec![
            tokio::spawn(service.serve(listener, stopped(rx.clone()))),
            tokio::spawn(ferry_endpoint::run(endpoint, stopped(rx))),
        ];
        Ok(Fabric { url, stop, tasks })
    }

    /// Runs until ctrl-c (or [`Fabric::stop`]).
    pub async fn wait(self) -> anyhow::Result<()> {
        for t in self.tasks {
            t.await??;
        }
        Ok(())
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.wait().await
    }
}

#[derive(clap::Args)]
pub struct ServeArgs {
    #[arg(long, env = "FERRY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1:7171")]
    listen: SocketAddr,
    #[command(flatten)]
    caps: StoreCaps,
}

#[derive(clap::Subcommand)]
pub enum EndpointCommand {
    /// Dial the service and run its tasks until stopped.
    Start(ferry_endpoint::StartArgs),
}

#[derive(clap::Subcommand)]
pub enum BlobCommand {
    /// Upload a file (only if the service lacks it); prints its blake3 hash.
    Put { file: PathBuf },
    /// Download a blob, checked against its hash.
    Get {
        hash: String,
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Whether the service has a blob, its size, and whether it is pinned.
    Stat { hash: String },
    /// Keep a blob through `gc` though no task names it.
    Pin { hash: String },
    /// Let `gc` remove a blob again once no task names it.
    Unpin { hash: String },
    /// Remove blobs that no task names and no one pinned.
    Gc {
        /// Report what would go; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Keep blobs written less than this long ago: an upload comes
        /// before the submission that names it.
        #[arg(long, default_value = "1h", value_parser = parse_grace)]
        grace: Duration,
    },
}

/// A duration that may be zero (`0`, `0s`): then gc keeps no young blobs.
fn parse_grace(s: &str) -> Result<Duration, String> {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    if digits.parse::<f64>() == Ok(0.0) {
        return Ok(Duration::ZERO);
    }
    crate::local::parse_duration_arg(s)
}

/// A byte counter drawn as a progress bar on a terminal (hidden otherwise)
/// while `work` runs.
async fn with_progress<T>(
    what: &str,
    total: u64,
    work: impl std::future::Future<Output = T>,
    progress: ferry_client::Progress,
) -> T {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    let ticker = {
        let bar = bar.clone();
        let progress = progress.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                bar.set_position(progress.load(std::sync::atomic::Ordering::Relaxed));
            }
        })
    };
    let out = work.await;
    ticker.abort();
    bar.finish_and_clear();
    out
}

pub fn blob(service: &ServiceArg, cmd: BlobCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let client = connect(service.url()).await?;
        match cmd {
            BlobCommand::Put { file } => {
                let total = std::fs::metadata(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?
                    .len();
                let progress = ferry_client::Progress::default();
                let up = with_progress(
                    "uploading",
                    total,
                    client.upload_file_with(&file, Some(progress.clone())),
                    progress,
                )
                .await?;
                println!("{}", up.blob.hash);
                if up.sent == 0 {
                    eprintln!("(the service already has it; nothing uploaded)");
                } else {
                    eprintln!("uploaded {} bytes", up.sent);
                }
            }
            BlobCommand::Get { hash, out } => {
                let total = client.blob_size(&hash).await?.unwrap_or(0);
                let progress = ferry_client::Progress::default();
                let b = with_progress(
                    "downloading",
                    total,
                    client.download_with(&hash, &out, Some(progress.clone())),
                    progress,
                )
                .await?;
                eprintln!("{} bytes, verified, in {}", b.size, out.display());
            }
            BlobCommand::Stat { hash } => {
                let info = client.blob_info(&hash).await?;
                if !info.present {
                    println!("{hash} not present");
                    return Ok(ExitCode::FAILURE);
                }
                let pinned = if info.pinned { ", pinned" } else { "" };
                println!("{hash} {} bytes{pinned}", info.size);
            }
            BlobCommand::Pin { hash } => {
                client.pin_blob(&hash, true).await?;
                eprintln!("pinned {hash}");
            }
            BlobCommand::Unpin { hash } => {
                client.pin_blob(&hash, false).await?;
                eprintln!("unpinned {hash}");
            }
            BlobCommand::Gc { dry_run, grace } => {
                let r = client.gc_blobs(grace, dry_run).await?;
                let verb = if dry_run { "would remove" } else { "removed" };
                for h in &r.removed_hashes {
                    println!("{h}");
                }
                eprintln!(
                    "{verb} {} blobs ({} bytes); kept {} ({} bytes): {} named by tasks, {} pinned, {} younger than {grace:?}",
                    r.removed, r.removed_bytes, r.kept, r.kept_bytes, r.referenced, r.pinned, r.young
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[derive(clap::Subcommand)]
pub enum FnCommand {
    /// Register a component; prints its function id (blake3 hex).
    Register { file: PathBuf },
    /// List registered functions.
    Ls,
    /// Show a function's exports.
    Show { id: String },
    /// Memoize every call of a function from now on (`--off` stops).
    Memoize {
        id: String,
        #[arg(long)]
        off: bool,
    },
}

#[derive(clap::Subcommand)]
pub enum CacheCommand {
    /// Forget every memoized result.
    Clear,
}

pub fn cache(service: &ServiceArg, cmd: CacheCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let client = connect(service.url()).await?;
        match cmd {
            CacheCommand::Clear => {
                let n = client.clear_cache().await?;
                println!("forgot {n} memoized results");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

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
            crate::fabric::kind_of(other)
        ),
    }
}

fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a bool",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "text",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a record",
    }
}

pub fn data_dir(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(d) = explicit {
        return Ok(d);
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .context("no data directory: pass --data-dir")?;
    Ok(base.join("ferry"))
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

pub fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let dir = data_dir(args.data_dir)?;
    let pi = if args.demo {
        // Built before the fabric starts, so that both are ready together.
        crate::guests::component("kmeans", None)?;
        Some(crate::guests::component("pi", None)?)
    } else {
        None
    };
    runtime()?.block_on(async move {
        let fabric =
            Fabric::start_with(args.caps.config(&dir), args.listen, args.concurrency).await?;
        println!(
            "ferry is up: service {}, endpoint `local`, data in {}",
            fabric.url,
            dir.display()
        );
        match pi {
            None => {
                println!("try: ferry call --endpoint local pi.wasm pi 1000000 42   (ctrl-c stops)");
                fabric.wait().await?;
            }
            Some(pi) => {
                let client = connect_when_ready(&fabric.url).await?;
                pi_experiment(&client, "local", &pi).await?;
                let kmeans = crate::kmeans::KmeansArgs {
                    points: 400_000,
                    k: 7,
                    iterations: 60,
                    seed: 2016,
                    component: None,
                };
                crate::kmeans::demo(&client, "local", &kmeans, Path::new("kmeans.png")).await?;
                pipeline_experiment(
                    &client,
                    ("local", "local"),
                    (
                        &crate::guests::component("pipeline", None)?,
                        &crate::guests::component("kmeans", None)?,
                    ),
                    400_000,
                    7,
                    2016,
                )
                .await?;
                camera_snapshot(
                    &client,
                    "local",
                    &crate::guests::component("camera-snapshot", None)?,
                    None,
                    (640, 360),
                    Path::new("camera.png"),
                )
                .await?;
                fabric.stop().await?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let dir = data_dir(args.data_dir)?;
    runtime()?.block_on(async move {
        let service = Service::open(args.caps.config(&dir))?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        println!(
            "ferry service on http://{}, data in {}",
            listener.local_addr()?,
            dir.display()
        );
        service.serve(listener, shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

pub fn endpoint(cmd: EndpointCommand) -> anyhow::Result<ExitCode> {
    let EndpointCommand::Start(args) = cmd;
    let mut c = args.into_config(DEFAULT_SERVICE)?;
    if c.cache_dir.is_none() {
        c.cache_dir = crate::local::default_cache_dir();
    }
    eprintln!(
        "ferry endpoint `{}` dialling {} ({} slots)",
        c.name, c.service, c.concurrency
    );
    runtime()?.block_on(ferry_endpoint::run(c, shutdown_signal()))?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn connect(service: &str) -> anyhow::Result<Client> {
    Ok(Client::connect(service).await?)
}

/// Connects once the service answers and its `local` endpoint is online.
pub async fn connect_when_ready(url: &str) -> anyhow::Result<Client> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(c) = Client::connect(url).await
            && let Ok(s) = c.status().await
            && s.endpoints.iter().any(|e| e.name == "local" && e.online)
        {
            return Ok(c);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the fabric at {url} did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A function id, or a file to register (printing nothing extra).
async fn function_id(client: &Client, function: &str) -> anyhow::Result<String> {
    let path = Path::new(function);
    if function.ends_with(".wasm") || path.is_file() {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read component `{function}`"))?;
        return Ok(client.register(&bytes).await?.id);
    }
    Ok(function.to_owned())
}

pub fn func(service: &ServiceArg, cmd: FnCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let client = connect(service.url()).await?;
        match cmd {
            FnCommand::Register { file } => {
                let bytes = std::fs::read(&file)
                    .with_context(|| format!("cannot read component `{}`", file.display()))?;
                let r = client.register(&bytes).await?;
                println!("{}", r.id);
                if !r.uploaded {
                    eprintln!("(already registered; nothing uploaded)");
                }
            }
            FnCommand::Ls => {
                for f in client.functions().await? {
                    let names: Vec<&str> = f.exports.iter().map(|e| e.name.as_str()).collect();
                    println!("{}  {:>9} bytes  {}", f.id, f.size, names.join(", "));
                }
            }
            FnCommand::Memoize { id, off } => {
                let f = client.memoize(&id, !off).await?;
                println!(
                    "{}: every call {}",
                    f.id,
                    if f.memoize { "memoized" } else { "runs" }
                );
            }
            FnCommand::Show { id } => {
                let f = client.function(&id).await?;
                println!(
                    "id: {}\nsize: {} bytes\nmemoized: {}",
                    f.id, f.size, f.memoize
                );
                for e in &f.exports {
                    println!("{}: {}", e.name, e.signature);
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn json_args(args: &[String]) -> String {
    let values: Vec<serde_json::Value> = args
        .iter()
        .map(|a| serde_json::from_str(a).unwrap_or_else(|_| serde_json::Value::String(a.clone())))
        .collect();
    serde_json::Value::Array(values).to_string()
}

async fn submit_one(client: &Client, args: &SubmitArgs) -> anyhow::Result<String> {
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
        requires: args
            .gpu
            .then(|| "gpu".to_owned())
            .into_iter()
            .chain(args.needs_camera.as_ref().map(|c| {
                if c.is_empty() {
                    "camera".to_owned()
                } else {
                    format!("camera:{c}")
                }
            }))
            .chain(args.needs_mount.iter().map(|m| format!("mount:{m}")))
            .collect(),
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
        let client = connect(service.url()).await?;
        println!("{}", submit_one(&client, &args).await?);
        Ok(ExitCode::SUCCESS)
    })
}

/// Prints a finished task's result as JSON; an `err` result or a failure
/// goes to stderr with exit 1.
async fn print_outcome(client: &Client, info: TaskInfo) -> anyhow::Result<ExitCode> {
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
        let client = connect(service.url()).await?;
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
        let client = connect(service.url()).await?;
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
        let client = connect(service.url()).await?;
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

pub fn status(service: &ServiceArg) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let client = connect(service.url()).await?;
        let s = client.status().await?;
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

/// The seed's k-means on the endpoint's CPU and GPU, and its plot.
pub fn demo_kmeans(
    service: &ServiceArg,
    endpoint: String,
    args: crate::kmeans::KmeansArgs,
    out: PathBuf,
) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let client = connect(service.url()).await?;
        crate::kmeans::demo(&client, &endpoint, &args, &out).await?;
        Ok(ExitCode::SUCCESS)
    })
}

pub fn demo_pipeline(
    service: &ServiceArg,
    generate_on: &str,
    cluster_on: &str,
    points: u32,
    k: u32,
    seed: u64,
) -> anyhow::Result<ExitCode> {
    let pipeline = crate::guests::component("pipeline", None)?;
    let kmeans = crate::guests::component("kmeans", None)?;
    runtime()?.block_on(async {
        let client = connect(service.url()).await?;
        pipeline_experiment(
            &client,
            (generate_on, cluster_on),
            (&pipeline, &kmeans),
            points,
            k,
            seed,
        )
        .await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// The summary `pipeline` returns.
#[derive(Debug, serde::Deserialize)]
pub struct Summary {
    pub points: u32,
    pub k: u32,
    pub sizes: Vec<u32>,
    pub centers: Vec<f32>,
    pub smallest: u32,
    pub largest: u32,
    pub iterations: u32,
    pub device: String,
}

/// generate → kmeans → summarise, submitted as one graph.
pub async fn pipeline_experiment(
    client: &Client,
    (generate_on, cluster_on): (&str, &str),
    (pipeline, kmeans): (&Path, &Path),
    points: u32,
    k: u32,
    seed: u64,
) -> anyhow::Result<Summary> {
    let p = client.register(&std::fs::read(pipeline)?).await?;
    let km = client.register(&std::fs::read(kmeans)?).await?;
    let started = Instant::now();
    let mut g = ferry_client::Graph::new();
    let pts = g.add(
        generate_on,
        &p.id,
        "generate",
        &(points, 7u32, 1.6f32, seed),
    )?;
    let clustering = g.add(
        cluster_on,
        &km.id,
        "cluster",
        &(&pts, k, 60u32, false, seed),
    )?;
    g.add(generate_on, &p.id, "summarise", &(&clustering,))?;
    let ids = client.submit_graph(g).await?;
    let summary: Summary = client.result(&ids[2]).await?;
    println!(
        "pipeline: generate {points} points on `{generate_on}` → kmeans (k = {k}) on `{cluster_on}` → summarise on `{generate_on}`, submitted as one graph; the points and codes went endpoint → service → endpoint, only the summary came back"
    );
    println!(
        "  {} points in {} clusters of {}..{} points after {} iterations on {}, {:.2} s end to end",
        summary.points,
        summary.k,
        summary.smallest,
        summary.largest,
        summary.iterations,
        summary.device,
        started.elapsed().as_secs_f64()
    );
    for (i, c) in summary.centers.chunks(2).enumerate() {
        println!(
            "  center {i}: ({:7.3}, {:7.3})  {} points",
            c[0], c[1], summary.sizes[i]
        );
    }
    println!("  `ferry graph {}` shows the graph", ids[2]);
    Ok(summary)
}

pub fn demo_camera(
    service: &ServiceArg,
    endpoint: &str,
    device: Option<String>,
    size: (u32, u32),
    out: &Path,
) -> anyhow::Result<ExitCode> {
    let component = crate::guests::component("camera-snapshot", None)?;
    runtime()?.block_on(async {
        let client = connect(service.url()).await?;
        camera_snapshot(&client, endpoint, &component, device, size, out).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Captures one frame through `camera-snapshot` and writes the PNG.
pub async fn camera_snapshot(
    client: &Client,
    endpoint: &str,
    component: &Path,
    device: Option<String>,
    (width, height): (u32, u32),
    out: &Path,
) -> anyhow::Result<()> {
    let f = client.register(&std::fs::read(component)?).await?;
    let started = Instant::now();
    let png: ferry_client::WitResult<Vec<u8>, String> = client
        .submit_with(
            endpoint,
            &f.id,
            "snapshot",
            &(device.as_deref(), width, height),
            &SubmitOptions {
                requires: vec![
                    device
                        .as_ref()
                        .map_or("camera".to_owned(), |d| format!("camera:{d}")),
                ],
                ..SubmitOptions::default()
            },
        )
        .await?
        .await?;
    let png = Result::from(png).map_err(anyhow::Error::msg)?;
    std::fs::write(out, &png).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "camera snapshot on `{endpoint}`: {width}x{height} PNG of {} bytes, encoded in the function, in {:.1} ms end to end; wrote {}",
        png.len(),
        started.elapsed().as_secs_f64() * 1e3,
        out.display()
    );
    Ok(())
}

/// The seed experiment: 100 × pi(10^6) in blocks of N concurrent tasks.
pub fn demo_pi(
    service: &ServiceArg,
    endpoint: String,
    component: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let path = crate::guests::component("pi", component)?;
    runtime()?.block_on(async {
        let client = connect(service.url()).await?;
        pi_experiment(&client, &endpoint, &path).await?;
        Ok(ExitCode::SUCCESS)
    })
}

async fn pi_experiment(client: &Client, endpoint: &str, path: &Path) -> anyhow::Result<()> {
    let f = client.register_file(path).await?;
    println!("\n100 × pi(10^6) through the fabric; pi is {}\n", f.id);
    // Drawn only when stderr is a terminal.
    let bar = indicatif::ProgressBar::new(700);
    println!("| block size | blocks | total seconds | mean pi |");
    println!("|---|---|---|---|");
    for block in [1usize, 2, 4, 5, 10, 20, 100] {
        let start = Instant::now();
        let mut sum = 0.0;
        for b in 0..100 / block {
            let seeds = (0..block).map(|i| (1_000_000u64, (b * block + i) as u64));
            let futures = client
                .submit_batch::<_, f64>(endpoint, &f.id, "pi", seeds)
                .await?;
            for fut in futures {
                sum += fut.await?;
                bar.inc(1);
            }
        }
        let secs = start.elapsed().as_secs_f64();
        bar.suspend(|| {
            println!(
                "| {block} | {} | {secs:.3} | {:.5} |",
                100 / block,
                sum / 100.0
            )
        });
    }
    bar.finish_and_clear();
    Ok(())
}
