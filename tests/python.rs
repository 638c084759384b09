//! The Python package against a real fabric: pytest runs `python/tests`
//! (the client, the Executor, the decorator's dataflow, blobs, and Python
//! functions built with `ferry build`) against `ferry serve` and an endpoint
//! `local` started here.

mod common;

use std::process::{Command, Stdio};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_package_passes_its_tests_against_a_real_fabric() {
    let python = ferry_testkit::python();
    ferry_testkit::require!(
        python.is_some(),
        "the ferry Python package in target/py (bash .ci/setup installs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = serve(&dir.path().join("data"), port);
    // With the GPU it finds (lavapipe in CI), for the Python GPU test.
    let _endpoint = endpoint_with(
        port,
        "local",
        &dir.path().join("cache"),
        4,
        &["--gpu", "auto"],
    );
    ready(port, "local", 1).await;
    let guests: Vec<String> = ["dataflow-probe", "faults", "kmeans"]
        .iter()
        .map(|g| format!("{g}={}", ferry_testkit::guest(g).display()))
        .collect();
    let root = ferry_testkit::repo_root();
    let out = Command::new(python.unwrap())
        .current_dir(root.join("python"))
        .args([
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "tests",
        ])
        .env("FERRY_URL", format!("http://127.0.0.1:{port}"))
        .env(
            "FERRY_TOKEN",
            token(port).expect("the service's admin token"),
        )
        .env("FERRY_TEST_GUESTS", guests.join(":"))
        // Built components are kept between runs, keyed by their source.
        .env("FERRY_BUILD_CACHE", root.join("target/py-build"))
        .env("TMPDIR", dir.path())
        // The notebook's kernel is this environment's Python.
        .env("PATH", path_with(&root.join("target/py/bin")))
        .stdin(Stdio::null())
        .output()
        .expect("running pytest");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "pytest failed:\n{text}");
    assert!(
        text.contains(" passed") && !text.contains(" skipped") && !text.contains(" failed"),
        "{text}"
    );
}

fn path_with(dir: &std::path::Path) -> std::ffi::OsString {
    let mut paths = vec![dir.to_owned()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).unwrap()
}

/// `ferry build` (the Rust command) builds a Python module through the
/// package, and the component runs locally with `ferry run`.
#[test]
fn ferry_build_makes_a_component_of_a_python_module() {
    ferry_testkit::require!(
        ferry_testkit::python().is_some(),
        "the ferry Python package in target/py (bash .ci/setup installs it)"
    );
    let root = ferry_testkit::repo_root();
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("app.wasm");
    let out = command()
        .args(["build", "--wit", "-o"])
        .arg(&wasm)
        .arg(root.join("python/tests/modules/app.py"))
        .env("FERRY_BUILD_CACHE", root.join("target/py-build"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("export %pi: func(%num-points: s64, %seed: s64) -> result<f64, string>;"),
        "{text}"
    );
    let run = command()
        .args(["run"])
        .arg(&wasm)
        .args(["echo-tuple", r#"[7, "seven", 7.5]"#])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        r#"{"ok":[7,"seven",7.5]}"#
    );
    // A file that is not Python is refused with a pointer to the right tool.
    let rust = command().args(["build", "lib.rs"]).output().unwrap();
    assert!(!rust.status.success());
    assert!(String::from_utf8_lossy(&rust.stderr).contains("cargo component build"));
}
