//! Every WIT value type round-trips through the `types` component, in JSON
//! and in MessagePack.

mod common;

use common::*;
use ferry_host::{CallOptions, Error, Limits};
use serde_json::{Value, json};

/// Calls through JSON values and through MessagePack; both must give `expected`.
async fn roundtrip(export: &str, args: Vec<Value>, expected: Value) {
    let host = host();
    let f = load(&host, "types");
    let e = f.export(export).unwrap();

    let vals = e
        .args_from_json(&args)
        .unwrap_or_else(|err| panic!("{export}: {err}"));
    let out = host
        .call(&f, e, &vals, &Limits::default(), &CallOptions::default())
        .await
        .unwrap();
    assert_eq!(
        e.result_to_json(out.result.as_ref()).unwrap(),
        expected,
        "{export} via JSON"
    );

    let packed = rmp_serde::to_vec(&args).unwrap();
    let vals = e.args_from_msgpack(&packed).unwrap();
    let out = host
        .call(&f, e, &vals, &Limits::default(), &CallOptions::default())
        .await
        .unwrap();
    let bytes = e.result_to_msgpack(out.result.as_ref()).unwrap();
    // Read back by the export's codec: a `list<u8>` is MessagePack bin,
    // which a generic JSON value cannot hold.
    let back = e
        .result_to_json(e.result_from_msgpack(&bytes).unwrap().as_ref())
        .unwrap();
    assert_eq!(back, expected, "{export} via MessagePack");
}

/// Byte `i` of `fill(n, seed)`.
fn filled(i: usize, seed: u8) -> u8 {
    ((i as u32).wrapping_mul(31) as u8) ^ seed
}

/// A 48 MiB `list<u8>` under a 64 MiB output limit comes back whole, as
/// bytes (MessagePack bin); 80 MiB is refused as `output-too-large`. The
/// dynamic path (here a record holding bytes) carries results past the 4
/// MiB that wasmtime's default hostcall fuel allowed.
#[tokio::test]
async fn large_byte_results_come_back_up_to_the_output_limit() {
    let host = host();
    let f = load(&host, "types");
    let e = f.export("fill").unwrap();
    let limits = Limits {
        output: 64 << 20,
        memory: 256 << 20,
        ..Limits::default()
    };
    let n = 48usize << 20;
    let args = e.args_from_json(&[json!(n), json!(7)]).unwrap();
    let out = host
        .call(&f, e, &args, &limits, &CallOptions::default())
        .await
        .unwrap();
    let Some(ferry_host::Value::Bytes(b)) = &out.result else {
        panic!("not bytes");
    };
    assert_eq!(b.len(), n);
    assert!(b.iter().enumerate().all(|(i, &x)| x == filled(i, 7)));
    let packed = e.result_to_msgpack(out.result.as_ref()).unwrap();
    assert_eq!(packed.len(), n + 5, "bin 32: a marker, a length, the bytes");

    let args = e.args_from_json(&[json!(80usize << 20), json!(7)]).unwrap();
    let err = host
        .call(&f, e, &args, &limits, &CallOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::OutputTooLarge { size, limit } if size == 80 << 20 && limit == 64 << 20),
        "{err}"
    );
    assert_eq!(err.kind(), "output-too-large");

    // The dynamic path: 8 MiB of bytes inside a record.
    let e = f.export("echo-everything").unwrap();
    let blob: Vec<u8> = (0..8usize << 20).map(|i| filled(i, 3)).collect();
    let mut everything = everything();
    everything["blob"] = json!(blob);
    let args = e.args_from_json(&[everything]).unwrap();
    let out = host
        .call(&f, e, &args, &limits, &CallOptions::default())
        .await
        .unwrap();
    let back = e.result_to_json(out.result.as_ref()).unwrap();
    assert_eq!(back["blob"], json!(blob));
    let small = Limits {
        output: 1 << 20,
        ..limits
    };
    let err = host
        .call(&f, e, &args, &small, &CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "output-too-large", "{err}");
}

#[tokio::test]
async fn scalars() {
    roundtrip("echo-bool", vec![json!(true)], json!(true)).await;
    roundtrip(
        "echo-ints",
        vec![
            json!(-128),
            json!(255),
            json!(-32768),
            json!(65535),
            json!(-2147483648i64),
            json!(4294967295u64),
            json!(i64::MIN),
            json!(u64::MAX),
        ],
        json!([
            -128,
            255,
            -32768,
            65535,
            -2147483648i64,
            4294967295u64,
            i64::MIN,
            u64::MAX
        ]),
    )
    .await;
    roundtrip(
        "echo-floats",
        vec![json!(1.5), json!(-2.25e300)],
        json!([1.5, -2.25e300]),
    )
    .await;
    roundtrip("echo-char", vec![json!("λ")], json!("λ")).await;
    roundtrip(
        "echo-string",
        vec![json!("hello, 世界")],
        json!("hello, 世界"),
    )
    .await;
}

#[tokio::test]
async fn sixty_four_bit_integers_accept_decimal_strings() {
    roundtrip(
        "echo-ints",
        vec![
            json!(1),
            json!(2),
            json!(3),
            json!(4),
            json!(5),
            json!(6),
            json!("-9223372036854775808"),
            json!("18446744073709551615"),
        ],
        json!([1, 2, 3, 4, 5, 6, i64::MIN, u64::MAX]),
    )
    .await;
}

#[tokio::test]
async fn compound_types() {
    roundtrip(
        "echo-bytes",
        vec![json!([0, 1, 254, 255])],
        json!([0, 1, 254, 255]),
    )
    .await;
    roundtrip(
        "echo-point",
        vec![json!({"x": 1.5, "y": -2.0})],
        json!({"x": 1.5, "y": -2.0}),
    )
    .await;
    roundtrip(
        "echo-shape",
        vec![json!({"circle": 2.5})],
        json!({"circle": 2.5}),
    )
    .await;
    roundtrip(
        "echo-shape",
        vec![json!({"rectangle": {"x": 3.0, "y": 4.0}})],
        json!({"rectangle": {"x": 3.0, "y": 4.0}}),
    )
    .await;
    roundtrip("echo-shape", vec![json!("empty")], json!("empty")).await;
    roundtrip("echo-color", vec![json!("green")], json!("green")).await;
    roundtrip("echo-option", vec![json!(null)], json!(null)).await;
    roundtrip("echo-option", vec![json!("some")], json!("some")).await;
    roundtrip("echo-result", vec![json!({"ok": 7})], json!({"ok": 7})).await;
    roundtrip(
        "echo-result",
        vec![json!({"err": "nope"})],
        json!({"err": "nope"}),
    )
    .await;
    roundtrip(
        "echo-flags",
        vec![json!(["execute", "read"])],
        json!(["read", "execute"]),
    )
    .await;
    roundtrip("echo-flags", vec![json!([])], json!([])).await;
    roundtrip("check", vec![json!(false)], json!({"ok": null})).await;
    roundtrip("check", vec![json!(true)], json!({"err": "asked to fail"})).await;
    roundtrip("nothing", vec![], json!(null)).await;
}

fn everything() -> Value {
    json!({
        "flag": true, "small": -5, "byte": 200, "short": -300, "ushort": 60000,
        "int": -70000, "uint": 4000000000u64, "long": -5000000000i64, "ulong": 18000000000000000000u64,
        "single": 0.5, "double": 1e-300, "letter": "Z", "text": "ferry",
        "numbers": [1, 2, 3], "blob": [9, 8, 7], "origin": {"x": 0.0, "y": 1.0},
        "pair": ["two", 2], "shape": {"circle": 1.0}, "color": "blue",
        "maybe": null, "outcome": {"err": "bad"}, "perms": ["write"],
        "nested": [null, {"x": 1.0, "y": 2.0}]
    })
}

#[tokio::test]
async fn everything_at_once() {
    let e = everything();
    roundtrip("echo-everything", vec![e.clone()], e).await;
}

#[tokio::test]
async fn the_guest_reads_what_was_sent() {
    let host = host();
    let f = load(&host, "types");
    let (sum, _) = call_json(
        &host,
        &f,
        "sum",
        &["[1, 2, 3, 4294967295]"],
        &Limits::default(),
    )
    .await
    .unwrap();
    assert_eq!(sum, json!(4294967301u64));
    let (area, _) = call_json(
        &host,
        &f,
        "area",
        &[r#"{"rectangle": {"x": 3, "y": 4}}"#],
        &Limits::default(),
    )
    .await
    .unwrap();
    assert_eq!(area, json!(12.0));
}

#[tokio::test]
async fn exports_are_found_by_short_and_full_name_and_printed_as_wit() {
    let host = host();
    let f = load(&host, "types");
    let full = "ferry-examples:types/types#echo-point";
    assert_eq!(f.export("echo-point").unwrap().name(), full);
    assert_eq!(f.export(full).unwrap().name(), full);
    assert_eq!(
        f.export("echo-point").unwrap().to_string(),
        format!("{full}: func(p: point) -> point")
    );
    assert_eq!(
        f.export("echo-result").unwrap().signature().to_string(),
        "func(r: result<u32, string>) -> result<u32, string>"
    );
    assert_eq!(
        f.export("check").unwrap().signature().to_string(),
        "func(fail: bool) -> result<_, string>"
    );
    match f.export("no-such-thing") {
        Err(Error::Wit(ferry_wit::Error::UnknownExport { name, available })) => {
            assert_eq!(name, "no-such-thing");
            assert!(available.contains("echo-point"), "{available}");
        }
        other => panic!("expected unknown export, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_arguments_name_the_argument_and_the_expected_type() {
    let host = host();
    let f = load(&host, "types");
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "echo-ints",
            &["1", "2"],
            &["expected 8 argument(s), got 2", "missing `c` (s16)"],
        ),
        (
            "echo-bool",
            &["true", "false"],
            &["expected 1 argument(s), got 2"],
        ),
        (
            "echo-point",
            &[r#"{"x": 1}"#],
            &["argument `p` (point)", "missing field `y`"],
        ),
        (
            "echo-point",
            &[r#"{"x": 1, "y": "a"}"#],
            &["argument `p`", "field `y`", "expected f32"],
        ),
        (
            "echo-point",
            &[r#"{"x": 1, "y": 2, "z": 3}"#],
            &["unknown field `z`"],
        ),
        (
            "echo-ints",
            &["300", "0", "0", "0", "0", "0", "0", "0"],
            &["argument `a` (s8)", "300"],
        ),
        (
            "echo-color",
            &[r#""purple""#],
            &["argument `c` (color)", "one of: red, green, blue"],
        ),
        ("echo-char", &[r#""ab""#], &["argument `c` (char)"]),
        (
            "echo-shape",
            &[r#"{"hexagon": 1}"#],
            &["hexagon", "circle, rectangle, empty"],
        ),
        (
            "echo-flags",
            &[r#"["fly"]"#],
            &["fly", "read, write, execute"],
        ),
        ("echo-string", &["not json"], &["argument `s` (string)"]),
        (
            "sum",
            &["[1, -1]"],
            &["argument `values` (list<u32>)", "[1]"],
        ),
    ];
    for (export, args, needles) in cases {
        let err = call_json(&host, &f, export, args, &Limits::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "bad-arguments", "{export}: {err}");
        let msg = err.to_string();
        for needle in *needles {
            assert!(msg.contains(needle), "{export}: `{msg}` lacks `{needle}`");
        }
    }
    // MessagePack arity errors too.
    let e = f.export("echo-floats").unwrap();
    let err = e
        .args_from_msgpack(&rmp_serde::to_vec(&(1.0,)).unwrap())
        .unwrap_err();
    assert!(
        err.to_string().contains("missing argument `b` (f64)"),
        "{err}"
    );
    // `()` is the argument list of a function without parameters.
    let e = f.export("nothing").unwrap();
    assert_eq!(
        e.args_from_msgpack(&rmp_serde::to_vec(&()).unwrap())
            .unwrap(),
        vec![]
    );
    let e = f.export("echo-bool").unwrap();
    assert!(
        e.args_from_msgpack(&rmp_serde::to_vec(&()).unwrap())
            .is_err()
    );
    // MessagePack bin is accepted for list<u8>.
    let e = f.export("echo-bytes").unwrap();
    let bin = rmp_serde::to_vec(&(serde_bytes_like(&[1, 2, 3]),)).unwrap();
    let vals = e.args_from_msgpack(&bin).unwrap();
    assert_eq!(vals, vec![ferry_host::Value::Bytes(vec![1, 2, 3])]);
    // So is an array of numbers, and both are held as bytes.
    let array = rmp_serde::to_vec(&(vec![1u8, 2, 3],)).unwrap();
    assert_eq!(e.args_from_msgpack(&array).unwrap(), vals);
}

/// A byte string that serializes as MessagePack bin.
fn serde_bytes_like(b: &[u8]) -> Bin<'_> {
    Bin(b)
}

struct Bin<'a>(&'a [u8]);

impl serde::Serialize for Bin<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

#[tokio::test]
async fn json_arguments_reencode_as_msgpack_losslessly() {
    let host = host();
    let f = load(&host, "types");
    let e = f.export("echo-everything").unwrap();
    let arg = json!({
        "flag": false, "small": 1, "byte": 2, "short": 3, "ushort": 4, "int": 5, "uint": 6,
        "long": "-7", "ulong": "18446744073709551615", "single": 0.25, "double": 0.5, "letter": "é",
        "text": "t", "numbers": [], "blob": [255], "origin": {"x": 1.0, "y": 2.0}, "pair": ["p", 9],
        "shape": "empty", "color": "red", "maybe": "m", "outcome": {"ok": 1}, "perms": ["read"],
        "nested": []
    });
    let vals = e.args_from_json(&[arg]).unwrap();
    let packed = e.args_to_msgpack(&vals).unwrap();
    assert_eq!(e.args_from_msgpack(&packed).unwrap(), vals);
}
