//! An endpoint's configuration: built in code, or read from the TOML file
//! of `ferry endpoint start --config`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use ferry_host::{EnvVar, GpuChoice, Lent, Limits, Mount, Scope};
use serde::Deserialize;

#[cfg(feature = "camera")]
use crate::cameras::{CameraConfig, Source as CameraSource};
pub use crate::provider::{ProviderConfig, ProviderKind};

/// An endpoint's configuration (the TOML file of `ferry endpoint start --config`).
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub name: String,
    pub service: String,
    /// The credential its sessions present; when unset,
    /// `FERRY_ENDPOINT_CREDENTIAL`, else the one saved for `service` and
    /// `name`, else one it registers for itself.
    pub credential: Option<String>,
    /// How an `https://` service is trusted, and the client certificate
    /// shown to one that asks (mutual TLS).
    pub tls: ferry_proto::tls::ClientTls,
    /// Tasks run at once (default: the number of cores).
    pub concurrency: u32,
    /// Tasks held ready beyond those running: the credits advertised are
    /// `concurrency + prefetch`, so that the next task is here when a slot
    /// frees. Unset, it adapts: enough for 5 ms of work at the pace tasks
    /// run here, at least `concurrency` and at most 1,024.
    pub prefetch: Option<u32>,
    /// Limits for tasks whose submission sets none.
    pub limits: Limits,
    /// The most a submission may ask for; a task that asks for more fails
    /// with `invalid-limits`, naming the ceiling.
    pub max_limits: MaxLimits,
    /// The owner's own rules, checked here on every task, whatever the
    /// service let through: the users it runs for (empty: any the service
    /// admits) and the functions it runs, by blake3 (empty: any).
    pub submitters: Vec<String>,
    pub allowed_functions: Vec<String>,
    /// Compiled components (`<blake3>.<engine>.cwasm`).
    pub cache_dir: Option<PathBuf>,
    pub heartbeat: Duration,
    /// The GPU lent to tasks: `auto` (default), `none`, or part of an
    /// adapter's name.
    pub gpu: GpuChoice,
    /// Host directories lent to tasks, each to the functions it names.
    pub mounts: Vec<Lent<Mount>>,
    /// Environment variables passed to tasks, each to the functions it
    /// names.
    pub env: Vec<Lent<EnvVar>>,
    /// Where each task's private `/scratch` is made (and removed after).
    pub scratch_dir: PathBuf,
    /// Most bytes the blob cache (`<cache_dir>/blobs`) may hold; the least
    /// recently used blobs make room for new ones.
    pub blob_cache: u64,
    /// The service's blob store, when this endpoint can read it (the same
    /// machine, or a shared filesystem): blobs there are used in place.
    pub shared_blob_store: Option<PathBuf>,
    /// Cameras, each with one broker owning the device, lent to the
    /// functions its grant names.
    #[cfg(feature = "camera")]
    pub cameras: Vec<CameraConfig>,
    /// The block of an elastic endpoint this agent belongs to
    /// (`FERRY_BLOCK`, set by its manager): it is a worker, and its
    /// `[provider]` is its manager's business.
    pub block: Option<String>,
    /// With no block: this endpoint is a manager of blocks of workers.
    pub provider: Option<ProviderConfig>,
    /// The config file it was read from, which workers are started with.
    pub config_file: Option<PathBuf>,
    /// How this program is run as an endpoint (`ferry-endpoint`, or
    /// `ferry endpoint start`): a manager starts its workers so, unless its
    /// `[provider]` names a `command`.
    pub program: Vec<String>,
}

/// Ceilings on what a submission may ask of this endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxLimits {
    pub timeout: Duration,
    pub memory: u64,
    pub output: u64,
}

impl Default for MaxLimits {
    fn default() -> Self {
        MaxLimits {
            timeout: Duration::from_secs(24 * 3600),
            memory: 4 << 30,
            output: 1 << 30,
        }
    }
}

impl EndpointConfig {
    pub fn new(name: impl Into<String>, service: impl Into<String>) -> Self {
        EndpointConfig {
            name: name.into(),
            service: service.into(),
            credential: None,
            tls: ferry_proto::tls::ClientTls::default(),
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get() as u32),
            prefetch: None,
            limits: Limits::default(),
            max_limits: MaxLimits::default(),
            submitters: Vec::new(),
            allowed_functions: Vec::new(),
            cache_dir: None,
            heartbeat: Duration::from_secs(2),
            gpu: GpuChoice::Auto,
            mounts: Vec::new(),
            env: Vec::new(),
            scratch_dir: std::env::temp_dir().join("ferry-scratch"),
            blob_cache: 32 << 30,
            shared_blob_store: None,
            #[cfg(feature = "camera")]
            cameras: Vec::new(),
            block: None,
            provider: None,
            config_file: None,
            program: std::env::current_exe()
                .map(|p| vec![p.display().to_string()])
                .unwrap_or_else(|_| vec!["ferry-endpoint".into()]),
        }
    }

    /// Reads a TOML config; keys: `name`, `service`, `concurrency`,
    /// `cache_dir`, `heartbeat`, `gpu` (`"auto"`, `"none"` or part of an
    /// adapter's name), `scratch_dir`, `blob_cache` (e.g. `"32GiB"`),
    /// `shared_blob_store` (the service's `<data_dir>/blobs`, if readable here),
    /// `ca`, `client_cert` and `client_key` (PEM files, for an `https://`
    /// service), `submitters` and `allowed_functions` (checked here again,
    /// whatever the service admits), `[limits]` with `timeout`, `memory`, `output`, `gpu_buffer`,
    /// `gpu_memory`, `blob_output` (e.g. `"5s"`, `"64MiB"`), `[provider]` (see
    /// [`ProviderConfig`]), `[[cameras]]`
    /// with `name`, `backend` (`v4l2`, `test-pattern`, `replay`), `device`
    /// (v4l2), `dir` (replay), `width`, `height`, `fps`, `open` (`start` or
    /// `first-use`) and `functions`, and
    /// `[[mounts]]` with `host`, `guest`, `read_only` (default true) and
    /// `functions` (ids, or `"*"`), and `[[env]]` with `name`, `value` and
    /// `functions`.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            name: String,
            service: Option<String>,
            concurrency: Option<u32>,
            prefetch: Option<u32>,
            cache_dir: Option<PathBuf>,
            heartbeat: Option<String>,
            gpu: Option<String>,
            scratch_dir: Option<PathBuf>,
            blob_cache: Option<String>,
            shared_blob_store: Option<PathBuf>,
            ca: Option<PathBuf>,
            client_cert: Option<PathBuf>,
            client_key: Option<PathBuf>,
            #[serde(default)]
            submitters: Vec<String>,
            #[serde(default)]
            allowed_functions: Vec<String>,
            limits: Option<FileLimits>,
            max_limits: Option<FileMaxLimits>,
            #[serde(default)]
            mounts: Vec<FileMount>,
            #[serde(default)]
            cameras: Vec<FileCamera>,
            #[serde(default)]
            env: Vec<FileEnv>,
            provider: Option<crate::provider::ProviderFile>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FileEnv {
            name: String,
            value: String,
            functions: Vec<String>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        #[cfg_attr(not(feature = "camera"), allow(dead_code))]
        struct FileCamera {
            name: String,
            backend: String,
            device: Option<PathBuf>,
            dir: Option<PathBuf>,
            width: Option<u32>,
            height: Option<u32>,
            fps: Option<f32>,
            open: Option<String>,
            functions: Vec<String>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FileMount {
            host: PathBuf,
            guest: String,
            read_only: Option<bool>,
            functions: Vec<String>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FileMaxLimits {
            timeout: Option<String>,
            memory: Option<String>,
            output: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FileLimits {
            timeout: Option<String>,
            memory: Option<String>,
            output: Option<String>,
            gpu_buffer: Option<String>,
            gpu_memory: Option<String>,
            blob_output: Option<String>,
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let f: File = toml::from_str(&text)
            .with_context(|| format!("in endpoint config {}", path.display()))?;
        let mut c = EndpointConfig::new(
            f.name,
            f.service.unwrap_or_else(|| "http://127.0.0.1:7171".into()),
        );
        if let Some(n) = f.concurrency {
            anyhow::ensure!(n > 0, "concurrency must be at least 1");
            c.concurrency = n;
        }
        c.prefetch = f.prefetch;
        c.cache_dir = f.cache_dir;
        if let Some(g) = f.gpu {
            c.gpu = g.parse()?;
        }
        if let Some(d) = f.scratch_dir {
            c.scratch_dir = d;
        }
        if let Some(b) = f.blob_cache {
            c.blob_cache = ferry_host::parse_bytes(&b)?;
        }
        c.shared_blob_store = f.shared_blob_store;
        for id in &f.allowed_functions {
            ferry_host::FunctionId::parse(id).with_context(|| {
                format!("allowed_functions: `{id}` is not a function id (64 hex digits of blake3)")
            })?;
        }
        c.submitters = f.submitters;
        c.allowed_functions = f.allowed_functions;
        c.tls = ferry_proto::tls::ClientTls::from_files(
            f.ca.as_deref(),
            f.client_cert.as_deref(),
            f.client_key.as_deref(),
        )?;
        for m in f.mounts {
            anyhow::ensure!(
                !m.functions.is_empty(),
                "mount {} names no functions (use [\"*\"] for all)",
                m.guest
            );
            let mount = Mount {
                host: m.host,
                guest: m.guest,
                read_only: m.read_only.unwrap_or(true),
            };
            mount.validate()?;
            c.mounts
                .push(Lent::to(mount, Scope::functions(m.functions)));
        }
        for v in f.env {
            anyhow::ensure!(
                !v.functions.is_empty(),
                "variable {} names no functions (use [\"*\"] for all)",
                v.name
            );
            anyhow::ensure!(
                !c.env.iter().any(|o| o.item.name == v.name),
                "variable {} is set twice",
                v.name
            );
            let var = EnvVar::new(v.name, v.value)?;
            c.env.push(Lent::to(var, Scope::functions(v.functions)));
        }
        #[cfg(not(feature = "camera"))]
        anyhow::ensure!(
            f.cameras.is_empty(),
            "this endpoint was built without cameras (the `camera` feature)"
        );
        #[cfg(feature = "camera")]
        for cam in f.cameras {
            let what = |m: &str| format!("camera {}: {m}", cam.name);
            anyhow::ensure!(
                !cam.functions.is_empty(),
                what("names no functions (use [\"*\"] for all)")
            );
            anyhow::ensure!(
                !c.cameras.iter().any(|o| o.name == cam.name),
                what("is named twice")
            );
            let source = match cam.backend.as_str() {
                "test-pattern" => CameraSource::TestPattern,
                "replay" => {
                    CameraSource::Replay(cam.dir.with_context(|| what("replay needs dir"))?)
                }
                "v4l2" => {
                    CameraSource::V4l2(cam.device.unwrap_or_else(|| PathBuf::from("/dev/video0")))
                }
                other => anyhow::bail!(what(&format!(
                    "unknown backend `{other}` (v4l2, test-pattern or replay)"
                ))),
            };
            let size = match (cam.width, cam.height) {
                (Some(w), Some(h)) => Some((w, h)),
                (None, None) => None,
                _ => anyhow::bail!(what("give both width and height, or neither")),
            };
            let fps = cam.fps.unwrap_or(30.0);
            anyhow::ensure!(
                fps > 0.0 && fps <= 1000.0,
                what("fps must be above 0 and at most 1000")
            );
            let open = match cam.open.as_deref() {
                None | Some("start") => ferry_host::OpenAt::Start,
                Some("first-use") => ferry_host::OpenAt::FirstUse,
                Some(other) => anyhow::bail!(what(&format!(
                    "open = `{other}`: use \"start\" or \"first-use\""
                ))),
            };
            c.cameras.push(CameraConfig {
                name: cam.name,
                source,
                size,
                fps,
                open,
                functions: cam.functions,
            });
        }
        c.provider = f.provider.map(|p| p.resolve(c.concurrency)).transpose()?;
        c.config_file = Some(std::path::absolute(path)?);
        if let Some(h) = f.heartbeat {
            c.heartbeat = ferry_host::parse_duration(&h)?;
        }
        if let Some(m) = f.max_limits {
            if let Some(t) = m.timeout {
                c.max_limits.timeout = ferry_host::parse_duration(&t)?;
            }
            if let Some(b) = m.memory {
                c.max_limits.memory = ferry_host::parse_bytes(&b)?;
            }
            if let Some(b) = m.output {
                c.max_limits.output = ferry_host::parse_bytes(&b)?;
            }
        }
        if let Some(l) = f.limits {
            if let Some(t) = l.timeout {
                c.limits.timeout = ferry_host::parse_duration(&t)?;
            }
            if let Some(m) = l.memory {
                c.limits.memory = ferry_host::parse_bytes(&m)?;
            }
            if let Some(o) = l.output {
                c.limits.output = ferry_host::parse_bytes(&o)?;
            }
            if let Some(b) = l.gpu_buffer {
                c.limits.gpu_buffer = ferry_host::parse_bytes(&b)?;
            }
            if let Some(m) = l.gpu_memory {
                c.limits.gpu_memory = ferry_host::parse_bytes(&m)?;
            }
            if let Some(b) = l.blob_output {
                c.limits.blob_output = ferry_host::parse_bytes(&b)?;
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mounts_and_their_grants_from_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let config = dir.path().join("endpoint.toml");
        let text = format!(
            "name = \"lab\"\ngpu = \"none\"\nscratch_dir = \"{0}/scratch\"\n\
             [[mounts]]\nhost = \"{1}\"\nguest = \"/data\"\nfunctions = [\"abc\"]\n\
             [[mounts]]\nhost = \"{1}\"\nguest = \"/shared\"\nread_only = false\nfunctions = [\"*\"]\n",
            dir.path().display(),
            data.display()
        );
        std::fs::write(&config, text).unwrap();
        let c = EndpointConfig::from_file(&config).unwrap();
        assert_eq!(c.gpu, GpuChoice::None);
        assert_eq!(c.scratch_dir, dir.path().join("scratch"));
        assert_eq!(c.mounts.len(), 2);
        assert!(c.mounts[0].item.read_only, "read-only unless said");
        assert!(!c.mounts[1].item.read_only);
        assert!(c.mounts[0].functions.covers("abc") && !c.mounts[0].functions.covers("def"));
        assert!(c.mounts[1].functions.covers("def"));
    }

    #[test]
    fn refuses_a_mount_of_a_missing_directory_or_for_no_one() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("endpoint.toml");
        std::fs::write(
            &config,
            "name = \"lab\"\n[[mounts]]\nhost = \"/no/such/dir/ferry\"\nguest = \"/data\"\nfunctions = [\"*\"]\n",
        )
        .unwrap();
        let e = format!("{:#}", EndpointConfig::from_file(&config).unwrap_err());
        assert!(e.contains("/no/such/dir/ferry"), "{e}");
        std::fs::write(
            &config,
            format!(
                "name = \"lab\"\n[[mounts]]\nhost = \"{}\"\nguest = \"/data\"\nfunctions = []\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let e = format!("{:#}", EndpointConfig::from_file(&config).unwrap_err());
        assert!(e.contains("names no functions"), "{e}");
    }
}
