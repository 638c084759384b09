//! Task references in arguments: `{"$task": "<id>"}` anywhere in an argument
//! stands for that task's result. Found and type-checked at submit, filled in
//! when the last producer succeeds.

use std::collections::HashMap;

use ferry_wit::{Export, WitType};
use serde_json::Value;

/// The task id a value refers to, if it is a reference.
pub(crate) fn reference(v: &Value) -> Option<&str> {
    match v {
        Value::Object(o) if o.len() == 1 => o.get("$task")?.as_str(),
        _ => None,
    }
}

/// A reference found in an argument, with the type expected where it stands.
pub(crate) struct Found {
    pub id: String,
    pub want: WitType,
    /// Where: `argument `points`[3].x`.
    pub at: String,
}

/// Walks `v` along its type and collects the references in it.
pub(crate) fn find(v: &Value, ty: &WitType, at: &str, out: &mut Vec<Found>) {
    if let Some(id) = reference(v) {
        out.push(Found {
            id: id.to_owned(),
            want: ty.clone(),
            at: at.to_owned(),
        });
        return;
    }
    match (ty, v) {
        (WitType::List(t), Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                find(item, t, &format!("{at}[{i}]"), out);
            }
        }
        (WitType::Tuple(ts), Value::Array(items)) => {
            for (i, (t, item)) in ts.iter().zip(items).enumerate() {
                find(item, t, &format!("{at}.{i}"), out);
            }
        }
        (WitType::Record(r), Value::Object(o)) => {
            for (name, t) in &r.fields {
                if let Some(item) = o.get(name) {
                    find(item, t, &format!("{at}.{name}"), out);
                }
            }
        }
        (WitType::Record(r), Value::Array(items)) => {
            for ((name, t), item) in r.fields.iter().zip(items) {
                find(item, t, &format!("{at}.{name}"), out);
            }
        }
        (WitType::Option(t), v) if !v.is_null() => find(v, t, at, out),
        (WitType::Result { ok, err }, Value::Object(o)) => {
            if let (Some(t), Some(x)) = (ok, o.get("ok")) {
                find(x, t, &format!("{at}.ok"), out);
            }
            if let (Some(t), Some(x)) = (err, o.get("err")) {
                find(x, t, &format!("{at}.err"), out);
            }
        }
        (WitType::Variant(var), Value::Object(o)) => {
            for (case, t) in &var.cases {
                if let (Some(t), Some(x)) = (t, o.get(case)) {
                    find(x, t, &format!("{at}.{case}"), out);
                }
            }
        }
        _ => {}
    }
}

/// Replaces every reference in `v` by the value `results` holds for it.
pub(crate) fn fill(v: &mut Value, results: &HashMap<String, Value>) {
    if let Some(id) = reference(v) {
        if let Some(r) = results.get(id) {
            *v = r.clone();
        }
        return;
    }
    match v {
        Value::Array(items) => items.iter_mut().for_each(|x| fill(x, results)),
        Value::Object(o) => o.values_mut().for_each(|x| fill(x, results)),
        _ => {}
    }
}

/// Renames references (`#3` in a batch to the id it was given).
pub(crate) fn rename(v: &mut Value, name: &dyn Fn(&str) -> Option<String>) {
    if let Some(id) = reference(v) {
        if let Some(new) = name(id) {
            *v = serde_json::json!({ "$task": new });
        }
        return;
    }
    match v {
        Value::Array(items) => items.iter_mut().for_each(|x| rename(x, name)),
        Value::Object(o) => o.values_mut().for_each(|x| rename(x, name)),
        _ => {}
    }
}

/// What a producer feeds a consumer: its result type, or `T` of `result<T, E>`.
pub(crate) fn fed_type(export: &Export) -> Result<WitType, String> {
    match export.result_type() {
        None => Err(format!("`{}` returns nothing", export.name())),
        Some(WitType::Result { ok: Some(t), .. }) => Ok((**t).clone()),
        Some(WitType::Result { ok: None, .. }) => Err(format!(
            "`{}` returns result<_, E>: no value on ok",
            export.name()
        )),
        Some(t) => Ok(t.clone()),
    }
}

/// The value a finished producer feeds its consumers: its result as JSON,
/// the `ok` side of a `result`; its `err` is the producer's failure.
pub(crate) fn fed_value(export: &Export, result: &[u8]) -> Result<Value, String> {
    let val = export
        .result_from_msgpack(result)
        .map_err(|e| e.to_string())?;
    let json = export
        .result_to_json(val.as_ref())
        .map_err(|e| e.to_string())?;
    match export.result_type() {
        Some(WitType::Result { .. }) => match json {
            Value::Object(mut o) => {
                if let Some(ok) = o.remove("ok") {
                    Ok(ok)
                } else {
                    let err = o.remove("err").unwrap_or(Value::Null);
                    Err(match err {
                        Value::String(s) => s,
                        Value::Null => "it returned err".to_owned(),
                        other => other.to_string(),
                    })
                }
            }
            other => Err(format!("a stored result of unexpected shape: {other}")),
        },
        _ => Ok(json),
    }
}
