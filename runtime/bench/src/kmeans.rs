//! `ferry bench kmeans`: the seed's k-means, Wasm against native on the CPU
//! and the GPU path against both, on this machine's best adapter.

use std::time::Instant;

use anyhow::Context;
use ferry_host::{CallOptions, GpuChoice, Host, HostConfig, Limits, Value};
use ferry_local::{Clustering, KmeansArgs};

use crate::report::{Figure, Report, Unit};

/// The same source the `kmeans` component is built from, compiled natively.
use kmeans_lloyd as lloyd;

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

    /// Prints this path's two rows against `native` seconds, and adds its
    /// figures to `report`.
    fn report(self, name: &str, native: &[f64], report: &mut Report) -> anyhow::Result<Summary> {
        let last = self.last.context("no runs")?;
        let ratios = self.inside.iter().zip(native).map(|(w, n)| w / n).collect();
        let mut ratio = Figure::new(
            "kmeans",
            format!("{name} / native, inside the function"),
            Unit::Ratio,
            ratios,
        );
        if name == "Wasm CPU" {
            ratio = ratio.target("≤ 1.25", 1.25, false);
        }
        report.add(Figure::new(
            "kmeans",
            format!("{name}, whole call"),
            Unit::Seconds,
            self.whole.clone(),
        ));
        report.add(Figure::new(
            "kmeans",
            format!("{name}, inside the function"),
            Unit::Seconds,
            self.inside.clone(),
        ));
        report.add(ratio);
        let native = median(native.to_vec());
        let (whole, inside) = (median(self.whole), median(self.inside));
        for (what, secs) in [("whole call", whole), ("inside the function", inside)] {
            if report.tables {
                println!(
                    "| {name}, {what} | {} | {secs:.3} | {:.2} |",
                    last.iterations,
                    secs / native
                );
            }
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
pub fn bench(args: &KmeansArgs, runs: u32, report: &mut Report) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let host = Host::new(HostConfig {
        gpu: GpuChoice::Auto,
        ..HostConfig::default()
    })?;
    let f = host.load_file(ferry_local::component("kmeans", args.component.clone())?)?;
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

    if report.tables {
        println!(
            "k-means {}×2, k = {}, {} iterations at most, {runs} runs each, interleaved (medians)\n",
            args.points, args.k, args.iterations
        );
    }
    let gpu = host.gpu().map(|g| g.info().clone());
    // Runs of each path take turns, so that machine noise hits all alike.
    let (mut native, mut native_run) = (Vec::new(), None);
    let mut wasm = Timings::default();
    let mut on_gpu = Timings::default();
    for _ in 0..runs {
        let start = Instant::now();
        let r = lloyd::cluster(&points, args.k, args.iterations, args.seed)
            .map_err(anyhow::Error::msg)?;
        native.push(start.elapsed().as_secs_f64());
        native_run = Some(r);
        wasm.add(call(&cpu_args)?);
        if gpu.is_some() {
            on_gpu.add(call(&gpu_args)?);
        }
    }
    let native_run = native_run.context("no runs")?;
    let native_s = median(native.clone());
    report.add(Figure::new(
        "kmeans",
        "native CPU (same Rust)",
        Unit::Seconds,
        native.clone(),
    ));
    if report.tables {
        println!("| path | iterations | median seconds | against native |");
        println!("|---|---|---|---|");
        println!(
            "| native CPU (same Rust) | {} | {native_s:.3} | 1.00 |",
            native_run.iterations
        );
    }
    let cpu = wasm.report("Wasm CPU", &native, report)?;
    report.check(
        "kmeans",
        format!(
            "Wasm CPU gives native's codes and iterations ({} points, {} iterations)",
            native_run.codes.len(),
            native_run.iterations
        ),
        cpu.last.codes == native_run.codes && cpu.last.iterations == native_run.iterations,
    );
    let Some(adapter) = gpu else {
        report.skip("kmeans", "GPU path: no GPU adapter on this machine");
        if report.tables {
            println!("\nno GPU adapter on this machine: GPU path not measured");
        }
        return Ok(());
    };
    let g = on_gpu.report("Wasm GPU", &native, report)?;
    let same = cpu
        .last
        .codes
        .iter()
        .zip(&g.last.codes)
        .filter(|(a, b)| a == b)
        .count();
    let n = cpu.last.codes.len();
    report.check(
        "kmeans",
        format!("{same} of {n} GPU codes agree with the CPU's (at least 99%), on {adapter}"),
        same * 100 >= n * 99,
    );
    if !report.tables {
        return Ok(());
    }
    println!(
        "\nGPU: {adapter}\nGPU against Wasm CPU: {:.2}× (whole call), {:.2}× (inside the function); {same} of {} codes agree",
        cpu.whole / g.whole,
        cpu.inside / g.inside,
        cpu.last.codes.len()
    );
    Ok(())
}
