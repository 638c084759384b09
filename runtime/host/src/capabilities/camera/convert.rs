//! Frame conversion, done host-side so that a guest asks for the size and
//! format it wants: decode to RGB, resize (bilinear), encode to the target.

use super::{Frame, PixelFormat};

/// RGB, 3 bytes a pixel.
pub(crate) struct Rgb {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

fn check_len(f: &Frame, per_pixel: usize) -> Result<(), String> {
    let want = f.width as usize * f.height as usize * per_pixel;
    if f.data.len() < want {
        return Err(format!(
            "a {}x{} {} frame needs {want} bytes, the device gave {}",
            f.width,
            f.height,
            f.format.name(),
            f.data.len()
        ));
    }
    Ok(())
}

/// BT.601 (studio range) YCbCr to RGB.
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = (i32::from(y) - 16) * 298;
    let d = i32::from(u) - 128;
    let e = i32::from(v) - 128;
    let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [
        clamp(c + 409 * e),
        clamp(c - 100 * d - 208 * e),
        clamp(c + 516 * d),
    ]
}

fn rgb_to_yuv(p: &[u8]) -> (u8, u8, u8) {
    let (r, g, b) = (i32::from(p[0]), i32::from(p[1]), i32::from(p[2]));
    let y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16;
    let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
    let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
    (y as u8, u.clamp(0, 255) as u8, v.clamp(0, 255) as u8)
}

pub(crate) fn to_rgb(f: &Frame) -> Result<Rgb, String> {
    let n = f.width as usize * f.height as usize;
    let data = match f.format {
        PixelFormat::Rgb8 => {
            check_len(f, 3)?;
            f.data[..n * 3].to_vec()
        }
        PixelFormat::Rgba8 => {
            check_len(f, 4)?;
            f.data[..n * 4]
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect()
        }
        PixelFormat::Gray8 => {
            check_len(f, 1)?;
            f.data[..n].iter().flat_map(|&g| [g, g, g]).collect()
        }
        PixelFormat::Yuyv => {
            check_len(f, 2)?;
            let mut out = Vec::with_capacity(n * 3);
            for q in f.data[..n * 2].chunks_exact(4) {
                out.extend_from_slice(&yuv_to_rgb(q[0], q[1], q[3]));
                out.extend_from_slice(&yuv_to_rgb(q[2], q[1], q[3]));
            }
            out
        }
        PixelFormat::Mjpeg => {
            let mut d = jpeg_decoder::Decoder::new(&f.data[..]);
            let pixels = d
                .decode()
                .map_err(|e| format!("decoding the device's JPEG frame: {e}"))?;
            let info = d.info().ok_or("a JPEG frame without a header")?;
            let data = match info.pixel_format {
                jpeg_decoder::PixelFormat::RGB24 => pixels,
                jpeg_decoder::PixelFormat::L8 => pixels.iter().flat_map(|&g| [g, g, g]).collect(),
                other => return Err(format!("JPEG frames in {other:?} are not supported")),
            };
            return Ok(Rgb {
                width: u32::from(info.width),
                height: u32::from(info.height),
                data,
            });
        }
    };
    Ok(Rgb {
        width: f.width,
        height: f.height,
        data,
    })
}

/// Bilinear resize; the identity when the size is unchanged.
pub(crate) fn resize(src: Rgb, width: u32, height: u32) -> Rgb {
    if (src.width, src.height) == (width, height) {
        return src;
    }
    let (sw, sh) = (src.width as usize, src.height as usize);
    let (dw, dh) = (width as usize, height as usize);
    let mut out = vec![0u8; dw * dh * 3];
    let sx = sw as f32 / dw as f32;
    let sy = sh as f32 / dh as f32;
    for y in 0..dh {
        let fy = ((y as f32 + 0.5) * sy - 0.5).clamp(0.0, (sh - 1) as f32);
        let y0 = fy as usize;
        let y1 = (y0 + 1).min(sh - 1);
        let wy = fy - y0 as f32;
        for x in 0..dw {
            let fx = ((x as f32 + 0.5) * sx - 0.5).clamp(0.0, (sw - 1) as f32);
            let x0 = fx as usize;
            let x1 = (x0 + 1).min(sw - 1);
            let wx = fx - x0 as f32;
            for c in 0..3 {
                let p = |xx: usize, yy: usize| f32::from(src.data[(yy * sw + xx) * 3 + c]);
                let top = p(x0, y0) * (1.0 - wx) + p(x1, y0) * wx;
                let bottom = p(x0, y1) * (1.0 - wx) + p(x1, y1) * wx;
                out[(y * dw + x) * 3 + c] = (top * (1.0 - wy) + bottom * wy).round() as u8;
            }
        }
    }
    Rgb {
        width,
        height,
        data: out,
    }
}

fn from_rgb(rgb: &Rgb, format: PixelFormat) -> Result<Vec<u8>, String> {
    Ok(match format {
        PixelFormat::Rgb8 => rgb.data.clone(),
        PixelFormat::Rgba8 => rgb
            .data
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        PixelFormat::Gray8 => rgb.data.chunks_exact(3).map(|p| rgb_to_yuv(p).0).collect(),
        PixelFormat::Yuyv => {
            if !rgb.width.is_multiple_of(2) {
                return Err(format!(
                    "yuyv needs an even width, not {} (it packs pixel pairs)",
                    rgb.width
                ));
            }
            let mut out = Vec::with_capacity(rgb.data.len() / 3 * 2);
            for pair in rgb.data.chunks_exact(6) {
                let (y0, u0, v0) = rgb_to_yuv(&pair[..3]);
                let (y1, u1, v1) = rgb_to_yuv(&pair[3..]);
                let u = ((u16::from(u0) + u16::from(u1)) / 2) as u8;
                let v = ((u16::from(v0) + u16::from(v1)) / 2) as u8;
                out.extend_from_slice(&[y0, u, y1, v]);
            }
            out
        }
        PixelFormat::Mjpeg => {
            return Err(
                "this endpoint does not encode JPEG; ask for mjpeg only from a camera that sends it, at its own size"
                    .into(),
            );
        }
    })
}

/// Largest side a conversion may produce.
pub(crate) const MAX_SIDE: u32 = 8192;

/// The size and format `convert` makes of `frame`: unset fields keep the
/// frame's; only a width or only a height keeps its aspect ratio.
pub(crate) fn target(
    frame: &Frame,
    width: Option<u32>,
    height: Option<u32>,
    format: Option<PixelFormat>,
) -> Result<(u32, u32, PixelFormat), String> {
    let format = format.unwrap_or(frame.format);
    let (width, height) = match (width, height) {
        (Some(w), Some(h)) => (w, h),
        (Some(w), None) => (
            w,
            (u64::from(w) * u64::from(frame.height) / u64::from(frame.width.max(1))).max(1) as u32,
        ),
        (None, Some(h)) => (
            (u64::from(h) * u64::from(frame.width) / u64::from(frame.height.max(1))).max(1) as u32,
            h,
        ),
        (None, None) => (frame.width, frame.height),
    };
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(format!(
            "a {width}x{height} frame is out of range (each side 1 to {MAX_SIDE})"
        ));
    }
    Ok((width, height, format))
}

/// `frame` at the asked size and format; unset fields keep the frame's.
pub(crate) fn convert(
    frame: &Frame,
    width: Option<u32>,
    height: Option<u32>,
    format: Option<PixelFormat>,
) -> Result<Frame, String> {
    if frame.width == 0 || frame.height == 0 {
        return Err(format!(
            "the device gave an empty {}x{} frame",
            frame.width, frame.height
        ));
    }
    let (width, height, format) = target(frame, width, height, format)?;
    if (width, height, format) == (frame.width, frame.height, frame.format) {
        return Ok(frame.clone());
    }
    let rgb = resize(to_rgb(frame)?, width, height);
    Ok(Frame {
        width,
        height,
        format,
        timestamp_ns: frame.timestamp_ns,
        sequence: frame.sequence,
        data: from_rgb(&rgb, format)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: u32, h: u32, format: PixelFormat, data: Vec<u8>) -> Frame {
        Frame {
            width: w,
            height: h,
            format,
            timestamp_ns: 0,
            sequence: 1,
            data,
        }
    }

    #[test]
    fn formats_round_trip_through_rgb() {
        let rgb: Vec<u8> = (0..4 * 2 * 3).map(|i| (i * 10) as u8).collect();
        let f = frame(4, 2, PixelFormat::Rgb8, rgb.clone());
        let rgba = convert(&f, None, None, Some(PixelFormat::Rgba8)).unwrap();
        assert_eq!(rgba.data.len(), 4 * 2 * 4);
        assert_eq!(rgba.data[3], 255);
        let back = convert(&rgba, None, None, Some(PixelFormat::Rgb8)).unwrap();
        assert_eq!(back.data, rgb);
        // YUYV is lossy (shared chroma): within a few levels for grey-ish input.
        let grey = frame(2, 1, PixelFormat::Rgb8, vec![100, 100, 100, 200, 200, 200]);
        let yuyv = convert(&grey, None, None, Some(PixelFormat::Yuyv)).unwrap();
        assert_eq!(yuyv.data.len(), 4);
        let again = convert(&yuyv, None, None, Some(PixelFormat::Rgb8)).unwrap();
        for (a, b) in again.data.iter().zip(&grey.data) {
            assert!(a.abs_diff(*b) <= 3, "{:?} vs {:?}", again.data, grey.data);
        }
        let g = convert(&grey, None, None, Some(PixelFormat::Gray8)).unwrap();
        assert!(
            g.data[0].abs_diff(102) <= 3 && g.data[1].abs_diff(188) <= 3,
            "{:?}",
            g.data
        );
    }

    #[test]
    fn resizing_keeps_flat_colours_and_the_aspect_ratio_when_asked() {
        let f = frame(8, 4, PixelFormat::Rgb8, [10u8, 20, 30].repeat(32));
        let small = convert(&f, Some(4), None, None).unwrap();
        assert_eq!((small.width, small.height), (4, 2));
        assert!(small.data.chunks(3).all(|p| p == [10, 20, 30]));
        let e = convert(&f, Some(0), Some(3), None).unwrap_err();
        assert!(e.contains("out of range"), "{e}");
        let e = convert(&f, Some(3), Some(3), Some(PixelFormat::Yuyv)).unwrap_err();
        assert!(e.contains("even width"), "{e}");
        let e = convert(&f, None, None, Some(PixelFormat::Mjpeg)).unwrap_err();
        assert!(e.contains("does not encode JPEG"), "{e}");
    }

    #[test]
    fn a_short_frame_is_an_error_not_a_panic() {
        let f = frame(4, 4, PixelFormat::Yuyv, vec![0; 7]);
        let e = convert(&f, Some(2), Some(2), Some(PixelFormat::Rgb8)).unwrap_err();
        assert!(e.contains("needs 32 bytes, the device gave 7"), "{e}");
        let empty = frame(0, 4, PixelFormat::Rgb8, vec![]);
        let e = convert(&empty, Some(2), Some(2), None).unwrap_err();
        assert!(e.contains("empty 0x4 frame"), "{e}");
    }
}
