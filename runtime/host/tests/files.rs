//! Directories granted per task: a guest sees its mounts and its own
//! `/scratch`, nothing else, and cannot write where it may only read.

mod common;

use std::path::Path;

use common::*;
use ferry_host::{CallOptions, Files, Function, Host, Limits, Mount};

async fn call(
    host: &Host,
    f: &Function,
    export: &str,
    args: &[&str],
    options: &CallOptions,
) -> serde_json::Value {
    let export = f.export(export).unwrap();
    let args: Vec<String> = args
        .iter()
        .map(|a| serde_json::Value::String((*a).to_owned()).to_string())
        .collect();
    let vals = export.args_from_json_strs(&args).unwrap();
    let out = host
        .call(f, export, &vals, &Limits::default(), options)
        .await
        .expect("the call itself succeeds; the guest reports file errors");
    export.result_to_json(out.result.as_ref()).unwrap()
}

fn err(v: &serde_json::Value) -> String {
    v.get("err")
        .and_then(|e| e.as_str())
        .unwrap_or_else(|| panic!("expected an error, got {v}"))
        .to_owned()
}

struct Fixture {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    out: std::path::PathBuf,
    secret: std::path::PathBuf,
    options: CallOptions,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(data.join("hello.txt"), "hello from the host").unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "not for guests").unwrap();
    std::os::unix::fs::symlink(&secret, data.join("link")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", data.join("relative-link")).unwrap();
    let options = CallOptions {
        files: Files::to_all(
            vec![
                Mount {
                    host: data.clone(),
                    guest: "/data".into(),
                    read_only: true,
                },
                Mount {
                    host: out.clone(),
                    guest: "/out".into(),
                    read_only: false,
                },
            ],
            Some(dir.path().join("scratch")),
        ),
        ..CallOptions::default()
    };
    Fixture {
        _dir: dir,
        data,
        out,
        secret,
        options,
    }
}

#[tokio::test]
async fn a_guest_reads_and_writes_only_where_it_is_granted() {
    let host = host();
    let f = load(&host, "files-probe");
    let fx = fixture();
    let o = &fx.options;

    let v = call(&host, &f, "read-file", &["/data/hello.txt"], o).await;
    assert_eq!(v["ok"], "hello from the host");
    let v = call(&host, &f, "list-dir", &["/data"], o).await;
    assert_eq!(
        v["ok"],
        serde_json::json!(["hello.txt", "link", "relative-link"])
    );

    let secret = fx.secret.to_str().unwrap().to_owned();
    for path in [
        "/data/../secret.txt",
        "/data/link",
        "/data/relative-link",
        secret.as_str(),
        "/etc/passwd",
    ] {
        let v = call(&host, &f, "read-file", &[path], o).await;
        let e = err(&v);
        assert!(!e.contains("not for guests"), "{path}: {e}");
    }

    let v = call(&host, &f, "write-file", &["/data/new.txt", "x"], o).await;
    let e = err(&v);
    assert!(e.contains("/data/new.txt"), "{e}");
    assert!(!fx.data.join("new.txt").exists(), "read-only mount written");
    let v = call(
        &host,
        &f,
        "write-file",
        &["/data/hello.txt", "overwritten"],
        o,
    )
    .await;
    err(&v);
    assert_eq!(
        std::fs::read_to_string(fx.data.join("hello.txt")).unwrap(),
        "hello from the host"
    );
    let v = call(&host, &f, "write-file", &["/out/../escaped.txt", "x"], o).await;
    err(&v);
    assert!(!fx.out.parent().unwrap().join("escaped.txt").exists());

    let v = call(&host, &f, "write-file", &["/out/result.txt", "computed"], o).await;
    assert!(v.get("ok").is_some(), "{v}");
    assert_eq!(
        std::fs::read_to_string(fx.out.join("result.txt")).unwrap(),
        "computed"
    );
    assert_eq!(
        std::fs::read_to_string(&fx.secret).unwrap(),
        "not for guests"
    );
}

#[tokio::test]
async fn scratch_is_empty_at_each_start_and_gone_after() {
    let host = host();
    let f = load(&host, "files-probe");
    let fx = fixture();
    let root = fx.options.files.scratch.clone().unwrap();
    for _ in 0..3 {
        let v = call(&host, &f, "scratch", &[], &fx.options).await;
        assert_eq!(v["ok"], serde_json::json!(["work.txt"]), "{v}");
        let left: Vec<_> = std::fs::read_dir(&root).unwrap().collect();
        assert!(left.is_empty(), "scratch left behind: {left:?}");
    }
    // Without scratch space, /scratch does not exist.
    let mut none = fx.options.clone();
    none.files.scratch = None;
    let v = call(&host, &f, "scratch", &[], &none).await;
    err(&v);
}

#[tokio::test]
async fn a_task_without_mounts_sees_no_files() {
    let host = host();
    let f = load(&host, "files-probe");
    let v = call(&host, &f, "list-dir", &["/"], &CallOptions::default()).await;
    err(&v);
    let v = call(
        &host,
        &f,
        "read-file",
        &["/etc/hostname"],
        &CallOptions::default(),
    )
    .await;
    err(&v);
}

#[tokio::test]
async fn bad_mounts_are_refused_with_the_reason() {
    let host = host();
    let f = load(&host, "files-probe");
    let export = f.export("list-dir").unwrap();
    let vals = export.args_from_json_strs(&["\"/\""]).unwrap();
    let missing = Path::new("/no/such/dir/for/ferry");
    for (mount, why) in [
        (
            Mount {
                host: missing.into(),
                guest: "/data".into(),
                read_only: true,
            },
            "/no/such/dir/for/ferry",
        ),
        (
            Mount {
                host: std::env::temp_dir(),
                guest: "relative".into(),
                read_only: true,
            },
            "must be absolute",
        ),
    ] {
        let options = CallOptions {
            files: Files::to_all(vec![mount], None),
            ..CallOptions::default()
        };
        let e = host
            .call(&f, export, &vals, &Limits::default(), &options)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "bad-mount");
        assert!(e.to_string().contains(why), "{e}");
    }
}
