use ferry_wit::FailureKind;
use std::time::Duration;

/// Everything that can go wrong between bytes arriving and a result leaving.
///
/// Each variant names the problem in terms a function author can act on;
/// [`Error::kind`] gives a stable code for the wire.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// What is wrong with a component's bytes, an export name or arguments
    /// (`ferry-wit` says, as the service does).
    #[error(transparent)]
    Wit(#[from] ferry_wit::Error),

    /// The component imports something this host does not provide.
    #[error("the function imports `{import}`, which this endpoint does not grant{hint}")]
    UngrantedImport { import: String, hint: String },

    /// The guest trapped (a panic, an `unreachable`, a bad memory access...).
    #[error("the function trapped: {message}{}{}", fmt_backtrace(.backtrace), fmt_stderr(.stderr))]
    Trap {
        message: String,
        backtrace: Option<String>,
        /// The tail of the guest's stderr: a Rust panic message lands here.
        stderr: String,
    },

    /// The call ran past its wall-clock limit.
    #[error("the function ran past its time limit of {}", fmt_duration(*.limit))]
    Timeout { limit: Duration },

    /// The guest asked for more memory than its limit.
    #[error(
        "the function ran out of memory: it needed {requested} bytes of linear memory, over its limit of {limit} bytes"
    )]
    OutOfMemory { limit: u64, requested: u64 },

    /// The guest used up its fuel.
    #[error("the function used up its fuel ({fuel} units)")]
    OutOfFuel { fuel: u64 },

    /// The result is bigger than the output cap.
    #[error("the result is {}, over the output limit of {limit} bytes", size_text(*size))]
    OutputTooLarge {
        /// `u64::MAX` when the lift stopped before the end.
        size: u64,
        limit: u64,
    },

    /// A limit that cannot be honoured by this host's configuration.
    #[error("invalid limits: {0}")]
    InvalidLimits(String),

    /// Reading or writing the compiled-component cache or a component file.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// A directory grant that cannot be honoured.
    #[error("bad mount: {0}")]
    BadMount(String),

    /// An environment variable that cannot be passed to a function.
    #[error("{0}")]
    BadEnv(String),

    /// The task needs a GPU and this endpoint has none.
    #[error("endpoint {endpoint} has no GPU adapter")]
    NoGpu { endpoint: String },

    /// The GPU this endpoint was configured with could not be opened.
    #[error("GPU: {0}")]
    Gpu(String),

    /// A failure inside the host itself (not the guest's fault).
    #[error("host error: {0}")]
    Internal(String),
}

impl Error {
    /// The failure kind a task that meets this error ends with.
    pub fn kind(&self) -> FailureKind {
        match self {
            Error::Wit(e) => e.kind(),
            Error::UngrantedImport { .. } => FailureKind::UngrantedImport,
            Error::Trap { .. } => FailureKind::Trap,
            Error::Timeout { .. } => FailureKind::Timeout,
            Error::OutOfMemory { .. } => FailureKind::OutOfMemory,
            Error::OutOfFuel { .. } => FailureKind::OutOfFuel,
            Error::OutputTooLarge { .. } => FailureKind::OutputTooLarge,
            Error::InvalidLimits(_) => FailureKind::InvalidLimits,
            Error::Io { .. } => FailureKind::Io,
            Error::BadMount(_) => FailureKind::BadMount,
            Error::BadEnv(_) => FailureKind::NoEnv,
            Error::NoGpu { .. } => FailureKind::NoGpu,
            Error::Gpu(_) => FailureKind::Gpu,
            Error::Internal(_) => FailureKind::Internal,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

fn fmt_backtrace(backtrace: &Option<String>) -> String {
    match backtrace {
        Some(bt) if !bt.trim().is_empty() => format!("\n{}", bt.trim_end()),
        _ => String::new(),
    }
}

fn fmt_stderr(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        String::new()
    } else {
        format!("\nguest stderr:\n{}", stderr.trim_end())
    }
}

pub(crate) fn fmt_duration(d: Duration) -> String {
    if d.as_secs_f64() >= 1.0 {
        format!("{}s", trim_float(d.as_secs_f64()))
    } else {
        format!("{}ms", trim_float(d.as_secs_f64() * 1e3))
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A result's size as the output-limit error says it.
fn size_text(size: u64) -> String {
    if size == u64::MAX {
        "larger than the host would lift".into()
    } else {
        format!("{size} bytes")
    }
}
