//! The command line of an endpoint, shared by `ferry endpoint start` and
//! `ferry-endpoint`: a config file, and flags that override it.

use std::path::PathBuf;

use anyhow::Context;

#[cfg(feature = "camera")]
use crate::CameraConfig;
use crate::EndpointConfig;

/// Dial the service and run its tasks until stopped.
#[derive(Debug, Clone, clap::Args)]
pub struct StartArgs {
    /// A TOML config: name, service, concurrency, cache_dir, gpu, cameras,
    /// mounts, [limits].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Service URL (overrides the config file).
    #[arg(long, env = "FERRY_SERVICE")]
    pub service: Option<String>,
    /// The endpoint's credential (`ferry endpoint register` prints it; else
    /// `FERRY_ENDPOINT_CREDENTIAL`, else the one saved for this service and
    /// name; with none, the endpoint registers itself with the user's token
    /// and saves the credential it gets).
    #[arg(long)]
    pub credential: Option<String>,
    /// The CA that signed an `https://` service's certificate (else the
    /// system's roots).
    #[arg(long, env = ferry_proto::tls::CA_ENV)]
    pub ca: Option<PathBuf>,
    /// A certificate to show a service that requires one (mutual TLS).
    #[arg(long, env = ferry_proto::tls::CLIENT_CERT_ENV, requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// The key of `--client-cert`.
    #[arg(long, env = ferry_proto::tls::CLIENT_KEY_ENV, requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Endpoint name (overrides the config file).
    #[arg(long)]
    pub name: Option<String>,
    /// The block of an elastic endpoint this agent is a worker of (its
    /// manager sets it).
    #[arg(long, env = "FERRY_BLOCK")]
    pub block: Option<String>,
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Tasks held ready beyond those running (default: adapts to 5 ms of
    /// work at the pace tasks run, from `concurrency` up to 1,024).
    #[arg(long)]
    pub prefetch: Option<u32>,
    /// Compiled components and fetched blobs.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// The GPU lent to tasks: `auto`, `none`, or part of an adapter's name.
    #[arg(long)]
    pub gpu: Option<String>,
    /// Most bytes of fetched and written blobs kept in the cache.
    #[arg(long, value_parser = |s: &str| ferry_host::parse_bytes(s).map_err(|e| e.to_string()))]
    pub blob_cache: Option<u64>,
    /// The service's blob store (`DATA_DIR/blobs`), when this machine can
    /// read it: blobs there are used in place instead of fetched.
    #[arg(long)]
    pub shared_blob_store: Option<PathBuf>,
    /// A camera granted to every function: `[NAME=]test-pattern[:WxH][@FPS]`,
    /// `[NAME=]replay:DIR[@FPS]` or `[NAME=]v4l2:/dev/videoN[:WxH]`;
    /// repeatable (grants per function: `[[cameras]]` in the config).
    #[cfg(feature = "camera")]
    #[arg(long = "camera", value_name = "SPEC", value_parser = |s: &str| CameraConfig::from_spec(s).map_err(|e| format!("{e:#}")))]
    pub cameras: Vec<CameraConfig>,
    /// A variable passed to every function: `NAME=VALUE`; repeatable
    /// (grants per function: `[[env]]` in the config).
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = |s: &str| s.parse::<ferry_host::EnvVar>().map_err(|e| e.to_string()))]
    pub env: Vec<ferry_host::EnvVar>,
    /// Run tasks only for this user (repeatable; `*` for any the service
    /// admits), checked here on every task.
    #[arg(long = "submitter", value_name = "USER")]
    pub submitters: Vec<String>,
    /// Run only this function, by blake3 id (repeatable), checked here on
    /// every task.
    #[arg(long = "allow-function", value_name = "ID", value_parser = |s: &str| ferry_host::FunctionId::parse(s).map(|_| s.to_owned()).map_err(|e| e.to_string()))]
    pub allowed_functions: Vec<String>,
}

impl StartArgs {
    /// The config file (or defaults for `--name`), with the flags applied.
    pub fn into_config(self, default_service: &str) -> anyhow::Result<EndpointConfig> {
        let mut c = match &self.config {
            Some(path) => EndpointConfig::from_file(path)?,
            None => EndpointConfig::new(
                self.name
                    .clone()
                    .context("an endpoint needs --name (or a --config with a name)")?,
                default_service,
            ),
        };
        if let Some(s) = self.service {
            c.service = s;
        }
        if let Some(n) = self.name {
            c.name = n;
        }
        c.block = self.block.filter(|b| !b.is_empty());
        if self.ca.is_some() || self.client_cert.is_some() {
            c.tls = ferry_proto::tls::ClientTls::from_files(
                self.ca.as_deref(),
                self.client_cert.as_deref(),
                self.client_key.as_deref(),
            )?;
        }
        if let Some(t) = self.credential {
            c.credential = Some(t);
        }
        if let Some(n) = self.concurrency {
            c.concurrency = n.max(1);
        }
        if let Some(p) = self.prefetch {
            c.prefetch = Some(p);
        }
        if let Some(d) = self.cache_dir {
            c.cache_dir = Some(d);
        }
        if let Some(g) = self.gpu {
            c.gpu = g.parse()?;
        }
        if let Some(b) = self.blob_cache {
            c.blob_cache = b;
        }
        if let Some(s) = self.shared_blob_store {
            c.shared_blob_store = Some(s);
        }
        if !self.submitters.is_empty() {
            c.submitters = self.submitters;
        }
        if !self.allowed_functions.is_empty() {
            c.allowed_functions = self.allowed_functions;
        }
        for v in self.env {
            c.env.retain(|o| o.item.name != v.name);
            c.env.push(ferry_host::Lent::to_all(v));
        }
        #[cfg(feature = "camera")]
        for cam in self.cameras {
            anyhow::ensure!(
                !c.cameras.iter().any(|o| o.name == cam.name),
                "two cameras named {}",
                cam.name
            );
            c.cameras.push(cam);
        }
        Ok(c)
    }
}
