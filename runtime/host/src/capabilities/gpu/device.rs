//! The device side of `ferry:host/gpu`: one wgpu device per endpoint,
//! kernels compiled once per device and cached by the hash of their source,
//! and the buffers and kernels tasks hold.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::GpuChoice;
use super::GpuInfo;
use super::wit;
use crate::Error;

/// An endpoint's GPU: one wgpu device shared by all its tasks. Cheap to clone.
#[derive(Clone)]
pub struct Gpu {
    pub(super) inner: Arc<Device>,
}

pub(super) struct Device {
    pub(super) device: wgpu::Device,
    pub(super) queue: wgpu::Queue,
    pub(super) info: GpuInfo,
    pub(super) device_type: wit::DeviceType,
    pub(super) limits: wgpu::Limits,
    pub(super) kernels: Mutex<HashMap<blake3::Hash, Arc<Compiled>>>,
    pub(super) compiled: AtomicU64,
    pub(super) live_bytes: AtomicU64,
}

/// Kernels kept per device before the cache is emptied and refilled.
const KERNEL_CACHE: usize = 512;

/// Dispatches a task may queue before it waits for the oldest, so that a task
/// cannot pile up unbounded work on the shared device.
pub(super) const MAX_UNWAITED: u32 = 64;

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

    pub(super) fn compile(&self, wgsl: &str, entry: &str) -> Result<Arc<Compiled>, wit::Error> {
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

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A compute pipeline and what its entry point binds.
pub(super) struct Compiled {
    pub(super) pipeline: wgpu::ComputePipeline,
    pub(super) layout: Option<wgpu::BindGroupLayout>,
    pub(super) entry: String,
    pub(super) slots: Vec<Slot>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    pub(super) binding: u32,
    pub(super) uniform: bool,
}

pub(super) fn compile(
    device: &wgpu::Device,
    wgsl: &str,
    entry: &str,
) -> Result<Compiled, wit::Error> {
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

pub(super) fn compilation_error(message: String, at: Option<naga::SourceLocation>) -> wit::Error {
    let (line, column) = at.map_or((0, 0), |l| (l.line_number, l.line_position));
    wit::Error::Compilation(wit::CompilationMessage {
        message,
        line,
        column,
    })
}

/// Runs `f` inside error scopes, so that wgpu's validation and allocation
/// errors come back as values instead of reaching the uncaptured handler.
pub(super) fn scoped<R>(device: &wgpu::Device, f: impl FnOnce() -> R) -> Result<R, wit::Error> {
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
    pub(super) buffer: wgpu::Buffer,
    pub(super) size: u64,
    pub(super) usage: wit::BufferUsage,
    pub(super) device: Arc<Device>,
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
    pub(super) compiled: Arc<Compiled>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn wgsl_errors_carry_line_and_column() {
        let src = "@compute @workgroup_size(1)\nfn main() {\n    let x = ;\n}\n";
        let module = naga::front::wgsl::parse_str(src).unwrap_err();
        let at = module.location(src).unwrap();
        assert_eq!((at.line_number, at.line_position), (3, 13));
    }
}
