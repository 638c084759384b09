//! Component values between `ferry-wit`'s [`Value`] and wasmtime's [`Val`].

use ferry_wit::Value;
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

/// A call's result; `None` for kinds a signature ferry accepts cannot hold.
pub(crate) fn from_val(v: Val) -> Option<Value> {
    let boxed = |o: Option<Box<Val>>| -> Option<Option<Box<Value>>> {
        match o {
            None => Some(None),
            Some(v) => Some(Some(Box::new(from_val(*v)?))),
        }
    };
    Some(match v {
        Val::Bool(x) => Value::Bool(x),
        Val::S8(x) => Value::S8(x),
        Val::U8(x) => Value::U8(x),
        Val::S16(x) => Value::S16(x),
        Val::U16(x) => Value::U16(x),
        Val::S32(x) => Value::S32(x),
        Val::U32(x) => Value::U32(x),
        Val::S64(x) => Value::S64(x),
        Val::U64(x) => Value::U64(x),
        Val::Float32(x) => Value::Float32(x),
        Val::Float64(x) => Value::Float64(x),
        Val::Char(x) => Value::Char(x),
        Val::String(x) => Value::String(x),
        Val::List(xs) => Value::List(xs.into_iter().map(from_val).collect::<Option<_>>()?),
        Val::Record(fs) => Value::Record(
            fs.into_iter()
                .map(|(n, v)| Some((n, from_val(v)?)))
                .collect::<Option<_>>()?,
        ),
        Val::Tuple(xs) => Value::Tuple(xs.into_iter().map(from_val).collect::<Option<_>>()?),
        Val::Variant(c, p) => Value::Variant(c, boxed(p)?),
        Val::Enum(n) => Value::Enum(n),
        Val::Option(o) => Value::Option(boxed(o)?),
        Val::Result(Ok(o)) => Value::Result(Ok(boxed(o)?)),
        Val::Result(Err(e)) => Value::Result(Err(boxed(e)?)),
        Val::Flags(names) => Value::Flags(names),
        Val::FixedLengthList(_)
        | Val::Map(_)
        | Val::Resource(_)
        | Val::Future(_)
        | Val::Stream(_)
        | Val::ErrorContext(_) => return None,
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
