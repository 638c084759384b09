//! A snapshot from the endpoint's camera, encoded as PNG in the guest: the
//! endpoint owns the device and scales the frame; the function only asks.

use ferry_guest::blobs::Writer;
use ferry_guest::camera::{self, Options, PixelFormat};

wit_bindgen::generate!({
    path: ["../../guest-sdk/wit", "wit"],
    world: "ferry-examples:camera-snapshot/camera-snapshot",
    with: { "ferry:host/blobs@0.1.0": ferry_guest::bindings::ferry::host::blobs },
});

struct Snapshot;

fn png_of(device: Option<String>, width: u32, height: u32) -> Result<Vec<u8>, String> {
    let mut options = Options::default().format(PixelFormat::Rgb8);
    options.device = device;
    if width > 0 {
        options.width = Some(width);
    }
    if height > 0 {
        options.height = Some(height);
    }
    let frame = camera::capture(&options).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, frame.width, frame.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer
        .write_image_data(&frame.data)
        .map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

impl Guest for Snapshot {
    fn snapshot(device: Option<String>, width: u32, height: u32) -> Result<Vec<u8>, String> {
        png_of(device, width, height)
    }

    fn snapshot_blob(device: Option<String>, width: u32, height: u32) -> Result<BlobRef, String> {
        let png = png_of(device, width, height)?;
        let writer = Writer::new()?;
        writer.write(&png)?;
        writer.finish()
    }

    fn grab(width: u32, height: u32, newer_than: Option<u64>) -> Result<u64, String> {
        let mut options = Options::default()
            .size(width, height)
            .format(PixelFormat::Rgb8);
        options.newer_than = newer_than;
        let frame = camera::capture(&options).map_err(|e| e.to_string())?;
        if frame.data.len() != (width * height * 3) as usize {
            return Err(format!(
                "a {width}x{height} frame of {} bytes",
                frame.data.len()
            ));
        }
        Ok(frame.sequence)
    }

    fn devices() -> Vec<String> {
        camera::list().into_iter().map(|d| d.name).collect()
    }
}

export!(Snapshot);
