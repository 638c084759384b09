//! WIT types from wasmtime's type information, in `ferry-wit`'s model.
//!
//! Named types keep the name the component exports them under.

use std::sync::Arc;

use ferry_wit::{Named, Record, Variant, WitType};
use wasmtime::component::types::{self, ComponentItem};

/// Names given to types by a component's (or an exported instance's) type exports.
#[derive(Default)]
pub(crate) struct TypeNames(Vec<(types::Type, String)>);

impl TypeNames {
    pub(crate) fn collect<'a>(items: impl Iterator<Item = (&'a str, ComponentItem)>) -> Self {
        TypeNames(
            items
                .filter_map(|(name, item)| match item {
                    ComponentItem::Type(ty) => Some((ty, name.to_owned())),
                    _ => None,
                })
                .collect(),
        )
    }

    fn name_of(&self, ty: &types::Type) -> Option<String> {
        self.0.iter().find(|(t, _)| t == ty).map(|(_, n)| n.clone())
    }

    pub(crate) fn convert(&self, ty: &types::Type) -> WitType {
        use types::Type as T;
        match ty {
            T::Bool => WitType::Bool,
            T::S8 => WitType::S8,
            T::U8 => WitType::U8,
            T::S16 => WitType::S16,
            T::U16 => WitType::U16,
            T::S32 => WitType::S32,
            T::U32 => WitType::U32,
            T::S64 => WitType::S64,
            T::U64 => WitType::U64,
            T::Float32 => WitType::F32,
            T::Float64 => WitType::F64,
            T::Char => WitType::Char,
            T::String => WitType::String,
            T::List(l) => WitType::List(Box::new(self.convert(&l.ty()))),
            T::Record(r) => WitType::Record(Arc::new(Record {
                name: self.name_of(ty),
                fields: r
                    .fields()
                    .map(|f| (f.name.to_owned(), self.convert(&f.ty)))
                    .collect(),
            })),
            T::Tuple(t) => WitType::Tuple(t.types().map(|t| self.convert(&t)).collect()),
            T::Variant(v) => WitType::Variant(Arc::new(Variant {
                name: self.name_of(ty),
                cases: v
                    .cases()
                    .map(|c| (c.name.to_owned(), c.ty.as_ref().map(|t| self.convert(t))))
                    .collect(),
            })),
            T::Enum(e) => WitType::Enum(Arc::new(Named {
                name: self.name_of(ty),
                names: e.names().map(str::to_owned).collect(),
            })),
            T::Option(o) => WitType::Option(Box::new(self.convert(&o.ty()))),
            T::Result(r) => WitType::Result {
                ok: r.ok().map(|t| Box::new(self.convert(&t))),
                err: r.err().map(|t| Box::new(self.convert(&t))),
            },
            T::Flags(f) => WitType::Flags(Arc::new(Named {
                name: self.name_of(ty),
                names: f.names().map(str::to_owned).collect(),
            })),
            T::Own(_) | T::Borrow(_) => WitType::Unsupported(
                "a resource handle; resources live in one instance and cannot travel as data"
                    .into(),
            ),
            T::Future(_) | T::Stream(_) | T::ErrorContext => WitType::Unsupported(
                "an async future, stream or error-context, which ferry does not carry yet".into(),
            ),
            T::Map(_) => WitType::Unsupported("a `map`, which ferry does not carry yet".into()),
            T::FixedLengthList(_) => {
                WitType::Unsupported("a fixed-length list, which ferry does not carry yet".into())
            }
        }
    }
}
