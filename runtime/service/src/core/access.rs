//! Who may act on what: a caller's identity and the checks the broker's
//! transitions make with it.

use std::sync::Arc;

use super::{Error, Result, TaskRecord};

/// The caller of a request, as its token names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: Arc<str>,
    pub admin: bool,
    /// The token it presented: revoking it ends the caller's open streams.
    pub token: Arc<str>,
    /// Set when the caller presented an endpoint's credential: it may serve
    /// that endpoint, and acts for its owner (`user`) in nothing else.
    pub endpoint: Option<Arc<str>>,
}

impl Principal {
    pub fn new(user: &str, admin: bool, token: &str) -> Principal {
        Principal {
            user: user.into(),
            admin,
            token: token.into(),
            endpoint: None,
        }
    }

    /// The caller an endpoint's credential makes.
    pub fn endpoint(name: &str, owner: &str, credential: &str) -> Principal {
        Principal {
            endpoint: Some(name.into()),
            ..Principal::new(owner, false, credential)
        }
    }

    /// Whether the caller may see and act on `task`: its submitter, or an
    /// admin. A task stored before tasks had owners is an admin's.
    pub fn owns(&self, task: &TaskRecord) -> bool {
        if self.endpoint.is_some() {
            return false;
        }
        self.admin || (!task.owner.is_empty() && *task.owner == *self.user)
    }

    /// The same, as the error a caller reads.
    pub fn check(&self, task: &TaskRecord) -> Result<()> {
        if self.owns(task) {
            Ok(())
        } else {
            Err(Error::denied(format!(
                "task `{}` was submitted by another user",
                task.id
            )))
        }
    }

    /// Only an admin may do `what`.
    pub fn require_admin(&self, what: &str) -> Result<()> {
        if self.admin {
            Ok(())
        } else {
            Err(Error::denied(format!(
                "only an admin may {what}; user `{}` is not one",
                self.user
            )))
        }
    }
}
