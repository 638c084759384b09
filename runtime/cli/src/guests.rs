//! Finds the example components for `ferry bench`, building them from the
//! checkout this binary came from when no path is given.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

pub fn component(name: &str, explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let examples = repo.join("examples");
    if !examples.join("Cargo.toml").exists() {
        bail!("no ferry checkout next to this binary; pass --component PATH/TO/{name}.wasm");
    }
    let target = repo.join("target/guests");
    eprintln!("building the example components (cargo build --release --target wasm32-wasip2)...");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(&examples)
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target)
        .status()
        .context("running cargo to build the example components")?;
    if !status.success() {
        bail!("building the example components failed");
    }
    let path = target.join(format!(
        "wasm32-wasip2/release/{}.wasm",
        name.replace('-', "_")
    ));
    if !path.exists() {
        bail!("no component at {}", path.display());
    }
    Ok(path)
}
