//! A real camera: `/dev/videoN` through V4L2 (the `linuxvideo` crate: pure
//! Rust, so it cross-compiles for an aarch64 board with no system headers).
//!
//! Format negotiation is a pure function over what the device offers, so it
//! is tested without a device.

use std::path::PathBuf;

use linuxvideo::format::{FrameSizes, PixFormat, PixelFormat as Fourcc};
use linuxvideo::stream::ReadStream;
use linuxvideo::{BufType, Device};

use super::{Backend, Frame, Mode, PixelFormat, now_ns};

/// Formats ferry reads, best first: uncompressed ones convert cheaply.
const PREFERRED: [(Fourcc, PixelFormat); 4] = [
    (Fourcc::YUYV, PixelFormat::Yuyv),
    (Fourcc::RGB3, PixelFormat::Rgb8),
    (Fourcc::MJPG, PixelFormat::Mjpeg),
    (Fourcc::JPEG, PixelFormat::Mjpeg),
];

/// One pixel format a device offers and the sizes it offers it in; an empty
/// list means any size (stepwise or continuous).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub fourcc: [u8; 4],
    pub sizes: Vec<(u32, u32)>,
}

/// The format and size to ask a device for: the first preferred format it
/// offers at the wanted size, else the size of that format closest to it
/// (by pixel count), else the largest.
pub fn negotiate(
    offers: &[Offer],
    want: Option<(u32, u32)>,
) -> Result<([u8; 4], u32, u32), String> {
    for (fourcc, _) in PREFERRED {
        let Some(offer) = offers.iter().find(|o| o.fourcc == fourcc.as_fourcc()) else {
            continue;
        };
        let size = match (want, offer.sizes.is_empty()) {
            (Some(w), true) => w,
            (None, true) => (640, 480),
            (Some((w, h)), false) => *offer
                .sizes
                .iter()
                .min_by_key(|(sw, sh)| {
                    (u64::from(*sw) * u64::from(*sh)).abs_diff(u64::from(w) * u64::from(h))
                })
                .expect("not empty"),
            (None, false) => *offer
                .sizes
                .iter()
                .max_by_key(|(sw, sh)| u64::from(*sw) * u64::from(*sh))
                .expect("not empty"),
        };
        return Ok((offer.fourcc, size.0, size.1));
    }
    let offered: Vec<String> = offers
        .iter()
        .map(|o| String::from_utf8_lossy(&o.fourcc).into_owned())
        .collect();
    Err(format!(
        "the device offers {} and ferry reads YUYV, RGB3, MJPG or JPEG",
        if offered.is_empty() {
            "no capture formats".to_owned()
        } else {
            offered.join(", ")
        }
    ))
}

fn format_of(fourcc: [u8; 4]) -> PixelFormat {
    PREFERRED
        .iter()
        .find(|(f, _)| f.as_fourcc() == fourcc)
        .map_or(PixelFormat::Rgb8, |(_, p)| *p)
}

/// `/dev/videoN`, opened at the configured size (or the device's best).
pub struct V4l2 {
    path: PathBuf,
    want: Option<(u32, u32)>,
    stream: Option<ReadStream>,
    mode: Option<Mode>,
}

impl V4l2 {
    pub fn new(path: impl Into<PathBuf>, want: Option<(u32, u32)>) -> V4l2 {
        V4l2 {
            path: path.into(),
            want,
            stream: None,
            mode: None,
        }
    }
}

fn offers(device: &Device) -> Vec<Offer> {
    device
        .formats(BufType::VIDEO_CAPTURE)
        .filter_map(Result::ok)
        .map(|desc| {
            let fourcc = desc.pixel_format();
            let sizes = match device.frame_sizes(fourcc) {
                Ok(FrameSizes::Discrete(list)) => {
                    list.iter().map(|s| (s.width(), s.height())).collect()
                }
                _ => Vec::new(),
            };
            Offer {
                fourcc: fourcc.as_fourcc(),
                sizes,
            }
        })
        .collect()
}

impl Backend for V4l2 {
    fn describe(&self) -> String {
        format!("v4l2 {}", self.path.display())
    }

    fn modes(&self) -> Vec<Mode> {
        self.mode.clone().into_iter().collect()
    }

    fn open(&mut self) -> Result<(), String> {
        let at = |e: std::io::Error| format!("{}: {e}", self.path.display());
        let device = Device::open(&self.path).map_err(at)?;
        let (fourcc, w, h) = negotiate(&offers(&device), self.want)
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        let capture = device
            .video_capture(PixFormat::new(w, h, Fourcc::from_fourcc(fourcc)))
            .map_err(at)?;
        let got = capture.format();
        self.mode = Some(Mode {
            width: got.width(),
            height: got.height(),
            format: format_of(got.pixel_format().as_fourcc()),
            fps: 0.0,
        });
        self.stream = Some(capture.into_stream().map_err(at)?);
        Ok(())
    }

    fn grab(&mut self) -> Result<Frame, String> {
        let (Some(stream), Some(mode)) = (&mut self.stream, &self.mode) else {
            return Err("grab before open".into());
        };
        let data = stream
            .dequeue(|buf| Ok(buf.to_vec()))
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        Ok(Frame {
            width: mode.width,
            height: mode.height,
            format: mode.format,
            timestamp_ns: now_ns(),
            sequence: 0,
            data,
        })
    }

    fn close(&mut self) {
        self.stream = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(f: &[u8; 4], sizes: &[(u32, u32)]) -> Offer {
        Offer {
            fourcc: *f,
            sizes: sizes.to_vec(),
        }
    }

    #[test]
    fn prefers_uncompressed_formats_and_the_nearest_size() {
        let offers = [
            offer(b"MJPG", &[(1920, 1080), (1280, 720)]),
            offer(b"YUYV", &[(640, 480), (1280, 720), (320, 240)]),
        ];
        assert_eq!(
            negotiate(&offers, Some((1280, 720))),
            Ok((*b"YUYV", 1280, 720))
        );
        assert_eq!(
            negotiate(&offers, Some((300, 200))),
            Ok((*b"YUYV", 320, 240))
        );
        assert_eq!(
            negotiate(&offers, None),
            Ok((*b"YUYV", 1280, 720)),
            "largest"
        );
    }

    #[test]
    fn falls_back_to_jpeg_and_to_any_size() {
        let offers = [
            offer(b"MJPG", &[(1920, 1080)]),
            offer(b"H264", &[(1920, 1080)]),
        ];
        assert_eq!(
            negotiate(&offers, Some((640, 480))),
            Ok((*b"MJPG", 1920, 1080))
        );
        let stepwise = [offer(b"RGB3", &[])];
        assert_eq!(
            negotiate(&stepwise, Some((224, 224))),
            Ok((*b"RGB3", 224, 224))
        );
        assert_eq!(negotiate(&stepwise, None), Ok((*b"RGB3", 640, 480)));
    }

    #[test]
    fn names_what_a_device_offers_when_nothing_fits() {
        let e = negotiate(&[offer(b"H264", &[(1920, 1080)])], None).unwrap_err();
        assert!(e.contains("offers H264"), "{e}");
        let e = negotiate(&[], None).unwrap_err();
        assert!(e.contains("no capture formats"), "{e}");
    }
}
