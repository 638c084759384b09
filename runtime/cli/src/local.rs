//! `ferry inspect` and `ferry run`: a component on this machine, no fabric.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use ferry_host::{CallOptions, Host, HostConfig, Limits, WitType, parse_bytes, parse_duration};

#[derive(clap::Args)]
pub struct RunArgs {
    /// The component (`.wasm`).
    file: PathBuf,
    /// The export: its short name, or `interface#name`.
    export: String,
    /// One JSON value per parameter, e.g. `ferry run pi.wasm pi 1000000 42`.
    /// A string parameter also takes bare text: `greet World`.
    #[arg(allow_negative_numbers = true)]
    args: Vec<String>,
    /// Wall-clock limit, e.g. `5s`, `250ms`.
    #[arg(long, default_value = "60s", value_parser = parse_duration_arg)]
    timeout: std::time::Duration,
    /// Linear-memory limit, e.g. `64MiB`.
    #[arg(long, default_value = "1GiB", value_parser = parse_bytes_arg)]
    memory: u64,
    /// Result-size limit.
    #[arg(long, default_value = "64MiB", value_parser = parse_bytes_arg)]
    output: u64,
    /// Where compiled components are cached (default: the user cache dir).
    #[arg(long, env = "FERRY_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile in memory only; leave no artifact behind.
    #[arg(long)]
    no_cache: bool,
    /// Print the guest's log lines and progress on stderr as they happen.
    #[arg(long, short)]
    verbose: bool,
    /// The GPU lent to a function that imports `ferry:host/gpu`: `auto`,
    /// `none`, or part of an adapter's name.
    #[arg(long, default_value = "auto")]
    gpu: String,
    /// A host directory the function may see: `HOST:GUEST` (read-write) or
    /// `HOST:GUEST:ro`; repeatable. It also gets a private `/scratch`.
    #[arg(long = "mount", value_name = "HOST:GUEST[:ro]")]
    mounts: Vec<ferry_host::Mount>,
    /// Where `ferry:host/blobs` finds blobs (laid out as the service stores
    /// them; default: the local service's, under its data directory).
    #[arg(long, value_name = "DIR")]
    blobs: Option<PathBuf>,
    /// A camera the function may capture from: `[NAME=]test-pattern[:WxH][@FPS]`,
    /// `[NAME=]replay:DIR[@FPS]` or `[NAME=]v4l2:/dev/videoN[:WxH]`; repeatable.
    #[arg(long = "camera", value_name = "SPEC", value_parser = parse_camera_arg)]
    cameras: Vec<ferry_endpoint::CameraConfig>,
    /// A variable the function sees: `NAME=VALUE`; repeatable. Nothing of
    /// this shell's environment reaches it otherwise.
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = |s: &str| s.parse::<ferry_host::EnvVar>().map_err(|e| e.to_string()))]
    env: Vec<ferry_host::EnvVar>,
    /// Write the result to this file: bytes (`list<u8>`) as they are, a
    /// string as text, a `blob-ref` as the blob's bytes.
    #[arg(long, short = 'o')]
    out: Option<PathBuf>,
}

pub fn parse_camera_arg(s: &str) -> Result<ferry_endpoint::CameraConfig, String> {
    ferry_endpoint::CameraConfig::from_spec(s).map_err(|e| format!("{e:#}"))
}

pub fn parse_duration_arg(s: &str) -> Result<std::time::Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

pub fn parse_bytes_arg(s: &str) -> Result<u64, String> {
    parse_bytes(s).map_err(|e| e.to_string())
}

/// `$XDG_CACHE_HOME/ferry/components`, else `~/.cache/ferry/components`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("ferry").join("components"))
}

fn read_component(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read component `{}`", path.display()))
}

pub fn inspect(file: &Path) -> anyhow::Result<ExitCode> {
    let bytes = read_component(file)?;
    // Inspecting compiles, which is also the full validation; no artifact is kept.
    let host = Host::new(HostConfig {
        pooling: false,
        ..HostConfig::default()
    })?;
    let function = host.load(&bytes)?;
    println!("blake3: {}", function.id());
    let (added, written): (Vec<_>, Vec<_>) = function
        .exports()
        .iter()
        .partition(|e| e.toolchain().is_some());
    for export in written {
        println!("{export}");
    }
    for export in added {
        println!(
            "hidden: {} ({}'s build-time hook)",
            export.name(),
            export.toolchain().unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let bytes = read_component(&args.file)?;
    let cache_dir = if args.no_cache {
        None
    } else {
        args.cache_dir.clone().or_else(default_cache_dir)
    };
    let config = HostConfig {
        cache_dir,
        pooling: false,
        ..HostConfig::default()
    };
    let gpu: ferry_host::GpuChoice = args.gpu.parse()?;
    let mut host = Host::new(config.clone())?;
    let mut function = host.load(&bytes)?;
    // Open a GPU only for a function that can use one: it costs start-up time.
    if gpu != ferry_host::GpuChoice::None
        && function
            .imports()
            .iter()
            .any(|i| i.starts_with("ferry:host/gpu"))
    {
        host = Host::new(HostConfig { gpu, ..config })?;
        function = host.load(&bytes)?;
    }
    let export = function.export(&args.export)?;
    let texts: Vec<String> = export
        .params()
        .iter()
        .zip(&args.args)
        .map(|((_, ty), text)| bare_text_as_json(ty, text))
        .chain(args.args.iter().skip(export.params().len()).cloned())
        .collect();
    let vals = export.args_from_json_strs(&texts)?;
    let limits = Limits {
        timeout: args.timeout,
        memory: args.memory,
        output: args.output,
        ..Limits::default()
    };
    let scratch = tempfile_dir("ferry-scratch")?;
    let cameras = args
        .cameras
        .iter()
        .map(|c| c.start())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let options = CallOptions {
        log: args
            .verbose
            .then(|| Arc::new(|e: &ferry_host::LogEvent| eprintln!("{e}")) as ferry_host::LogSink),
        files: ferry_host::Files::to_all(args.mounts.clone(), Some(scratch.clone())),
        env: args
            .env
            .iter()
            .cloned()
            .map(ferry_host::Lent::to_all)
            .collect(),
        blobs: match &args.blobs {
            Some(dir) => {
                Some(Arc::new(ferry_host::DirSource(dir.clone())) as Arc<dyn ferry_host::BlobSource>)
            }
            None => crate::fabric::data_dir(None).ok().map(|d| {
                Arc::new(ferry_host::DirSource(d.join("blobs"))) as Arc<dyn ferry_host::BlobSource>
            }),
        },
        camera: cameras.into_iter().map(ferry_host::Lent::to_all).collect(),
        ..CallOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .context("starting the async runtime")?;
    let outcome =
        runtime.block_on(host.call_keeping_output(&function, export, &vals, &limits, &options));
    // The host keeps the empty scratch for reuse until it goes.
    drop(host);
    let _ = std::fs::remove_dir(&scratch);
    let outcome = match outcome {
        Ok(o) => o,
        Err(failed) => {
            // What it printed before it failed helps most to see why.
            // A trap's message carries the tail of stderr already.
            let o = &failed.output;
            let stderr = match &failed.error {
                ferry_host::Error::Trap { stderr, .. } if !stderr.is_empty() => {
                    ferry_host::Captured::default()
                }
                _ => o.stderr.clone(),
            };
            print_output(&o.stdout, &stderr, &o.logs, args.verbose);
            return Err(failed.error.into());
        }
    };
    print_output(
        &outcome.stdout,
        &outcome.stderr,
        &outcome.logs,
        args.verbose,
    );
    for b in &outcome.blobs {
        eprintln!(
            "new blob {} ({} bytes): {}",
            b.hash,
            b.size,
            b.path.display()
        );
    }

    // Bytes go to `--out` as they are, never through JSON (a number each).
    if let Some(out) = &args.out
        && let Some(bytes) = raw_bytes(outcome.result.as_ref())
    {
        std::fs::write(out, bytes).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("wrote {}", out.display());
        return Ok(ExitCode::SUCCESS);
    }
    let json = export.result_to_json(outcome.result.as_ref())?;
    // A `result` that came back `err` is the function saying it failed.
    if let (Some(WitType::Result { .. }), Some(err)) = (export.result_type(), json.get("err")) {
        let text = match err {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "the function returned an error".to_owned(),
            other => other.to_string(),
        };
        eprintln!("error: {text}");
        return Ok(ExitCode::FAILURE);
    }
    if let Some(out) = &args.out {
        let value = json.get("ok").unwrap_or(&json);
        let blob_dir = options
            .blobs
            .as_ref()
            .and_then(|b| b.output_dir().map(|d| d.to_owned()));
        crate::commands::write_out(value, out, |hash| {
            let dir = blob_dir
                .clone()
                .context("no blob directory to find the blob in")?;
            ferry_host::blob_path(&dir, hash).map_err(anyhow::Error::msg)
        })?;
        eprintln!("wrote {}", out.display());
        return Ok(ExitCode::SUCCESS);
    }
    println!("{json}");
    Ok(ExitCode::SUCCESS)
}

/// A `list<u8>` result, or the `ok` of a `result<list<u8>, _>`.
fn raw_bytes(v: Option<&ferry_host::Value>) -> Option<&[u8]> {
    match v? {
        ferry_host::Value::Bytes(b) => Some(b),
        ferry_host::Value::Result(Ok(Some(ok))) => match &**ok {
            ferry_host::Value::Bytes(b) => Some(b),
            _ => None,
        },
        _ => None,
    }
}

/// The guest's own output, where a local program's would go: its stdout and
/// stderr, and (unless they were printed as they happened) its warnings.
fn print_output(
    stdout: &ferry_host::Captured,
    stderr: &ferry_host::Captured,
    logs: &[ferry_host::LogEvent],
    verbose: bool,
) {
    use std::io::Write;
    std::io::stderr().write_all(stderr.text().as_bytes()).ok();
    if !verbose {
        for e in logs {
            if matches!(e, ferry_host::LogEvent::Line { level, .. } if *level >= ferry_host::Level::Warn)
            {
                eprintln!("{e}");
            }
        }
    }
    let stdout = stdout.text();
    if !stdout.is_empty() {
        eprint!("{stdout}");
    }
}

/// A directory of this process's own under the system's temporary directory.
fn tempfile_dir(prefix: &str) -> anyhow::Result<PathBuf> {
    Ok(std::env::temp_dir().join(format!("{prefix}-{}", std::process::id())))
}

/// Lets `greet World` mean `greet "World"`: text that is not JSON, given for a
/// string-like parameter, is taken as the string itself.
fn bare_text_as_json(ty: &WitType, text: &str) -> String {
    let parsed = serde_json::from_str::<serde_json::Value>(text);
    let as_string = || serde_json::Value::String(text.to_owned()).to_string();
    match ty {
        WitType::String | WitType::Char | WitType::Enum(_) => match parsed {
            Ok(serde_json::Value::String(_)) => text.to_owned(),
            _ => as_string(),
        },
        WitType::Variant(_) if parsed.is_err() => as_string(),
        _ => text.to_owned(),
    }
}
