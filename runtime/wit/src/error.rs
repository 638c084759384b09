use crate::FailureKind;

/// What can be wrong with a component or with values for it, named in terms
/// a function author can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The bytes are not a valid WebAssembly component.
    #[error("not a valid WebAssembly component: {0}")]
    BadComponent(String),
    /// No export by that name.
    #[error("unknown export `{name}`; the function exports: {available}")]
    UnknownExport { name: String, available: String },
    /// A short name that more than one interface exports.
    #[error("export name `{name}` is ambiguous; name one of: {candidates}")]
    AmbiguousExport { name: String, candidates: String },
    /// The export's signature uses a type ferry cannot carry.
    #[error("export `{export}` cannot be called through ferry: {reason}")]
    UnsupportedSignature { export: String, reason: String },
    /// The arguments do not fit the export's signature.
    #[error("bad arguments for `{export}`: {message}")]
    BadArguments { export: String, message: String },
    /// A value could not be encoded or a stored one decoded.
    #[error("{0}")]
    Codec(String),
}

impl Error {
    /// The failure kind a task that meets this error ends with.
    pub fn kind(&self) -> FailureKind {
        match self {
            Error::BadComponent(_) => FailureKind::BadComponent,
            Error::UnknownExport { .. } => FailureKind::UnknownExport,
            Error::AmbiguousExport { .. } => FailureKind::AmbiguousExport,
            Error::UnsupportedSignature { .. } => FailureKind::UnsupportedSignature,
            Error::BadArguments { .. } => FailureKind::BadArguments,
            Error::Codec(_) => FailureKind::Internal,
        }
    }
}
