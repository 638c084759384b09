//! A task's side of `ferry:host/gpu`: its buffers and kernels in its own
//! table, under its caps, freed when the task's store is dropped however
//! the task ended.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use ferry_policy::{Offer, Resource as Offered, Scope};
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};

use super::device::{MAX_UNWAITED, scoped};
use super::wit;
use super::{Failure, Gpu, GpuBuffer, GpuKernel};
use crate::capabilities::{Capability, Prepare, TaskState};
use crate::{Error, Host};

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

/// `ferry:host/gpu`: the endpoint's one device, for every function.
pub(crate) struct Factor;

impl Capability for Factor {
    const INTERFACE: Option<&'static str> = Some("ferry:host/gpu");
    /// The device is the host's ([`HostConfig::gpu`](crate::HostConfig::gpu)).
    type Grant = ();
    type State = GpuState;

    fn add_to_linker(
        linker: &mut Linker<TaskState>,
        get: fn(&mut TaskState) -> &mut GpuState,
    ) -> wasmtime::Result<()> {
        wit::add_to_linker::<TaskState, HasSelf<GpuState>>(linker, get)
    }

    fn advertise(_: &(), host: &Host) -> Vec<Offer> {
        host.gpu()
            .map(|g| {
                let i = g.info();
                Offer {
                    resource: Offered::Gpu {
                        name: i.name.clone(),
                        backend: i.backend.clone(),
                        device_type: i.device_type.clone(),
                        driver: i.driver.clone(),
                    },
                    functions: Scope::all(),
                }
            })
            .into_iter()
            .collect()
    }

    fn prepare(_: &(), task: &mut Prepare<'_>) -> Result<GpuState, Error> {
        Ok(GpuState::new(
            task.host.gpu().cloned(),
            task.host.name().clone(),
            task.limits.gpu_buffer,
            task.limits.gpu_memory,
            task.deadline,
        ))
    }

    fn timed_out(state: &GpuState) -> bool {
        state.timed_out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
