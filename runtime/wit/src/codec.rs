//! Conversion between wire values (JSON, MessagePack) and [`Value`](crate::Value)s.
//!
//! One serde `DeserializeSeed`, steered by the WIT type, reads any
//! self-describing format, so JSON and MessagePack share every rule:
//!
//! | WIT | wire |
//! |---|---|
//! | record | object keyed by field name (or an array in field order) |
//! | tuple | array |
//! | variant | `{"case": payload}`, or `"case"` without payload |
//! | enum | `"name"` |
//! | option | `null` or the value |
//! | result | `{"ok": v}` / `{"err": e}` |
//! | flags | array of names |
//! | s64/u64 (any integer) | number, or a decimal string |
//! | f32/f64 | number, or `"NaN"`, `"Infinity"`, `"-Infinity"` |
//! | list<u8> | array of numbers in JSON, bin in MessagePack (either is accepted on input) |

use std::fmt;

use crate::types::WitType;
use crate::value::Value as Val;
use serde::de::{self, DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// Reads one value of type `ty`.
pub(crate) struct ValSeed<'a>(pub(crate) &'a WitType);

impl<'de> DeserializeSeed<'de> for ValSeed<'_> {
    type Value = Val;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Val, D::Error> {
        match self.0 {
            WitType::Option(inner) => d.deserialize_option(OptionVisitor(inner)),
            ty => d.deserialize_any(ValVisitor(ty)),
        }
    }
}

/// Reads a whole argument list (a sequence) against named parameters.
pub(crate) struct ArgsSeed<'a>(pub(crate) &'a [(String, WitType)]);

impl<'de> DeserializeSeed<'de> for ArgsSeed<'_> {
    type Value = Vec<Val>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Val>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ArgsSeed<'_> {
    type Value = Vec<Val>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an array of {} argument(s)", self.0.len())
    }

    /// `nil` (Rust's `()`) is the argument list of a function without parameters.
    fn visit_unit<E: de::Error>(self) -> Result<Vec<Val>, E> {
        if self.0.is_empty() {
            Ok(Vec::new())
        } else {
            Err(E::invalid_type(de::Unexpected::Unit, &self))
        }
    }

    fn visit_none<E: de::Error>(self) -> Result<Vec<Val>, E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Val>, A::Error> {
        let mut out = Vec::with_capacity(self.0.len());
        for (name, ty) in self.0 {
            match seq.next_element_seed(ValSeed(ty)) {
                Ok(Some(v)) => out.push(v),
                Ok(None) => {
                    return Err(A::Error::custom(format_args!(
                        "expected {} argument(s), got {}: missing argument `{name}` ({ty})",
                        self.0.len(),
                        out.len()
                    )));
                }
                Err(e) => {
                    return Err(A::Error::custom(format_args!(
                        "argument `{name}` ({ty}): {e}"
                    )));
                }
            }
        }
        if seq.next_element::<de::IgnoredAny>()?.is_some() {
            let extra =
                1 + std::iter::from_fn(|| seq.next_element::<de::IgnoredAny>().ok().flatten())
                    .count();
            return Err(A::Error::custom(format_args!(
                "expected {} argument(s), got {}",
                self.0.len(),
                self.0.len() + extra
            )));
        }
        Ok(out)
    }
}

struct OptionVisitor<'a>(&'a WitType);

impl<'de> Visitor<'de> for OptionVisitor<'_> {
    type Value = Val;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "null or {}", self.0)
    }
    fn visit_none<E: de::Error>(self) -> Result<Val, E> {
        Ok(Val::Option(None))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Val, E> {
        Ok(Val::Option(None))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Val, D::Error> {
        Ok(Val::Option(Some(Box::new(ValSeed(self.0).deserialize(d)?))))
    }
}

struct ValVisitor<'a>(&'a WitType);

macro_rules! int_from {
    ($self:ident, $v:expr, $unexp:expr, $E:ty) => {{
        let v = $v;
        let out = match $self.0 {
            WitType::S8 => i8::try_from(v).ok().map(Val::S8),
            WitType::U8 => u8::try_from(v).ok().map(Val::U8),
            WitType::S16 => i16::try_from(v).ok().map(Val::S16),
            WitType::U16 => u16::try_from(v).ok().map(Val::U16),
            WitType::S32 => i32::try_from(v).ok().map(Val::S32),
            WitType::U32 => u32::try_from(v).ok().map(Val::U32),
            WitType::S64 => i64::try_from(v).ok().map(Val::S64),
            WitType::U64 => u64::try_from(v).ok().map(Val::U64),
            WitType::F32 => return Ok(Val::Float32(v as f32)),
            WitType::F64 => return Ok(Val::Float64(v as f64)),
            _ => return Err(<$E>::invalid_type($unexp, &$self)),
        };
        out.ok_or_else(|| <$E>::invalid_value($unexp, &$self))
    }};
}

impl ValVisitor<'_> {
    fn is_int(&self) -> bool {
        matches!(
            self.0,
            WitType::S8
                | WitType::U8
                | WitType::S16
                | WitType::U16
                | WitType::S32
                | WitType::U32
                | WitType::S64
                | WitType::U64
        )
    }
}

impl<'de> Visitor<'de> for ValVisitor<'_> {
    type Value = Val;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.0 {
            WitType::Variant(v) => {
                let cases: Vec<_> = v.cases.iter().map(|(n, _)| n.as_str()).collect();
                write!(f, "{} (one of: {})", self.0, cases.join(", "))
            }
            WitType::Enum(e) | WitType::Flags(e) => {
                write!(f, "{} (one of: {})", self.0, e.names.join(", "))
            }
            WitType::Result { .. } => {
                write!(f, "{} as {{\"ok\": ...}} or {{\"err\": ...}}", self.0)
            }
            WitType::Char => f.write_str("char (a one-character string)"),
            ty => write!(f, "{ty}"),
        }
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Val, E> {
        match self.0 {
            WitType::Bool => Ok(Val::Bool(v)),
            _ => Err(E::invalid_type(de::Unexpected::Bool(v), &self)),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Val, E> {
        int_from!(self, v, de::Unexpected::Signed(v), E)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Val, E> {
        int_from!(self, v, de::Unexpected::Unsigned(v), E)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Val, E> {
        match self.0 {
            WitType::F32 => Ok(Val::Float32(v as f32)),
            WitType::F64 => Ok(Val::Float64(v)),
            _ if self.is_int() && v.fract() == 0.0 && v.abs() < 2f64.powi(63) => {
                if v < 0.0 {
                    self.visit_i64(v as i64)
                } else {
                    self.visit_u64(v as u64)
                }
            }
            _ => Err(E::invalid_type(de::Unexpected::Float(v), &self)),
        }
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Val, E> {
        let unexpected = de::Unexpected::Str(s);
        match self.0 {
            WitType::String => Ok(Val::String(s.to_owned())),
            WitType::Char => {
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Ok(Val::Char(c)),
                    _ => Err(E::invalid_value(unexpected, &self)),
                }
            }
            WitType::Enum(e) => e
                .names
                .iter()
                .any(|n| n == s)
                .then(|| Val::Enum(s.to_owned()))
                .ok_or_else(|| E::invalid_value(unexpected, &self)),
            WitType::Variant(v) => match v.cases.iter().find(|(n, _)| n == s) {
                Some((_, None)) => Ok(Val::Variant(s.to_owned(), None)),
                Some((_, Some(ty))) => Err(E::custom(format_args!(
                    "case `{s}` of {} carries a {ty}: write {{\"{s}\": ...}}",
                    self.0
                ))),
                None => Err(E::invalid_value(unexpected, &self)),
            },
            WitType::Result { ok, err } => match s {
                "ok" if ok.is_none() => Ok(Val::Result(Ok(None))),
                "err" if err.is_none() => Ok(Val::Result(Err(None))),
                _ => Err(E::invalid_value(unexpected, &self)),
            },
            WitType::F32 | WitType::F64 => {
                let v = match s {
                    "NaN" | "nan" => f64::NAN,
                    "Infinity" | "inf" | "+Infinity" => f64::INFINITY,
                    "-Infinity" | "-inf" => f64::NEG_INFINITY,
                    _ => s
                        .parse::<f64>()
                        .map_err(|_| E::invalid_value(unexpected, &self))?,
                };
                self.visit_f64(v)
            }
            _ if self.is_int() => {
                if let Ok(v) = s.parse::<u64>() {
                    self.visit_u64(v)
                } else if let Ok(v) = s.parse::<i64>() {
                    self.visit_i64(v)
                } else {
                    Err(E::invalid_value(unexpected, &self))
                }
            }
            _ => Err(E::invalid_type(unexpected, &self)),
        }
    }

    fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Val, E> {
        match self.0 {
            WitType::List(inner) if **inner == WitType::U8 => Ok(Val::Bytes(b.to_vec())),
            WitType::String => std::str::from_utf8(b)
                .map(|s| Val::String(s.to_owned()))
                .map_err(|_| E::invalid_value(de::Unexpected::Bytes(b), &self)),
            _ => Err(E::invalid_type(de::Unexpected::Bytes(b), &self)),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<Val, E> {
        Err(E::invalid_type(de::Unexpected::Unit, &self))
    }

    fn visit_none<E: de::Error>(self) -> Result<Val, E> {
        Err(E::invalid_type(de::Unexpected::Option, &self))
    }

    fn visit_byte_buf<E: de::Error>(self, b: Vec<u8>) -> Result<Val, E> {
        match self.0 {
            WitType::List(inner) if **inner == WitType::U8 => Ok(Val::Bytes(b)),
            _ => self.visit_bytes(&b),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val, A::Error> {
        match self.0 {
            WitType::List(inner) if **inner == WitType::U8 => {
                let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(v) = seq
                    .next_element_seed(ValSeed(inner))
                    .map_err(|e| A::Error::custom(format_args!("[{}]: {e}", bytes.len())))?
                {
                    match v {
                        Val::U8(b) => bytes.push(b),
                        _ => return Err(A::Error::custom("a list<u8> element that is no u8")),
                    }
                }
                Ok(Val::Bytes(bytes))
            }
            WitType::List(inner) => {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(v) = seq
                    .next_element_seed(ValSeed(inner))
                    .map_err(|e| A::Error::custom(format_args!("[{}]: {e}", items.len())))?
                {
                    items.push(v);
                }
                Ok(Val::List(items))
            }
            WitType::Tuple(types) => {
                let items = fixed_seq(
                    &mut seq,
                    types.iter().map(|t| (None, t)),
                    types.len(),
                    &self,
                )?;
                Ok(Val::Tuple(items))
            }
            WitType::Record(r) => {
                let items = fixed_seq(
                    &mut seq,
                    r.fields.iter().map(|(n, t)| (Some(n.as_str()), t)),
                    r.fields.len(),
                    &self,
                )?;
                let fields = r.fields.iter().map(|(n, _)| n.clone()).zip(items).collect();
                Ok(Val::Record(fields))
            }
            WitType::Flags(f) => {
                let mut set = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    if !f.names.contains(&name) {
                        return Err(A::Error::invalid_value(de::Unexpected::Str(&name), &self));
                    }
                    if !set.contains(&name) {
                        set.push(name);
                    }
                }
                // Canonical order: as declared.
                set.sort_by_key(|n| f.names.iter().position(|m| m == n));
                Ok(Val::Flags(set))
            }
            _ => Err(A::Error::invalid_type(de::Unexpected::Seq, &self)),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val, A::Error> {
        match self.0 {
            WitType::Record(r) => {
                let mut slots: Vec<Option<Val>> = vec![None; r.fields.len()];
                while let Some(key) = map.next_key::<String>()? {
                    let Some(i) = r.fields.iter().position(|(n, _)| *n == key) else {
                        let names: Vec<_> = r.fields.iter().map(|(n, _)| n.as_str()).collect();
                        return Err(A::Error::custom(format_args!(
                            "unknown field `{key}` for {}; its fields are: {}",
                            self.0,
                            names.join(", ")
                        )));
                    };
                    let (name, ty) = &r.fields[i];
                    if slots[i].is_some() {
                        return Err(A::Error::custom(format_args!("field `{name}` given twice")));
                    }
                    let v = map
                        .next_value_seed(ValSeed(ty))
                        .map_err(|e| A::Error::custom(format_args!("field `{name}`: {e}")))?;
                    slots[i] = Some(v);
                }
                let mut fields = Vec::with_capacity(slots.len());
                for ((name, ty), slot) in r.fields.iter().zip(slots) {
                    match slot {
                        Some(v) => fields.push((name.clone(), v)),
                        // A missing optional field reads as none.
                        None if matches!(ty, WitType::Option(_)) => {
                            fields.push((name.clone(), Val::Option(None)))
                        }
                        None => {
                            return Err(A::Error::custom(format_args!(
                                "missing field `{name}` ({ty}) of {}",
                                self.0
                            )));
                        }
                    }
                }
                Ok(Val::Record(fields))
            }
            WitType::Variant(v) => {
                let (case, val) = single_entry(&mut map, &self, |case| {
                    v.cases
                        .iter()
                        .find(|(n, _)| n == case)
                        .map(|(_, t)| t.as_ref())
                })?;
                Ok(Val::Variant(case, val.map(Box::new)))
            }
            WitType::Result { ok, err } => {
                let (case, val) = single_entry(&mut map, &self, |case| match case {
                    "ok" => Some(ok.as_deref()),
                    "err" => Some(err.as_deref()),
                    _ => None,
                })?;
                let val = val.map(Box::new);
                Ok(Val::Result(if case == "ok" { Ok(val) } else { Err(val) }))
            }
            _ => Err(A::Error::invalid_type(de::Unexpected::Map, &self)),
        }
    }
}

/// Reads exactly `len` elements with the given types.
fn fixed_seq<'de, 'a, A: SeqAccess<'de>>(
    seq: &mut A,
    types: impl Iterator<Item = (Option<&'a str>, &'a WitType)>,
    len: usize,
    expected: &dyn de::Expected,
) -> Result<Vec<Val>, A::Error> {
    let mut out = Vec::with_capacity(len);
    for (i, (name, ty)) in types.enumerate() {
        let at = || name.map_or_else(|| format!("[{i}]"), |n| format!("field `{n}`"));
        match seq.next_element_seed(ValSeed(ty)) {
            Ok(Some(v)) => out.push(v),
            Ok(None) => return Err(A::Error::invalid_length(i, expected)),
            Err(e) => return Err(A::Error::custom(format_args!("{}: {e}", at()))),
        }
    }
    if seq.next_element::<de::IgnoredAny>()?.is_some() {
        return Err(A::Error::invalid_length(len + 1, expected));
    }
    Ok(out)
}

/// Reads a one-entry map `{case: payload}`; `lookup` gives the payload type of
/// a case (`Some(None)` for a case without payload, `None` for no such case).
fn single_entry<'de, 'a, A: MapAccess<'de>>(
    map: &mut A,
    expected: &ValVisitor<'a>,
    lookup: impl Fn(&str) -> Option<Option<&'a WitType>>,
) -> Result<(String, Option<Val>), A::Error> {
    let Some(case) = map.next_key::<String>()? else {
        return Err(A::Error::invalid_length(0, expected));
    };
    let Some(payload_ty) = lookup(&case) else {
        return Err(A::Error::invalid_value(
            de::Unexpected::Str(&case),
            expected,
        ));
    };
    let val = match payload_ty {
        Some(ty) => Some(
            map.next_value_seed(ValSeed(ty))
                .map_err(|e| A::Error::custom(format_args!("case `{case}`: {e}")))?,
        ),
        None => {
            map.next_value::<de::IgnoredAny>()?;
            None
        }
    };
    if map.next_key::<de::IgnoredAny>()?.is_some() {
        return Err(A::Error::custom(format_args!(
            "expected exactly one case for {}, got more than one key",
            expected.0
        )));
    }
    Ok((case, val))
}

/// A value with its type, ready to serialize in the wire mapping above.
pub(crate) struct Typed<'a>(pub(crate) &'a WitType, pub(crate) &'a Val);

impl Serialize for Typed<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (self.0, self.1) {
            (_, Val::Bool(v)) => s.serialize_bool(*v),
            (_, Val::S8(v)) => s.serialize_i8(*v),
            (_, Val::U8(v)) => s.serialize_u8(*v),
            (_, Val::S16(v)) => s.serialize_i16(*v),
            (_, Val::U16(v)) => s.serialize_u16(*v),
            (_, Val::S32(v)) => s.serialize_i32(*v),
            (_, Val::U32(v)) => s.serialize_u32(*v),
            (_, Val::S64(v)) => s.serialize_i64(*v),
            (_, Val::U64(v)) => s.serialize_u64(*v),
            (_, Val::Float32(v)) => float(s, f64::from(*v), |s| s.serialize_f32(*v)),
            (_, Val::Float64(v)) => float(s, *v, |s| s.serialize_f64(*v)),
            (_, Val::Char(c)) => s.serialize_char(*c),
            (_, Val::String(v)) => s.serialize_str(v),
            // JSON writes bytes as an array of numbers; MessagePack as bin.
            (_, Val::Bytes(b)) => s.serialize_bytes(b),
            (WitType::List(inner), Val::List(items)) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(&Typed(inner, v))?;
                }
                seq.end()
            }
            (WitType::Tuple(types), Val::Tuple(items)) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for (t, v) in types.iter().zip(items) {
                    seq.serialize_element(&Typed(t, v))?;
                }
                seq.end()
            }
            (WitType::Record(r), Val::Record(fields)) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for ((name, ty), (_, v)) in r.fields.iter().zip(fields) {
                    map.serialize_entry(name, &Typed(ty, v))?;
                }
                map.end()
            }
            (WitType::Variant(ty), Val::Variant(case, payload)) => match payload {
                None => s.serialize_str(case),
                Some(v) => {
                    let payload_ty = ty
                        .cases
                        .iter()
                        .find(|(n, _)| n == case)
                        .and_then(|(_, t)| t.as_ref())
                        .ok_or_else(|| serde::ser::Error::custom("variant case without a type"))?;
                    let mut map = s.serialize_map(Some(1))?;
                    map.serialize_entry(case, &Typed(payload_ty, v))?;
                    map.end()
                }
            },
            (_, Val::Enum(name)) => s.serialize_str(name),
            (WitType::Option(inner), Val::Option(v)) => match v {
                None => s.serialize_none(),
                Some(v) => s.serialize_some(&Typed(inner, v)),
            },
            (WitType::Result { ok, err }, Val::Result(r)) => {
                let (case, ty, v) = match r {
                    Ok(v) => ("ok", ok, v),
                    Err(v) => ("err", err, v),
                };
                let mut map = s.serialize_map(Some(1))?;
                match (ty, v) {
                    (Some(ty), Some(v)) => map.serialize_entry(case, &Typed(ty, v))?,
                    _ => map.serialize_entry(case, &())?,
                }
                map.end()
            }
            (_, Val::Flags(names)) => {
                let mut seq = s.serialize_seq(Some(names.len()))?;
                for n in names {
                    seq.serialize_element(n)?;
                }
                seq.end()
            }
            (ty, v) => Err(serde::ser::Error::custom(format_args!(
                "cannot encode {v:?} as {ty}"
            ))),
        }
    }
}

fn float<S: Serializer>(
    s: S,
    v: f64,
    finite: impl FnOnce(S) -> Result<S::Ok, S::Error>,
) -> Result<S::Ok, S::Error> {
    if v.is_finite() || !s.is_human_readable() {
        finite(s)
    } else if v.is_nan() {
        s.serialize_str("NaN")
    } else if v > 0.0 {
        s.serialize_str("Infinity")
    } else {
        s.serialize_str("-Infinity")
    }
}
