//! The seed's k-means on an endpoint's CPU and GPU, and its plot.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use ferry_client::{Client, SubmitOptions, WitResult};
use ferry_local::{Clustering, KmeansArgs};

use crate::fabric::{ServiceArg, runtime};

/// The same source the `kmeans` component is built from, compiled natively.
use kmeans_lloyd as lloyd;

/// The seed's k-means on the endpoint's CPU and GPU, and its plot.
pub fn demo_kmeans(
    service: &ServiceArg,
    endpoint: String,
    args: KmeansArgs,
    out: PathBuf,
) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let client = service.connect().await?;
        demo(&client, &endpoint, &args, &out).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// `ferry demo kmeans`: the CPU and the GPU path through a running fabric,
/// then `kmeans.png`.
pub async fn demo(
    client: &Client,
    endpoint: &str,
    args: &KmeansArgs,
    out: &Path,
) -> anyhow::Result<()> {
    let path = ferry_local::component("kmeans", args.component.clone())?;
    let f = client.register_file(&path).await?;
    let points = lloyd::generate(args.points, 7, 1.6, args.seed);
    println!(
        "\nk-means: {} normal-distributed 2-d points around 7 means, k = {}, at most {} iterations; kmeans is {}\n",
        args.points, args.k, args.iterations, f.id
    );
    let status = client.status().await?;
    let gpu = status
        .endpoints
        .iter()
        .find(|e| e.name == endpoint)
        .and_then(|e| e.gpu.clone());

    let run = |use_gpu: bool| {
        let points = &points;
        let id = f.id.clone();
        async move {
            let options = if use_gpu {
                SubmitOptions::gpu()
            } else {
                SubmitOptions::default()
            };
            let start = Instant::now();
            let r: WitResult<Clustering, String> = client
                .submit_with(
                    endpoint,
                    &id,
                    "cluster",
                    &(points, args.k, args.iterations, use_gpu, args.seed),
                    &options,
                )
                .await?
                .await?;
            let c = Result::from(r).map_err(anyhow::Error::msg)?;
            anyhow::Ok((c, start.elapsed()))
        }
    };
    let (cpu, cpu_wall) = run(false).await?;
    println!("| path | device | iterations | seconds in the function | seconds end to end |");
    println!("|---|---|---|---|---|");
    let row = |name: &str, c: &Clustering, wall: Duration| {
        println!(
            "| {name} | {} | {} | {:.3} | {:.3} |",
            c.device,
            c.iterations,
            c.seconds,
            wall.as_secs_f64()
        )
    };
    row("CPU", &cpu, cpu_wall);
    let shown = match &gpu {
        None => {
            println!(
                "\nendpoint `{endpoint}` has no GPU adapter, so only the CPU path ran (on Linux, `apt-get install mesa-vulkan-drivers` gives lavapipe)"
            );
            cpu
        }
        Some(adapter) => {
            let (g, gpu_wall) = run(true).await?;
            row("GPU", &g, gpu_wall);
            let same = cpu
                .codes
                .iter()
                .zip(&g.codes)
                .filter(|(a, b)| a == b)
                .count();
            let shift = cpu
                .centers
                .iter()
                .zip(&g.centers)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            println!(
                "\nGPU ({} via {}, {}) against CPU: speed-up {:.2}× in the function; {same} of {} codes agree; centers within {shift:.1e}",
                adapter.name,
                adapter.backend,
                adapter.device_type,
                cpu.seconds / g.seconds,
                cpu.codes.len()
            );
            g
        }
    };
    plot(&points, &shown, 2_000, out)?;
    println!(
        "wrote {} (the first 2,000 points coloured by cluster, centers marked)",
        out.display()
    );
    Ok(())
}

/// Tableau's ten colours: distinct and readable.
const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// A scatter plot of the first `shown` points coloured by code, each center
/// marked with a cross, as an 800×800 PNG.
pub fn plot(points: &[f32], c: &Clustering, shown: usize, out: &Path) -> anyhow::Result<()> {
    const SIZE: usize = 800;
    const MARGIN: f32 = 40.0;
    let n = (points.len() / 2).min(shown).min(c.codes.len());
    let xs = (0..n)
        .map(|i| points[2 * i])
        .chain(c.centers.iter().step_by(2).copied());
    let ys = (0..n)
        .map(|i| points[2 * i + 1])
        .chain(c.centers.iter().skip(1).step_by(2).copied());
    let (x0, x1) = xs.fold((f32::MAX, f32::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (y0, y1) = ys.fold((f32::MAX, f32::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let span = (x1 - x0).max(y1 - y0).max(1e-6);
    let scale = (SIZE as f32 - 2.0 * MARGIN) / span;
    // Equal scales on both axes, the data centred in the square.
    let ox = MARGIN + (span - (x1 - x0)) * scale / 2.0;
    let oy = MARGIN + (span - (y1 - y0)) * scale / 2.0;
    let to_px = |x: f32, y: f32| (ox + (x - x0) * scale, SIZE as f32 - oy - (y - y0) * scale);
    let mut img = vec![255u8; SIZE * SIZE * 3];
    let mut put = |x: i64, y: i64, rgb: [u8; 3]| {
        if (0..SIZE as i64).contains(&x) && (0..SIZE as i64).contains(&y) {
            let at = (y as usize * SIZE + x as usize) * 3;
            img[at..at + 3].copy_from_slice(&rgb);
        }
    };
    // A frame around the plotting area.
    for t in 0..SIZE as i64 {
        for edge in [MARGIN as i64 / 2, SIZE as i64 - MARGIN as i64 / 2] {
            put(t, edge, [200, 200, 200]);
            put(edge, t, [200, 200, 200]);
        }
    }
    for i in 0..n {
        let (px, py) = to_px(points[2 * i], points[2 * i + 1]);
        let rgb = PALETTE[c.codes[i] as usize % PALETTE.len()];
        for dy in -2i64..=2 {
            for dx in -2i64..=2 {
                if dx * dx + dy * dy <= 5 {
                    put(px as i64 + dx, py as i64 + dy, rgb);
                }
            }
        }
    }
    for j in 0..c.centers.len() / 2 {
        let (px, py) = to_px(c.centers[2 * j], c.centers[2 * j + 1]);
        let (px, py) = (px as i64, py as i64);
        for (width, rgb) in [(3i64, [255, 255, 255]), (1, [0, 0, 0])] {
            for t in -12i64..=12 {
                for w in -width..=width {
                    put(px + t, py + t + w, rgb);
                    put(px + t, py - t + w, rgb);
                }
            }
        }
    }
    let file =
        std::fs::File::create(out).with_context(|| format!("cannot write {}", out.display()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), SIZE as u32, SIZE as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&img)?;
    writer.finish()?;
    Ok(())
}
