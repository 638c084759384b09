//! The one vocabulary of task failures, shared by host, endpoint, service
//! and client: every way a task can end other than with its result, each
//! with a stable string form for the wire and for `retry_on`.

use std::fmt;
use std::str::FromStr;

macro_rules! kinds {
    ($($(#[$doc:meta])* $name:ident = $text:literal, retry: $retry:literal;)*) => {
        /// Why a task failed.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum FailureKind {
            $($(#[$doc])* $name,)*
        }

        impl FailureKind {
            /// Every kind, in the order documented.
            pub const ALL: &'static [FailureKind] = &[$(FailureKind::$name),*];

            /// The stable string form (kebab-case).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(FailureKind::$name => $text,)*
                }
            }

            /// Whether running the task again can end differently, so that
            /// `retry_on` may name it.
            pub fn retryable(self) -> bool {
                match self {
                    $(FailureKind::$name => $retry,)*
                }
            }
        }
    };
}

kinds! {
    // The component and the arguments.
    /// The bytes are not a valid component.
    BadComponent = "bad-component", retry: false;
    /// No export by that name.
    UnknownExport = "unknown-export", retry: false;
    /// A short export name more than one interface exports.
    AmbiguousExport = "ambiguous-export", retry: false;
    /// A signature with a type ferry cannot carry.
    UnsupportedSignature = "unsupported-signature", retry: false;
    /// Arguments that do not fit the signature.
    BadArguments = "bad-arguments", retry: false;
    /// The component imports something no capability grants.
    UngrantedImport = "ungranted-import", retry: false;
    // The guest.
    /// The guest trapped (a panic, `unreachable`, a bad access).
    Trap = "trap", retry: true;
    /// The call ran past its time limit.
    Timeout = "timeout", retry: true;
    /// The guest asked for more memory than its limit.
    OutOfMemory = "out-of-memory", retry: true;
    /// The guest ran out of fuel.
    OutOfFuel = "out-of-fuel", retry: true;
    /// The result is larger than the output limit.
    OutputTooLarge = "output-too-large", retry: true;
    // What the task asked of its endpoint.
    /// Limits past the endpoint's ceilings, or that it cannot apply.
    InvalidLimits = "invalid-limits", retry: false;
    /// A mount the endpoint lacks or does not grant the function.
    BadMount = "bad-mount", retry: true;
    /// The task needs a GPU and the endpoint has none.
    NoGpu = "no-gpu", retry: true;
    /// A camera the endpoint lacks or does not grant the function.
    NoCamera = "no-camera", retry: true;
    /// An environment variable the endpoint lacks or does not grant the
    /// function.
    NoEnv = "no-env", retry: true;
    /// A requirement the endpoint does not know.
    UnsupportedRequirement = "unsupported-requirement", retry: false;
    // The endpoint.
    /// A host file operation failed.
    Io = "io", retry: true;
    /// The GPU failed.
    Gpu = "gpu", retry: true;
    /// The endpoint could not fetch the component.
    Fetch = "fetch", retry: true;
    /// The fetched component did not hash to its id.
    HashMismatch = "hash-mismatch", retry: true;
    /// A blob the task made could not be sent to the service.
    BlobUpload = "blob-upload", retry: true;
    /// A failure of ferry itself, not of the task.
    Internal = "internal", retry: true;
    // The service.
    /// The task was lost with its endpoint too many times.
    EndpointLost = "endpoint-lost", retry: false;
    /// The task was cancelled.
    Cancelled = "cancelled", retry: false;
    /// A task whose result this one takes failed.
    Dependency = "dependency", retry: false;
    /// No task by that id.
    UnknownTask = "unknown-task", retry: false;
    /// The caller may not see the task: another user submitted it, or the
    /// caller's token was revoked.
    Denied = "denied", retry: false;
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for FailureKind {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for FailureKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<FailureKind> for String {
    fn from(k: FailureKind) -> String {
        k.as_str().to_owned()
    }
}

/// A string that names no failure kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a failure kind; the kinds are: {kinds}", kinds = FailureKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "))]
pub struct UnknownKind(pub String);

impl FromStr for FailureKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<FailureKind, UnknownKind> {
        FailureKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_string_and_strings_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for &k in FailureKind::ALL {
            assert_eq!(k.as_str().parse::<FailureKind>(), Ok(k));
            assert!(seen.insert(k.as_str()), "{k} twice");
            assert!(
                k.as_str()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-'),
                "{k} is not kebab-case"
            );
        }
        let e = "tiemout".parse::<FailureKind>().unwrap_err().to_string();
        assert!(e.contains("`tiemout`") && e.contains("timeout"), "{e}");
    }
}
