//! One exported function: its names and WIT signature, and the codec for
//! its arguments and result.

use std::fmt;

use serde::de::DeserializeSeed;

use crate::codec::{ArgsSeed, Typed, ValSeed};
use crate::{Error, Signature, Value, WitType};

#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    name: String,
    interface: Option<String>,
    func: String,
    signature: Signature,
}

impl Export {
    pub fn new(interface: Option<&str>, func: &str, signature: Signature) -> Export {
        Export {
            name: match interface {
                Some(i) => format!("{i}#{func}"),
                None => func.to_owned(),
            },
            interface: interface.map(str::to_owned),
            func: func.to_owned(),
            signature,
        }
    }

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

    /// The toolchain that added this export for its own use, when it is
    /// one: componentize-py's `exports#init`, the hook its build step calls
    /// to load the Python code. Such an export is not a function a user
    /// wrote, so listings leave it out and short names never find it.
    pub fn toolchain(&self) -> Option<&'static str> {
        let params: Vec<&str> = self.params().iter().map(|(n, _)| n.as_str()).collect();
        (self.interface.as_deref() == Some("exports")
            && self.func == "init"
            && params == ["app-name", "symbols", "stub-wasi"])
        .then_some("componentize-py")
    }

    pub fn params(&self) -> &[(String, WitType)] {
        &self.signature.params
    }

    pub fn result_type(&self) -> Option<&WitType> {
        self.signature.result.as_ref()
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
    pub fn args_from_json_strs<S: AsRef<str>>(&self, args: &[S]) -> Result<Vec<Value>, Error> {
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
    pub fn args_from_json(&self, args: &[serde_json::Value]) -> Result<Vec<Value>, Error> {
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
    pub fn args_from_msgpack(&self, bytes: &[u8]) -> Result<Vec<Value>, Error> {
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
    pub fn args_to_msgpack(&self, args: &[Value]) -> Result<Vec<u8>, Error> {
        let typed: Vec<Typed<'_>> = self
            .params()
            .iter()
            .zip(args)
            .map(|((_, t), v)| Typed(t, v))
            .collect();
        rmp_serde::to_vec(&typed)
            .map_err(|e| Error::Codec(format!("encoding arguments as MessagePack: {e}")))
    }

    /// The result as JSON (`null` for a function without a result).
    pub fn result_to_json(&self, result: Option<&Value>) -> Result<serde_json::Value, Error> {
        match (self.result_type(), result) {
            (Some(ty), Some(v)) => serde_json::to_value(Typed(ty, v))
                .map_err(|e| Error::Codec(format!("encoding the result as JSON: {e}"))),
            _ => Ok(serde_json::Value::Null),
        }
    }

    /// Decodes a result encoded by [`Export::result_to_msgpack`].
    pub fn result_from_msgpack(&self, bytes: &[u8]) -> Result<Option<Value>, Error> {
        let Some(ty) = self.result_type() else {
            return Ok(None);
        };
        let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(bytes));
        ValSeed(ty)
            .deserialize(&mut de)
            .map(Some)
            .map_err(|e| Error::Codec(format!("decoding a stored result: {e}")))
    }

    /// The result as MessagePack (`nil` for a function without a result).
    pub fn result_to_msgpack(&self, result: Option<&Value>) -> Result<Vec<u8>, Error> {
        match (self.result_type(), result) {
            (Some(ty), Some(v)) => rmp_serde::to_vec(&Typed(ty, v)),
            _ => rmp_serde::to_vec(&()),
        }
        .map_err(|e| Error::Codec(format!("encoding the result as MessagePack: {e}")))
    }
}

impl fmt::Display for Export {
    /// `name: func(...) -> ...`, with the interface as a prefix when there is one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.signature)
    }
}

/// Finds an export by full name (`iface#func`) or, when unambiguous, by its
/// short name.
pub fn find<'a, T: AsRef<Export>>(exports: &'a [T], name: &str) -> Result<&'a T, Error> {
    if let Some(e) = exports.iter().find(|e| e.as_ref().name == name) {
        return Ok(e);
    }
    let matches: Vec<&T> = exports
        .iter()
        .filter(|e| e.as_ref().func == name && e.as_ref().toolchain().is_none())
        .collect();
    let names = |list: &mut dyn Iterator<Item = &Export>| {
        list.map(|e| e.name.as_str()).collect::<Vec<_>>().join(", ")
    };
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::UnknownExport {
            name: name.to_owned(),
            available: if exports.is_empty() {
                "(nothing)".to_owned()
            } else {
                names(
                    &mut exports
                        .iter()
                        .map(AsRef::as_ref)
                        .filter(|e| e.toolchain().is_none()),
                )
            },
        }),
        many => Err(Error::AmbiguousExport {
            name: name.to_owned(),
            candidates: names(&mut many.iter().map(|e| e.as_ref())),
        }),
    }
}

impl AsRef<Export> for Export {
    fn as_ref(&self) -> &Export {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(params: &[&str]) -> Signature {
        Signature {
            params: params
                .iter()
                .map(|p| (p.to_string(), WitType::String))
                .collect(),
            result: None,
        }
    }

    #[test]
    fn componentize_pys_init_hook_is_marked_and_short_names_skip_it() {
        let hook = Export::new(
            Some("exports"),
            "init",
            sig(&["app-name", "symbols", "stub-wasi"]),
        );
        let mine = Export::new(Some("exports"), "init", sig(&["path"]));
        let add = Export::new(None, "add", sig(&["a"]));
        assert_eq!(hook.toolchain(), Some("componentize-py"));
        assert_eq!(mine.toolchain(), None, "a user's own init is theirs");
        assert_eq!(add.toolchain(), None);
        let all = [hook.clone(), add.clone()];
        assert!(
            matches!(find(&all, "init"), Err(Error::UnknownExport { available, .. }) if available == "add")
        );
        assert_eq!(find(&all, "exports#init").unwrap(), &hook);
        assert_eq!(find(&[hook, mine.clone()], "init").unwrap(), &mine);
    }
}
