//! Components compile once: later loads come from memory or the on-disk cache.

mod common;

use common::call_json;
use ferry_host::{FunctionId, Host, HostConfig, Limits};

#[tokio::test]
async fn second_load_hits_the_compiled_cache() {
    let dir = tempfile::tempdir().unwrap();
    let config = HostConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..HostConfig::default()
    };
    let bytes = ferry_testkit::guest_bytes("pi");
    let id = FunctionId::of(&bytes);

    let first = Host::new(config.clone()).unwrap();
    let f = first.load(&bytes).unwrap();
    assert_eq!(f.id(), id);
    assert_eq!(first.stats().compiled, 1);
    let path = first.cache_path(id).unwrap();
    assert!(path.exists(), "artifact written at {}", path.display());
    let name = path.file_name().unwrap().to_str().unwrap().to_owned();
    assert_eq!(
        name,
        format!("{}.{}.cwasm", id.to_hex(), first.engine_fingerprint())
    );

    // Same host: memory.
    first.load(&bytes).unwrap();
    assert_eq!(first.stats().compiled, 1);
    assert_eq!(first.stats().memory_hits, 1);

    // A new host (an endpoint restart): disk, no compilation, and by id alone.
    let second = Host::new(config).unwrap();
    let g = second.cached(id).unwrap().expect("found on disk");
    assert_eq!(second.stats().compiled, 0);
    assert_eq!(second.stats().disk_hits, 1);
    let (v, _) = call_json(&second, &g, "pi", &["1000", "3"], &Limits::default())
        .await
        .unwrap();
    assert!(v.as_f64().unwrap() > 2.5);
}

#[tokio::test]
async fn a_damaged_artifact_is_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let config = HostConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..HostConfig::default()
    };
    let bytes = ferry_testkit::guest_bytes("noop");
    let first = Host::new(config.clone()).unwrap();
    first.load(&bytes).unwrap();
    let path = first.cache_path(FunctionId::of(&bytes)).unwrap();
    std::fs::write(&path, b"not an artifact").unwrap();

    let second = Host::new(config).unwrap();
    second.load(&bytes).unwrap();
    assert_eq!(second.stats().compiled, 1);
    assert_eq!(second.stats().disk_hits, 0);
    assert!(std::fs::read(&path).unwrap().len() > 100, "rewritten");
}

#[test]
fn function_ids_parse_and_print() {
    let id = FunctionId::of(b"abc");
    assert_eq!(FunctionId::parse(&id.to_hex()).unwrap(), id);
    assert!(
        FunctionId::parse("xyz")
            .unwrap_err()
            .to_string()
            .contains("not a function id")
    );
}
