//! The synthetic backends: a deterministic test pattern and a replay of
//! images from a directory.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Backend, Frame, Mode, PixelFormat, now_ns};

/// Waits for a frame's slot, as a device delivers at its own pace.
struct Pace {
    period: Duration,
    next: Option<Instant>,
}

impl Pace {
    fn new(fps: f32) -> Pace {
        Pace {
            period: Duration::from_secs_f32(1.0 / fps.clamp(0.1, 1000.0)),
            next: None,
        }
    }

    fn wait(&mut self) {
        let now = Instant::now();
        let due = self.next.unwrap_or(now);
        if due > now {
            std::thread::sleep(due - now);
        }
        // A late reader does not get a burst of frames to catch up.
        self.next = Some(due.max(now) + self.period);
    }
}

/// Frames drawn from their number: a colour gradient, a white square that
/// moves 7 pixels a frame, and the frame number in 32 black-or-white blocks
/// along the top (bit 31 first), so that tests can tell frames apart.
pub struct TestPattern {
    width: u32,
    height: u32,
    fps: f32,
    pace: Pace,
    drawn: u64,
    /// Set while open: the device allows one open handle.
    in_use: Arc<AtomicBool>,
    open: bool,
    /// While set, the device fails (open and grab): for testing recovery.
    fault: Arc<AtomicBool>,
}

impl TestPattern {
    pub fn new(width: u32, height: u32, fps: f32) -> TestPattern {
        TestPattern {
            width: width.clamp(64, 8192),
            height: height.clamp(48, 8192),
            fps,
            pace: Pace::new(fps),
            drawn: 0,
            in_use: Arc::default(),
            open: false,
            fault: Arc::default(),
        }
    }

    /// A switch that makes the device fail while it is on.
    pub fn fault_switch(&self) -> Arc<AtomicBool> {
        self.fault.clone()
    }

    /// Side of one counter block: 32 of them and a margin fit the width.
    fn block(width: u32, height: u32) -> u32 {
        (height / 24).min(width / 34).max(1)
    }

    /// Draws frame `n`.
    pub fn draw(width: u32, height: u32, n: u64) -> Vec<u8> {
        let (w, h) = (width as usize, height as usize);
        let mut px = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in 0..w {
                let i = (y * w + x) * 3;
                px[i] = (x * 255 / w) as u8;
                px[i + 1] = (y * 255 / h) as u8;
                px[i + 2] = 96;
            }
        }
        let side = (h / 4).max(4);
        let travel = w.saturating_sub(side).max(1);
        let x0 = (n as usize * 7) % travel;
        let y0 = h / 2 - side / 2;
        for y in y0..(y0 + side).min(h) {
            for x in x0..(x0 + side).min(w) {
                let i = (y * w + x) * 3;
                px[i..i + 3].copy_from_slice(&[255, 255, 255]);
            }
        }
        let b = Self::block(width, height) as usize;
        for bit in 0..32usize {
            let on = (n >> (31 - bit)) & 1 == 1;
            let v = if on { 255 } else { 0 };
            for y in b..2 * b {
                for x in b + bit * b..b + (bit + 1) * b {
                    if x < w && y < h {
                        let i = (y * w + x) * 3;
                        px[i..i + 3].copy_from_slice(&[v, v, v]);
                    }
                }
            }
        }
        px
    }

    /// The frame number drawn in an RGB frame of this pattern (at its own
    /// size, or scaled by no more than a few times).
    pub fn read_counter(rgb: &[u8], width: u32, height: u32) -> u64 {
        let b = f64::from(Self::block(width, height));
        let mut n = 0u64;
        for bit in 0..32 {
            let x = (b + (f64::from(bit) + 0.5) * b) as usize;
            let y = (1.5 * b) as usize;
            let i = (y * width as usize + x) * 3;
            n = n << 1 | u64::from(rgb.get(i).is_some_and(|&v| v > 127));
        }
        n
    }
}

impl Backend for TestPattern {
    fn describe(&self) -> String {
        format!("test-pattern {}x{}@{}", self.width, self.height, self.fps)
    }

    fn modes(&self) -> Vec<Mode> {
        vec![Mode {
            width: self.width,
            height: self.height,
            format: PixelFormat::Rgb8,
            fps: self.fps,
        }]
    }

    fn open(&mut self) -> Result<(), String> {
        if self.fault.load(Ordering::SeqCst) {
            return Err("the device does not answer (fault switched on)".into());
        }
        if self.in_use.swap(true, Ordering::SeqCst) {
            return Err("busy: the device allows one open handle".into());
        }
        self.open = true;
        Ok(())
    }

    fn grab(&mut self) -> Result<Frame, String> {
        if !self.open {
            return Err("grab before open".into());
        }
        self.pace.wait();
        if self.fault.load(Ordering::SeqCst) {
            return Err("the device stopped delivering frames (fault switched on)".into());
        }
        let data = Self::draw(self.width, self.height, self.drawn);
        self.drawn += 1;
        Ok(Frame {
            width: self.width,
            height: self.height,
            format: PixelFormat::Rgb8,
            timestamp_ns: now_ns(),
            sequence: 0,
            data,
        })
    }

    fn close(&mut self) {
        if self.open {
            self.open = false;
            self.in_use.store(false, Ordering::SeqCst);
        }
    }
}

/// Images from a directory (PNG or JPEG), in file-name order, looping.
pub struct Replay {
    dir: PathBuf,
    fps: f32,
    pace: Pace,
    files: Vec<PathBuf>,
    next: usize,
    mode: Option<(u32, u32)>,
}

impl Replay {
    pub fn new(dir: impl Into<PathBuf>, fps: f32) -> Replay {
        Replay {
            dir: dir.into(),
            fps,
            pace: Pace::new(fps),
            files: Vec::new(),
            next: 0,
            mode: None,
        }
    }

    fn images(&self) -> Result<Vec<PathBuf>, String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map_err(|e| format!("reading {}: {e}", self.dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg")
                })
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(format!(
                "{} holds no .png or .jpg images to replay",
                self.dir.display()
            ));
        }
        Ok(files)
    }
}

/// Decodes a PNG or JPEG file to a frame in its own format.
pub fn decode_image(path: &std::path::Path) -> Result<Frame, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let is_png = bytes.starts_with(b"\x89PNG");
    let frame = if is_png {
        let mut d = png::Decoder::new(std::io::Cursor::new(&bytes));
        d.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut r = d
            .read_info()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut buf = vec![0u8; r.output_buffer_size().unwrap_or(0)];
        let info = r
            .next_frame(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        buf.truncate(info.buffer_size());
        let (format, data) = match info.color_type {
            png::ColorType::Rgb => (PixelFormat::Rgb8, buf),
            png::ColorType::Rgba => (PixelFormat::Rgba8, buf),
            png::ColorType::Grayscale => (PixelFormat::Gray8, buf),
            png::ColorType::GrayscaleAlpha => (
                PixelFormat::Gray8,
                buf.chunks_exact(2).map(|p| p[0]).collect(),
            ),
            other => return Err(format!("{}: PNG colour type {other:?}", path.display())),
        };
        Frame {
            width: info.width,
            height: info.height,
            format,
            timestamp_ns: 0,
            sequence: 0,
            data,
        }
    } else {
        let mut d = jpeg_decoder::Decoder::new(&bytes[..]);
        d.read_info()
            .map_err(|e| format!("{}: not a PNG or JPEG image: {e}", path.display()))?;
        let info = d.info().ok_or("a JPEG without a header")?;
        Frame {
            width: u32::from(info.width),
            height: u32::from(info.height),
            format: PixelFormat::Mjpeg,
            timestamp_ns: 0,
            sequence: 0,
            data: bytes,
        }
    };
    Ok(frame)
}

impl Backend for Replay {
    fn describe(&self) -> String {
        format!("replay {} @{}", self.dir.display(), self.fps)
    }

    fn modes(&self) -> Vec<Mode> {
        self.mode
            .map(|(width, height)| Mode {
                width,
                height,
                format: PixelFormat::Rgb8,
                fps: self.fps,
            })
            .into_iter()
            .collect()
    }

    fn open(&mut self) -> Result<(), String> {
        self.files = self.images()?;
        self.next = 0;
        let first = decode_image(&self.files[0])?;
        self.mode = Some((first.width, first.height));
        Ok(())
    }

    fn grab(&mut self) -> Result<Frame, String> {
        if self.files.is_empty() {
            return Err("grab before open".into());
        }
        self.pace.wait();
        let path = &self.files[self.next % self.files.len()];
        self.next += 1;
        let mut frame = decode_image(path)?;
        frame.timestamp_ns = now_ns();
        Ok(frame)
    }

    fn close(&mut self) {
        self.files.clear();
    }
}
