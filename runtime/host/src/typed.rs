//! Calls whose result is a `list<u8>`, lifted as bytes.
//!
//! wasmtime's dynamic calls lift every list element into a `Val` (32 bytes
//! each, and charged as such against the store's hostcall fuel, 128 MiB by
//! default), so a 4 MiB `list<u8>` result fails, and a 48 MiB one would take
//! 1.5 GiB of the host's memory. A typed call lifts it with one copy out of
//! guest memory. Typed calls fix their parameter types at compile time, so
//! this covers the exports most functions that return bytes have: up to two
//! parameters, each of the kinds of [`Param`]. Other signatures take the
//! dynamic path (see `call.rs`), with fuel enough for results up to the
//! output limit.

use ferry_wit::{Value, WitType};
use wasmtime::Store;
use wasmtime::component::{ComponentNamedList, Func, Lower};

use crate::capabilities::TaskState;

/// One parameter a typed call passes, as the Rust type that lowers to it.
pub(crate) enum Param {
    Bool(bool),
    U8(u8),
    S32(i32),
    U32(u32),
    S64(i64),
    U64(u64),
    F32(f32),
    F64(f64),
    Str(String),
    Bytes(Vec<u8>),
    F32s(Vec<f32>),
    F64s(Vec<f64>),
}

impl Param {
    fn of(ty: &WitType, v: &Value) -> Option<Param> {
        Some(match (ty, v) {
            (WitType::Bool, Value::Bool(x)) => Param::Bool(*x),
            (WitType::U8, Value::U8(x)) => Param::U8(*x),
            (WitType::S32, Value::S32(x)) => Param::S32(*x),
            (WitType::U32, Value::U32(x)) => Param::U32(*x),
            (WitType::S64, Value::S64(x)) => Param::S64(*x),
            (WitType::U64, Value::U64(x)) => Param::U64(*x),
            (WitType::F32, Value::Float32(x)) => Param::F32(*x),
            (WitType::F64, Value::Float64(x)) => Param::F64(*x),
            (WitType::String, Value::String(x)) => Param::Str(x.clone()),
            (WitType::List(t), Value::Bytes(b)) if **t == WitType::U8 => Param::Bytes(b.clone()),
            (WitType::List(t), Value::List(xs)) if **t == WitType::F32 => Param::F32s(
                xs.iter()
                    .map(|x| match x {
                        Value::Float32(f) => Some(*f),
                        _ => None,
                    })
                    .collect::<Option<_>>()?,
            ),
            (WitType::List(t), Value::List(xs)) if **t == WitType::F64 => Param::F64s(
                xs.iter()
                    .map(|x| match x {
                        Value::Float64(f) => Some(*f),
                        _ => None,
                    })
                    .collect::<Option<_>>()?,
            ),
            _ => return None,
        })
    }
}

/// The parameters for a typed call of an export with these parameter types
/// and result, if it can take one.
pub(crate) fn params(
    types: &[(String, WitType)],
    result: Option<&WitType>,
    args: &[Value],
) -> Option<Vec<Param>> {
    if !matches!(result, Some(WitType::List(t)) if **t == WitType::U8) || types.len() > 2 {
        return None;
    }
    types
        .iter()
        .zip(args)
        .map(|((_, t), v)| Param::of(t, v))
        .collect()
}

macro_rules! second {
    ($store:ident, $func:ident, $a:ident, $b:ident) => {
        match $b {
            Param::Bool(b) => typed($store, $func, ($a, b)).await,
            Param::U8(b) => typed($store, $func, ($a, b)).await,
            Param::S32(b) => typed($store, $func, ($a, b)).await,
            Param::U32(b) => typed($store, $func, ($a, b)).await,
            Param::S64(b) => typed($store, $func, ($a, b)).await,
            Param::U64(b) => typed($store, $func, ($a, b)).await,
            Param::F32(b) => typed($store, $func, ($a, b)).await,
            Param::F64(b) => typed($store, $func, ($a, b)).await,
            Param::Str(b) => typed($store, $func, ($a, b)).await,
            Param::Bytes(b) => typed($store, $func, ($a, b)).await,
            Param::F32s(b) => typed($store, $func, ($a, b)).await,
            Param::F64s(b) => typed($store, $func, ($a, b)).await,
        }
    };
}

/// A call with one parameter, of whichever kind `a` holds.
macro_rules! one {
    ($store:ident, $func:ident, $a:ident) => {
        match $a {
            Param::Bool(a) => typed($store, $func, (a,)).await,
            Param::U8(a) => typed($store, $func, (a,)).await,
            Param::S32(a) => typed($store, $func, (a,)).await,
            Param::U32(a) => typed($store, $func, (a,)).await,
            Param::S64(a) => typed($store, $func, (a,)).await,
            Param::U64(a) => typed($store, $func, (a,)).await,
            Param::F32(a) => typed($store, $func, (a,)).await,
            Param::F64(a) => typed($store, $func, (a,)).await,
            Param::Str(a) => typed($store, $func, (a,)).await,
            Param::Bytes(a) => typed($store, $func, (a,)).await,
            Param::F32s(a) => typed($store, $func, (a,)).await,
            Param::F64s(a) => typed($store, $func, (a,)).await,
        }
    };
}
/// A call with two parameters: the first's kind picks the arm, the
/// second's the call.
macro_rules! two {
    ($store:ident, $func:ident, $a:ident, $b:ident) => {
        match $a {
            Param::Bool(a) => second!($store, $func, a, $b),
            Param::U8(a) => second!($store, $func, a, $b),
            Param::S32(a) => second!($store, $func, a, $b),
            Param::U32(a) => second!($store, $func, a, $b),
            Param::S64(a) => second!($store, $func, a, $b),
            Param::U64(a) => second!($store, $func, a, $b),
            Param::F32(a) => second!($store, $func, a, $b),
            Param::F64(a) => second!($store, $func, a, $b),
            Param::Str(a) => second!($store, $func, a, $b),
            Param::Bytes(a) => second!($store, $func, a, $b),
            Param::F32s(a) => second!($store, $func, a, $b),
            Param::F64s(a) => second!($store, $func, a, $b),
        }
    };
}
/// Calls `func` with `params` (from [`params`]), returning its bytes.
pub(crate) async fn call(
    store: &mut Store<TaskState>,
    func: Func,
    params: Vec<Param>,
) -> wasmtime::Result<Vec<u8>> {
    let mut params = params.into_iter();
    match (params.next(), params.next()) {
        (None, _) => typed(store, func, ()).await,
        (Some(a), None) => one!(store, func, a),
        (Some(a), Some(b)) => two!(store, func, a, b),
    }
}

async fn typed<P>(store: &mut Store<TaskState>, func: Func, params: P) -> wasmtime::Result<Vec<u8>>
where
    P: ComponentNamedList + Lower + Send + Sync + 'static,
{
    // Type-checked against the export: a mismatch is an error, not a guess.
    let f = func.typed::<P, (Vec<u8>,)>(&*store)?;
    let (bytes,) = f.call_async(&mut *store, params).await?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes() -> WitType {
        WitType::List(Box::new(WitType::U8))
    }

    #[test]
    fn typed_calls_take_byte_results_of_up_to_two_known_parameters() {
        let types = [
            ("n".to_owned(), WitType::U32),
            ("seed".to_owned(), WitType::U8),
        ];
        let args = [Value::U32(5), Value::U8(1)];
        assert_eq!(
            params(&types, Some(&bytes()), &args).map(|p| p.len()),
            Some(2)
        );
        assert!(params(&[], Some(&bytes()), &[]).is_some());
        // Not bytes back, or a parameter of another kind: the dynamic path.
        assert!(params(&types, Some(&WitType::String), &args).is_none());
        assert!(params(&types, None, &args).is_none());
        let chars = [("c".to_owned(), WitType::Char)];
        assert!(params(&chars, Some(&bytes()), &[Value::Char('x')]).is_none());
        let three = [
            ("a".to_owned(), WitType::U32),
            ("b".to_owned(), WitType::U32),
            ("c".to_owned(), WitType::U32),
        ];
        let args3 = [Value::U32(1), Value::U32(2), Value::U32(3)];
        assert!(params(&three, Some(&bytes()), &args3).is_none());
    }
}
