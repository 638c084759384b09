//! `ferry inspect` and `ferry run` as a user runs them: a real process each.

use std::process::{Command, Output};

use ferry_testkit::guest;

fn ferry(args: &[&str]) -> Output {
    let cache = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("FERRY_CACHE_DIR", cache.path())
        .output()
        .expect("running ferry")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn path(name: &str) -> String {
    guest(name).display().to_string()
}

#[test]
fn inspect_prints_the_hash_and_wit_signatures() {
    let pi = path("pi");
    let out = ferry(&["inspect", &pi]);
    assert!(out.status.success(), "{}", stderr(&out));
    let hash = blake3::hash(&std::fs::read(&pi).unwrap())
        .to_hex()
        .to_string();
    assert_eq!(
        stdout(&out),
        format!("blake3: {hash}\npi: func(num-points: u64, seed: u64) -> f64\n")
    );
    let out = ferry(&["inspect", &path("types")]);
    let text = stdout(&out);
    assert!(
        text.contains(
            "ferry-examples:types/types#echo-everything: func(e: everything) -> everything\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("#check: func(fail: bool) -> result<_, string>\n"),
        "{text}"
    );
}

/// A componentize-py component exports `exports#init`, the hook its build
/// step calls; `ferry inspect` lists the functions a user wrote, and says
/// that it hid the hook.
#[test]
fn inspect_hides_the_exports_a_toolchain_adds() {
    let tool = ferry_testkit::componentize_py();
    ferry_testkit::require!(
        tool.is_some(),
        "componentize-py (bash .ci/setup installs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("wit")).unwrap();
    std::fs::write(
        dir.path().join("wit/world.wit"),
        "package ferry-examples:adder;\nworld adder {\n    export add: func(a: s64, b: s64) -> s64;\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("app.py"),
        "import wit_world\n\nclass WitWorld(wit_world.WitWorld):\n    def add(self, a: int, b: int) -> int:\n        return a + b\n",
    )
    .unwrap();
    let built = Command::new(tool.unwrap())
        .current_dir(dir.path())
        .args([
            "-d",
            "wit",
            "-w",
            "adder",
            "componentize",
            "app",
            "-o",
            "adder.wasm",
        ])
        .output()
        .expect("running componentize-py");
    assert!(built.status.success(), "{}", stderr(&built));
    let wasm = dir.path().join("adder.wasm").display().to_string();
    let out = ferry(&["inspect", &wasm]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("\nadd: func(a: s64, b: s64) -> s64\n"),
        "{text}"
    );
    assert!(!text.contains("exports#init:"), "{text}");
    assert!(
        text.contains("hidden: exports#init (componentize-py's build-time hook)"),
        "{text}"
    );
    let out = ferry(&["run", &wasm, "add", "40", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "42");
}

#[test]
fn run_prints_the_result_as_json() {
    let out = ferry(&["run", &path("pi"), "pi", "1000000", "42"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: f64 = stdout(&out).trim().parse().unwrap();
    assert!((v - std::f64::consts::PI).abs() <= 0.01, "{v}");

    let out = ferry(&["run", &path("hello"), "greet", "World"]);
    assert_eq!(stdout(&out), "\"Hello, World!\"\n");
    let out = ferry(&["run", &path("hello"), "greet", r#""quoted""#]);
    assert_eq!(stdout(&out), "\"Hello, quoted!\"\n");

    let full = "ferry-examples:types/types#echo-point";
    let out = ferry(&["run", &path("types"), full, r#"{"x": 1, "y": 2}"#]);
    assert_eq!(stdout(&out), "{\"x\":1.0,\"y\":2.0}\n");
    let out = ferry(&[
        "run",
        &path("types"),
        "echo-ints",
        "-1",
        "2",
        "-3",
        "4",
        "-5",
        "6",
        "-7",
        "8",
    ]);
    assert_eq!(stdout(&out), "[-1,2,-3,4,-5,6,-7,8]\n", "{}", stderr(&out));
}

#[test]
fn an_err_result_goes_to_stderr_with_exit_1() {
    let out = ferry(&["run", &path("types"), "check", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("error: asked to fail"),
        "{}",
        stderr(&out)
    );
    let out = ferry(&["run", &path("types"), "check", "false"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "{\"ok\":null}\n");
}

#[test]
fn limits_and_bad_input_are_reported_clearly() {
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "run".into(),
                path("faults"),
                "spin".into(),
                "--timeout".into(),
                "200ms".into(),
            ],
            "time limit of 200ms",
        ),
        (
            vec![
                "run".into(),
                path("faults"),
                "hog".into(),
                "64".into(),
                "--memory".into(),
                "16MiB".into(),
            ],
            "ran out of memory",
        ),
        (
            vec!["run".into(), path("faults"), "boom".into(), "kaput".into()],
            "kaput",
        ),
        (
            vec![
                "run".into(),
                path("pi"),
                "pi".into(),
                "abc".into(),
                "1".into(),
            ],
            "argument `num-points` (u64): `abc` is not valid JSON",
        ),
        (
            vec!["run".into(), path("pi"), "pi".into(), "1".into()],
            "missing `seed` (u64)",
        ),
        (
            vec!["run".into(), path("pi"), "tau".into()],
            "unknown export `tau`; the function exports: pi",
        ),
        (
            vec![
                "run".into(),
                path("pi"),
                "pi".into(),
                "1".into(),
                "2".into(),
                "--timeout".into(),
                "soon".into(),
            ],
            "not a duration",
        ),
        (
            vec!["run".into(), "/no/such/file.wasm".into(), "x".into()],
            "cannot read component `/no/such/file.wasm`",
        ),
        (
            vec!["inspect".into(), env!("CARGO_BIN_EXE_ferry").into()],
            "do not start with the WebAssembly magic",
        ),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ferry(&args);
        // 2 is clap's exit code for a usage error; 1 for every other failure.
        let want = if needle == "not a duration" { 2 } else { 1 };
        assert_eq!(out.status.code(), Some(want), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(needle),
            "{args:?}: `{}` lacks `{needle}`",
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains("panicked at") || needle == "kaput",
            "no host panic: {}",
            stderr(&out)
        );
    }
}

#[test]
fn guest_components_build_reproducibly() {
    // The same sources built into another target directory give the same bytes,
    // hence the same function id.
    let other = ferry_testkit::repo_root().join("target/guests-repro");
    let status = ferry_testkit::cargo()
        .current_dir(ferry_testkit::repo_root().join("examples"))
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            "pi",
            "--target-dir",
        ])
        .arg(&other)
        .status()
        .unwrap();
    assert!(status.success());
    let a = std::fs::read(guest("pi")).unwrap();
    let b = std::fs::read(other.join("wasm32-wasip2/release/pi.wasm")).unwrap();
    assert_eq!(blake3::hash(&a), blake3::hash(&b));
}

#[test]
fn run_writes_new_blobs_to_the_blob_directory_and_reads_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().to_str().unwrap();
    let probe = path("blob-probe");
    let out = ferry(&["run", "--blobs", blobs, &probe, "generate", "100000", "5"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let made: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let hash = made["ok"]["hash"].as_str().unwrap().to_owned();
    assert_eq!(made["ok"]["size"], 100_000);
    assert!(
        stderr(&out).contains(&format!("new blob {hash} (100000 bytes)")),
        "{}",
        stderr(&out)
    );
    let file = dir.path().join(&hash[..2]).join(&hash);
    assert_eq!(
        blake3::hash(&std::fs::read(file).unwrap())
            .to_hex()
            .as_str(),
        hash
    );
    let blob = format!(r#"{{"hash":"{hash}","size":100000}}"#);
    let out = ferry(&["run", "--blobs", blobs, &probe, "checksum", &blob, "4096"]);
    assert_eq!(
        stdout(&out).trim(),
        format!(r#"{{"ok":"{hash}"}}"#),
        "{}",
        stderr(&out)
    );
}

#[test]
fn run_lends_a_camera_and_writes_the_snapshot_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("snap.png");
    let snap = path("camera-snapshot");
    let o = ferry(&[
        "run",
        "--camera",
        "desk=test-pattern:320x200@30",
        "-o",
        out.to_str().unwrap(),
        &snap,
        "snapshot",
        r#""desk""#,
        "160",
        "0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let png = std::fs::read(&out).unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    assert_eq!(&png[16..24], &[0, 0, 0, 160, 0, 0, 0, 100], "aspect kept");

    let o = ferry(&["run", &snap, "snapshot", "null", "0", "0"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("endpoint local has no camera"),
        "{}",
        stderr(&o)
    );
    let o = ferry(&["run", "--camera", "webcam", &snap, "devices"]);
    assert!(
        stderr(&o).contains("unknown backend `webcam`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_failed_call_still_shows_what_it_printed_and_logged() {
    let out = ferry(&["run", &path("faults"), "noisy-boom", "out of cheese"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("about to fail: out of cheese"), "{err}");
    assert!(err.contains("failing"), "the warning it logged: {err}");
    assert!(err.contains("trapped"), "{err}");
}

#[test]
fn a_closed_stdout_ends_ferry_quietly() {
    // The reader is gone before ferry prints, as with `| head -c 10`.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["run", &path("pi"), "pi", "1000", "1"])
        .env("FERRY_CACHE_DIR", cache.path())
        .stdout(writer)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("Broken pipe"), "{err}");
    // 141: what a shell reports for a tool that SIGPIPE ended.
    assert_eq!(out.status.code(), Some(141), "{err}");
}

#[test]
fn opening_the_gpu_without_xdg_runtime_dir_prints_no_error() {
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["run", &path("gpu-probe"), "adapter"])
        .env("FERRY_CACHE_DIR", cache.path())
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("XDG_RUNTIME_DIR"), "{err}");
}

/// A 48 MiB `list<u8>` result under a 64 MiB output limit is written whole
/// by `ferry run --out`; 80 MiB fails as over the output limit.
#[test]
fn run_returns_a_48_mib_byte_result_and_refuses_80_mib() {
    let types = path("types");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bytes");
    let n = 48u32 << 20;
    let o = ferry(&[
        "run",
        &types,
        "fill",
        &n.to_string(),
        "7",
        "--output",
        "64MiB",
        "--memory",
        "256MiB",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(bytes.len(), n as usize);
    assert!(
        bytes
            .iter()
            .enumerate()
            .all(|(i, &b)| b == ((i as u32).wrapping_mul(31) as u8) ^ 7)
    );
    let o = ferry(&[
        "run",
        &types,
        "fill",
        &(80u32 << 20).to_string(),
        "7",
        "--output",
        "64MiB",
        "--memory",
        "256MiB",
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("83886080 bytes, over the output limit of 67108864 bytes"),
        "{err}"
    );
    assert!(stdout(&o).is_empty());
}

/// `ferry bench --quick`: the whole suite with small counts, every result
/// checked (correct values, no task lost), every benchmark present in the
/// JSON. Speed is not asserted.
#[test]
fn bench_quick_runs_the_whole_suite_and_checks_every_result() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let o = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["bench", "--quick", "--json", json.to_str().unwrap()])
        .env("FERRY_CACHE_DIR", dir.path().join("cache"))
        .env("TMPDIR", dir.path())
        .env_remove("FERRY_SERVICE")
        .output()
        .unwrap();
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(o.status.success(), "{out}\n{err}");
    assert!(
        out.contains("| bench | case | median | spread (p10–p90) | runs | target |"),
        "{out}"
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let checks = report["checks"].as_array().unwrap();
    assert!(checks.len() >= 15, "{checks:?}");
    for c in checks {
        assert_eq!(c["held"], true, "{c}");
    }
    let figures = report["figures"].as_array().unwrap();
    let has = |bench: &str, case: &str| {
        figures.iter().any(|f| {
            f["bench"] == bench
                && f["case"].as_str().unwrap().starts_with(case)
                && f["samples"].as_array().is_some_and(|s| !s.is_empty())
                && f["median"]
                    .as_f64()
                    .is_some_and(|m| m.is_finite() && m > 0.0)
        })
    };
    for (bench, case) in [
        ("instantiate", "instantiate"),
        ("pi", "Wasm / native"),
        ("pi", "100 × pi(10000) on "),
        ("noop", "strict, 1 endpoint"),
        ("noop", "group, 1 endpoint"),
        ("noop", "none, 1 endpoint"),
        ("noop", "strict, 2 endpoints"),
        ("rtt", "fsync floor"),
        ("rtt", "strict: submit to result, p50"),
        ("rtt", "none: p99"),
        ("cold start", "first call of a new component"),
        ("cold start", "endpoint restart"),
        ("pi blocks", "100 × pi(10000), blocks of 1:"),
        ("pi blocks", "100 × pi(10000), blocks of 100:"),
        (
            "pi blocks",
            "blocks of 100 ÷ the same calls on the host's threads",
        ),
        ("kmeans", "Wasm CPU / native"),
        ("blob", "4 MiB, `remote`"),
        ("queue", "2000 queued: service RSS"),
        ("dataflow", "fan-in of 20"),
    ] {
        assert!(has(bench, case), "no figure {bench}: {case} in {figures:?}");
    }
    // CI has lavapipe: the GPU path must run there.
    if std::env::var_os("CI").is_some_and(|v| v == "true") {
        assert!(
            has("kmeans", "Wasm GPU / native"),
            "{:?}",
            report["skipped"]
        );
    } else if !has("kmeans", "Wasm GPU / native") {
        println!("kmeans GPU path not measured: {:?}", report["skipped"]);
    }
    let machine = &report["machine"];
    assert_eq!(machine["quick"], true);
    assert!(machine["cores"].as_u64().unwrap() >= 1);
}
