use std::fmt;

use serde::de::DeserializeSeed;
use wasmtime::Engine;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Val};

use crate::Error;
use crate::call::TaskState;
use crate::value::{ArgsSeed, Typed, ValSeed};
use crate::wit::{Signature, TypeNames, WitType};

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

/// One exported function: its name, WIT signature and how to find it.
#[derive(Debug, Clone)]
pub struct Export {
    name: String,
    interface: Option<String>,
    func: String,
    signature: Signature,
    index: ComponentExportIndex,
}

impl Export {
    /// Full name: `func` for a world-level export, `interface#func` otherwise.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The exporting interface, e.g. `ferry-examples:types/types`.
    pub fn interface(&self) -> Option<&str> {
        self.interface.as_deref()
    }

    /// The function's own name, without the interface.
    pub fn func(&self) -> &str {
        &self.func
    }

    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    pub fn params(&self) -> &[(String, WitType)] {
        &self.signature.params
    }

    pub fn result_type(&self) -> Option<&WitType> {
        self.signature.result.as_ref()
    }

    pub(crate) fn index(&self) -> &ComponentExportIndex {
        &self.index
    }

    /// Fails when the signature uses a type ferry cannot carry.
    pub fn check_supported(&self) -> Result<(), Error> {
        match self.signature.unsupported() {
            Some(reason) => Err(Error::UnsupportedSignature {
                export: self.name.clone(),
                reason,
            }),
            None => Ok(()),
        }
    }

    fn bad_args(&self, message: impl fmt::Display) -> Error {
        Error::BadArguments {
            export: self.name.clone(),
            message: format!(
                "{message}; the signature is `{}: {}`",
                self.func, self.signature
            ),
        }
    }

    /// Converts JSON text, one string per argument (as `ferry run` takes them).
    pub fn args_from_json_strs<S: AsRef<str>>(&self, args: &[S]) -> Result<Vec<Val>, Error> {
        self.check_arity(args.len())?;
        self.params()
            .iter()
            .zip(args)
            .map(|((name, ty), text)| {
                let mut de = serde_json::Deserializer::from_str(text.as_ref());
                ValSeed(ty)
                    .deserialize(&mut de)
                    .and_then(|v| de.end().map(|()| v))
                    .map_err(|e| {
                        let text = text.as_ref();
                        if e.is_syntax() || e.is_eof() {
                            self.bad_args(format_args!(
                                "argument `{name}` ({ty}): `{text}` is not valid JSON ({e})"
                            ))
                        } else {
                            self.bad_args(format_args!("argument `{name}` ({ty}): {e}"))
                        }
                    })
            })
            .collect()
    }

    /// Converts JSON values, one per argument.
    pub fn args_from_json(&self, args: &[serde_json::Value]) -> Result<Vec<Val>, Error> {
        self.check_arity(args.len())?;
        self.params()
            .iter()
            .zip(args)
            .map(|((name, ty), value)| {
                ValSeed(ty)
                    .deserialize(value)
                    .map_err(|e| self.bad_args(format_args!("argument `{name}` ({ty}): {e}")))
            })
            .collect()
    }

    /// Converts a MessagePack array holding all the arguments.
    pub fn args_from_msgpack(&self, bytes: &[u8]) -> Result<Vec<Val>, Error> {
        let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(bytes));
        let vals = ArgsSeed(self.params())
            .deserialize(&mut de)
            .map_err(|e| self.bad_args(e))?;
        if de.position() < bytes.len() as u64 {
            return Err(self.bad_args("trailing bytes after the argument array"));
        }
        Ok(vals)
    }

    fn check_arity(&self, given: usize) -> Result<(), Error> {
        let want = self.params().len();
        if given == want {
            return Ok(());
        }
        let missing: Vec<String> = self.params()[given.min(want)..]
            .iter()
            .map(|(n, t)| format!("`{n}` ({t})"))
            .collect();
        Err(self.bad_args(if given < want {
            format!(
                "expected {want} argument(s), got {given}: missing {}",
                missing.join(", ")
            )
        } else {
            format!("expected {want} argument(s), got {given}")
        }))
    }

    /// Encodes arguments (already checked against this export) as the
    /// MessagePack array that [`Export::args_from_msgpack`] reads.
    pub fn args_to_msgpack(&self, args: &[Val]) -> Result<Vec<u8>, Error> {
        let typed: Vec<Typed<'_>> = self
            .params()
            .iter()
            .zip(args)
            .map(|((_, t), v)| Typed(t, v))
            .collect();
        rmp_serde::to_vec(&typed)
            .map_err(|e| Error::Internal(format!("encoding arguments as MessagePack: {e}")))
    }

    /// The result as JSON (`null` for a function without a result).
    pub fn result_to_json(&self, result: Option<&Val>) -> Result<serde_json::Value, Error> {
        match (self.result_type(), result) {
            (Some(ty), Some(v)) => serde_json::to_value(Typed(ty, v))
                .map_err(|e| Error::Internal(format!("encoding the result as JSON: {e}"))),
            _ => Ok(serde_json::Value::Null),
        }
    }

    /// Decodes a result encoded by [`Export::result_to_msgpack`].
    pub fn result_from_msgpack(&self, bytes: &[u8]) -> Result<Option<Val>, Error> {
        let Some(ty) = self.result_type() else {
            return Ok(None);
        };
        let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(bytes));
        ValSeed(ty)
            .deserialize(&mut de)
            .map(Some)
            .map_err(|e| Error::Internal(format!("decoding a stored result: {e}")))
    }

    /// The result as MessagePack (`nil` for a function without a result).
    pub fn result_to_msgpack(&self, result: Option<&Val>) -> Result<Vec<u8>, Error> {
        match (self.result_type(), result) {
            (Some(ty), Some(v)) => rmp_serde::to_vec(&Typed(ty, v)),
            _ => rmp_serde::to_vec(&()),
        }
        .map_err(|e| Error::Internal(format!("encoding the result as MessagePack: {e}")))
    }
}

impl fmt::Display for Export {
    /// `name: func(...) -> ...`, with the interface as a prefix when there is one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.signature)
    }
}

/// A loaded, compiled component, ready to instantiate many times.
pub struct Function {
    id: FunctionId,
    exports: Vec<Export>,
    imports: Vec<String>,
    pub(crate) pre: InstancePre<TaskState>,
}

impl fmt::Debug for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Function")
            .field("id", &self.id)
            .field(
                "exports",
                &self.exports.iter().map(|e| e.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Function {
    pub(crate) fn new(
        id: FunctionId,
        engine: &Engine,
        component: &Component,
        pre: InstancePre<TaskState>,
    ) -> Self {
        let ty = component.component_type();
        let imports = ty.imports(engine).map(|(n, _)| n.to_owned()).collect();
        let top_names = TypeNames::collect(ty.exports(engine).map(|(n, e)| (n, e.ty)));
        let mut exports = Vec::new();
        for (name, item) in ty.exports(engine) {
            match item.ty {
                ComponentItem::ComponentFunc(f) => {
                    if let Some(index) = component.get_export_index(None, name) {
                        exports.push(Export {
                            name: name.to_owned(),
                            interface: None,
                            func: name.to_owned(),
                            signature: signature(&top_names, &f),
                            index,
                        });
                    }
                }
                ComponentItem::ComponentInstance(inst) => {
                    let Some(inst_index) = component.get_export_index(None, name) else {
                        continue;
                    };
                    let names = TypeNames::collect(inst.exports(engine).map(|(n, e)| (n, e.ty)));
                    for (fname, fitem) in inst.exports(engine) {
                        let ComponentItem::ComponentFunc(f) = fitem.ty else {
                            continue;
                        };
                        if let Some(index) = component.get_export_index(Some(&inst_index), fname) {
                            exports.push(Export {
                                name: format!("{name}#{fname}"),
                                interface: Some(name.to_owned()),
                                func: fname.to_owned(),
                                signature: signature(&names, &f),
                                index,
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        Function {
            id,
            exports,
            imports,
            pre,
        }
    }

    pub fn id(&self) -> FunctionId {
        self.id
    }

    /// Every callable export, in the component's order.
    pub fn exports(&self) -> &[Export] {
        &self.exports
    }

    /// The names the component imports (WASI and `ferry:host` interfaces).
    pub fn imports(&self) -> &[String] {
        &self.imports
    }

    /// Finds an export by full name (`iface#func`) or, when unambiguous, by its
    /// short name.
    pub fn export(&self, name: &str) -> Result<&Export, Error> {
        if let Some(e) = self.exports.iter().find(|e| e.name == name) {
            return Ok(e);
        }
        let matches: Vec<&Export> = self.exports.iter().filter(|e| e.func == name).collect();
        match matches.as_slice() {
            [one] => Ok(one),
            [] => Err(Error::UnknownExport {
                name: name.to_owned(),
                available: if self.exports.is_empty() {
                    "(nothing)".to_owned()
                } else {
                    self.exports
                        .iter()
                        .map(|e| e.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            }),
            many => Err(Error::AmbiguousExport {
                name: name.to_owned(),
                candidates: many
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}

fn signature(names: &TypeNames, f: &wasmtime::component::types::ComponentFunc) -> Signature {
    Signature {
        params: f
            .params()
            .map(|(n, t)| (n.to_owned(), names.convert(&t)))
            .collect(),
        result: f.results().next().map(|t| names.convert(&t)),
    }
}
