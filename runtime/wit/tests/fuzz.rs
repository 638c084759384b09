//! Structure-aware fuzzing on the stable toolchain (arbtest): arguments in
//! JSON and MessagePack against arbitrary signatures, and components from
//! arbitrary and from mutated real bytes. Each target runs for a fixed time,
//! `FERRY_FUZZ_MS` milliseconds (default 2000), and prints how many inputs
//! it tried; a failure prints the seed that replays it.
//!
//! What must hold: nothing panics; whatever decodes encodes again, and
//! decodes back to the same values, in one canonical form.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arbitrary::{Result, Unstructured};
use ferry_wit::{Component, Export, Named, Record, Signature, Variant, WitType};
use serde_json::Value as Json;

fn budget_ms() -> u64 {
    std::env::var("FERRY_FUZZ_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

/// Runs `target` for the budget and reports the inputs tried and the ones
/// it accepted (`Ok(true)`); returns how many it accepted.
fn fuzz(name: &str, target: impl Fn(&mut Unstructured<'_>) -> Result<bool>) -> u64 {
    let runs = AtomicU64::new(0);
    let accepted = AtomicU64::new(0);
    arbtest::arbtest(|u| {
        runs.fetch_add(1, Ordering::Relaxed);
        if target(u)? {
            accepted.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    })
    .budget_ms(budget_ms())
    .run();
    let accepted = accepted.load(Ordering::Relaxed);
    println!(
        "fuzz {name}: {} inputs in {} ms, {accepted} accepted, no failure",
        runs.load(Ordering::Relaxed),
        budget_ms()
    );
    accepted
}

fn names(u: &mut Unstructured<'_>, prefix: &str) -> Result<Vec<String>> {
    let n = u.int_in_range(1..=4)?;
    Ok((0..n).map(|i| format!("{prefix}{i}")).collect())
}

/// A WIT type at most `depth` levels deep.
fn wit_type(u: &mut Unstructured<'_>, depth: u32) -> Result<WitType> {
    let kinds = if depth == 0 { 13 } else { 21 };
    let inner = |u: &mut Unstructured<'_>| wit_type(u, depth.saturating_sub(1)).map(Box::new);
    Ok(match u.choose_index(kinds)? {
        0 => WitType::Bool,
        1 => WitType::S8,
        2 => WitType::U8,
        3 => WitType::S16,
        4 => WitType::U16,
        5 => WitType::S32,
        6 => WitType::U32,
        7 => WitType::S64,
        8 => WitType::U64,
        9 => WitType::F32,
        10 => WitType::F64,
        11 => WitType::Char,
        12 => WitType::String,
        13 => WitType::List(inner(u)?),
        14 => {
            let mut fields = Vec::new();
            for name in names(u, "f")? {
                fields.push((name, *inner(u)?));
            }
            WitType::Record(Arc::new(Record { name: None, fields }))
        }
        15 => {
            let n = u.int_in_range(1..=3)?;
            WitType::Tuple(
                (0..n)
                    .map(|_| inner(u).map(|t| *t))
                    .collect::<Result<_>>()?,
            )
        }
        16 => {
            let mut cases = Vec::new();
            for name in names(u, "c")? {
                let payload = if u.arbitrary()? {
                    Some(*inner(u)?)
                } else {
                    None
                };
                cases.push((name, payload));
            }
            WitType::Variant(Arc::new(Variant { name: None, cases }))
        }
        17 => WitType::Enum(Arc::new(Named {
            name: None,
            names: names(u, "e")?,
        })),
        18 => WitType::Option(inner(u)?),
        19 => WitType::Result {
            ok: if u.arbitrary()? {
                Some(inner(u)?)
            } else {
                None
            },
            err: if u.arbitrary()? {
                Some(inner(u)?)
            } else {
                None
            },
        },
        _ => WitType::Flags(Arc::new(Named {
            name: None,
            names: names(u, "g")?,
        })),
    })
}

fn export(u: &mut Unstructured<'_>) -> Result<Export> {
    let n = u.int_in_range(0..=3)?;
    let mut params = Vec::new();
    for i in 0..n {
        params.push((format!("p{i}"), wit_type(u, 3)?));
    }
    let result = if u.arbitrary()? {
        Some(wit_type(u, 3)?)
    } else {
        None
    };
    Ok(Export::new(None, "f", Signature { params, result }))
}

/// A JSON value, with names and shapes that the types above use often
/// enough that some inputs decode.
fn json(u: &mut Unstructured<'_>, depth: u32) -> Result<Json> {
    const KEYS: &[&str] = &["f0", "f1", "f2", "c0", "c1", "ok", "err", "x", ""];
    const TEXTS: &[&str] = &["c0", "c1", "e0", "e1", "g0", "g1", "a", "", "ok"];
    let kinds = if depth == 0 { 7 } else { 9 };
    Ok(match u.choose_index(kinds)? {
        0 => Json::Null,
        1 => Json::Bool(u.arbitrary()?),
        2 => Json::from(u.int_in_range(-300i64..=300)?),
        3 => Json::from(u.arbitrary::<i64>()?),
        4 => Json::from(u.arbitrary::<u64>()?),
        5 => serde_json::Number::from_f64(u.arbitrary()?).map_or(Json::Null, Json::Number),
        6 => Json::String(if u.arbitrary()? {
            (*u.choose(TEXTS)?).to_owned()
        } else {
            u.arbitrary()?
        }),
        7 => {
            let n = u.int_in_range(0..=4)?;
            Json::Array((0..n).map(|_| json(u, depth - 1)).collect::<Result<_>>()?)
        }
        _ => {
            let n = u.int_in_range(0..=3)?;
            let mut map = serde_json::Map::new();
            for _ in 0..n {
                map.insert((*u.choose(KEYS)?).to_owned(), json(u, depth - 1)?);
            }
            Json::Object(map)
        }
    })
}

/// What decoded must encode, and decode back the same, canonically.
fn round_trips(export: &Export, values: &[ferry_wit::Value]) {
    let bytes = export
        .args_to_msgpack(values)
        .expect("decoded arguments encode again");
    let back = export
        .args_from_msgpack(&bytes)
        .expect("encoded arguments decode again");
    assert_eq!(back, values, "arguments changed in a round trip");
    assert_eq!(
        export.args_to_msgpack(&back).unwrap(),
        bytes,
        "the encoding is not canonical"
    );
}

#[test]
fn json_arguments_decode_against_any_signature_or_are_refused() {
    let accepted = fuzz("json-arguments", |u| {
        let export = export(u)?;
        let n = if u.ratio(3, 4)? {
            export.params().len()
        } else {
            u.int_in_range(0..=4)?
        };
        let args = (0..n).map(|_| json(u, 4)).collect::<Result<Vec<_>>>()?;
        let Ok(values) = export.args_from_json(&args) else {
            return Ok(false);
        };
        round_trips(&export, &values);
        Ok(true)
    });
    assert!(
        accepted > 0,
        "no input decoded: the generator misses the codec"
    );
}

#[test]
fn messagepack_arguments_decode_against_any_signature_or_are_refused() {
    let accepted = fuzz("msgpack-arguments", |u| {
        let export = export(u)?;
        let bytes = if u.arbitrary()? {
            let n = export.params().len();
            let args = (0..n).map(|_| json(u, 4)).collect::<Result<Vec<_>>>()?;
            rmp_serde::to_vec(&args).unwrap()
        } else {
            u.arbitrary::<Vec<u8>>()?
        };
        let _ = export.result_from_msgpack(&bytes);
        let Ok(values) = export.args_from_msgpack(&bytes) else {
            return Ok(false);
        };
        round_trips(&export, &values);
        Ok(true)
    });
    assert!(
        accepted > 0,
        "no input decoded: the generator misses the codec"
    );
}

#[test]
fn arbitrary_bytes_never_panic_the_component_reader() {
    fuzz("component-bytes", |u| {
        let mut bytes: Vec<u8> = u.arbitrary()?;
        // Half the time, a component header, so that parsing goes on.
        if u.arbitrary()? {
            let mut head = b"\0asm\x0d\0\x01\0".to_vec();
            head.append(&mut bytes);
            bytes = head;
        }
        Ok(Component::decode(&bytes).is_ok())
    });
}

#[test]
fn mutated_components_decode_or_are_refused_without_a_panic() {
    let seeds: Vec<Vec<u8>> = ["pi", "types", "faults"]
        .iter()
        .map(|g| ferry_testkit::guest_bytes(g))
        .collect();
    fuzz("mutated-components", |u| {
        let mut bytes = u.choose(&seeds)?.clone();
        for _ in 0..u.int_in_range(1..=8)? {
            let at = u.choose_index(bytes.len())?;
            match u.choose_index(4)? {
                0 => bytes[at] = u.arbitrary()?,
                1 => bytes[at] ^= 1 << u.choose_index(8)?,
                2 => bytes.truncate(at.max(8)),
                _ => {
                    let n = u.int_in_range(1..=16)?.min(bytes.len() - at);
                    bytes.drain(at..at + n);
                }
            }
            if bytes.len() <= 8 {
                break;
            }
        }
        let Ok(c) = Component::decode(&bytes) else {
            return Ok(false);
        };
        assert_eq!(
            c.id,
            ferry_wit::FunctionId::of(&bytes),
            "named by its bytes"
        );
        Ok(true)
    });
}
