//! `ferry new` output builds with `cargo component build` (and plain
//! `cargo build --target wasm32-wasip2`) and runs with `ferry run`.

use std::process::Command;

use ferry_testkit::{cargo, have_cargo_component, repo_root, require};

fn ferry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
}

#[test]
fn new_function_builds_both_ways_and_runs() {
    require!(
        have_cargo_component(),
        "cargo-component is not installed (cargo install cargo-component --locked)"
    );
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = dir.path().join("demo-fn");
    let out = ferry()
        .current_dir(dir.path())
        .args(["new", "demo-fn"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("cargo component build --release"));

    // A shared target dir keeps repeated runs fast; the crate is its own workspace.
    let target = repo_root().join("target/scaffold");
    for (args, wasm) in [
        (
            vec!["component", "build", "--release"],
            "wasm32-wasip1/release/demo_fn.wasm",
        ),
        (
            vec!["build", "--release", "--target", "wasm32-wasip2"],
            "wasm32-wasip2/release/demo_fn.wasm",
        ),
    ] {
        let out = cargo()
            .current_dir(&crate_dir)
            .args(&args)
            .arg("--target-dir")
            .arg(&target)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cargo {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cache = tempfile::tempdir().unwrap();
        let out = ferry()
            .args(["run", target.join(wasm).to_str().unwrap(), "greet", "ferry"])
            .env("FERRY_CACHE_DIR", cache.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "\"Hello, ferry!\"\n");
        let out = ferry()
            .args(["inspect", target.join(wasm).to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("greet: func(name: string) -> string")
        );
    }
}

#[test]
fn new_refuses_bad_names_and_existing_directories() {
    let dir = tempfile::tempdir().unwrap();
    let out = ferry()
        .current_dir(dir.path())
        .args(["new", "Bad_Name"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid function name"));

    std::fs::create_dir(dir.path().join("taken")).unwrap();
    std::fs::write(dir.path().join("taken/file"), "x").unwrap();
    let out = ferry()
        .current_dir(dir.path())
        .args(["new", "taken"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists and is not empty"));
}
