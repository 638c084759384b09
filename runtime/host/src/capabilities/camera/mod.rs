//! `ferry:host/camera`: one broker per device, shared by every call.
//!
//! The seed's Jetson camera took long to initialise and allowed one owner, so
//! concurrent function instances could not share it. Here a [`Camera`] owns
//! its device on a thread of its own, opened once (at endpoint start or first
//! use). Captures queue on it; those arriving within one frame period of the
//! last frame get that frame. A device that fails is closed and reopened with
//! backoff, while callers get `unavailable` with the reason. Conversion to the
//! size and format a guest asks for happens in the caller's task, off the
//! broker, so that one slow conversion never holds up the device.

mod backends;
mod convert;
#[cfg(target_os = "linux")]
mod v4l2;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Linker};

use super::bindings::ferry::host::camera as wit;
use super::{Capability, Lent, Prepare, TaskState, partition};
use crate::Host;

pub use backends::{Replay, TestPattern, decode_image};
#[cfg(target_os = "linux")]
pub use v4l2::{Offer, V4l2, negotiate};

/// Pixel layouts of frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    Rgb8,
    Rgba8,
    Gray8,
    Yuyv,
    Mjpeg,
}

impl PixelFormat {
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::Rgb8 => "rgb8",
            PixelFormat::Rgba8 => "rgba8",
            PixelFormat::Gray8 => "gray8",
            PixelFormat::Yuyv => "yuyv",
            PixelFormat::Mjpeg => "mjpeg",
        }
    }

    /// Bytes a pixel takes; JPEG's are the device's (at most those of RGB).
    pub fn bytes_per_pixel(self) -> u64 {
        match self {
            PixelFormat::Gray8 => 1,
            PixelFormat::Yuyv => 2,
            PixelFormat::Rgb8 | PixelFormat::Mjpeg => 3,
            PixelFormat::Rgba8 => 4,
        }
    }
}

/// A size and format a device produces natively.
#[derive(Debug, Clone, PartialEq)]
pub struct Mode {
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
    pub fps: f32,
}

/// One frame as a device delivered it (or converted).
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
    pub timestamp_ns: u64,
    /// Counted by the broker from 1 since the endpoint started.
    pub sequence: u64,
    pub data: Vec<u8>,
}

pub(crate) fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A camera device: what the broker drives. Calls come from the broker's
/// thread only, so they may block.
pub trait Backend: Send + 'static {
    /// For `list` and logs: `test-pattern 1280x720@30`, `v4l2 /dev/video0`.
    fn describe(&self) -> String;
    /// The modes it produces (may be known only once open).
    fn modes(&self) -> Vec<Mode>;
    /// Acquires the device: the slow, exclusive part.
    fn open(&mut self) -> Result<(), String>;
    /// The next frame, blocking until the device delivers it.
    fn grab(&mut self) -> Result<Frame, String>;
    fn close(&mut self);
}

/// When a broker opens its device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OpenAt {
    /// When the endpoint starts: the first call pays no initialisation.
    #[default]
    Start,
    FirstUse,
}

/// Reopening a failed device waits this long at first, doubling to the cap.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(5);
/// Grabs for one `newer-than` request before giving up.
const MAX_SKIP: u32 = 1000;

struct Request {
    newer_than: Option<u64>,
    reply: tokio::sync::oneshot::Sender<Result<Arc<Frame>, String>>,
}

#[derive(Default)]
struct Stats {
    opens: AtomicU64,
    grabs: AtomicU64,
    served: AtomicU64,
}

/// A camera device and its broker: the one owner of the device.
pub struct Camera {
    name: String,
    description: String,
    modes: Mutex<Vec<Mode>>,
    period: Duration,
    requests: Mutex<Option<mpsc::Sender<Request>>>,
    stats: Arc<Stats>,
    broker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Camera {
    /// Starts the broker of `backend`; `fps` sets the frame period within
    /// which captures share a frame.
    pub fn start(name: &str, backend: Box<dyn Backend>, fps: f32, open: OpenAt) -> Arc<Camera> {
        let (tx, rx) = mpsc::channel();
        let camera = Arc::new(Camera {
            name: name.to_owned(),
            description: backend.describe(),
            modes: Mutex::new(backend.modes()),
            period: Duration::from_secs_f32(1.0 / fps.clamp(0.1, 1000.0)),
            requests: Mutex::new(Some(tx)),
            stats: Arc::default(),
            broker: Mutex::new(None),
        });
        let broker = Broker {
            name: name.to_owned(),
            backend,
            period: camera.period,
            stats: camera.stats.clone(),
            camera: Arc::downgrade(&camera),
            open: false,
            failed: None,
            backoff: BACKOFF_FIRST,
            last: None,
            sequence: 0,
        };
        let handle = std::thread::Builder::new()
            .name(format!("camera-{name}"))
            .spawn(move || broker.run(rx, open))
            .expect("spawning a camera broker thread");
        *camera.broker.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        camera
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    pub fn modes(&self) -> Vec<Mode> {
        self.modes.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Times the device was opened.
    pub fn opens(&self) -> u64 {
        self.stats.opens.load(Ordering::SeqCst)
    }

    /// Frames taken from the device.
    pub fn grabs(&self) -> u64 {
        self.stats.grabs.load(Ordering::SeqCst)
    }

    /// Captures answered with a frame.
    pub fn served(&self) -> u64 {
        self.stats.served.load(Ordering::SeqCst)
    }

    /// The device's current frame, or a newer one than `newer_than`, as the
    /// device delivered it.
    pub async fn capture(&self, newer_than: Option<u64>) -> Result<Arc<Frame>, String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|tx| tx.send(Request { newer_than, reply }).is_ok());
        if !sent {
            return Err(format!("camera {} is shut down", self.name));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(format!("camera {}'s broker stopped", self.name)))
    }

    /// Stops the broker and closes the device.
    pub fn shutdown(&self) {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = self.broker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.requests
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }
}

struct Broker {
    name: String,
    backend: Box<dyn Backend>,
    period: Duration,
    stats: Arc<Stats>,
    camera: std::sync::Weak<Camera>,
    open: bool,
    /// The last failure and when reopening may be tried.
    failed: Option<(String, Instant)>,
    backoff: Duration,
    last: Option<(Arc<Frame>, Instant)>,
    sequence: u64,
}

impl Broker {
    fn run(mut self, rx: mpsc::Receiver<Request>, open: OpenAt) {
        if open == OpenAt::Start
            && let Err(e) = self.ensure_open()
        {
            eprintln!("ferry: camera {}: {e}", self.name);
        }
        while let Ok(first) = rx.recv() {
            let mut waiting = vec![first];
            waiting.extend(rx.try_iter());
            self.serve(waiting);
        }
        if self.open {
            self.backend.close();
        }
    }

    fn ensure_open(&mut self) -> Result<(), String> {
        if self.open {
            return Ok(());
        }
        if let Some((why, retry_at)) = &self.failed {
            let now = Instant::now();
            if now < *retry_at {
                return Err(format!(
                    "camera {} is unavailable ({why}); reopening in {} ms",
                    self.name,
                    (*retry_at - now).as_millis()
                ));
            }
        }
        self.stats.opens.fetch_add(1, Ordering::SeqCst);
        match self.backend.open() {
            Ok(()) => {
                self.open = true;
                if self.failed.take().is_some() {
                    eprintln!("ferry: camera {} is back", self.name);
                }
                self.backoff = BACKOFF_FIRST;
                if let Some(c) = self.camera.upgrade() {
                    *c.modes.lock().unwrap_or_else(|p| p.into_inner()) = self.backend.modes();
                }
                Ok(())
            }
            Err(e) => Err(self.fail(format!("cannot open it: {e}"))),
        }
    }

    /// Closes the device and schedules a reopen; returns the callers' error.
    fn fail(&mut self, why: String) -> String {
        if self.open {
            self.backend.close();
            self.open = false;
        }
        let message = format!(
            "camera {} is unavailable ({why}); reopening in {} ms",
            self.name,
            self.backoff.as_millis()
        );
        self.failed = Some((why, Instant::now() + self.backoff));
        self.backoff = (self.backoff * 2).min(BACKOFF_CAP);
        message
    }

    fn serve(&mut self, mut waiting: Vec<Request>) {
        let mut grabs = 0;
        while !waiting.is_empty() {
            // The last frame serves whoever it is new enough for, while it
            // is within one frame period of its capture.
            if let Some((frame, at)) = &self.last
                && at.elapsed() < self.period
            {
                let (served, rest): (Vec<_>, Vec<_>) = waiting
                    .into_iter()
                    .partition(|r| r.newer_than.is_none_or(|n| frame.sequence > n));
                for r in served {
                    self.stats.served.fetch_add(1, Ordering::Relaxed);
                    let _ = r.reply.send(Ok(frame.clone()));
                }
                waiting = rest;
                if waiting.is_empty() {
                    break;
                }
            }
            if grabs == MAX_SKIP {
                for r in waiting.drain(..) {
                    let _ = r.reply.send(Err(format!(
                        "camera {}: no frame newer than {} after {MAX_SKIP} frames",
                        self.name,
                        r.newer_than.unwrap_or(0)
                    )));
                }
                break;
            }
            if let Err(e) = self.ensure_open() {
                for r in waiting.drain(..) {
                    let _ = r.reply.send(Err(e.clone()));
                }
                break;
            }
            grabs += 1;
            match self.backend.grab() {
                Ok(mut frame) => {
                    self.sequence += 1;
                    frame.sequence = self.sequence;
                    self.stats.grabs.fetch_add(1, Ordering::Relaxed);
                    self.last = Some((Arc::new(frame), Instant::now()));
                }
                Err(e) => {
                    let message = self.fail(e);
                    self.last = None;
                    for r in waiting.drain(..) {
                        let _ = r.reply.send(Err(message.clone()));
                    }
                    break;
                }
            }
        }
    }
}

/// Per-task state of the camera capability.
pub(crate) struct CameraState {
    granted: Vec<Arc<Camera>>,
    /// Cameras the endpoint has that this function may not use.
    withheld: Vec<String>,
    endpoint: String,
    deadline: Instant,
    /// The task's memory limit: a frame the guest could not hold is not
    /// made, so that host-side conversion buffers stay within it.
    memory: u64,
    pub(crate) timed_out: bool,
}

impl CameraState {
    pub(crate) fn new(
        granted: Vec<Arc<Camera>>,
        withheld: Vec<String>,
        endpoint: String,
        deadline: Instant,
        memory: u64,
    ) -> Self {
        CameraState {
            granted,
            withheld,
            endpoint,
            deadline,
            memory,
            timed_out: false,
        }
    }

    fn pick(&self, name: Option<&str>) -> Result<Arc<Camera>, wit::Error> {
        let endpoint = &self.endpoint;
        match name {
            Some(n) => {
                if let Some(c) = self.granted.iter().find(|c| c.name() == n) {
                    return Ok(c.clone());
                }
                if self.withheld.iter().any(|w| w == n) {
                    return Err(wit::Error::NotGranted(format!(
                        "camera {n} on endpoint {endpoint} is not granted to this function"
                    )));
                }
                let known: Vec<&str> = self.granted.iter().map(|c| c.name()).collect();
                Err(wit::Error::NoCamera(format!(
                    "endpoint {endpoint} has no camera named {n}{}",
                    if known.is_empty() {
                        String::new()
                    } else {
                        format!(" (granted: {})", known.join(", "))
                    }
                )))
            }
            None => match self.granted.first() {
                Some(c) => Ok(c.clone()),
                None if !self.withheld.is_empty() => Err(wit::Error::NotGranted(format!(
                    "endpoint {endpoint} grants this function no camera (it has: {})",
                    self.withheld.join(", ")
                ))),
                None => Err(wit::Error::NoCamera(format!(
                    "endpoint {endpoint} has no camera"
                ))),
            },
        }
    }
}

fn to_wit(f: PixelFormat) -> wit::PixelFormat {
    match f {
        PixelFormat::Rgb8 => wit::PixelFormat::Rgb8,
        PixelFormat::Rgba8 => wit::PixelFormat::Rgba8,
        PixelFormat::Gray8 => wit::PixelFormat::Gray8,
        PixelFormat::Yuyv => wit::PixelFormat::Yuyv,
        PixelFormat::Mjpeg => wit::PixelFormat::Mjpeg,
    }
}

fn from_wit(f: wit::PixelFormat) -> PixelFormat {
    match f {
        wit::PixelFormat::Rgb8 => PixelFormat::Rgb8,
        wit::PixelFormat::Rgba8 => PixelFormat::Rgba8,
        wit::PixelFormat::Gray8 => PixelFormat::Gray8,
        wit::PixelFormat::Yuyv => PixelFormat::Yuyv,
        wit::PixelFormat::Mjpeg => PixelFormat::Mjpeg,
    }
}

impl wit::Host for CameraState {
    async fn list(&mut self) -> wasmtime::Result<Vec<wit::Device>> {
        Ok(self
            .granted
            .iter()
            .map(|c| wit::Device {
                name: c.name().to_owned(),
                backend: c.description().to_owned(),
                modes: c
                    .modes()
                    .into_iter()
                    .map(|m| wit::Mode {
                        width: m.width,
                        height: m.height,
                        format: to_wit(m.format),
                        fps: m.fps,
                    })
                    .collect(),
            })
            .collect())
    }

    async fn capture(
        &mut self,
        options: wit::CaptureOptions,
    ) -> wasmtime::Result<Result<wit::Frame, wit::Error>> {
        let camera = match self.pick(options.device.as_deref()) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let deadline = tokio::time::Instant::from_std(self.deadline);
        let raw = match tokio::time::timeout_at(deadline, camera.capture(options.newer_than)).await
        {
            Ok(Ok(frame)) => frame,
            Ok(Err(e)) => return Ok(Err(wit::Error::Unavailable(e))),
            Err(_) => {
                self.timed_out = true;
                return Err(wasmtime::format_err!(
                    "timed out waiting for a camera frame"
                ));
            }
        };
        let (w, h, f) = (options.width, options.height, options.format.map(from_wit));
        match convert::target(&raw, w, h, f) {
            Err(e) => return Ok(Err(wit::Error::Unsupported(e))),
            Ok((tw, th, tf)) => {
                let bytes = u64::from(tw) * u64::from(th) * tf.bytes_per_pixel();
                if bytes > self.memory {
                    return Ok(Err(wit::Error::Unsupported(format!(
                        "a {tw}x{th} {} frame takes {bytes} bytes, more than this task's memory limit of {} bytes",
                        tf.name(),
                        self.memory
                    ))));
                }
            }
        }
        let converted = tokio::task::spawn_blocking(move || convert::convert(&raw, w, h, f)).await;
        match converted {
            Ok(Ok(frame)) => Ok(Ok(wit::Frame {
                width: frame.width,
                height: frame.height,
                format: to_wit(frame.format),
                timestamp_ns: frame.timestamp_ns,
                sequence: frame.sequence,
                data: frame.data,
            })),
            Ok(Err(e)) => Ok(Err(wit::Error::Unsupported(e))),
            Err(e) => Err(wasmtime::format_err!("converting a frame: {e}")),
        }
    }
}

/// `ferry:host/camera`: the endpoint's cameras, each to the functions its
/// grant names.
pub(crate) struct Factor;

impl Capability for Factor {
    const INTERFACE: Option<&'static str> = Some("ferry:host/camera");
    type Grant = Vec<Lent<Arc<Camera>>>;
    type State = CameraState;

    fn add_to_linker(
        linker: &mut Linker<TaskState>,
        get: fn(&mut TaskState) -> &mut CameraState,
    ) -> wasmtime::Result<()> {
        wit::add_to_linker::<TaskState, HasSelf<CameraState>>(linker, get)
    }

    fn advertise(cameras: &Self::Grant, _: &Host) -> Vec<ferry_policy::Offer> {
        cameras
            .iter()
            .map(|c| ferry_policy::Offer {
                resource: ferry_policy::Resource::Camera {
                    name: c.item.name().to_owned(),
                    backend: c.item.description().to_owned(),
                },
                functions: c.functions.clone(),
            })
            .collect()
    }

    fn prepare(cameras: &Self::Grant, task: &mut Prepare<'_>) -> Result<CameraState, crate::Error> {
        let (granted, withheld) = partition(cameras, task.function);
        Ok(CameraState::new(
            granted.into_iter().cloned().collect(),
            withheld.into_iter().map(|c| c.name().to_owned()).collect(),
            task.host.name().to_string(),
            task.deadline,
            task.limits.memory,
        ))
    }

    fn timed_out(state: &CameraState) -> bool {
        state.timed_out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn captures_within_a_frame_period_share_a_frame_and_newer_than_waits() {
        let camera = Camera::start(
            "t",
            Box::new(TestPattern::new(64, 48, 50.0)),
            50.0,
            OpenAt::Start,
        );
        let a = camera.capture(None).await.unwrap();
        let b = camera.capture(None).await.unwrap();
        assert_eq!(a.sequence, b.sequence, "same frame period");
        let c = camera.capture(Some(a.sequence)).await.unwrap();
        assert!(c.sequence > a.sequence);
        assert_eq!(
            TestPattern::read_counter(&c.data, c.width, c.height),
            c.sequence - 1,
            "the pattern counts from 0"
        );
        assert_eq!(camera.opens(), 1);
        camera.shutdown();
        let e = camera.capture(None).await.unwrap_err();
        assert!(e.contains("shut down"), "{e}");
    }
}
