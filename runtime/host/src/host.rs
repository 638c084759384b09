//! The shared engine, the linker with every granted capability, and the
//! compiled-component cache.

use std::collections::HashMap;
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig,
};

use crate::Error;
use crate::capabilities::gpu::{Gpu, GpuChoice};
use crate::capabilities::{self, CallOptions, TaskState};
use crate::function::{Function, FunctionId};

/// How a [`Host`] is built. One host per process is the norm: it owns the
/// engine, the epoch ticker and the caches.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Where compiled components are kept as `<blake3>.<engine-fingerprint>.cwasm`.
    /// `None` keeps them in memory only.
    pub cache_dir: Option<PathBuf>,
    /// Use the pooling allocator (falls back to on-demand allocation when the
    /// address space cannot hold the pool).
    pub pooling: bool,
    /// Instances that may be alive at once with the pooling allocator.
    pub max_instances: u32,
    /// Largest linear memory any instance may reach; per-call limits are
    /// enforced below this.
    pub max_memory: u64,
    /// Meter fuel (slower; enables [`Limits::fuel`](crate::Limits::fuel)).
    pub fuel: bool,
    /// Period of the epoch ticker, i.e. the resolution of timeouts.
    pub epoch_tick: Duration,
    /// The GPU lent to tasks through `ferry:host/gpu`.
    pub gpu: GpuChoice,
    /// The endpoint's name, used in the errors tasks see.
    pub name: String,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            cache_dir: None,
            pooling: true,
            max_instances: 1000,
            max_memory: 4 << 30,
            fuel: false,
            epoch_tick: Duration::from_millis(2),
            gpu: GpuChoice::None,
            name: "local".into(),
        }
    }
}

/// Counters that make the cache observable (tests assert on them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostStats {
    /// Components compiled by Cranelift.
    pub compiled: u64,
    /// Loads answered from the on-disk compiled cache.
    pub disk_hits: u64,
    /// Loads answered from memory.
    pub memory_hits: u64,
}

/// Runs ferry functions. Cheap to clone; all clones share one engine.
#[derive(Clone)]
pub struct Host {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<TaskState>,
    config: HostConfig,
    pooling: bool,
    gpu: Option<Gpu>,
    name: Arc<str>,
    fingerprint: String,
    functions: RwLock<HashMap<FunctionId, Arc<Function>>>,
    compiled: AtomicU64,
    disk_hits: AtomicU64,
    memory_hits: AtomicU64,
    scratch_spares: Arc<crate::capabilities::files::Spares>,
    // Dropping the sender stops the epoch ticker.
    _ticker: Mutex<mpsc::Sender<()>>,
}

impl Host {
    pub(crate) fn scratch_spares(&self) -> &Arc<crate::capabilities::files::Spares> {
        &self.inner.scratch_spares
    }

    pub fn new(config: HostConfig) -> Result<Host, Error> {
        let (engine, pooling) = build_engine(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| Error::Internal(format!("adding WASI to the linker: {e}")))?;
        capabilities::add_to_linker(&mut linker)?;
        let gpu = Gpu::open(&config.gpu)?;

        let fingerprint = engine_fingerprint(&engine);
        if let Some(dir) = &config.cache_dir {
            create_private_dir(dir)?;
        }
        let (tx, rx) = mpsc::channel::<()>();
        let ticking = engine.clone();
        let tick = config.epoch_tick;
        std::thread::Builder::new()
            .name("ferry-epoch".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(tick) {
                    ticking.increment_epoch();
                }
            })
            .map_err(|e| Error::io("starting the epoch ticker", e))?;

        Ok(Host {
            inner: Arc::new(Inner {
                engine,
                linker,
                name: config.name.as_str().into(),
                config,
                pooling,
                gpu,
                fingerprint,
                functions: RwLock::default(),
                compiled: AtomicU64::new(0),
                disk_hits: AtomicU64::new(0),
                memory_hits: AtomicU64::new(0),
                scratch_spares: Arc::default(),
                _ticker: Mutex::new(tx),
            }),
        })
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    /// The GPU lent to tasks, if any.
    pub fn gpu(&self) -> Option<&Gpu> {
        self.inner.gpu.as_ref()
    }

    pub(crate) fn name(&self) -> &Arc<str> {
        &self.inner.name
    }

    /// What `options` lends, as an endpoint advertises it: its GPU,
    /// cameras, mounts and variables, each with the functions it is lent to.
    pub fn advertise(&self, options: &CallOptions) -> Vec<ferry_policy::Offer> {
        capabilities::advertise(options, self)
    }

    /// The policy that `options` sets, for checking requirements before a
    /// call: the same check the service makes on the advertisement.
    pub fn grants(&self, options: &CallOptions) -> ferry_policy::Grants {
        ferry_policy::Grants::new(self.name().to_string(), self.advertise(options))
    }

    /// Whether instances come from the pooling allocator.
    pub fn pooling(&self) -> bool {
        self.inner.pooling
    }

    /// Identifies the engine's compilation settings; part of every cache file name.
    pub fn engine_fingerprint(&self) -> &str {
        &self.inner.fingerprint
    }

    pub fn stats(&self) -> HostStats {
        HostStats {
            compiled: self.inner.compiled.load(Ordering::Relaxed),
            disk_hits: self.inner.disk_hits.load(Ordering::Relaxed),
            memory_hits: self.inner.memory_hits.load(Ordering::Relaxed),
        }
    }

    /// Path of the compiled artifact for `id`, if this host has a cache directory.
    pub fn cache_path(&self, id: FunctionId) -> Option<PathBuf> {
        let dir = self.inner.config.cache_dir.as_ref()?;
        Some(dir.join(format!("{}.{}.cwasm", id.to_hex(), self.inner.fingerprint)))
    }

    /// Reads and loads a component file.
    pub fn load_file(&self, path: impl AsRef<Path>) -> Result<Arc<Function>, Error> {
        let path = path.as_ref();
        let bytes =
            std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        self.load(&bytes)
    }

    /// Loads component bytes: from memory, else from the compiled cache, else
    /// by validating and compiling them (and caching the result).
    pub fn load(&self, bytes: &[u8]) -> Result<Arc<Function>, Error> {
        let id = FunctionId::of(bytes);
        if let Some(f) = self.cached(id)? {
            return Ok(f);
        }
        ferry_wit::check_component_bytes(bytes)?;
        let component = Component::new(&self.inner.engine, bytes)
            .map_err(|e| ferry_wit::Error::BadComponent(format!("{e:#}")))?;
        self.inner.compiled.fetch_add(1, Ordering::Relaxed);
        if let Some(path) = self.cache_path(id) {
            self.write_artifact(&component, &path)?;
        }
        self.register(id, &component)
    }

    /// Loads a function by id from memory or the on-disk cache, without its
    /// bytes; `None` when neither has it.
    pub fn cached(&self, id: FunctionId) -> Result<Option<Arc<Function>>, Error> {
        if let Some(f) = self
            .inner
            .functions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            self.inner.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(f.clone()));
        }
        let Some(path) = self.cache_path(id) else {
            return Ok(None);
        };
        if !path.exists() {
            return Ok(None);
        }
        // SAFETY: only files in this host's private cache directory are loaded,
        // under a name that includes this engine's fingerprint, and they are
        // written there by `write_artifact` alone (atomically, via rename).
        match unsafe { Component::deserialize_file(&self.inner.engine, &path) } {
            Ok(component) => {
                self.inner.disk_hits.fetch_add(1, Ordering::Relaxed);
                self.register(id, &component).map(Some)
            }
            Err(_) => {
                // Stale or damaged: drop it and compile afresh.
                let _ = std::fs::remove_file(&path);
                Ok(None)
            }
        }
    }

    fn register(&self, id: FunctionId, component: &Component) -> Result<Arc<Function>, Error> {
        let pre = self
            .inner
            .linker
            .instantiate_pre(component)
            .map_err(|e| ungranted_import(component, &self.inner.engine, e))?;
        let function = Arc::new(Function::new(id, &self.inner.engine, component, pre));
        self.inner
            .functions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, function.clone());
        Ok(function)
    }

    fn write_artifact(&self, component: &Component, path: &Path) -> Result<(), Error> {
        let bytes = component
            .serialize()
            .map_err(|e| Error::Internal(format!("serializing a compiled component: {e}")))?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &bytes)
            .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
        std::fs::rename(&tmp, path)
            .map_err(|e| Error::io(format!("renaming into {}", path.display()), e))
    }
}

fn build_engine(config: &HostConfig) -> Result<(Engine, bool), Error> {
    let mut c = Config::new();
    c.wasm_component_model(true)
        .epoch_interruption(true)
        .memory_init_cow(true)
        .wasm_simd(true)
        .consume_fuel(config.fuel)
        .cranelift_opt_level(OptLevel::Speed);
    // A 64-bit host reserves 4 GiB (plus guards) of address space per linear
    // memory, pooled or not. Small boards, 39-bit address spaces and
    // `ulimit -v` may not have it.
    const SLOT: u64 = (4 << 30) + (64 << 20);
    let mut pooling = config.pooling;
    if pooling {
        let need = u64::from(config.max_instances.max(1)) * SLOT;
        if !reservable(need + need / 4) {
            eprintln!(
                "ferry-host: the pooling allocator needs {} GiB of address space for {} instances and this process cannot reserve it{}; using on-demand allocation",
                need >> 30,
                config.max_instances.max(1),
                address_limit()
            );
            pooling = false;
        }
    }
    if !pooling && !reservable(4 * SLOT) {
        // Too little even for a few 4 GiB reservations: memories are
        // reserved as they grow and bounds-checked, so any size fits.
        eprintln!(
            "ferry-host: little address space here{}; linear memories are reserved as they grow (bounds-checked, somewhat slower)",
            address_limit()
        );
        c.memory_reservation(0)
            .memory_guard_size(64 << 10)
            .memory_reservation_for_growth(16 << 20)
            .memory_may_move(true);
    }
    if pooling {
        let n = config.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(8))
            // One memory per component is the norm; each slot reserves
            // `max_memory` of address space, so this is the pool's footprint.
            .total_memories(n)
            .total_tables(n.saturating_mul(2))
            .total_stacks(n)
            .max_core_instances_per_component(64)
            .max_memories_per_component(8)
            .max_tables_per_component(16)
            .max_memory_size(usize::try_from(config.max_memory).unwrap_or(usize::MAX))
            .table_keep_resident(16 << 10);
        if PoolingAllocationConfig::is_pagemap_scan_available() {
            // Reset memory by rewriting only the pages a call dirtied (Linux
            // >= 6.7), keeping them resident: no madvise, no refault on the
            // next call. The window covers a Rust guest's 1 MiB stack and its
            // data. Without the scan, resetting would memset the whole
            // window, so the small default stays.
            pool.pagemap_scan(Enabled::Yes)
                .linear_memory_keep_resident(4 << 20)
                .table_keep_resident(64 << 10)
                .async_stack_keep_resident(64 << 10);
        } else {
            pool.linear_memory_keep_resident(64 << 10);
        }
        let mut pooled = c.clone();
        pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        match Engine::new(&pooled) {
            Ok(engine) => return Ok((engine, true)),
            Err(e) => eprintln!(
                "ferry-host: pooling allocator unavailable ({e}); using on-demand allocation"
            ),
        }
    }
    let engine =
        Engine::new(&c).map_err(|e| Error::Internal(format!("creating the engine: {e:#}")))?;
    Ok((engine, false))
}

/// Whether `bytes` of address space can be reserved (and released) now.
#[cfg(unix)]
fn reservable(bytes: u64) -> bool {
    let Ok(len) = usize::try_from(bytes) else {
        return false;
    };
    // SAFETY: an anonymous PROT_NONE mapping that nothing touches, unmapped
    // at once.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return false;
        }
        libc::munmap(p, len);
    }
    true
}

#[cfg(not(unix))]
fn reservable(_bytes: u64) -> bool {
    true
}

/// ` (ulimit -v: N MiB)` when the address space is limited.
fn address_limit() -> String {
    #[cfg(unix)]
    {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit fills the struct it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut r) } == 0
            && r.rlim_cur != libc::RLIM_INFINITY
        {
            return format!(" (ulimit -v: {} MiB)", r.rlim_cur >> 20);
        }
    }
    String::new()
}

/// Hashes everything that makes a compiled artifact usable by this engine.
fn engine_fingerprint(engine: &Engine) -> String {
    struct Blake(blake3::Hasher);
    impl Hasher for Blake {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut h = Blake(blake3::Hasher::new());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut h);
    h.write(std::env::consts::ARCH.as_bytes());
    h.0.finalize().to_hex()[..16].to_owned()
}

fn create_private_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating cache dir {}", dir.display()), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

fn ungranted_import(component: &Component, engine: &Engine, err: wasmtime::Error) -> Error {
    let ty = component.component_type();
    let linked = capabilities::interfaces();
    let missing = ty.imports(engine).map(|(name, _)| name).find(|name| {
        !name.starts_with("wasi:")
            && !linked
                .iter()
                .any(|i| name.strip_prefix(i).is_some_and(|v| v.starts_with('@')))
    });
    match missing {
        Some(import) => Error::UngrantedImport {
            import: import.to_owned(),
            hint: if let Some(feature) = ["gpu", "camera"]
                .into_iter()
                .find(|f| import.starts_with(&format!("ferry:host/{f}@")))
            {
                format!(
                    " (this build of ferry has no `{feature}` capability: the `{feature}` feature)"
                )
            } else if import.starts_with("ferry:host/") {
                String::new()
            } else {
                " (ferry functions may import WASI and `ferry:host` interfaces only)".to_owned()
            },
        },
        None => {
            ferry_wit::Error::BadComponent(format!("cannot link the component: {err:#}")).into()
        }
    }
}
