//! The registry's view of functions: each component's exports and imports,
//! read from its file with `ferry-wit` (validated, never compiled) and kept,
//! for checking submissions and resolving dataflow.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use ferry_wit::{Component, Error as WitError, FunctionId};

use crate::components::Components;
use crate::core::{Catalog, Error};

/// Decoded components kept in memory; past this many the cache starts over.
const KEPT: usize = 4096;

pub(crate) struct Functions {
    files: Arc<Components>,
    decoded: RwLock<HashMap<FunctionId, Arc<Component>>>,
}

/// A `ferry-wit` error as the broker reports it.
pub(crate) fn wit_error(e: WitError) -> Error {
    match &e {
        WitError::BadComponent(_)
        | WitError::BadArguments { .. }
        | WitError::UnsupportedSignature { .. } => Error::invalid(e.to_string()),
        WitError::UnknownExport { .. } | WitError::AmbiguousExport { .. } => {
            Error::not_found(e.to_string())
        }
        WitError::Codec(_) => Error::internal(e),
    }
}

impl Functions {
    pub(crate) fn new(files: Arc<Components>) -> Self {
        Functions {
            files,
            decoded: RwLock::default(),
        }
    }

    /// A registered function, from memory or the store.
    pub(crate) fn get(&self, id: &str) -> Result<Arc<Component>, Error> {
        let fid = FunctionId::parse(id).map_err(wit_error)?;
        if let Some(c) = self
            .decoded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fid)
        {
            return Ok(c.clone());
        }
        let bytes = self
            .files
            .map(&fid)
            .map_err(Error::internal)?
            .ok_or_else(|| {
                Error::not_found(format!("unknown function `{id}`; register it first"))
            })?;
        self.load(&bytes)
    }

    /// Validates a component and reads its exports and imports.
    pub(crate) fn load(&self, bytes: &[u8]) -> Result<Arc<Component>, Error> {
        let c = Arc::new(Component::decode(bytes).map_err(wit_error)?);
        let mut kept = self.decoded.write().unwrap_or_else(|p| p.into_inner());
        if kept.len() >= KEPT {
            kept.clear();
        }
        kept.insert(c.id, c.clone());
        Ok(c)
    }
}

impl Catalog for Functions {
    fn fed_value(
        &self,
        function_id: &str,
        export: &str,
        result: &[u8],
    ) -> Result<serde_json::Value, String> {
        let f = self.get(function_id).map_err(|e| e.to_string())?;
        let e = f.export(export).map_err(|e| e.to_string())?;
        crate::deps::fed_value(e, result)
    }

    fn args_from_json(
        &self,
        function_id: &str,
        export: &str,
        values: &[serde_json::Value],
    ) -> Result<Vec<u8>, String> {
        let f = self.get(function_id).map_err(|e| e.to_string())?;
        let e = f.export(export).map_err(|e| e.to_string())?;
        e.args_from_json(values)
            .and_then(|vals| e.args_to_msgpack(&vals))
            .map_err(|e| e.to_string())
    }
}
