//! Reading a component's exports and imports from its bytes: validated with
//! wasmparser and decoded with wit-parser. Nothing is compiled.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use wit_parser::{Resolve, Type, TypeDefKind, TypeId, WorldItem, WorldKey};

use crate::{Error, Export, Named, Record, Signature, Variant, WitType};

/// A function's identity: the blake3 hash of its component bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FunctionId([u8; 32]);

impl FunctionId {
    /// The id of these component bytes.
    pub fn of(bytes: &[u8]) -> Self {
        FunctionId(*blake3::hash(bytes).as_bytes())
    }

    /// Parses the 64-character hex form.
    pub fn parse(hex: &str) -> Result<Self, Error> {
        blake3::Hash::from_hex(hex.trim())
            .map(|h| FunctionId(*h.as_bytes()))
            .map_err(|_| {
                Error::BadComponent(format!("`{hex}` is not a function id (64 hex digits)"))
            })
    }

    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }
}

impl fmt::Display for FunctionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Rejects bytes that are not a component, with a message that says what
/// they are instead.
pub fn check_component_bytes(bytes: &[u8]) -> Result<(), Error> {
    const MAGIC: &[u8] = b"\0asm";
    if bytes.len() >= 8 && bytes.starts_with(MAGIC) && bytes[6..8] == [0x01, 0x00] {
        return Ok(());
    }
    if bytes.len() >= 8 && bytes.starts_with(MAGIC) && bytes[4..8] == [0x01, 0x00, 0x00, 0x00] {
        return Err(Error::BadComponent(
            "this is a core WebAssembly module, not a component; build it with \
             `cargo component build` or `cargo build --target wasm32-wasip2`"
                .into(),
        ));
    }
    let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    Err(Error::BadComponent(format!(
        "the bytes do not start with the WebAssembly magic `00 61 73 6d` (got `{}`, {} bytes in all)",
        head.join(" "),
        bytes.len()
    )))
}

/// What a component offers and needs, as read from its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    pub id: FunctionId,
    /// Every exported function, in the component's order.
    pub exports: Vec<Export>,
    /// The interfaces and functions it imports (`wasi:…`, `ferry:host/…`).
    pub imports: Vec<String>,
}

impl Component {
    /// Validates `bytes` fully (function bodies included) and reads the
    /// component's exports with their WIT signatures.
    pub fn decode(bytes: &[u8]) -> Result<Component, Error> {
        check_component_bytes(bytes)?;
        let features = wasmparser::WasmFeatures::all();
        wasmparser::Validator::new_with_features(features)
            .validate_all(bytes)
            .map_err(|e| Error::BadComponent(e.to_string()))?;
        // The decoder asserts on shapes it does not expect; a malformed
        // component must be an error, never a panic.
        let decoded = std::panic::catch_unwind(|| wit_parser::decoding::decode(bytes))
            .map_err(|_| Error::BadComponent("its component type cannot be read".into()))?
            .map_err(|e| Error::BadComponent(format!("{e:#}")))?;
        let wit_parser::decoding::DecodedWasm::Component(resolve, world) = decoded else {
            return Err(Error::BadComponent(
                "this is a WIT package, not a component with code".into(),
            ));
        };
        let world = &resolve.worlds[world];
        let key_name = |key: &WorldKey| match key {
            WorldKey::Name(n) => Some(n.clone()),
            WorldKey::Interface(i) => resolve.id_of(*i),
        };
        // A type is named as the component exports it: by the instance of
        // an exported interface, or at the top level; elsewhere it is
        // written out, as wasmtime sees it.
        let top = Names::of(
            &resolve,
            world
                .exports
                .iter()
                .filter_map(|(key, item)| match (key, item) {
                    (WorldKey::Name(n), WorldItem::Type { id, .. }) => Some((n.as_str(), *id)),
                    _ => None,
                }),
        );
        let mut exports = Vec::new();
        for (key, item) in &world.exports {
            match item {
                WorldItem::Function(f) => {
                    exports.push(Export::new(None, &f.name, signature(&resolve, &top, f)));
                }
                WorldItem::Interface { id, .. } => {
                    let Some(name) = key_name(key) else {
                        continue;
                    };
                    let iface = &resolve.interfaces[*id];
                    let names =
                        Names::of(&resolve, iface.types.iter().map(|(n, t)| (n.as_str(), *t)));
                    for (fname, f) in &iface.functions {
                        exports.push(Export::new(
                            Some(&name),
                            fname,
                            signature(&resolve, &names, f),
                        ));
                    }
                }
                WorldItem::Type { .. } => {}
            }
        }
        let imports = world
            .imports
            .iter()
            .filter(|(_, item)| !matches!(item, WorldItem::Type { .. }))
            .filter_map(|(key, _)| key_name(key))
            .collect();
        Ok(Component {
            id: FunctionId::of(bytes),
            exports,
            imports,
        })
    }

    pub fn export(&self, name: &str) -> Result<&Export, Error> {
        crate::export::find(&self.exports, name)
    }
}

/// The names types are exported under in one scope, by the type they stand
/// for (aliases followed).
struct Names(HashMap<TypeId, String>);

impl Names {
    fn of<'a>(resolve: &Resolve, types: impl Iterator<Item = (&'a str, TypeId)>) -> Names {
        let mut names = HashMap::new();
        for (name, id) in types {
            names
                .entry(unalias(resolve, id))
                .or_insert_with(|| name.to_owned());
        }
        Names(names)
    }
}

/// The type an alias (`type a = b`, or a `use`) finally stands for.
fn unalias(resolve: &Resolve, mut id: TypeId) -> TypeId {
    for _ in 0..64 {
        match &resolve.types[id].kind {
            TypeDefKind::Type(Type::Id(next)) => id = *next,
            _ => break,
        }
    }
    id
}

fn signature(resolve: &Resolve, names: &Names, f: &wit_parser::Function) -> Signature {
    Signature {
        params: f
            .params
            .iter()
            .map(|p| (p.name.clone(), convert(resolve, names, &p.ty)))
            .collect(),
        result: f.result.as_ref().map(|t| convert(resolve, names, t)),
    }
}

fn convert(resolve: &Resolve, names: &Names, ty: &Type) -> WitType {
    match ty {
        Type::Bool => WitType::Bool,
        Type::U8 => WitType::U8,
        Type::U16 => WitType::U16,
        Type::U32 => WitType::U32,
        Type::U64 => WitType::U64,
        Type::S8 => WitType::S8,
        Type::S16 => WitType::S16,
        Type::S32 => WitType::S32,
        Type::S64 => WitType::S64,
        Type::F32 => WitType::F32,
        Type::F64 => WitType::F64,
        Type::Char => WitType::Char,
        Type::String => WitType::String,
        Type::ErrorContext => WitType::Unsupported(
            "an async future, stream or error-context, which ferry does not carry yet".into(),
        ),
        Type::Id(id) => convert_def(resolve, names, unalias(resolve, *id)),
    }
}

fn convert_def(resolve: &Resolve, names: &Names, id: TypeId) -> WitType {
    let def = &resolve.types[id];
    let name = names.0.get(&id).cloned();
    let c = |t: &Type| convert(resolve, names, t);
    match &def.kind {
        TypeDefKind::Record(r) => WitType::Record(Arc::new(Record {
            name,
            fields: r
                .fields
                .iter()
                .map(|f| (f.name.clone(), c(&f.ty)))
                .collect(),
        })),
        TypeDefKind::Tuple(t) => WitType::Tuple(t.types.iter().map(c).collect()),
        TypeDefKind::Variant(v) => WitType::Variant(Arc::new(Variant {
            name,
            cases: v
                .cases
                .iter()
                .map(|k| (k.name.clone(), k.ty.as_ref().map(c)))
                .collect(),
        })),
        TypeDefKind::Enum(e) => WitType::Enum(Arc::new(Named {
            name,
            names: e.cases.iter().map(|k| k.name.clone()).collect(),
        })),
        TypeDefKind::Flags(f) => WitType::Flags(Arc::new(Named {
            name,
            names: f.flags.iter().map(|k| k.name.clone()).collect(),
        })),
        TypeDefKind::Option(t) => WitType::Option(Box::new(c(t))),
        TypeDefKind::Result(r) => WitType::Result {
            ok: r.ok.as_ref().map(|t| Box::new(c(t))),
            err: r.err.as_ref().map(|t| Box::new(c(t))),
        },
        TypeDefKind::List(t) => WitType::List(Box::new(c(t))),
        TypeDefKind::Type(t) => c(t),
        TypeDefKind::Resource | TypeDefKind::Handle(_) => WitType::Unsupported(
            "a resource handle; resources live in one instance and cannot travel as data".into(),
        ),
        TypeDefKind::Future(_) | TypeDefKind::Stream(_) => WitType::Unsupported(
            "an async future, stream or error-context, which ferry does not carry yet".into(),
        ),
        TypeDefKind::Map(..) => {
            WitType::Unsupported("a `map`, which ferry does not carry yet".into())
        }
        TypeDefKind::FixedLengthList(..) => {
            WitType::Unsupported("a fixed-length list, which ferry does not carry yet".into())
        }
        TypeDefKind::Unknown => WitType::Unsupported("a type of unknown structure".into()),
    }
}
