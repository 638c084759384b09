//! Component values between `ferry-wit`'s [`Value`] and wasmtime's [`Val`].

use ferry_wit::{Value, WitType};
use wasmtime::component::Val;

/// A value for a call.
pub(crate) fn to_val(v: &Value) -> Val {
    let boxed = |o: &Option<Box<Value>>| o.as_deref().map(|v| Box::new(to_val(v)));
    match v {
        Value::Bool(x) => Val::Bool(*x),
        Value::S8(x) => Val::S8(*x),
        Value::U8(x) => Val::U8(*x),
        Value::S16(x) => Val::S16(*x),
        Value::U16(x) => Val::U16(*x),
        Value::S32(x) => Val::S32(*x),
        Value::U32(x) => Val::U32(*x),
        Value::S64(x) => Val::S64(*x),
        Value::U64(x) => Val::U64(*x),
        Value::Float32(x) => Val::Float32(*x),
        Value::Float64(x) => Val::Float64(*x),
        Value::Char(x) => Val::Char(*x),
        Value::String(x) => Val::String(x.clone()),
        Value::Bytes(b) => Val::List(b.iter().map(|&x| Val::U8(x)).collect()),
        Value::List(xs) => Val::List(xs.iter().map(to_val).collect()),
        Value::Record(fs) => Val::Record(fs.iter().map(|(n, v)| (n.clone(), to_val(v))).collect()),
        Value::Tuple(xs) => Val::Tuple(xs.iter().map(to_val).collect()),
        Value::Variant(c, p) => Val::Variant(c.clone(), boxed(p)),
        Value::Enum(n) => Val::Enum(n.clone()),
        Value::Option(o) => Val::Option(boxed(o)),
        Value::Result(Ok(o)) => Val::Result(Ok(boxed(o))),
        Value::Result(Err(e)) => Val::Result(Err(boxed(e))),
        Value::Flags(names) => Val::Flags(names.clone()),
    }
}

/// A call's result, of type `ty`; `None` for kinds a signature ferry
/// accepts cannot hold.
pub(crate) fn from_val(v: Val, ty: &WitType) -> Option<Value> {
    let boxed = |o: Option<Box<Val>>, ty: Option<&WitType>| -> Option<Option<Box<Value>>> {
        match (o, ty) {
            (None, _) => Some(None),
            (Some(v), Some(ty)) => Some(Some(Box::new(from_val(*v, ty)?))),
            (Some(_), None) => None,
        }
    };
    Some(match (v, ty) {
        (Val::Bool(x), _) => Value::Bool(x),
        (Val::S8(x), _) => Value::S8(x),
        (Val::U8(x), _) => Value::U8(x),
        (Val::S16(x), _) => Value::S16(x),
        (Val::U16(x), _) => Value::U16(x),
        (Val::S32(x), _) => Value::S32(x),
        (Val::U32(x), _) => Value::U32(x),
        (Val::S64(x), _) => Value::S64(x),
        (Val::U64(x), _) => Value::U64(x),
        (Val::Float32(x), _) => Value::Float32(x),
        (Val::Float64(x), _) => Value::Float64(x),
        (Val::Char(x), _) => Value::Char(x),
        (Val::String(x), _) => Value::String(x),
        (Val::List(xs), WitType::List(inner)) if **inner == WitType::U8 => Value::Bytes(
            xs.into_iter()
                .map(|x| match x {
                    Val::U8(b) => Some(b),
                    _ => None,
                })
                .collect::<Option<_>>()?,
        ),
        (Val::List(xs), WitType::List(inner)) => Value::List(
            xs.into_iter()
                .map(|x| from_val(x, inner))
                .collect::<Option<_>>()?,
        ),
        (Val::Record(fs), WitType::Record(r)) => Value::Record(
            fs.into_iter()
                .zip(&r.fields)
                .map(|((n, v), (_, t))| Some((n, from_val(v, t)?)))
                .collect::<Option<_>>()?,
        ),
        (Val::Tuple(xs), WitType::Tuple(ts)) => Value::Tuple(
            xs.into_iter()
                .zip(ts)
                .map(|(x, t)| from_val(x, t))
                .collect::<Option<_>>()?,
        ),
        (Val::Variant(c, p), WitType::Variant(v)) => {
            let case = v.cases.iter().find(|(n, _)| *n == c)?;
            let payload = boxed(p, case.1.as_ref())?;
            Value::Variant(c, payload)
        }
        (Val::Enum(n), _) => Value::Enum(n),
        (Val::Option(o), WitType::Option(inner)) => Value::Option(boxed(o, Some(inner))?),
        (Val::Result(Ok(o)), WitType::Result { ok, .. }) => {
            Value::Result(Ok(boxed(o, ok.as_deref())?))
        }
        (Val::Result(Err(e)), WitType::Result { err, .. }) => {
            Value::Result(Err(boxed(e, err.as_deref())?))
        }
        (Val::Flags(names), _) => Value::Flags(names),
        _ => return None,
    })
}

/// The bytes a value takes in memory once lifted: what the output cap counts.
pub(crate) fn payload_size(v: &Val) -> u64 {
    match v {
        Val::Bool(_) | Val::S8(_) | Val::U8(_) => 1,
        Val::S16(_) | Val::U16(_) => 2,
        Val::S32(_) | Val::U32(_) | Val::Float32(_) | Val::Char(_) => 4,
        Val::S64(_) | Val::U64(_) | Val::Float64(_) => 8,
        Val::String(s) => s.len() as u64,
        Val::Enum(s) => s.len() as u64,
        Val::List(vs) | Val::Tuple(vs) | Val::FixedLengthList(vs) => {
            vs.iter().map(payload_size).sum()
        }
        Val::Record(fs) => fs.iter().map(|(_, v)| payload_size(v)).sum(),
        Val::Variant(n, v) => n.len() as u64 + v.as_deref().map_or(0, payload_size),
        Val::Option(v) => 1 + v.as_deref().map_or(0, payload_size),
        Val::Result(r) => {
            1 + match r {
                Ok(v) | Err(v) => v.as_deref().map_or(0, payload_size),
            }
        }
        Val::Flags(names) => names.iter().map(|n| n.len() as u64).sum(),
        Val::Map(kvs) => kvs
            .iter()
            .map(|(k, v)| payload_size(k) + payload_size(v))
            .sum(),
        Val::Resource(_) | Val::Future(_) | Val::Stream(_) | Val::ErrorContext(_) => 8,
    }
}
