//! The broker's errors, free of any transport. Each says what was wrong in
//! words a remote caller may read; internal failures are logged here with
//! their detail and reach callers only as a reference number.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request itself is wrong: bad arguments, bad references.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// What the request would create exists already.
    #[error("{0}")]
    Exists(String),
    /// No valid token came with the request.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but may not do this.
    #[error("{0}")]
    Denied(String),
    /// The request is well-formed but cannot be met now: an ungranted
    /// camera, an endpoint without a GPU.
    #[error("{0}")]
    Precondition(String),
    /// The endpoint cannot meet one of the task's requirements.
    #[error("{0}")]
    Unmet(ferry_policy::Refusal),
    /// A bound was reached: a payload cap, a full queue.
    #[error("{0}")]
    Exhausted(String),
    /// A user's quota was reached: worth trying again after a while.
    #[error("{}", .0.message)]
    Quota(Exceeded),
    /// The broker cannot take transitions (its store failed a commit).
    #[error("{0}")]
    Unavailable(String),
    /// Something failed inside the service; the detail is in its log.
    #[error("internal error (reference {0}); the service's log has the detail")]
    Internal(u64),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A refusal for a quota: which, its value (in the message), and when to
/// try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    pub quota: &'static str,
    pub message: String,
    pub retry_after: std::time::Duration,
}

impl Error {
    pub fn invalid(m: impl Into<String>) -> Error {
        Error::Invalid(m.into())
    }
    pub fn not_found(m: impl Into<String>) -> Error {
        Error::NotFound(m.into())
    }
    pub fn exists(m: impl Into<String>) -> Error {
        Error::Exists(m.into())
    }
    pub fn unauthenticated(m: impl Into<String>) -> Error {
        Error::Unauthenticated(m.into())
    }
    pub fn denied(m: impl Into<String>) -> Error {
        Error::Denied(m.into())
    }
    pub fn precondition(m: impl Into<String>) -> Error {
        Error::Precondition(m.into())
    }
    pub fn exhausted(m: impl Into<String>) -> Error {
        Error::Exhausted(m.into())
    }

    /// Logs `e` with a fresh reference number and returns an error that
    /// carries only that number.
    pub fn internal(e: impl std::fmt::Display) -> Error {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let reference = NEXT.fetch_add(1, Ordering::Relaxed);
        tracing::error!(reference, "internal error: {e:#}");
        Error::Internal(reference)
    }

    /// The same error with `context: ` before its message (internal errors
    /// keep their reference).
    pub fn context(self, context: &str) -> Error {
        let wrap = |m: String| format!("{context}: {m}");
        match self {
            Error::Invalid(m) => Error::Invalid(wrap(m)),
            Error::NotFound(m) => Error::NotFound(wrap(m)),
            Error::Exists(m) => Error::Exists(wrap(m)),
            Error::Unauthenticated(m) => Error::Unauthenticated(wrap(m)),
            Error::Denied(m) => Error::Denied(wrap(m)),
            Error::Precondition(m) => Error::Precondition(wrap(m)),
            Error::Unmet(mut r) => {
                r.message = wrap(r.message);
                Error::Unmet(r)
            }
            Error::Exhausted(m) => Error::Exhausted(wrap(m)),
            Error::Quota(mut q) => {
                q.message = wrap(q.message);
                Error::Quota(q)
            }
            Error::Unavailable(m) => Error::Unavailable(wrap(m)),
            e @ Error::Internal(_) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_carry_a_reference_not_the_detail() {
        let e = Error::internal("open /var/lib/ferry/ferry.redb: permission denied");
        let shown = e.to_string();
        assert!(!shown.contains("/var/lib"), "{shown}");
        assert!(shown.contains("reference"), "{shown}");
        let Error::Internal(a) = e else { panic!() };
        let Error::Internal(b) = Error::internal("again") else {
            panic!()
        };
        assert_ne!(a, b);
    }
}
