//! The registry's view of functions: components by id, loaded once and
//! kept, for checking submissions and resolving dataflow.

use std::sync::Arc;

use ferry_host::{Error as HostError, Function, FunctionId, Host, HostConfig};

use crate::core::{Catalog, Error};
use crate::store::Store;

pub(crate) struct Functions {
    store: Arc<dyn Store>,
    /// Reads components' types; never runs a task.
    host: Host,
}

/// A host error as the broker reports it.
pub(crate) fn host_error(e: HostError) -> Error {
    match &e {
        HostError::BadComponent(_)
        | HostError::BadArguments { .. }
        | HostError::UnsupportedSignature { .. } => Error::invalid(e.to_string()),
        HostError::UngrantedImport { .. } => Error::precondition(e.to_string()),
        HostError::UnknownExport { .. } | HostError::AmbiguousExport { .. } => {
            Error::not_found(e.to_string())
        }
        _ => Error::internal(e),
    }
}

impl Functions {
    pub(crate) fn new(store: Arc<dyn Store>, compiled: &std::path::Path) -> anyhow::Result<Self> {
        let host = Host::new(HostConfig {
            cache_dir: Some(compiled.to_owned()),
            pooling: false,
            ..HostConfig::default()
        })?;
        Ok(Functions { store, host })
    }

    /// The function, from memory, the compiled cache or the store.
    pub(crate) fn get(&self, id: &str) -> Result<Arc<Function>, Error> {
        let fid = FunctionId::parse(id).map_err(|e| Error::invalid(e.to_string()))?;
        if let Some(f) = self.host.cached(fid).map_err(Error::internal)? {
            return Ok(f);
        }
        let bytes = self
            .store
            .function_bytes(id)
            .map_err(Error::internal)?
            .ok_or_else(|| {
                Error::not_found(format!("unknown function `{id}`; register it first"))
            })?;
        self.host.load(&bytes).map_err(host_error)
    }

    /// Validates a component and reads its exports and imports.
    pub(crate) fn load(&self, bytes: &[u8]) -> Result<Arc<Function>, Error> {
        self.host.load(bytes).map_err(host_error)
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
