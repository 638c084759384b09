//! The seed's k-means experiment: `ferry demo kmeans` through a fabric, the
//! scatter plot it writes, and `ferry bench kmeans` (Wasm against native, GPU
//! against CPU) on this machine.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use ferry_client::{Client, SubmitOptions, WitResult};
use ferry_host::{CallOptions, GpuChoice, Host, HostConfig, Limits, Value};
use serde::Deserialize;

/// The same source the `kmeans` component is built from, compiled natively.
use kmeans_lloyd as lloyd;

/// What the `cluster` export returns.
#[derive(Debug, Clone, Deserialize)]
pub struct Clustering {
    pub centers: Vec<f32>,
    pub codes: Vec<u32>,
    pub iterations: u32,
    pub seconds: f64,
    pub device: String,
}

/// Settings of one experiment.
#[derive(clap::Args, Clone)]
pub struct KmeansArgs {
    /// Points to cluster.
    #[arg(long, default_value_t = 400_000)]
    pub points: usize,
    /// Centers.
    #[arg(long, default_value_t = 7)]
    pub k: u32,
    /// Most assignment passes.
    #[arg(long, default_value_t = 60)]
    pub iterations: u32,
    /// Seed of the data and of the initial centers.
    #[arg(long, default_value_t = 2016)]
    pub seed: u64,
    /// The `kmeans` component (default: build it from this checkout).
    #[arg(long)]
    pub component: Option<PathBuf>,
}

/// `ferry demo kmeans`: the CPU and the GPU path through a running fabric,
/// then `kmeans.png`.
pub async fn demo(
    client: &Client,
    endpoint: &str,
    args: &KmeansArgs,
    out: &Path,
) -> anyhow::Result<()> {
    let path = crate::guests::component("kmeans", args.component.clone())?;
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times of one path: whole calls and the function's own count.
#[derive(Default)]
struct Timings {
    whole: Vec<f64>,
    inside: Vec<f64>,
    last: Option<Clustering>,
}

/// Medians of one path, and its last result.
struct Summary {
    whole: f64,
    inside: f64,
    last: Clustering,
}

impl Timings {
    fn add(&mut self, (secs, c): (f64, Clustering)) {
        self.whole.push(secs);
        self.inside.push(c.seconds);
        self.last = Some(c);
    }

    /// Prints this path's two rows against `native` seconds.
    fn report(self, name: &str, native: f64) -> anyhow::Result<Summary> {
        let last = self.last.context("no runs")?;
        let (whole, inside) = (median(self.whole), median(self.inside));
        for (what, secs) in [("whole call", whole), ("inside the function", inside)] {
            println!(
                "| {name}, {what} | {} | {secs:.3} | {:.2} |",
                last.iterations,
                secs / native
            );
        }
        Ok(Summary {
            whole,
            inside,
            last,
        })
    }
}

/// `ferry bench kmeans`: the seed's sizes, native against Wasm on the CPU and
/// the GPU path against both, on this machine's best adapter.
pub fn bench(args: &KmeansArgs, runs: u32) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let host = Host::new(HostConfig {
        gpu: GpuChoice::Auto,
        ..HostConfig::default()
    })?;
    let f = host.load_file(crate::guests::component("kmeans", args.component.clone())?)?;
    let export = f.export("cluster")?;
    // Uniform random points, as in the seed: they keep k-means busy for all
    // its iterations.
    let mut rng = lloyd::Rng::new(args.seed);
    let points: Vec<f32> = (0..2 * args.points)
        .map(|_| rng.next_f64() as f32 * 100.0)
        .collect();
    let encoded = |gpu: bool| {
        rmp_serde::to_vec(&(&points, args.k, args.iterations, gpu, args.seed))
            .map_err(anyhow::Error::from)
            .and_then(|b| Ok(export.args_from_msgpack(&b)?))
    };
    let cpu_args: Vec<Value> = encoded(false)?;
    let gpu_args: Vec<Value> = encoded(true)?;
    let call = |args: &[Value]| -> anyhow::Result<(f64, Clustering)> {
        let start = Instant::now();
        let out = runtime.block_on(host.call(
            &f,
            export,
            args,
            &Limits::default(),
            &CallOptions::default(),
        ))?;
        let secs = start.elapsed().as_secs_f64();
        let json = export.result_to_json(out.result.as_ref())?;
        let ok = json
            .get("ok")
            .cloned()
            .with_context(|| format!("kmeans failed: {}", json["err"]))?;
        Ok((secs, serde_json::from_value(ok)?))
    };

    println!(
        "k-means {}×2, k = {}, {} iterations at most, {runs} runs each, interleaved (medians)\n",
        args.points, args.k, args.iterations
    );
    let gpu = host.gpu().map(|g| g.info().clone());
    // Runs of each path take turns, so that machine noise hits all alike.
    let (mut native, mut native_iterations) = (Vec::new(), 0);
    let mut wasm = Timings::default();
    let mut on_gpu = Timings::default();
    for _ in 0..runs {
        let start = Instant::now();
        let r = lloyd::cluster(&points, args.k, args.iterations, args.seed)
            .map_err(anyhow::Error::msg)?;
        native.push(start.elapsed().as_secs_f64());
        native_iterations = r.iterations;
        wasm.add(call(&cpu_args)?);
        if gpu.is_some() {
            on_gpu.add(call(&gpu_args)?);
        }
    }
    let native_s = median(native);
    println!("| path | iterations | median seconds | against native |");
    println!("|---|---|---|---|");
    println!("| native CPU (same Rust) | {native_iterations} | {native_s:.3} | 1.00 |");
    let cpu = wasm.report("Wasm CPU", native_s)?;
    let Some(adapter) = gpu else {
        println!("\nno GPU adapter on this machine: GPU path not measured");
        return Ok(());
    };
    let g = on_gpu.report("Wasm GPU", native_s)?;
    let same = cpu
        .last
        .codes
        .iter()
        .zip(&g.last.codes)
        .filter(|(a, b)| a == b)
        .count();
    println!(
        "\nGPU: {adapter}\nGPU against Wasm CPU: {:.2}× (whole call), {:.2}× (inside the function); {same} of {} codes agree",
        cpu.whole / g.whole,
        cpu.inside / g.inside,
        cpu.last.codes.len()
    );
    Ok(())
}
