//! Probes of `ferry:host/gpu` for the endpoint's tests.

use ferry_guest::gpu::{self, Buffer, BufferUsage, Kernel};

wit_bindgen::generate!({ path: "wit", world: "gpu-probe" });

const ADD: &str = "
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn add(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < arrayLength(&out)) {
        out[id.x] = a[id.x] + b[id.x];
    }
}
";

const SPIN: &str = "
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<uniform> rounds: vec4<u32>;

@compute @workgroup_size(64)
fn spin(@builtin(global_invocation_id) id: vec3<u32>) {
    var h = id.x;
    for (var i = 0u; i < rounds.x; i++) {
        h = (h ^ (h >> 15u)) * 2246822519u + i;
    }
    out[id.x] = h;
}
";

struct Probe;

impl Guest for Probe {
    fn adapter() -> Option<Adapter> {
        gpu::info().map(|a| Adapter {
            name: a.name,
            backend: a.backend,
            device_type: format!("{:?}", a.device_type),
            task_buffer_bytes: a.limits.task_buffer_bytes,
        })
    }

    fn vector_add(a: Vec<f32>, b: Vec<f32>) -> Result<Vec<f32>, String> {
        if a.len() != b.len() {
            return Err(format!("lengths differ: {} and {}", a.len(), b.len()));
        }
        let run = || -> Result<Vec<f32>, gpu::Error> {
            let kernel = Kernel::new(ADD, "add")?;
            let x = Buffer::from_slice(&a, gpu::storage())?;
            let y = Buffer::from_slice(&b, gpu::storage())?;
            let out = Buffer::zeroed::<f32>(a.len(), gpu::storage())?;
            let groups = (a.len() as u32).div_ceil(64).max(1);
            kernel.dispatch(&[(0, &x), (1, &y), (2, &out)], (groups, 1, 1))?;
            out.read_range::<f32>(0, a.len())
        };
        run().map_err(|e| e.to_string())
    }

    fn compile(wgsl: String, entry_point: String) -> Result<Vec<u32>, CompileFailure> {
        match Kernel::new(&wgsl, &entry_point) {
            Ok(k) => Ok(k.bindings()),
            Err(gpu::Error::Compilation {
                message,
                line,
                column,
            }) => Err(CompileFailure {
                message,
                line,
                column,
            }),
            Err(other) => Err(CompileFailure {
                message: other.to_string(),
                line: 0,
                column: 0,
            }),
        }
    }

    fn allocate(size: u64) -> Result<u64, String> {
        Buffer::new(size, gpu::storage())
            .map(|b| b.size())
            .map_err(|e| e.to_string())
    }

    fn read_back(size: u64, offset: u64, length: u64) -> Result<Vec<u8>, String> {
        let run = || -> Result<Vec<u8>, gpu::Error> {
            let bytes: Vec<u8> = (0..size).map(|i| i as u8).collect();
            let b = Buffer::from_slice(&bytes, gpu::storage())?;
            b.read_bytes(offset, length)
        };
        run().map_err(|e| e.to_string())
    }

    fn misuse(how: Misuse) -> Result<(), String> {
        let run = || -> Result<(), gpu::Error> {
            let kernel = Kernel::new(ADD, "add")?;
            let x = Buffer::zeroed::<f32>(4, gpu::storage())?;
            let y = Buffer::zeroed::<f32>(4, gpu::storage())?;
            let out = Buffer::zeroed::<f32>(4, gpu::storage())?;
            match how {
                Misuse::MissingBinding => kernel.dispatch(&[(0, &x), (1, &y)], (1, 1, 1)),
                Misuse::UnknownBinding => {
                    kernel.dispatch(&[(0, &x), (1, &y), (2, &out), (7, &out)], (1, 1, 1))
                }
                Misuse::WrongUsage => {
                    let u = Buffer::zeroed::<f32>(4, gpu::uniform())?;
                    kernel.dispatch(&[(0, &x), (1, &y), (2, &u)], (1, 1, 1))
                }
                Misuse::ReadWithoutCopySrc => {
                    let b = Buffer::new(16, BufferUsage::STORAGE | BufferUsage::COPY_DST)?;
                    b.read_bytes(0, 16).map(drop)
                }
                Misuse::UnalignedWrite => x.write(2, &[1u32]),
            }
        };
        run().map_err(|e| e.to_string())
    }

    fn spin(rounds: u32, dispatches: u32) -> Result<u32, String> {
        let run = || -> Result<u32, gpu::Error> {
            let kernel = Kernel::new(SPIN, "spin")?;
            let out = Buffer::zeroed::<u32>(64, gpu::storage())?;
            let params = Buffer::from_slice(&[rounds, 0, 0, 0], gpu::uniform())?;
            for _ in 0..dispatches {
                kernel.dispatch(&[(0, &out), (1, &params)], (1, 1, 1))?;
            }
            Ok(out.read_range::<u32>(0, 1)?[0])
        };
        run().map_err(|e| e.to_string())
    }

    fn leave_buffers(count: u32, size: u64) -> Result<u64, String> {
        let mut kept = Vec::new();
        for i in 0..count {
            let b = Buffer::zeroed::<u32>((size / 4) as usize, gpu::storage())
                .map_err(|e| e.to_string())?;
            b.write(0, &[i]).map_err(|e| e.to_string())?;
            kept.push(b);
        }
        let total = kept.iter().map(Buffer::size).sum();
        // Leaked on purpose: the endpoint must free them when the task ends.
        std::mem::forget(kept);
        Ok(total)
    }
}

export!(Probe);
