//! Fuzzing the service's request handling (arbtest, on stable): arbitrary
//! submissions and batches, structured and as raw protobuf bytes, from an
//! admin and from a user, against real components. For `FERRY_FUZZ_MS`
//! milliseconds (default 2000).
//!
//! What must hold: nothing panics; every refusal is a typed error that is
//! not internal and names no path of the service's; an accepted batch gives
//! one task id per submission.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arbitrary::{Result, Unstructured};
use ferry_proto::v1::{self as pb, submit_request};
use ferry_wit::FunctionId;
use prost::Message;

use crate::core::{Error, Principal};
use crate::identities::EndpointPolicy;
use crate::{FIRST_ADMIN, MemoryStore, Service, ServiceConfig};

fn budget_ms() -> u64 {
    std::env::var("FERRY_FUZZ_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

struct Fixture {
    service: Service,
    functions: Vec<(String, Vec<String>)>,
    who: [Principal; 2],
    data_dir: String,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::with_store(
        ServiceConfig::new(dir.path()),
        Arc::new(MemoryStore::default()),
    )
    .unwrap();
    service.bootstrap().unwrap();
    service.own_endpoint("lab").unwrap();
    let admin = Principal::new(FIRST_ADMIN, true, "");
    let ids = &service.inner.identities;
    ids.add_user(&admin, "ada", false, 0).unwrap();
    ids.set_policy(
        &admin,
        "lab",
        EndpointPolicy {
            submitters: vec!["*".into()],
            ..EndpointPolicy::default()
        },
    )
    .unwrap();
    let mut functions = Vec::new();
    for guest in ["pi", "types", "blob-probe", "dataflow-probe"] {
        let bytes = ferry_testkit::guest_bytes(guest);
        let id = FunctionId::of(&bytes);
        service.inner.components.put(&id, &bytes).unwrap();
        let c = service.inner.functions.get(&id.to_hex()).unwrap();
        let exports = c.exports.iter().map(|e| e.name().to_owned()).collect();
        functions.push((id.to_hex(), exports));
    }
    Fixture {
        data_dir: dir.path().display().to_string(),
        service,
        functions,
        who: [admin, Principal::new("ada", false, "t")],
        _dir: dir,
    }
}

/// JSON arguments that are often nearly right: numbers, strings, lists,
/// records and task references.
fn json_arg(u: &mut Unstructured<'_>, depth: u32) -> Result<serde_json::Value> {
    use serde_json::Value as J;
    let kinds = if depth == 0 { 6 } else { 9 };
    Ok(match u.choose_index(kinds)? {
        0 => J::Null,
        1 => J::Bool(u.arbitrary()?),
        2 => J::from(u.int_in_range(0u64..=100_000)?),
        3 => J::from(u.arbitrary::<i64>()?),
        4 => serde_json::Number::from_f64(u.arbitrary()?).map_or(J::Null, J::Number),
        5 => J::String(u.arbitrary()?),
        6 => J::Array(
            (0..u.int_in_range(0..=3)?)
                .map(|_| json_arg(u, depth - 1))
                .collect::<Result<_>>()?,
        ),
        7 => {
            let id = if u.arbitrary()? {
                format!("#{}", u.int_in_range(0..=3)?)
            } else {
                u.arbitrary()?
            };
            serde_json::json!({ "$task": id })
        }
        _ => {
            let mut map = serde_json::Map::new();
            for _ in 0..u.int_in_range(0..=3)? {
                let key = u.choose(&["hash", "size", "x", "y", "ok", "err"])?;
                map.insert((*key).to_owned(), json_arg(u, depth - 1)?);
            }
            J::Object(map)
        }
    })
}

fn submission(
    u: &mut Unstructured<'_>,
    functions: &[(String, Vec<String>)],
) -> Result<pb::SubmitRequest> {
    if u.ratio(1, 3)? {
        // Well-formed, so that the deeper checks are reached too.
        let (samples, seed): (u32, u64) = u.arbitrary()?;
        return Ok(pb::SubmitRequest {
            endpoint: "lab".into(),
            function_id: functions[0].0.clone(),
            export: "pi".into(),
            args: Some(submit_request::Args::Json(format!("[{samples}, {seed}]"))),
            memoize: u.arbitrary()?,
            retries: u.int_in_range(0..=3)?,
            retry_on: vec!["trap".into()],
            ..Default::default()
        });
    }
    let (id, exports) = u.choose(functions)?;
    let function_id = match u.choose_index(4)? {
        0 => u.arbitrary()?,
        1 => FunctionId::of(&u.arbitrary::<Vec<u8>>()?).to_hex(),
        _ => id.clone(),
    };
    let export = if u.ratio(7, 8)? {
        u.choose(exports)?.clone()
    } else {
        u.arbitrary()?
    };
    let endpoint = match u.choose_index(5)? {
        0 => u.arbitrary()?,
        1 => "nowhere".to_owned(),
        _ => "lab".to_owned(),
    };
    let args = match u.choose_index(4)? {
        0 => None,
        1 => Some(submit_request::Args::Msgpack(u.arbitrary()?)),
        2 => {
            let n = u.int_in_range(0..=4)?;
            let values = (0..n).map(|_| json_arg(u, 3)).collect::<Result<Vec<_>>>()?;
            Some(submit_request::Args::Msgpack(
                rmp_serde::to_vec(&values).unwrap(),
            ))
        }
        _ => {
            let n = u.int_in_range(0..=4)?;
            let values = (0..n).map(|_| json_arg(u, 3)).collect::<Result<Vec<_>>>()?;
            let text = serde_json::Value::Array(values).to_string();
            Some(submit_request::Args::Json(if u.ratio(1, 8)? {
                let cut = u.choose_index(text.chars().count())?;
                text.chars().take(cut).collect()
            } else {
                text
            }))
        }
    };
    let need = |u: &mut Unstructured<'_>| -> Result<pb::Requirement> {
        use pb::requirement::Need;
        Ok(pb::Requirement {
            need: match u.choose_index(5)? {
                0 => None,
                1 => Some(Need::Gpu(pb::GpuNeed {})),
                2 => Some(Need::Camera(pb::CameraNeed {
                    name: u.arbitrary()?,
                })),
                3 => Some(Need::Mount(pb::MountNeed {
                    guest: u.arbitrary()?,
                })),
                _ => Some(Need::Env(pb::EnvNeed {
                    name: u.arbitrary()?,
                })),
            },
        })
    };
    Ok(pb::SubmitRequest {
        endpoint,
        function_id,
        export,
        args,
        limits: if u.arbitrary()? {
            Some(pb::Limits {
                timeout_ms: u.arbitrary()?,
                memory_bytes: u.arbitrary()?,
                output_bytes: u.arbitrary()?,
            })
        } else {
            None
        },
        requires: (0..u.int_in_range(0..=2)?)
            .map(|_| need(u))
            .collect::<Result<_>>()?,
        memoize: u.arbitrary()?,
        retries: u.int_in_range(0..=12)?,
        retry_on: (0..u.int_in_range(0..=2)?)
            .map(|_| {
                Ok(if u.arbitrary()? {
                    (*u.choose(&["*", "trap", "timeout", "bad-arguments", "nope"])?).to_owned()
                } else {
                    u.arbitrary()?
                })
            })
            .collect::<Result<_>>()?,
    })
}

/// A refusal must be typed, not internal, and must not name the data
/// directory.
fn check_refusal(e: &Error, data_dir: &str) {
    assert!(!matches!(e, Error::Internal(_)), "an internal error: {e}");
    let message = e.to_string();
    assert!(!message.is_empty());
    assert!(
        !message.contains(data_dir),
        "names a service path: {message}"
    );
}

#[test]
fn arbitrary_submissions_are_accepted_or_refused_with_a_typed_error() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _in = runtime.enter();
    let f = fixture();
    let (runs, accepted) = (AtomicU64::new(0), AtomicU64::new(0));
    arbtest::arbtest(|u| {
        runs.fetch_add(1, Ordering::Relaxed);
        let who = u.choose(&f.who)?;
        let n = u.int_in_range(1..=3)?;
        let batch = (0..n)
            .map(|_| submission(u, &f.functions))
            .collect::<Result<Vec<_>>>()?;
        match f.service.accept(who, batch) {
            Ok(ids) => {
                assert_eq!(ids.len(), n);
                accepted.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => check_refusal(&e, &f.data_dir),
        }
        Ok(())
    })
    .budget_ms(budget_ms())
    .run();
    let accepted = accepted.load(Ordering::Relaxed);
    println!(
        "fuzz submissions: {} batches in {} ms, {accepted} accepted, no failure",
        runs.load(Ordering::Relaxed),
        budget_ms()
    );
    assert!(accepted > 0, "no batch was accepted: the generator misses");
}

#[test]
fn raw_protobuf_submissions_are_refused_or_decoded_without_a_panic() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _in = runtime.enter();
    let f = fixture();
    let runs = AtomicU64::new(0);
    arbtest::arbtest(|u| {
        runs.fetch_add(1, Ordering::Relaxed);
        // A real submission's bytes, mutated, or plain noise.
        let mut bytes = if u.arbitrary()? {
            submission(u, &f.functions)?.encode_to_vec()
        } else {
            u.arbitrary()?
        };
        for _ in 0..u.int_in_range(0..=4)? {
            if bytes.is_empty() {
                break;
            }
            let at = u.choose_index(bytes.len())?;
            bytes[at] = u.arbitrary()?;
        }
        if let Ok(req) = pb::SubmitRequest::decode(bytes.as_slice())
            && let Err(e) = f.service.accept(u.choose(&f.who)?, vec![req])
        {
            check_refusal(&e, &f.data_dir);
        }
        Ok(())
    })
    .budget_ms(budget_ms())
    .run();
    println!(
        "fuzz protobuf-submissions: {} inputs in {} ms, no failure",
        runs.load(Ordering::Relaxed),
        budget_ms()
    );
}
