//! `ferry build app.py`: a Python module into a component. The Python
//! package does the work (`python -m ferry build`), since it reads the
//! module's type hints in Python; this finds an interpreter that has it.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};

#[derive(clap::Args)]
pub struct BuildArgs {
    /// The module (`app.py`): its public functions, with their type hints,
    /// become the component's exports.
    module: PathBuf,
    /// Where the component goes (default: beside the module, `.wasm`).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Export only this function (repeatable).
    #[arg(short, long = "function")]
    functions: Vec<String>,
    /// Print the WIT world that was generated.
    #[arg(long)]
    wit: bool,
    /// The Python that has the `ferry-fabric[build]` package.
    #[arg(long, env = "FERRY_PYTHON")]
    python: Option<PathBuf>,
}

/// The interpreters tried, in order: the one named, the checkout's
/// `target/py` (which `.ci/setup` makes), then `python3`.
fn pythons(given: Option<PathBuf>) -> Vec<PathBuf> {
    if let Some(p) = given {
        return vec![p];
    }
    let ours = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/py/bin/python");
    [ours, PathBuf::from("python3")]
        .into_iter()
        .filter(|p| p.components().count() == 1 || p.exists())
        .collect()
}

pub fn build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    if args.module.extension().is_none_or(|e| e != "py") {
        bail!(
            "{}: ferry build takes a Python module (.py); a Rust function builds with `cargo component build`",
            args.module.display()
        );
    }
    let python = pythons(args.python)
        .into_iter()
        .find(|p| {
            Command::new(p)
                .args(["-c", "import ferry.builder"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .context(
            "no Python with the ferry package: pip install './python[build]' from a ferry checkout \
             (or name the interpreter with --python or FERRY_PYTHON)",
        )?;
    let mut cmd = Command::new(&python);
    cmd.args(["-m", "ferry", "build"]).arg(&args.module);
    if let Some(o) = &args.output {
        cmd.arg("-o").arg(o);
    }
    for f in &args.functions {
        cmd.args(["-f", f]);
    }
    if args.wit {
        cmd.arg("--wit");
    }
    let status = cmd
        .status()
        .with_context(|| format!("running {}", python.display()))?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
