//! `ferry-wit` reads a component's exports and imports from its bytes, with
//! no compiler; the service relies on it. Here it must agree with what
//! wasmtime makes of the same component, for every example.

use ferry_host::{Host, HostConfig};
use ferry_testkit::guest_bytes;

const EXAMPLES: &[&str] = &[
    "hello",
    "pi",
    "noop",
    "types",
    "faults",
    "kmeans",
    "gpu-probe",
    "blob-probe",
    "camera-snapshot",
    "dataflow-probe",
    "files-probe",
    "pipeline",
];

#[test]
fn ferry_wit_reads_what_wasmtime_compiles_for_every_example() {
    let host = Host::new(HostConfig {
        pooling: false,
        ..HostConfig::default()
    })
    .unwrap();
    for name in EXAMPLES {
        let bytes = guest_bytes(name);
        let compiled = host.load(&bytes).unwrap();
        let read = ferry_wit::Component::decode(&bytes).unwrap();
        assert_eq!(read.id, compiled.id(), "{name}");
        let by_wasmtime: Vec<String> = compiled.exports().iter().map(|e| e.to_string()).collect();
        let by_wit: Vec<String> = read.exports.iter().map(|e| e.to_string()).collect();
        assert_eq!(by_wit, by_wasmtime, "{name}: exports and signatures");
        let mut imports = read.imports.clone();
        let mut want = compiled.imports().to_vec();
        imports.sort();
        want.sort();
        assert_eq!(imports, want, "{name}: imports");
    }
}

#[test]
fn ferry_wit_refuses_what_is_not_a_valid_component_by_name() {
    let e = ferry_wit::Component::decode(b"not wasm at all").unwrap_err();
    assert!(e.to_string().contains("magic"), "{e}");
    // A core module, not a component.
    let module = b"\0asm\x01\0\0\0";
    let e = ferry_wit::Component::decode(module).unwrap_err();
    assert!(e.to_string().contains("core WebAssembly module"), "{e}");
    // A component cut short, and one whose first section is of no known kind.
    let bytes = guest_bytes("pi");
    let e = ferry_wit::Component::decode(&bytes[..bytes.len() / 2]).unwrap_err();
    assert_eq!(e.kind(), "bad-component", "{e}");
    let mut bad_section = bytes.clone();
    bad_section[8] = 0x7f; // the first section's id: no such section
    let e = ferry_wit::Component::decode(&bad_section).unwrap_err();
    assert_eq!(e.kind(), "bad-component", "{e}");
}
