//! The endpoint's cameras: configured devices, each started as a broker when
//! the endpoint starts, and lent to the functions its grant names.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use ferry_host::camera::{Backend, Replay, TestPattern};
use ferry_host::{Camera, OpenAt};

/// Where a camera's frames come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A V4L2 device such as `/dev/video0` (a USB camera, or a Jetson's CSI
    /// camera through its V4L2 driver).
    V4l2(PathBuf),
    /// Deterministic synthetic frames.
    TestPattern,
    /// The images of a directory, in name order, looping.
    Replay(PathBuf),
}

/// One camera of an endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraConfig {
    pub name: String,
    pub source: Source,
    /// The size to ask the device for (test-pattern: the size it draws).
    pub size: Option<(u32, u32)>,
    pub fps: f32,
    pub open: OpenAt,
    /// Function ids that may capture from it; `*` for every function.
    pub functions: Vec<String>,
}

fn parse_size(text: &str) -> anyhow::Result<(u32, u32)> {
    let (w, h) = text
        .split_once('x')
        .with_context(|| format!("`{text}` is not a size like 1280x720"))?;
    let w: u32 = w
        .parse()
        .with_context(|| format!("bad width in `{text}`"))?;
    let h: u32 = h
        .parse()
        .with_context(|| format!("bad height in `{text}`"))?;
    anyhow::ensure!(
        (1..=8192).contains(&w) && (1..=8192).contains(&h),
        "`{text}`: each side must be 1 to 8192"
    );
    Ok((w, h))
}

impl CameraConfig {
    /// A camera from a command-line spec, granted to every function:
    /// `[NAME=]test-pattern[:WxH][@FPS]`, `[NAME=]replay:DIR[@FPS]` or
    /// `[NAME=]v4l2:DEVICE[:WxH]`.
    pub fn from_spec(spec: &str) -> anyhow::Result<CameraConfig> {
        let (name, rest) = match spec.split_once('=') {
            Some((n, r)) if !n.contains(':') => (Some(n.to_owned()), r),
            _ => (None, spec),
        };
        let (rest, fps) = match rest.rsplit_once('@') {
            Some((r, f)) => (
                r,
                Some(
                    f.parse::<f32>()
                        .ok()
                        .filter(|f| *f > 0.0 && *f <= 1000.0)
                        .with_context(|| format!("`{f}` is not a frame rate (0 to 1000)"))?,
                ),
            ),
            None => (rest, None),
        };
        let (backend, arg) = rest.split_once(':').unwrap_or((rest, ""));
        let (source, size) = match backend {
            "test-pattern" => (
                Source::TestPattern,
                if arg.is_empty() {
                    None
                } else {
                    Some(parse_size(arg)?)
                },
            ),
            "replay" if !arg.is_empty() => (Source::Replay(arg.into()), None),
            "v4l2" if !arg.is_empty() => match arg.rsplit_once(':') {
                Some((dev, size)) if size.contains('x') => {
                    (Source::V4l2(dev.into()), Some(parse_size(size)?))
                }
                _ => (Source::V4l2(arg.into()), None),
            },
            "replay" | "v4l2" => bail!("camera `{spec}`: {backend} needs a path ({backend}:PATH)"),
            other => bail!(
                "camera `{spec}`: unknown backend `{other}` (use test-pattern, replay:DIR or v4l2:/dev/videoN)"
            ),
        };
        Ok(CameraConfig {
            name: name.unwrap_or_else(|| match &source {
                Source::TestPattern => "pattern".to_owned(),
                Source::Replay(_) => "replay".to_owned(),
                Source::V4l2(p) => p
                    .file_name()
                    .map_or("camera".to_owned(), |n| n.to_string_lossy().into_owned()),
            }),
            source,
            size,
            fps: fps.unwrap_or(30.0),
            open: OpenAt::Start,
            functions: vec!["*".to_owned()],
        })
    }

    fn backend(&self) -> anyhow::Result<Box<dyn Backend>> {
        Ok(match &self.source {
            Source::TestPattern => {
                let (w, h) = self.size.unwrap_or((1280, 720));
                Box::new(TestPattern::new(w, h, self.fps))
            }
            Source::Replay(dir) => Box::new(Replay::new(dir, self.fps)),
            #[cfg(target_os = "linux")]
            Source::V4l2(dev) => Box::new(ferry_host::camera::V4l2::new(dev, self.size)),
            #[cfg(not(target_os = "linux"))]
            Source::V4l2(_) => bail!("camera {}: V4L2 exists on Linux only", self.name),
        })
    }

    /// Starts this camera's broker (it opens the device now or on first use).
    pub fn start(&self) -> anyhow::Result<Arc<Camera>> {
        Ok(Camera::start(
            &self.name,
            self.backend()?,
            self.fps,
            self.open,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_camera_specs() {
        let c = CameraConfig::from_spec("test-pattern").unwrap();
        assert_eq!(
            (c.name.as_str(), &c.source, c.size, c.fps),
            ("pattern", &Source::TestPattern, None, 30.0)
        );
        let c = CameraConfig::from_spec("lab=test-pattern:224x224@60").unwrap();
        assert_eq!(
            (c.name.as_str(), c.size, c.fps),
            ("lab", Some((224, 224)), 60.0)
        );
        let c = CameraConfig::from_spec("front=v4l2:/dev/video2:1280x720").unwrap();
        assert_eq!(c.source, Source::V4l2("/dev/video2".into()));
        assert_eq!(c.size, Some((1280, 720)));
        assert_eq!(
            CameraConfig::from_spec("v4l2:/dev/video0").unwrap().name,
            "video0"
        );
        let c = CameraConfig::from_spec("replay:/data/frames@5").unwrap();
        assert_eq!(
            (c.source, c.fps),
            (Source::Replay("/data/frames".into()), 5.0)
        );
        for (bad, says) in [
            ("webcam", "unknown backend `webcam`"),
            ("replay", "needs a path"),
            ("test-pattern:big", "not a size"),
            ("test-pattern:0x10", "each side must be 1 to 8192"),
            ("test-pattern@0", "not a frame rate"),
        ] {
            let e = format!("{:#}", CameraConfig::from_spec(bad).unwrap_err());
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
