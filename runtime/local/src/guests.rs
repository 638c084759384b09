//! Finds the example components for `ferry bench` and `ferry demo`, building
//! them (once per process) from the checkout this binary came from when no
//! path is given.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::bail;

/// The example component `name`: `explicit` if given, else built (once per
/// process) from this checkout's `examples/`.
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
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build(&examples, &target))
        .clone()
        .map_err(anyhow::Error::msg)?;
    let path = target.join(format!(
        "wasm32-wasip2/release/{}.wasm",
        name.replace('-', "_")
    ));
    if !path.exists() {
        bail!("no component at {}", path.display());
    }
    Ok(path)
}

fn build(examples: &Path, target: &Path) -> Result<(), String> {
    eprintln!("building the example components (cargo build --release --target wasm32-wasip2)...");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(examples)
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(target)
        .status()
        .map_err(|e| format!("running cargo to build the example components: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err("building the example components failed".to_owned())
    }
}
