//! Test support: builds the example guest components the tests need.
//!
//! Guests build in their own workspace (`examples/`) and target directory
//! (`target/guests`), so a nested cargo never waits on the outer build's lock.
//! The build runs once per test process; cargo's own lock orders concurrent
//! test binaries.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("testkit lives at tests/testkit")
        .to_path_buf()
}

/// Target directory for guest builds, separate from the host's.
pub fn guest_target_dir() -> PathBuf {
    repo_root().join("target").join("guests")
}

/// The cargo that runs the tests, so nested builds use the same toolchain.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    // Flags meant for the host build must not leak into wasm builds.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Path of the example component `name` (`hello`, `pi`, `noop`, `types`,
/// `faults`, `kmeans`, `gpu-probe`), built with `cargo build --release --target wasm32-wasip2`.
pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let out = cargo()
            .current_dir(repo_root().join("examples"))
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--target-dir",
            ])
            .arg(guest_target_dir())
            .output()
            .map_err(|e| format!("running cargo: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    if let Err(e) = built {
        panic!("building the example guests failed:\n{e}");
    }
    let path = guest_target_dir()
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    assert!(path.exists(), "no guest component at {}", path.display());
    path
}

/// The endpoint built for aarch64 (a Jetson), to run under qemu: built once
/// per test process into its own target directory (`target/edge`), as the
/// guests are. `Err` says what the machine lacks to build it; a build that
/// fails is a panic.
pub fn aarch64_endpoint() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if !have("aarch64-linux-gnu-gcc") {
                return Err("no aarch64 cross linker: apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross".into());
            }
            let dir = repo_root().join("target").join("edge");
            let out = cargo()
                .current_dir(repo_root())
                .args([
                    "build",
                    "--target",
                    "aarch64-unknown-linux-gnu",
                    "-p",
                    "ferry-endpoint",
                    "--features",
                    "bin",
                    "--target-dir",
                ])
                .arg(&dir)
                .output()
                .map_err(|e| format!("running cargo: {e}"))?;
            assert!(
                out.status.success(),
                "building the aarch64 endpoint failed (rustup target add aarch64-unknown-linux-gnu):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            Ok(dir.join("aarch64-unknown-linux-gnu/debug/ferry-endpoint"))
        })
        .clone()
}

/// The bytes of [`guest`].
pub fn guest_bytes(name: &str) -> Vec<u8> {
    std::fs::read(guest(name)).expect("reading guest component")
}

/// Whether a command is on PATH.
pub fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// componentize-py: the one `.ci/setup` installs under `target/py`, else one
/// on PATH.
pub fn componentize_py() -> Option<PathBuf> {
    let ours = repo_root().join("target/py/bin/componentize-py");
    if ours.exists() {
        return Some(ours);
    }
    have("componentize-py").then(|| PathBuf::from("componentize-py"))
}

/// The Python of `target/py` (which `.ci/setup` makes), if it has the
/// ferry package (`python/`, installed editable) and pytest.
pub fn python() -> Option<PathBuf> {
    let ours = repo_root().join("target/py/bin/python");
    Command::new(&ours)
        .args(["-c", "import ferry, pytest"])
        .output()
        .is_ok_and(|o| o.status.success())
        .then_some(ours)
}

/// Whether `cargo component` is installed.
pub fn have_cargo_component() -> bool {
    cargo()
        .args(["component", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Skips a test with a printed reason, except under `CI=true`, where the
/// missing resource is a failure.
#[macro_export]
macro_rules! require {
    ($cond:expr, $why:expr) => {
        if !$cond {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("required under CI: {}", $why);
            }
            eprintln!("SKIPPED {}: {}", module_path!(), $why);
            return;
        }
    };
}
