//! The fabric itself: the service arguments, `up` (service + endpoint in one
//! process, with the demo), `serve`, and connecting to a service.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::demos::{camera_snapshot, pi_experiment, pipeline_experiment};
use anyhow::Context;
use ferry_client::{Client, ClientTls};
use ferry_local::Fabric;
use ferry_service::{Service, ServiceConfig};

pub const DEFAULT_SERVICE: &str = "http://127.0.0.1:7171";

#[derive(clap::Args, Clone)]
pub struct ServiceArg {
    /// The ferry service to talk to (default: http://127.0.0.1:7171; an
    /// endpoint's config file may name its own).
    #[arg(long, env = "FERRY_SERVICE", global = true)]
    pub service: Option<String>,
    /// The token to present (else `FERRY_TOKEN`, else the one `ferry
    /// login` saved for the service).
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// The CA that signed an `https://` service's certificate (else the
    /// system's roots).
    #[arg(long, env = ferry_proto::tls::CA_ENV, global = true)]
    pub ca: Option<PathBuf>,
    /// A certificate to show a service that requires one (mutual TLS).
    #[arg(long, env = ferry_proto::tls::CLIENT_CERT_ENV, global = true)]
    pub client_cert: Option<PathBuf>,
    /// The key of `--client-cert`.
    #[arg(long, env = ferry_proto::tls::CLIENT_KEY_ENV, global = true)]
    pub client_key: Option<PathBuf>,
}

impl ServiceArg {
    pub fn url(&self) -> &str {
        self.service.as_deref().unwrap_or(DEFAULT_SERVICE)
    }

    /// How an `https://` service is trusted.
    pub fn tls(&self) -> anyhow::Result<ClientTls> {
        Ok(ClientTls::from_files(
            self.ca.as_deref(),
            self.client_cert.as_deref(),
            self.client_key.as_deref(),
        )?)
    }

    /// Connects with the token found for the service.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let url = self.url();
        let token = ferry_proto::credentials::token_for(url, self.token.as_deref());
        Ok(Client::connect_with(url, token.as_deref(), &self.tls()?).await?)
    }
}

/// Saves `token` for `url` in the credentials file, so that every later
/// `ferry` command on this machine finds it; says where, or why not.
fn save_local_credentials(url: &str, token: &str) -> String {
    match ferry_proto::credentials::file() {
        None => {
            "no config directory (set HOME or FERRY_CONFIG_DIR), so no credentials saved".into()
        }
        Some(path) => match ferry_proto::credentials::store(&path, url, token) {
            Ok(()) => format!("saved for {url} in {}", path.display()),
            Err(e) => format!("could not save it in {}: {e}", path.display()),
        },
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
    #[command(flatten)]
    tls: crate::tls::TlsArgs,
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
    /// The audit trail: who registered, submitted, cancelled or fetched
    /// what, a JSON line per event (default: `<data-dir>/audit.jsonl`).
    #[arg(long, env = "FERRY_AUDIT_LOG", conflicts_with = "no_audit")]
    audit_log: Option<PathBuf>,
    /// Keep no audit trail.
    #[arg(long)]
    no_audit: bool,
    /// Requests a second each user may make (a second's worth at once).
    #[arg(long, env = "FERRY_QUOTA_RPS")]
    quota_rps: Option<u32>,
    /// Unfinished tasks (queued, waiting or running) each user may have.
    #[arg(long, env = "FERRY_QUOTA_QUEUED")]
    quota_queued: Option<usize>,
    /// Bytes of components and blobs each user may upload an hour.
    #[arg(long, env = "FERRY_QUOTA_UPLOAD", value_parser = crate::local::parse_bytes_arg)]
    quota_upload: Option<u64>,
    /// Bytes of blobs each user may hold (uploaded, or written by their
    /// tasks).
    #[arg(long, env = "FERRY_QUOTA_BLOBS", value_parser = crate::local::parse_bytes_arg)]
    quota_blobs: Option<u64>,
    /// What of the task state survives a crash: `strict` (acknowledged
    /// after fsync), `group` (synced every 100 ms) or `none` (memory only).
    #[arg(long, env = "FERRY_DURABILITY", default_value = "strict")]
    durability: ferry_service::Durability,
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
        c.durability = self.durability;
        c.quotas = ferry_service::quotas::Quotas {
            requests_per_second: self.quota_rps,
            queued_tasks: self.quota_queued,
            upload_bytes_per_hour: self.quota_upload,
            blob_store_bytes: self.quota_blobs,
        };
        if self.no_audit {
            c.audit_log = None;
        } else if let Some(path) = &self.audit_log {
            c.audit_log = Some(path.clone());
        }
        c
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
    #[command(flatten)]
    tls: crate::tls::TlsArgs,
}

/// Says at start what a relaxed durability mode does not keep.
fn print_durability(d: ferry_service::Durability) {
    if let Some(loses) = d.loses() {
        println!("durability {d}: {loses}");
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

/// Ctrl-C, or SIGTERM (systemd, Kubernetes): an elastic endpoint's manager
/// then cancels its blocks rather than leave them running.
pub(crate) async fn shutdown_signal() {
    ferry_endpoint::stop_signal().await
}

pub fn up(service: &ServiceArg, args: UpArgs) -> anyhow::Result<ExitCode> {
    let dir = data_dir(args.data_dir)?;
    let chosen = args.tls.choose(args.listen, &dir)?;
    let mut config = args.caps.config(&dir);
    config.tls = chosen.tls;
    let durability = config.durability;
    // The local endpoint trusts `--ca` (and shows `--client-cert`) when
    // given, else the served certificate itself.
    let endpoint_tls = (service.ca.is_some() || service.client_cert.is_some())
        .then(|| service.tls())
        .transpose()?;
    let pi = if args.demo {
        // Built before the fabric starts, so that both are ready together.
        ferry_local::component("kmeans", None)?;
        Some(ferry_local::component("pi", None)?)
    } else {
        None
    };
    runtime()?.block_on(async move {
        let fabric =
            Fabric::start_with(config, args.listen, args.concurrency, endpoint_tls).await?;
        println!(
            "ferry is up: service {}, endpoint `local`, data in {}",
            fabric.url,
            dir.display()
        );
        print_durability(durability);
        if let Some(b) = &chosen.banner {
            println!("{b}");
        }
        println!(
            "admin token{} in {}; {}",
            if fabric.first_start { " (new)" } else { "" },
            dir.join(ferry_service::ADMIN_TOKEN_FILE).display(),
            save_local_credentials(&fabric.url, &fabric.token)
        );
        match pi {
            None => {
                println!("try: ferry call --endpoint local pi.wasm pi 1000000 42   (ctrl-c stops)");
                fabric.wait().await?;
            }
            Some(pi) => {
                let client =
                    ferry_local::connect_when_ready(&fabric.url, &fabric.token, &fabric.tls)
                        .await?;
                pi_experiment(&client, "local", &pi).await?;
                let kmeans = ferry_local::KmeansArgs {
                    points: 400_000,
                    k: 7,
                    iterations: 60,
                    seed: 2016,
                    component: None,
                };
                crate::demos::kmeans_demo(&client, "local", &kmeans, Path::new("kmeans.png"))
                    .await?;
                pipeline_experiment(
                    &client,
                    ("local", "local"),
                    (
                        &ferry_local::component("pipeline", None)?,
                        &ferry_local::component("kmeans", None)?,
                    ),
                    400_000,
                    7,
                    2016,
                )
                .await?;
                camera_snapshot(
                    &client,
                    "local",
                    &ferry_local::component("camera-snapshot", None)?,
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
    let chosen = args.tls.choose(args.listen, &dir)?;
    let scheme = chosen.scheme;
    let mut config = args.caps.config(&dir);
    config.tls = chosen.tls;
    let durability = config.durability;
    runtime()?.block_on(async move {
        let service = Service::open(config)?;
        let made = service.bootstrap()?;
        let token_file = dir.join(ferry_service::ADMIN_TOKEN_FILE);
        // On loopback, whoever runs the service is its user: the admin's
        // token is saved for this URL, as `ferry up` does. Saved before
        // the port is bound, so that nothing that reaches the service can
        // find the file without it.
        let local = args.listen.ip().is_loopback();
        let save = |url: &str| match ferry_local::admin_token(&dir) {
            Ok(token) => println!("admin token {}", save_local_credentials(url, &token)),
            Err(e) => println!("no admin token saved: {e:#}"),
        };
        if local && args.listen.port() != 0 {
            save(&format!("{scheme}://{}", args.listen));
        }
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let url = format!("{scheme}://{}", listener.local_addr()?);
        println!("ferry service on {url}, data in {}", dir.display());
        print_durability(durability);
        if let Some(b) = &chosen.banner {
            println!("{b}");
        }
        if made.is_some() {
            println!("first start: an admin token is in {}", token_file.display());
        }
        if local && args.listen.port() == 0 {
            save(&url);
        }
        service.serve(listener, shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}
