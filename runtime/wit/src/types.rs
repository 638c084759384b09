//! A self-contained model of the WIT types in a function's signature.
//!
//! Read from a component's bytes ([`crate::Component`]) or built by a
//! runtime from its own type information, it drives the argument codec and
//! prints signatures in WIT syntax. Named types keep the name the component
//! exports them under.

use std::fmt;
use std::sync::Arc;

/// A WIT value type.
#[derive(Debug, Clone, PartialEq)]
pub enum WitType {
    Bool,
    S8,
    U8,
    S16,
    U16,
    S32,
    U32,
    S64,
    U64,
    F32,
    F64,
    Char,
    String,
    List(Box<WitType>),
    Record(Arc<Record>),
    Tuple(Vec<WitType>),
    Variant(Arc<Variant>),
    Enum(Arc<Named>),
    Option(Box<WitType>),
    Result {
        ok: Option<Box<WitType>>,
        err: Option<Box<WitType>>,
    },
    Flags(Arc<Named>),
    /// A type ferry cannot carry across the network; the text says which.
    Unsupported(String),
}

impl WitType {
    /// Whether a value of type `self` can be passed where `want` is expected:
    /// the same structure, field and case names included; the names of the
    /// types themselves may differ (two packages may each define `point`).
    pub fn fits(&self, want: &WitType) -> bool {
        use WitType as T;
        let both = |a: &Option<Box<WitType>>, b: &Option<Box<WitType>>| match (a, b) {
            (Some(a), Some(b)) => a.fits(b),
            (None, None) => true,
            _ => false,
        };
        match (self, want) {
            (T::List(a), T::List(b)) | (T::Option(a), T::Option(b)) => a.fits(b),
            (T::Record(a), T::Record(b)) => {
                a.fields.len() == b.fields.len()
                    && a.fields
                        .iter()
                        .zip(&b.fields)
                        .all(|((na, ta), (nb, tb))| na == nb && ta.fits(tb))
            }
            (T::Tuple(a), T::Tuple(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.fits(y))
            }
            (T::Variant(a), T::Variant(b)) => {
                a.cases.len() == b.cases.len()
                    && a.cases.iter().zip(&b.cases).all(|((na, ta), (nb, tb))| {
                        na == nb
                            && match (ta, tb) {
                                (Some(x), Some(y)) => x.fits(y),
                                (None, None) => true,
                                _ => false,
                            }
                    })
            }
            (T::Enum(a), T::Enum(b)) | (T::Flags(a), T::Flags(b)) => a.names == b.names,
            (T::Result { ok: oa, err: ea }, T::Result { ok: ob, err: eb }) => {
                both(oa, ob) && both(ea, eb)
            }
            (T::Unsupported(_), _) | (_, T::Unsupported(_)) => false,
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

/// A record type.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub name: Option<String>,
    pub fields: Vec<(String, WitType)>,
}

/// A variant type: cases with optional payloads.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub name: Option<String>,
    pub cases: Vec<(String, Option<WitType>)>,
}

/// An enum or flags type: a list of names.
#[derive(Debug, Clone, PartialEq)]
pub struct Named {
    pub name: Option<String>,
    pub names: Vec<String>,
}

/// One exported function's signature.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    pub params: Vec<(String, WitType)>,
    pub result: Option<WitType>,
}

impl Signature {
    /// The first type in the signature that ferry cannot carry, if any.
    pub fn unsupported(&self) -> Option<String> {
        let params = self
            .params
            .iter()
            .map(|(n, t)| (format!("parameter `{n}`"), t));
        let result = self.result.iter().map(|t| ("the result".to_owned(), t));
        params
            .chain(result)
            .find_map(|(place, ty)| ty.unsupported().map(|why| format!("{place} uses {why}")))
    }
}

impl WitType {
    pub(crate) fn unsupported(&self) -> Option<String> {
        match self {
            WitType::Unsupported(why) => Some(why.clone()),
            WitType::List(t) | WitType::Option(t) => t.unsupported(),
            WitType::Record(r) => r.fields.iter().find_map(|(_, t)| t.unsupported()),
            WitType::Tuple(ts) => ts.iter().find_map(WitType::unsupported),
            WitType::Variant(v) => v.cases.iter().find_map(|(_, t)| t.as_ref()?.unsupported()),
            WitType::Result { ok, err } => ok
                .as_ref()
                .and_then(|t| t.unsupported())
                .or_else(|| err.as_ref().and_then(|t| t.unsupported())),
            _ => None,
        }
    }
}

impl fmt::Display for WitType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WitType::Bool => f.write_str("bool"),
            WitType::S8 => f.write_str("s8"),
            WitType::U8 => f.write_str("u8"),
            WitType::S16 => f.write_str("s16"),
            WitType::U16 => f.write_str("u16"),
            WitType::S32 => f.write_str("s32"),
            WitType::U32 => f.write_str("u32"),
            WitType::S64 => f.write_str("s64"),
            WitType::U64 => f.write_str("u64"),
            WitType::F32 => f.write_str("f32"),
            WitType::F64 => f.write_str("f64"),
            WitType::Char => f.write_str("char"),
            WitType::String => f.write_str("string"),
            WitType::List(t) => write!(f, "list<{t}>"),
            WitType::Option(t) => write!(f, "option<{t}>"),
            WitType::Tuple(ts) => {
                f.write_str("tuple<")?;
                comma_separated(f, ts.iter())?;
                f.write_str(">")
            }
            WitType::Result { ok, err } => match (ok, err) {
                (None, None) => f.write_str("result"),
                (Some(ok), None) => write!(f, "result<{ok}>"),
                (None, Some(err)) => write!(f, "result<_, {err}>"),
                (Some(ok), Some(err)) => write!(f, "result<{ok}, {err}>"),
            },
            WitType::Record(r) => match &r.name {
                Some(name) => f.write_str(name),
                None => {
                    f.write_str("record { ")?;
                    comma_separated(f, r.fields.iter().map(|(n, t)| format!("{n}: {t}")))?;
                    f.write_str(" }")
                }
            },
            WitType::Variant(v) => match &v.name {
                Some(name) => f.write_str(name),
                None => {
                    f.write_str("variant { ")?;
                    comma_separated(
                        f,
                        v.cases.iter().map(|(n, t)| match t {
                            Some(t) => format!("{n}({t})"),
                            None => n.clone(),
                        }),
                    )?;
                    f.write_str(" }")
                }
            },
            WitType::Enum(e) => named(f, "enum", e),
            WitType::Flags(e) => named(f, "flags", e),
            WitType::Unsupported(why) => write!(f, "<{why}>"),
        }
    }
}

fn named(f: &mut fmt::Formatter<'_>, keyword: &str, n: &Named) -> fmt::Result {
    match &n.name {
        Some(name) => f.write_str(name),
        None => {
            write!(f, "{keyword} {{ ")?;
            comma_separated(f, n.names.iter())?;
            f.write_str(" }")
        }
    }
}

fn comma_separated<T: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    items: impl Iterator<Item = T>,
) -> fmt::Result {
    for (i, item) in items.enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

impl fmt::Display for Signature {
    /// `func(a: u64, b: string) -> f64`, as WIT writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("func(")?;
        comma_separated(f, self.params.iter().map(|(n, t)| format!("{n}: {t}")))?;
        f.write_str(")")?;
        if let Some(r) = &self.result {
            write!(f, " -> {r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_in_a_signature_are_named_as_unsupported() {
        let sig = Signature {
            params: vec![
                ("n".into(), WitType::U32),
                (
                    "h".into(),
                    WitType::List(Box::new(WitType::Unsupported("a resource handle".into()))),
                ),
            ],
            result: None,
        };
        assert_eq!(
            sig.unsupported().unwrap(),
            "parameter `h` uses a resource handle"
        );
        let ok = Signature {
            params: vec![],
            result: Some(WitType::String),
        };
        assert_eq!(ok.unsupported(), None);
    }

    #[test]
    fn anonymous_types_print_structurally() {
        let t = WitType::Result {
            ok: None,
            err: Some(Box::new(WitType::Tuple(vec![WitType::U8, WitType::String]))),
        };
        assert_eq!(t.to_string(), "result<_, tuple<u8, string>>");
        let r = WitType::Record(Arc::new(Record {
            name: None,
            fields: vec![("x".into(), WitType::F32)],
        }));
        assert_eq!(r.to_string(), "record { x: f32 }");
    }
}
