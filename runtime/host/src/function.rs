use std::fmt;

use wasmtime::Engine;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, ComponentExportIndex, InstancePre};

use crate::Error;
use crate::capabilities::TaskState;
use crate::wit::TypeNames;
pub use ferry_wit::FunctionId;
use ferry_wit::Signature;

/// One exported function: `ferry-wit`'s export (names, signature and the
/// codec of its arguments and result) and where the component holds it.
#[derive(Debug, Clone)]
pub struct Export {
    wit: ferry_wit::Export,
    index: ComponentExportIndex,
}

impl std::ops::Deref for Export {
    type Target = ferry_wit::Export;

    fn deref(&self) -> &ferry_wit::Export {
        &self.wit
    }
}

impl AsRef<ferry_wit::Export> for Export {
    fn as_ref(&self) -> &ferry_wit::Export {
        &self.wit
    }
}

impl Export {
    pub(crate) fn index(&self) -> &ComponentExportIndex {
        &self.index
    }

    /// Fails when the signature uses a type ferry cannot carry.
    pub fn check_supported(&self) -> Result<(), Error> {
        Ok(self.wit.check_supported()?)
    }

    /// Converts JSON text, one string per argument (as `ferry run` takes them).
    pub fn args_from_json_strs<S: AsRef<str>>(&self, args: &[S]) -> Result<Vec<Value>, Error> {
        Ok(self.wit.args_from_json_strs(args)?)
    }

    /// Converts JSON values, one per argument.
    pub fn args_from_json(&self, args: &[serde_json::Value]) -> Result<Vec<Value>, Error> {
        Ok(self.wit.args_from_json(args)?)
    }

    /// Converts a MessagePack array holding all the arguments.
    pub fn args_from_msgpack(&self, bytes: &[u8]) -> Result<Vec<Value>, Error> {
        Ok(self.wit.args_from_msgpack(bytes)?)
    }

    pub fn args_to_msgpack(&self, args: &[Value]) -> Result<Vec<u8>, Error> {
        Ok(self.wit.args_to_msgpack(args)?)
    }

    /// The result as JSON (`null` for a function without a result).
    pub fn result_to_json(&self, result: Option<&Value>) -> Result<serde_json::Value, Error> {
        Ok(self.wit.result_to_json(result)?)
    }

    pub fn result_from_msgpack(&self, bytes: &[u8]) -> Result<Option<Value>, Error> {
        Ok(self.wit.result_from_msgpack(bytes)?)
    }

    pub fn result_to_msgpack(&self, result: Option<&Value>) -> Result<Vec<u8>, Error> {
        Ok(self.wit.result_to_msgpack(result)?)
    }
}

impl fmt::Display for Export {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.wit.fmt(f)
    }
}

use ferry_wit::Value;

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
                            wit: ferry_wit::Export::new(None, name, signature(&top_names, &f)),
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
                                wit: ferry_wit::Export::new(
                                    Some(name),
                                    fname,
                                    signature(&names, &f),
                                ),
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
        Ok(ferry_wit::find_export(&self.exports, name)?)
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
