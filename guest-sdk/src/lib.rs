//! Safe wrappers over the `ferry:host` imports for functions that run on ferry.
//!
//! A function crate declares its own exports with `wit_bindgen::generate!` and
//! calls into the endpoint through this crate. The two sets of bindings carry
//! their own component-type sections, which the component linker merges, so a
//! function never has to repeat ferry's WIT.
//!
//! ```ignore
//! ferry_guest::log::info("loaded model");
//! ferry_guest::log::progress(3, 10, "batches");
//! if let Some(adapter) = ferry_guest::gpu::info() {
//!     ferry_guest::log::info(&adapter.name);
//! }
//! ```

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "ferry:host/guest",
        pub_export_macro: false,
    });
}

/// Structured logging and progress, collected per task by the endpoint.
pub mod log {
    use crate::bindings::ferry::host::log as host;
    pub use crate::bindings::ferry::host::log::Level;

    /// Emits one line at `level` with `key = value` fields.
    pub fn emit(level: Level, message: &str, fields: &[(&str, &str)]) {
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        host::emit(level, message, &fields);
    }

    /// Emits a debug line.
    pub fn debug(message: &str) {
        emit(Level::Debug, message, &[]);
    }

    /// Emits an info line.
    pub fn info(message: &str) {
        emit(Level::Info, message, &[]);
    }

    /// Emits a warning.
    pub fn warn(message: &str) {
        emit(Level::Warn, message, &[]);
    }

    /// Emits an error line (the task still decides whether it fails).
    pub fn error(message: &str) {
        emit(Level::Error, message, &[]);
    }

    /// Reports `done` units of work out of `total`.
    pub fn progress(done: u64, total: u64, message: &str) {
        host::progress(done, total, message);
    }
}

/// GPU compute lent by the endpoint: buffers, WGSL kernels and dispatches.
///
/// ```ignore
/// use ferry_guest::gpu::{self, Buffer, Kernel};
/// let a = Buffer::from_slice(&[1.0f32, 2.0], gpu::storage())?;
/// let out = Buffer::zeroed::<f32>(2, gpu::storage())?;
/// let add = Kernel::new(WGSL, "main")?;
/// add.dispatch(&[(0, &a), (1, &out)], (1, 1, 1))?;
/// let sum: Vec<f32> = out.read()?;
/// ```
pub mod gpu {
    use crate::bindings::ferry::host::gpu as host;
    pub use crate::bindings::ferry::host::gpu::{AdapterInfo, BufferUsage, DeviceType, Limits};

    /// Element types that are plain bytes, so that slices of them can be
    /// copied to and from GPU buffers as they are.
    ///
    /// # Safety
    /// Implementors have no padding, no pointers and accept any bit pattern.
    pub unsafe trait Pod: Copy + 'static {}

    macro_rules! pod {
        ($($t:ty),*) => { $(unsafe impl Pod for $t {})* };
    }
    pod!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64);
    unsafe impl<T: Pod, const N: usize> Pod for [T; N] {}

    fn as_bytes<T: Pod>(data: &[T]) -> &[u8] {
        // SAFETY: `T: Pod` has no padding, so every byte is initialised.
        unsafe { core::slice::from_raw_parts(data.as_ptr().cast(), core::mem::size_of_val(data)) }
    }

    fn from_bytes<T: Pod>(bytes: &[u8]) -> Vec<T> {
        let n = bytes.len() / core::mem::size_of::<T>().max(1);
        let mut out = Vec::<T>::with_capacity(n);
        // SAFETY: `T: Pod` accepts any bit pattern and `out` has room for `n`.
        unsafe {
            core::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                out.as_mut_ptr().cast::<u8>(),
                n * core::mem::size_of::<T>(),
            );
            out.set_len(n);
        }
        out
    }

    fn round4(n: u64) -> u64 {
        n.div_ceil(4) * 4
    }

    /// The endpoint's adapter, or `None` when it lends no GPU.
    pub fn info() -> Option<AdapterInfo> {
        host::info()
    }

    /// Blocks until all GPU work this task queued is done.
    pub fn wait() -> Result<(), Error> {
        Ok(host::wait()?)
    }

    /// Copies `size` bytes between buffers on the GPU.
    pub fn copy(
        source: &Buffer,
        source_offset: u64,
        destination: &Buffer,
        destination_offset: u64,
        size: u64,
    ) -> Result<(), Error> {
        Ok(host::copy_buffer(
            &source.0,
            source_offset,
            &destination.0,
            destination_offset,
            size,
        )?)
    }

    /// Why a GPU call failed.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Error {
        /// The endpoint has no GPU adapter.
        NoAdapter(String),
        /// The WGSL does not compile; line and column count from 1.
        Compilation {
            message: String,
            line: u32,
            column: u32,
        },
        /// A call broke a rule: wrong usage, wrong bindings, bad alignment.
        Validation(String),
        /// A read or write outside a buffer.
        OutOfRange(String),
        /// Over the task's caps, or the device is out of memory.
        OutOfMemory(String),
        DeviceLost(String),
    }

    impl From<host::Error> for Error {
        fn from(e: host::Error) -> Self {
            match e {
                host::Error::NoAdapter(m) => Error::NoAdapter(m),
                host::Error::Compilation(c) => Error::Compilation {
                    message: c.message,
                    line: c.line,
                    column: c.column,
                },
                host::Error::Validation(m) => Error::Validation(m),
                host::Error::OutOfRange(m) => Error::OutOfRange(m),
                host::Error::OutOfMemory(m) => Error::OutOfMemory(m),
                host::Error::DeviceLost(m) => Error::DeviceLost(m),
            }
        }
    }

    impl core::fmt::Display for Error {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match self {
                Error::NoAdapter(m) => f.write_str(m),
                Error::Compilation {
                    message,
                    line,
                    column,
                } => write!(
                    f,
                    "WGSL does not compile (line {line}, column {column}): {message}"
                ),
                Error::Validation(m) => write!(f, "invalid GPU call: {m}"),
                Error::OutOfRange(m) => write!(f, "out of range: {m}"),
                Error::OutOfMemory(m) => write!(f, "GPU memory: {m}"),
                Error::DeviceLost(m) => write!(f, "GPU device lost: {m}"),
            }
        }
    }

    impl std::error::Error for Error {}

    /// Storage that kernels read and write, and that can be written and read back.
    pub fn storage() -> BufferUsage {
        BufferUsage::STORAGE | BufferUsage::COPY_SRC | BufferUsage::COPY_DST
    }

    /// Uniform parameters that can be written.
    pub fn uniform() -> BufferUsage {
        BufferUsage::UNIFORM | BufferUsage::COPY_DST
    }

    /// A GPU buffer; freed when dropped (and in any case when the task ends).
    pub struct Buffer(host::Buffer);

    impl Buffer {
        /// A zero-filled buffer of `size` bytes.
        pub fn new(size: u64, usage: BufferUsage) -> Result<Buffer, Error> {
            Ok(host::create_buffer(size, usage).map(Buffer)?)
        }

        /// A zero-filled buffer for `len` elements of `T`.
        pub fn zeroed<T: Pod>(len: usize, usage: BufferUsage) -> Result<Buffer, Error> {
            Buffer::new(round4((len * core::mem::size_of::<T>()) as u64), usage)
        }

        /// A buffer holding `data` (`usage` gains `copy-dst`).
        pub fn from_slice<T: Pod>(data: &[T], usage: BufferUsage) -> Result<Buffer, Error> {
            let bytes = as_bytes(data);
            let buffer = Buffer::new(round4(bytes.len() as u64), usage | BufferUsage::COPY_DST)?;
            buffer.write(0, data)?;
            Ok(buffer)
        }

        pub fn size(&self) -> u64 {
            self.0.size()
        }

        pub fn usage(&self) -> BufferUsage {
            self.0.usage()
        }

        /// Writes `data` at byte `offset` (a multiple of 4); a tail shorter
        /// than 4 bytes is padded with zeros.
        pub fn write<T: Pod>(&self, offset: u64, data: &[T]) -> Result<(), Error> {
            let bytes = as_bytes(data);
            if bytes.len().is_multiple_of(4) {
                Ok(self.0.write(offset, bytes)?)
            } else {
                let mut padded = bytes.to_vec();
                padded.resize(round4(bytes.len() as u64) as usize, 0);
                Ok(self.0.write(offset, &padded)?)
            }
        }

        /// Reads `len` bytes at `offset` once all queued work is done.
        pub fn read_bytes(&self, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
            Ok(self.0.read(offset, len)?)
        }

        /// Reads the whole buffer as elements of `T`.
        pub fn read<T: Pod>(&self) -> Result<Vec<T>, Error> {
            let size = self.size();
            let elem = core::mem::size_of::<T>() as u64;
            let len = size.checked_div(elem).map_or(0, |n| n * elem);
            Ok(from_bytes(&self.0.read(0, round4(len).min(size))?))
        }

        /// Reads elements `first..first + len` of `T`; byte offset and length
        /// must be multiples of 4.
        pub fn read_range<T: Pod>(&self, first: usize, len: usize) -> Result<Vec<T>, Error> {
            let elem = core::mem::size_of::<T>() as u64;
            Ok(from_bytes(
                &self.0.read(first as u64 * elem, len as u64 * elem)?,
            ))
        }
    }

    /// A WGSL compute kernel, compiled once per endpoint.
    pub struct Kernel(host::Kernel);

    impl Kernel {
        pub fn new(wgsl: &str, entry_point: &str) -> Result<Kernel, Error> {
            Ok(host::create_kernel(wgsl, entry_point).map(Kernel)?)
        }

        pub fn entry_point(&self) -> String {
            self.0.entry_point()
        }

        /// The `@group(0)` bindings the kernel uses.
        pub fn bindings(&self) -> Vec<u32> {
            self.0.bindings()
        }

        /// Queues one compute pass over `workgroups` with `bindings` as
        /// (`@binding` number, buffer) pairs.
        pub fn dispatch(
            &self,
            bindings: &[(u32, &Buffer)],
            workgroups: (u32, u32, u32),
        ) -> Result<(), Error> {
            let bindings: Vec<host::Binding<'_>> = bindings
                .iter()
                .map(|(binding, buffer)| host::Binding {
                    binding: *binding,
                    buffer: &buffer.0,
                })
                .collect();
            Ok(host::dispatch(&self.0, &bindings, workgroups)?)
        }
    }
}

/// Large data by reference: open a blob a task was given and read it in
/// pieces, or whole.
///
/// ```ignore
/// let reader = ferry_guest::blobs::open(&points)?;
/// while reader.remaining() > 0 {
///     let piece = reader.read(1 << 20)?;
/// }
/// ```
pub mod blobs {
    use crate::bindings::ferry::host::blobs as host;
    /// The WIT `ferry:host/blobs.blob-ref`: use it in a function's own WIT
    /// with `use ferry:host/blobs@0.1.0.{blob-ref};` and map it here with
    /// `with: { "ferry:host/blobs@0.1.0": ferry_guest::bindings::ferry::host::blobs }`.
    pub use crate::bindings::ferry::host::blobs::BlobRef;

    /// An open blob, read front to back.
    pub struct Reader(host::Reader);

    /// Opens a blob; the endpoint fetches and verifies it on first use.
    pub fn open(blob: &BlobRef) -> Result<Reader, String> {
        host::open(blob).map(Reader)
    }

    impl Reader {
        /// Up to `max` bytes; empty at the end.
        pub fn read(&self, max: u64) -> Result<Vec<u8>, String> {
            self.0.read(max)
        }

        pub fn remaining(&self) -> u64 {
            self.0.remaining()
        }

        /// Everything left, in pieces of 4 MiB.
        pub fn read_to_end(&self) -> Result<Vec<u8>, String> {
            let mut out = Vec::with_capacity(self.remaining() as usize);
            while self.remaining() > 0 {
                out.extend(self.read(4 << 20)?);
            }
            Ok(out)
        }
    }

    /// A new blob, written front to back; [`Writer::finish`] names it.
    ///
    /// ```ignore
    /// let mut w = ferry_guest::blobs::Writer::new()?;
    /// w.write(b"codes...")?;
    /// let blob: BlobRef = w.finish()?; // return it; the caller downloads it
    /// ```
    pub struct Writer(host::Writer);

    impl Writer {
        pub fn new() -> Result<Writer, String> {
            host::create().map(Writer)
        }

        /// Appends bytes; fails past the task's blob output cap.
        pub fn write(&self, bytes: &[u8]) -> Result<(), String> {
            self.0.write(bytes)
        }

        /// Bytes written so far.
        pub fn written(&self) -> u64 {
            self.0.written()
        }

        /// Seals the blob; the endpoint sends it on with the task's result.
        pub fn finish(self) -> Result<BlobRef, String> {
            host::finish(self.0)
        }
    }

    impl std::io::Write for Writer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            Writer::write(self, buf).map_err(std::io::Error::other)?;
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl std::io::Read for Reader {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let piece = Reader::read(self, buf.len() as u64).map_err(std::io::Error::other)?;
            buf[..piece.len()].copy_from_slice(&piece);
            Ok(piece.len())
        }
    }
}

/// The endpoint's cameras (`ferry:host/camera`): one owner per device on the
/// endpoint, shared by every call, with frames converted there to the size
/// and format asked for.
///
/// ```ignore
/// let frame = ferry_guest::camera::capture(&Options::default().size(224, 224))?;
/// assert_eq!(frame.data.len(), 224 * 224 * 3); // rgb8 unless asked otherwise
/// ```
pub mod camera {
    use crate::bindings::ferry::host::camera as host;
    pub use host::{Device, Frame, Mode, PixelFormat};

    /// What to capture; unset fields take the device's native mode.
    #[derive(Debug, Clone, Default)]
    pub struct Options {
        pub device: Option<String>,
        pub width: Option<u32>,
        pub height: Option<u32>,
        pub format: Option<PixelFormat>,
        pub newer_than: Option<u64>,
    }

    impl Options {
        /// A named camera instead of the first granted one.
        pub fn device(mut self, name: &str) -> Self {
            self.device = Some(name.to_owned());
            self
        }

        /// Scaled to this size on the endpoint.
        pub fn size(mut self, width: u32, height: u32) -> Self {
            self.width = Some(width);
            self.height = Some(height);
            self
        }

        pub fn format(mut self, format: PixelFormat) -> Self {
            self.format = Some(format);
            self
        }

        /// Only a frame after the one with this sequence number.
        pub fn newer_than(mut self, sequence: u64) -> Self {
            self.newer_than = Some(sequence);
            self
        }
    }

    /// Why a capture failed.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Error {
        /// No camera of that name on this endpoint, or none at all.
        NoCamera(String),
        /// The camera is there but not granted to this function.
        NotGranted(String),
        /// The device failed; the endpoint is reopening it, so retrying later
        /// may succeed.
        Unavailable(String),
        /// A size or format the endpoint cannot produce.
        Unsupported(String),
    }

    impl std::fmt::Display for Error {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Error::NoCamera(m)
                | Error::NotGranted(m)
                | Error::Unavailable(m)
                | Error::Unsupported(m) => f.write_str(m),
            }
        }
    }

    impl std::error::Error for Error {}

    impl From<host::Error> for Error {
        fn from(e: host::Error) -> Self {
            match e {
                host::Error::NoCamera(m) => Error::NoCamera(m),
                host::Error::NotGranted(m) => Error::NotGranted(m),
                host::Error::Unavailable(m) => Error::Unavailable(m),
                host::Error::Unsupported(m) => Error::Unsupported(m),
            }
        }
    }

    /// The cameras granted to this function.
    pub fn list() -> Vec<Device> {
        host::list()
    }

    /// One frame.
    pub fn capture(options: &Options) -> Result<Frame, Error> {
        host::capture(&host::CaptureOptions {
            device: options.device.clone(),
            width: options.width,
            height: options.height,
            format: options.format,
            newer_than: options.newer_than,
        })
        .map_err(Error::from)
    }
}
