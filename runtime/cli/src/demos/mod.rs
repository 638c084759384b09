//! `ferry demo`: shows ferry working, from a fresh checkout; one file per
//! seed experiment.

mod camera;
mod kmeans;
mod pi;
mod pipeline;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_host::{CallOptions, Host, HostConfig, Limits, LogEvent};

pub use camera::{camera_snapshot, demo_camera};
pub use kmeans::{demo as kmeans_demo, demo_kmeans};
pub use pi::demo_pi;
pub(crate) use pi::pi_experiment;
pub use pipeline::{demo_pipeline, pipeline_experiment};

#[derive(clap::Subcommand)]
pub enum DemoCommand {
    /// Build the example components and run them on this machine.
    Local,
    /// The seed experiment against a running fabric: 100 × pi(10^6) in
    /// blocks of 1, 2, 4, 5, 10, 20 and 100 concurrent tasks.
    Pi {
        #[arg(long, default_value = "local")]
        endpoint: String,
        /// The `pi` component (default: build it from this checkout).
        #[arg(long)]
        component: Option<std::path::PathBuf>,
    },
    /// The seed's k-means against a running fabric: 400,000 points, k = 7,
    /// on the endpoint's CPU and then its GPU; writes a scatter plot.
    Kmeans {
        #[arg(long, default_value = "local")]
        endpoint: String,
        #[command(flatten)]
        args: ferry_local::KmeansArgs,
        /// Where the scatter plot goes.
        #[arg(long, default_value = "kmeans.png")]
        out: std::path::PathBuf,
    },
    /// The seed's Figure 2 as one workflow: points generated on one endpoint,
    /// clustered by kmeans on another, summarised; submitted at once, and
    /// only the summary comes back.
    Pipeline {
        /// Where the points are generated and summarised.
        #[arg(long, default_value = "local")]
        generate_on: String,
        /// Where kmeans runs.
        #[arg(long, default_value = "local")]
        cluster_on: String,
        #[arg(long, default_value_t = 400_000)]
        points: u32,
        #[arg(long, default_value_t = 7)]
        k: u32,
        #[arg(long, default_value_t = 2016)]
        seed: u64,
    },
    /// A snapshot from the endpoint's camera, encoded as PNG in the
    /// function (`examples/camera-snapshot`); `ferry up` has a test-pattern
    /// camera.
    Camera {
        #[arg(long, default_value = "local")]
        endpoint: String,
        /// A camera name (default: the first granted).
        #[arg(long)]
        device: Option<String>,
        #[arg(long, default_value_t = 640)]
        width: u32,
        #[arg(long, default_value_t = 360)]
        height: u32,
        #[arg(long, default_value = "camera.png")]
        out: std::path::PathBuf,
    },
}

pub fn run(service: &crate::fabric::ServiceArg, cmd: DemoCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DemoCommand::Local => local(),
        DemoCommand::Pi {
            endpoint,
            component,
        } => demo_pi(service, endpoint, component),
        DemoCommand::Kmeans {
            endpoint,
            args,
            out,
        } => demo_kmeans(service, endpoint, args, out),
        DemoCommand::Pipeline {
            generate_on,
            cluster_on,
            points,
            k,
            seed,
        } => demo_pipeline(service, &generate_on, &cluster_on, points, k, seed),
        DemoCommand::Camera {
            endpoint,
            device,
            width,
            height,
            out,
        } => demo_camera(service, &endpoint, device, (width, height), &out),
    }
}

fn local() -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let host = Host::new(HostConfig {
        cache_dir: crate::local::default_cache_dir(),
        ..HostConfig::default()
    })?;
    let opts = CallOptions {
        log: Some(Arc::new(|e: &LogEvent| println!("    guest log: {e}"))),
        ..CallOptions::default()
    };

    let hello = host.load_file(ferry_local::component("hello", None)?)?;
    println!("hello  {}", hello.id());
    for e in hello.exports() {
        println!("  {e}");
    }
    let greet = hello.export("greet")?;
    let out = runtime.block_on(host.call(
        &hello,
        greet,
        &greet.args_from_json_strs(&["\"scientist\""])?,
        &Limits::default(),
        &opts,
    ))?;
    println!(
        "  greet(\"scientist\") = {}",
        greet.result_to_json(out.result.as_ref())?
    );

    let pi = host.load_file(ferry_local::component("pi", None)?)?;
    println!("\npi     {}", pi.id());
    let export = pi.export("pi")?;
    for seed in [1, 2, 3] {
        let args = export.args_from_json_strs(&["1000000".to_owned(), seed.to_string()])?;
        let start = Instant::now();
        let out = runtime.block_on(host.call(&pi, export, &args, &Limits::default(), &opts))?;
        println!(
            "  pi(10^6, seed {seed}) = {}   ({:.1} ms)",
            export.result_to_json(out.result.as_ref())?,
            start.elapsed().as_secs_f64() * 1e3
        );
    }

    let faults = host.load_file(ferry_local::component("faults", None)?)?;
    println!(
        "\nfaults {}  (each failure is contained; the host keeps serving)",
        faults.id()
    );
    let tight = Limits {
        timeout: Duration::from_millis(200),
        memory: 32 << 20,
        ..Limits::default()
    };
    for (name, args) in [
        ("spin", vec![]),
        ("hog", vec!["512"]),
        ("boom", vec!["\"on purpose\""]),
    ] {
        let export = faults.export(name)?;
        let vals = export.args_from_json_strs(&args)?;
        match runtime.block_on(host.call(&faults, export, &vals, &tight, &opts)) {
            Ok(_) => println!("  {name}: unexpectedly succeeded"),
            Err(e) => println!(
                "  {name}: {} — {}",
                e.kind(),
                e.to_string().lines().next().unwrap_or_default()
            ),
        }
    }
    let stats = host.stats();
    println!(
        "\ncompiled {} component(s), {} from the on-disk cache; pooling allocator: {}",
        stats.compiled,
        stats.disk_hits,
        host.pooling()
    );
    Ok(ExitCode::SUCCESS)
}
