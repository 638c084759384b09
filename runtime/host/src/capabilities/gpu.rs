//! `ferry:host/gpu`: GPU compute through wgpu, shaped as a subset of WebGPU.
//!
//! One device per endpoint ([`Gpu`]), opened at start and shared by every
//! task; kernels are compiled once per device and cached by the hash of their
//! source. Each task keeps its buffers and kernels in its own table
//! ([`GpuState`]) under its caps, and they are freed when the task's store is
//! dropped, however the task ended.

use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable, ResourceTableError};

use super::bindings::ferry::host::gpu as wit;
use crate::Error;

/// Which adapter an endpoint lends to its tasks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum GpuChoice {
    /// No GPU: `info` returns none and GPU calls fail with a clear error.
    #[default]
    None,
    /// The best adapter found: a discrete GPU over an integrated one over a
    /// software one (such as Mesa's lavapipe); none if there is no adapter.
    Auto,
    /// The first adapter whose name contains this text (case-insensitive);
    /// failing to find one is an error at start.
    Named(String),
}

impl FromStr for GpuChoice {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim() {
            "" => Err(Error::Gpu(
                "empty GPU choice: use `auto`, `none` or part of an adapter's name".into(),
            )),
            "auto" => Ok(GpuChoice::Auto),
            "none" => Ok(GpuChoice::None),
            name => Ok(GpuChoice::Named(name.to_owned())),
        }
    }
}

/// The adapter behind an endpoint's GPU, as reported to the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInfo {
    pub name: String,
    /// `vulkan`, `metal` or `dx12`.
    pub backend: String,
    /// `discrete-gpu`, `integrated-gpu`, `virtual-gpu`, `cpu` or `other`.
    pub device_type: String,
    pub driver: String,
}

impl std::fmt::Display for GpuInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {}", self.name, self.backend, self.device_type)?;
        if !self.driver.is_empty() {
            write!(f, ", {}", self.driver)?;
        }
        f.write_str(")")
    }
}

/// An endpoint's GPU: one wgpu device shared by all its tasks. Cheap to clone.
#[derive(Clone)]
pub struct Gpu {
    inner: Arc<Device>,
}

struct Device {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: GpuInfo,
    device_type: wit::DeviceType,
    limits: wgpu::Limits,
    kernels: Mutex<HashMap<blake3::Hash, Arc<Compiled>>>,
    compiled: AtomicU64,
    live_bytes: AtomicU64,
}

/// Kernels kept per device before the cache is emptied and refilled.
const KERNEL_CACHE: usize = 512;

/// Dispatches a task may queue before it waits for the oldest, so that a task
/// cannot pile up unbounded work on the shared device.
const MAX_UNWAITED: u32 = 64;

impl Gpu {
    /// Opens the adapter `choice` names; `Ok(None)` when there is none to open.
    pub fn open(choice: &GpuChoice) -> Result<Option<Gpu>, Error> {
        let wanted = match choice {
            GpuChoice::None => return Ok(None),
            GpuChoice::Auto => None,
            GpuChoice::Named(name) => Some(name.to_lowercase()),
        };
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        if std::env::var_os("WGPU_BACKEND").is_none() {
            desc.backends = wgpu::Backends::PRIMARY;
        }
        let instance = wgpu::Instance::new(desc);
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        let rank = |a: &wgpu::Adapter| match a.get_info().device_type {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Cpu => 3,
            wgpu::DeviceType::Other => 4,
        };
        let adapter = match &wanted {
            None => adapters.into_iter().min_by_key(rank),
            Some(name) => {
                let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
                let found = adapters
                    .into_iter()
                    .find(|a| a.get_info().name.to_lowercase().contains(name));
                if found.is_none() {
                    return Err(Error::Gpu(format!(
                        "no GPU adapter's name contains `{name}`; adapters found: {}",
                        if names.is_empty() {
                            "none".to_owned()
                        } else {
                            names.join(", ")
                        }
                    )));
                }
                found
            }
        };
        let Some(adapter) = adapter else {
            return Ok(None);
        };
        let a = adapter.get_info();
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("ferry"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            memory_hints: wgpu::MemoryHints::Performance,
            ..Default::default()
        }))
        .map_err(|e| Error::Gpu(format!("opening {}: {e}", a.name)))?;
        // Errors are caught in scopes around every call; anything that escapes
        // them must not panic the endpoint.
        device.on_uncaptured_error(Arc::new(|e| {
            eprintln!("ferry: uncaptured GPU error: {e}");
        }));
        let (device_type, type_name) = match a.device_type {
            wgpu::DeviceType::DiscreteGpu => (wit::DeviceType::DiscreteGpu, "discrete-gpu"),
            wgpu::DeviceType::IntegratedGpu => (wit::DeviceType::IntegratedGpu, "integrated-gpu"),
            wgpu::DeviceType::VirtualGpu => (wit::DeviceType::VirtualGpu, "virtual-gpu"),
            wgpu::DeviceType::Cpu => (wit::DeviceType::Cpu, "cpu"),
            wgpu::DeviceType::Other => (wit::DeviceType::Other, "other"),
        };
        let driver = [a.driver.as_str(), a.driver_info.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Some(Gpu {
            inner: Arc::new(Device {
                device,
                queue,
                info: GpuInfo {
                    name: a.name.clone(),
                    backend: a.backend.to_str().to_owned(),
                    device_type: type_name.to_owned(),
                    driver,
                },
                device_type,
                limits,
                kernels: Mutex::default(),
                compiled: AtomicU64::new(0),
                live_bytes: AtomicU64::new(0),
            }),
        }))
    }

    pub fn info(&self) -> &GpuInfo {
        &self.inner.info
    }

    /// Bytes held by task buffers that are still alive.
    pub fn live_bytes(&self) -> u64 {
        self.inner.live_bytes.load(Ordering::Relaxed)
    }

    /// Bytes the driver-side allocator holds for this device, where the
    /// backend reports it (Vulkan, DX12).
    pub fn allocated_bytes(&self) -> Option<u64> {
        self.inner
            .device
            .generate_allocator_report()
            .map(|r| r.total_allocated_bytes)
    }

    /// Kernels compiled so far (cache misses).
    pub fn kernels_compiled(&self) -> u64 {
        self.inner.compiled.load(Ordering::Relaxed)
    }

    /// Waits for all queued work and runs pending cleanups.
    pub fn wait_idle(&self) {
        // An empty submission flushes writes still staged in the queue.
        self.inner.queue.submit([]);
        let _ = self.inner.device.poll(wgpu::PollType::wait_indefinitely());
    }

    fn compile(&self, wgsl: &str, entry: &str) -> Result<Arc<Compiled>, wit::Error> {
        let key = blake3::Hasher::new()
            .update(entry.as_bytes())
            .update(&[0])
            .update(wgsl.as_bytes())
            .finalize();
        if let Some(found) = lock(&self.inner.kernels).get(&key) {
            return Ok(found.clone());
        }
        let compiled = Arc::new(compile(&self.inner.device, wgsl, entry)?);
        self.inner.compiled.fetch_add(1, Ordering::Relaxed);
        let mut cache = lock(&self.inner.kernels);
        if cache.len() >= KERNEL_CACHE {
            cache.clear();
        }
        cache.insert(key, compiled.clone());
        Ok(compiled)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A compute pipeline and what its entry point binds.
struct Compiled {
    pipeline: wgpu::ComputePipeline,
    layout: Option<wgpu::BindGroupLayout>,
    entry: String,
    slots: Vec<Slot>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    binding: u32,
    uniform: bool,
}

fn compile(device: &wgpu::Device, wgsl: &str, entry: &str) -> Result<Compiled, wit::Error> {
    let module = naga::front::wgsl::parse_str(wgsl).map_err(|e| {
        let at = e.location(wgsl);
        compilation_error(e.emit_to_string(wgsl), at)
    })?;
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .map_err(|e| {
        let at = e.location(wgsl);
        compilation_error(e.emit_to_string(wgsl), at)
    })?;
    let index = module
        .entry_points
        .iter()
        .position(|ep| ep.name == entry && ep.stage == naga::ShaderStage::Compute)
        .ok_or_else(|| {
            let names: Vec<&str> = module
                .entry_points
                .iter()
                .filter(|ep| ep.stage == naga::ShaderStage::Compute)
                .map(|ep| ep.name.as_str())
                .collect();
            wit::Error::Validation(format!(
                "the WGSL has no compute entry point `{entry}`; it has: {}",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            ))
        })?;
    let used = info.get_entry_point(index);
    let mut slots = Vec::new();
    for (handle, var) in module.global_variables.iter() {
        if used[handle].is_empty() {
            continue;
        }
        let Some(rb) = &var.binding else { continue };
        let name = var.name.as_deref().unwrap_or("?");
        if rb.group != 0 {
            return Err(wit::Error::Validation(format!(
                "`{name}` is at @group({}) @binding({}): ferry kernels bind buffers in @group(0) only",
                rb.group, rb.binding
            )));
        }
        let uniform = match var.space {
            naga::AddressSpace::Storage { .. } => false,
            naga::AddressSpace::Uniform => true,
            other => {
                return Err(wit::Error::Validation(format!(
                    "`{name}` at @binding({}) is in address space {other:?}: kernels bind storage and uniform buffers only",
                    rb.binding
                )));
            }
        };
        slots.push(Slot {
            binding: rb.binding,
            uniform,
        });
    }
    slots.sort_by_key(|s| s.binding);
    let pipeline = scoped(device, || {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(entry),
            source: wgpu::ShaderSource::Wgsl(Cow::Borrowed(wgsl)),
        });
        device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        })
    })?;
    let layout = if slots.is_empty() {
        None
    } else {
        Some(scoped(device, || pipeline.get_bind_group_layout(0))?)
    };
    Ok(Compiled {
        pipeline,
        layout,
        entry: entry.to_owned(),
        slots,
    })
}

fn compilation_error(message: String, at: Option<naga::SourceLocation>) -> wit::Error {
    let (line, column) = at.map_or((0, 0), |l| (l.line_number, l.line_position));
    wit::Error::Compilation(wit::CompilationMessage {
        message,
        line,
        column,
    })
}

/// Runs `f` inside error scopes, so that wgpu's validation and allocation
/// errors come back as values instead of reaching the uncaptured handler.
fn scoped<R>(device: &wgpu::Device, f: impl FnOnce() -> R) -> Result<R, wit::Error> {
    let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
    let memory = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let value = f();
    let validation = pollster::block_on(validation.pop());
    let memory = pollster::block_on(memory.pop());
    let internal = pollster::block_on(internal.pop());
    match validation.or(memory).or(internal) {
        None => Ok(value),
        Some(wgpu::Error::OutOfMemory { .. }) => Err(wit::Error::OutOfMemory(
            "the GPU device is out of memory".into(),
        )),
        Some(wgpu::Error::Validation { description, .. }) => {
            Err(wit::Error::Validation(description.trim_end().to_owned()))
        }
        Some(wgpu::Error::Internal { description, .. }) => {
            Err(wit::Error::DeviceLost(description.trim_end().to_owned()))
        }
    }
}

/// A task's buffer. Dropping it frees the GPU memory at once.
pub struct GpuBuffer {
    buffer: wgpu::Buffer,
    size: u64,
    usage: wit::BufferUsage,
    device: Arc<Device>,
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        self.buffer.destroy();
        self.device
            .live_bytes
            .fetch_sub(self.size, Ordering::Relaxed);
    }
}

/// A task's handle on a compiled kernel.
pub struct GpuKernel {
    compiled: Arc<Compiled>,
}

/// A host call's failure: an error the guest receives, or a trap.
pub enum Failure {
    Gpu(wit::Error),
    Trap(wasmtime::Error),
}

impl From<wit::Error> for Failure {
    fn from(e: wit::Error) -> Self {
        Failure::Gpu(e)
    }
}

impl From<ResourceTableError> for Failure {
    fn from(e: ResourceTableError) -> Self {
        Failure::Trap(e.into())
    }
}

/// Per-task state of the GPU capability.
pub(crate) struct GpuState {
    gpu: Option<Gpu>,
    endpoint: Arc<str>,
    table: ResourceTable,
    buffer_cap: u64,
    memory_cap: u64,
    used: u64,
    deadline: Instant,
    /// Set when GPU work ran past the task's deadline.
    pub(crate) timed_out: bool,
    last: Option<wgpu::SubmissionIndex>,
    unwaited: u32,
    /// Whether the task touched the GPU at all.
    used_gpu: bool,
}

impl Drop for GpuState {
    fn drop(&mut self) {
        // Free the task's buffers now, then flush writes still staged for
        // them, so that their memory is reclaimed without waiting for
        // another task's submission.
        self.table = ResourceTable::new();
        if let (true, Some(gpu)) = (self.used_gpu, &self.gpu) {
            gpu.inner.queue.submit([]);
            let _ = gpu.inner.device.poll(wgpu::PollType::Poll);
        }
    }
}

impl GpuState {
    pub(crate) fn new(
        gpu: Option<Gpu>,
        endpoint: Arc<str>,
        buffer_cap: u64,
        memory_cap: u64,
        deadline: Instant,
    ) -> Self {
        GpuState {
            gpu,
            endpoint,
            table: ResourceTable::new(),
            buffer_cap,
            memory_cap,
            used: 0,
            deadline,
            timed_out: false,
            last: None,
            unwaited: 0,
            used_gpu: false,
        }
    }

    fn gpu(&mut self) -> Result<Gpu, wit::Error> {
        self.used_gpu = true;
        self.gpu.clone().ok_or_else(|| {
            wit::Error::NoAdapter(format!("endpoint {} has no GPU adapter", self.endpoint))
        })
    }

    /// Blocks (off the async executor) until submission `index` is done or the
    /// task's deadline passes.
    async fn wait_for(&mut self, gpu: &Gpu, index: wgpu::SubmissionIndex) -> Result<(), Failure> {
        let device = gpu.inner.clone();
        let timeout = self.deadline.saturating_duration_since(Instant::now());
        let polled = tokio::task::spawn_blocking(move || {
            device.device.poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: Some(timeout),
            })
        })
        .await;
        match polled {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(wgpu::PollError::Timeout)) => {
                self.timed_out = true;
                Err(Failure::Trap(wasmtime::format_err!(
                    "GPU work ran past the task's time limit"
                )))
            }
            Ok(Err(e)) => Err(wit::Error::DeviceLost(e.to_string()).into()),
            Err(e) => Err(Failure::Trap(wasmtime::format_err!(
                "waiting for the GPU: {e}"
            ))),
        }
    }

    async fn wait_all(&mut self) -> Result<(), Failure> {
        let Some(index) = self.last.take() else {
            return Ok(());
        };
        self.unwaited = 0;
        let gpu = self.gpu()?;
        self.wait_for(&gpu, index).await
    }

    fn submitted(&mut self, index: wgpu::SubmissionIndex) {
        self.last = Some(index);
        self.unwaited += 1;
    }
}

fn to_wgpu(usage: wit::BufferUsage) -> wgpu::BufferUsages {
    let pairs = [
        (wit::BufferUsage::MAP_READ, wgpu::BufferUsages::MAP_READ),
        (wit::BufferUsage::MAP_WRITE, wgpu::BufferUsages::MAP_WRITE),
        (wit::BufferUsage::COPY_SRC, wgpu::BufferUsages::COPY_SRC),
        (wit::BufferUsage::COPY_DST, wgpu::BufferUsages::COPY_DST),
        (wit::BufferUsage::UNIFORM, wgpu::BufferUsages::UNIFORM),
        (wit::BufferUsage::STORAGE, wgpu::BufferUsages::STORAGE),
    ];
    pairs
        .iter()
        .filter(|(w, _)| usage.contains(*w))
        .fold(wgpu::BufferUsages::empty(), |acc, (_, g)| acc | *g)
}

fn check_range(what: &str, offset: u64, length: u64, size: u64) -> Result<(), wit::Error> {
    if !offset.is_multiple_of(4) || !length.is_multiple_of(4) {
        return Err(wit::Error::Validation(format!(
            "{what}: offset {offset} and length {length} must be multiples of 4"
        )));
    }
    if offset.checked_add(length).is_none_or(|end| end > size) {
        return Err(wit::Error::OutOfRange(format!(
            "{what}: {length} bytes at offset {offset} overrun a buffer of {size} bytes"
        )));
    }
    Ok(())
}

fn need(what: &str, b: &GpuBuffer, usage: wit::BufferUsage, name: &str) -> Result<(), wit::Error> {
    if b.usage.contains(usage) {
        Ok(())
    } else {
        Err(wit::Error::Validation(format!(
            "{what} needs a buffer with `{name}` usage; this one has {:?}",
            b.usage
        )))
    }
}

impl wit::Host for GpuState {
    async fn info(&mut self) -> wasmtime::Result<Option<wit::AdapterInfo>> {
        let Some(gpu) = &self.gpu else {
            return Ok(None);
        };
        let d = &gpu.inner;
        let l = &d.limits;
        Ok(Some(wit::AdapterInfo {
            name: d.info.name.clone(),
            backend: d.info.backend.clone(),
            device_type: d.device_type,
            driver: d.info.driver.clone(),
            limits: wit::Limits {
                max_buffer_size: l.max_buffer_size,
                max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
                max_uniform_buffer_binding_size: l.max_uniform_buffer_binding_size,
                max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage,
                max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
                max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
                max_compute_workgroup_size_x: l.max_compute_workgroup_size_x,
                max_compute_workgroup_size_y: l.max_compute_workgroup_size_y,
                max_compute_workgroup_size_z: l.max_compute_workgroup_size_z,
                max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
                task_buffer_bytes: self.buffer_cap.min(l.max_buffer_size),
                task_memory_bytes: self.memory_cap,
            },
        }))
    }

    async fn create_buffer(
        &mut self,
        size: u64,
        usage: wit::BufferUsage,
    ) -> Result<Resource<GpuBuffer>, Failure> {
        let gpu = self.gpu()?;
        if size > self.buffer_cap {
            return Err(wit::Error::OutOfMemory(format!(
                "a buffer of {size} bytes is over this task's cap of {} bytes per buffer",
                self.buffer_cap
            ))
            .into());
        }
        if self.used.saturating_add(size) > self.memory_cap {
            return Err(wit::Error::OutOfMemory(format!(
                "a buffer of {size} bytes would bring this task's GPU memory to {} bytes, over its cap of {} bytes",
                self.used + size,
                self.memory_cap
            ))
            .into());
        }
        if size > gpu.inner.limits.max_buffer_size {
            return Err(wit::Error::OutOfMemory(format!(
                "a buffer of {size} bytes is over the adapter's max-buffer-size of {} bytes",
                gpu.inner.limits.max_buffer_size
            ))
            .into());
        }
        let usages = to_wgpu(usage);
        if usages.is_empty() {
            return Err(wit::Error::Validation("a buffer needs at least one usage".into()).into());
        }
        let device = &gpu.inner.device;
        let buffer = scoped(device, || {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size,
                usage: usages,
                mapped_at_creation: false,
            })
        })?;
        self.used += size;
        gpu.inner.live_bytes.fetch_add(size, Ordering::Relaxed);
        Ok(self.table.push(GpuBuffer {
            buffer,
            size,
            usage,
            device: gpu.inner.clone(),
        })?)
    }

    async fn create_kernel(
        &mut self,
        wgsl: String,
        entry_point: String,
    ) -> Result<Resource<GpuKernel>, Failure> {
        let gpu = self.gpu()?;
        let compiled = gpu.compile(&wgsl, &entry_point)?;
        Ok(self.table.push(GpuKernel { compiled })?)
    }

    async fn dispatch(
        &mut self,
        kernel: Resource<GpuKernel>,
        bindings: Vec<wit::Binding>,
        workgroups: (u32, u32, u32),
    ) -> Result<(), Failure> {
        let gpu = self.gpu()?;
        let compiled = self.table.get(&kernel)?.compiled.clone();
        let max = gpu.inner.limits.max_compute_workgroups_per_dimension;
        let (x, y, z) = workgroups;
        if x > max || y > max || z > max {
            return Err(wit::Error::Validation(format!(
                "workgroups ({x}, {y}, {z}) exceed the adapter's max-compute-workgroups-per-dimension of {max}"
            ))
            .into());
        }
        let mut entries = Vec::with_capacity(bindings.len());
        for b in &bindings {
            let Some(slot) = compiled.slots.iter().find(|s| s.binding == b.binding) else {
                let used: Vec<String> = compiled
                    .slots
                    .iter()
                    .map(|s| s.binding.to_string())
                    .collect();
                return Err(wit::Error::Validation(format!(
                    "kernel `{}` does not use @binding({}); it binds: {}",
                    compiled.entry,
                    b.binding,
                    if used.is_empty() {
                        "nothing".to_owned()
                    } else {
                        used.join(", ")
                    }
                ))
                .into());
            };
            if bindings
                .iter()
                .filter(|other| other.binding == b.binding)
                .count()
                > 1
            {
                return Err(wit::Error::Validation(format!(
                    "@binding({}) is bound more than once",
                    b.binding
                ))
                .into());
            }
            let buffer = self.table.get(&b.buffer)?;
            if slot.uniform {
                need(
                    &format!("@binding({}), a uniform buffer,", b.binding),
                    buffer,
                    wit::BufferUsage::UNIFORM,
                    "uniform",
                )?;
            } else {
                need(
                    &format!("@binding({}), a storage buffer,", b.binding),
                    buffer,
                    wit::BufferUsage::STORAGE,
                    "storage",
                )?;
            }
            entries.push(wgpu::BindGroupEntry {
                binding: b.binding,
                resource: buffer.buffer.as_entire_binding(),
            });
        }
        if let Some(missing) = compiled
            .slots
            .iter()
            .find(|s| !bindings.iter().any(|b| b.binding == s.binding))
        {
            return Err(wit::Error::Validation(format!(
                "@binding({}) of kernel `{}` is not bound",
                missing.binding, compiled.entry
            ))
            .into());
        }
        let device = &gpu.inner.device;
        let index = scoped(device, || {
            let group = compiled.layout.as_ref().map(|layout| {
                device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: None,
                    layout,
                    entries: &entries,
                })
            });
            let mut encoder = device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_pipeline(&compiled.pipeline);
                if let Some(group) = &group {
                    pass.set_bind_group(0, group, &[]);
                }
                pass.dispatch_workgroups(x, y, z);
            }
            gpu.inner.queue.submit([encoder.finish()])
        })?;
        drop(entries);
        self.submitted(index);
        if self.unwaited >= MAX_UNWAITED {
            self.wait_all().await?;
        }
        Ok(())
    }

    async fn copy_buffer(
        &mut self,
        source: Resource<GpuBuffer>,
        source_offset: u64,
        destination: Resource<GpuBuffer>,
        destination_offset: u64,
        size: u64,
    ) -> Result<(), Failure> {
        let gpu = self.gpu()?;
        let src = self.table.get(&source)?;
        let dst = self.table.get(&destination)?;
        need(
            "copy-buffer's source",
            src,
            wit::BufferUsage::COPY_SRC,
            "copy-src",
        )?;
        need(
            "copy-buffer's destination",
            dst,
            wit::BufferUsage::COPY_DST,
            "copy-dst",
        )?;
        check_range("copy-buffer's source", source_offset, size, src.size)?;
        check_range(
            "copy-buffer's destination",
            destination_offset,
            size,
            dst.size,
        )?;
        let device = &gpu.inner.device;
        let index = scoped(device, || {
            let mut encoder = device.create_command_encoder(&Default::default());
            encoder.copy_buffer_to_buffer(
                &src.buffer,
                source_offset,
                &dst.buffer,
                destination_offset,
                size,
            );
            gpu.inner.queue.submit([encoder.finish()])
        })?;
        self.submitted(index);
        Ok(())
    }

    async fn wait(&mut self) -> Result<(), Failure> {
        self.wait_all().await
    }

    fn convert_error(&mut self, err: Failure) -> wasmtime::Result<wit::Error> {
        match err {
            Failure::Gpu(e) => Ok(e),
            Failure::Trap(e) => Err(e),
        }
    }
}

impl wit::HostBuffer for GpuState {
    async fn size(&mut self, this: Resource<GpuBuffer>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&this)?.size)
    }

    async fn usage(&mut self, this: Resource<GpuBuffer>) -> wasmtime::Result<wit::BufferUsage> {
        Ok(self.table.get(&this)?.usage)
    }

    async fn write(
        &mut self,
        this: Resource<GpuBuffer>,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<(), Failure> {
        let gpu = self.gpu()?;
        let b = self.table.get(&this)?;
        need("buffer.write", b, wit::BufferUsage::COPY_DST, "copy-dst")?;
        check_range("buffer.write", offset, data.len() as u64, b.size)?;
        let device = &gpu.inner.device;
        scoped(device, || {
            gpu.inner.queue.write_buffer(&b.buffer, offset, &data)
        })?;
        Ok(())
    }

    async fn read(
        &mut self,
        this: Resource<GpuBuffer>,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, Failure> {
        let gpu = self.gpu()?;
        let b = self.table.get(&this)?;
        check_range("buffer.read", offset, length, b.size)?;
        if length == 0 {
            return Ok(Vec::new());
        }
        let device = &gpu.inner.device;
        let direct = b.usage.contains(wit::BufferUsage::MAP_READ);
        let (mapped, range, index) = if direct {
            let index = scoped(device, || gpu.inner.queue.submit([]))?;
            (b.buffer.clone(), offset..offset + length, index)
        } else {
            need("buffer.read", b, wit::BufferUsage::COPY_SRC, "copy-src")?;
            if self.used.saturating_add(length) > self.memory_cap {
                return Err(wit::Error::OutOfMemory(format!(
                    "reading {length} bytes needs a staging buffer that would bring this task's GPU memory over its cap of {} bytes",
                    self.memory_cap
                ))
                .into());
            }
            let source = b.buffer.clone();
            scoped(device, || {
                let staging = device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("ferry read-back"),
                    size: length,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                let mut encoder = device.create_command_encoder(&Default::default());
                encoder.copy_buffer_to_buffer(&source, offset, &staging, 0, length);
                let index = gpu.inner.queue.submit([encoder.finish()]);
                (staging, 0..length, index)
            })?
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        scoped(device, || {
            mapped.map_async(wgpu::MapMode::Read, range.clone(), move |r| {
                let _ = tx.send(r);
            })
        })?;
        self.wait_for(&gpu, index).await?;
        self.last = None;
        self.unwaited = 0;
        let outcome = match rx.await {
            Ok(Ok(())) => {
                let bytes = mapped
                    .get_mapped_range(range)
                    .map(|view| view.to_vec())
                    .map_err(|e| wit::Error::Validation(format!("buffer.read: {e}")));
                mapped.unmap();
                bytes
            }
            Ok(Err(e)) => Err(wit::Error::Validation(format!("buffer.read: {e}"))),
            Err(_) => Err(wit::Error::DeviceLost(
                "the GPU dropped a read-back before it finished".into(),
            )),
        };
        if !direct {
            mapped.destroy();
        }
        Ok(outcome?)
    }

    async fn drop(&mut self, this: Resource<GpuBuffer>) -> wasmtime::Result<()> {
        let b = self.table.delete(this)?;
        self.used -= b.size;
        Ok(())
    }
}

impl wit::HostKernel for GpuState {
    async fn entry_point(&mut self, this: Resource<GpuKernel>) -> wasmtime::Result<String> {
        Ok(self.table.get(&this)?.compiled.entry.clone())
    }

    async fn bindings(&mut self, this: Resource<GpuKernel>) -> wasmtime::Result<Vec<u32>> {
        Ok(self
            .table
            .get(&this)?
            .compiled
            .slots
            .iter()
            .map(|s| s.binding)
            .collect())
    }

    async fn drop(&mut self, this: Resource<GpuKernel>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

/// Adds `ferry:host/gpu` to a linker whose store data exposes a [`GpuState`].
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut GpuState,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<GpuState>>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_choice() {
        assert_eq!("auto".parse::<GpuChoice>().unwrap(), GpuChoice::Auto);
        assert_eq!("none".parse::<GpuChoice>().unwrap(), GpuChoice::None);
        assert_eq!(
            "llvmpipe".parse::<GpuChoice>().unwrap(),
            GpuChoice::Named("llvmpipe".into())
        );
        assert!(" ".parse::<GpuChoice>().is_err());
    }

    #[test]
    fn wgsl_errors_carry_line_and_column() {
        let src = "@compute @workgroup_size(1)\nfn main() {\n    let x = ;\n}\n";
        let module = naga::front::wgsl::parse_str(src).unwrap_err();
        let at = module.location(src).unwrap();
        assert_eq!((at.line_number, at.line_position), (3, 13));
    }

    #[test]
    fn ranges_must_be_aligned_and_inside() {
        assert!(check_range("r", 0, 16, 16).is_ok());
        assert!(matches!(
            check_range("r", 4, 16, 16),
            Err(wit::Error::OutOfRange(_))
        ));
        assert!(matches!(
            check_range("r", 2, 4, 16),
            Err(wit::Error::Validation(_))
        ));
        assert!(matches!(
            check_range("r", u64::MAX - 3, 8, 16),
            Err(wit::Error::OutOfRange(_))
        ));
    }
}
