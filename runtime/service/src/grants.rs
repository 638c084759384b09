//! Who may read which blob. A blob's name is easy to pass around, so a name
//! alone is no right to its bytes: a user reads a blob they uploaded (which
//! proves they had the bytes), or one that a task of theirs wrote. Admins
//! read any blob, and so do endpoints, which fetch blobs for the tasks they
//! run.
//!
//! What a user may read is also what they hold: each user's readable bytes
//! are held to the blob-store quota, so that no user fills the store.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::Store;
use crate::core::{Error, Exceeded, Principal, Result};

pub(crate) struct BlobGrants {
    store: Arc<dyn Store>,
    /// Bytes of blobs each user may hold.
    quota: Option<u64>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Blob hash → its size, and the users who may read it.
    readers: HashMap<String, (u64, HashSet<String>)>,
    /// User → bytes of the blobs they may read.
    held: HashMap<String, u64>,
}

impl BlobGrants {
    pub(crate) fn open(store: Arc<dyn Store>, quota: Option<u64>) -> anyhow::Result<BlobGrants> {
        let mut state = State::default();
        for (hash, user, size) in store.blob_grants()? {
            *state.held.entry(user.clone()).or_default() += size;
            let entry = state.readers.entry(hash).or_default();
            entry.0 = size;
            entry.1.insert(user);
        }
        Ok(BlobGrants {
            store,
            quota,
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `who` may read blob `hash` (hex).
    pub(crate) fn may_read(&self, who: &Principal, hash: &str) -> bool {
        who.admin
            || who.endpoint.is_some()
            || self
                .lock()
                .readers
                .get(hash)
                .is_some_and(|(_, users)| users.contains(&*who.user))
    }

    /// Refuses, before any byte is received, a blob that would take `user`
    /// past the quota; `exempt` users (admins) are held to none.
    pub(crate) fn room(&self, user: &str, exempt: bool, hash: &str, size: u64) -> Result<()> {
        let Some(quota) = self.quota.filter(|_| !exempt) else {
            return Ok(());
        };
        let state = self.lock();
        if state
            .readers
            .get(hash)
            .is_some_and(|(_, u)| u.contains(user))
        {
            return Ok(());
        }
        let held = state.held.get(user).copied().unwrap_or(0);
        if held + size > quota {
            return Err(Error::Quota(Exceeded {
                quota: "blob-store-bytes",
                message: format!(
                    "quota blob-store-bytes ({quota}) reached for user `{user}`: they hold {held} bytes of blobs, and this one has {size} (an admin's `ferry blob gc` frees blobs no task names)"
                ),
                // Only a gc frees room: no wait of the client's would.
                retry_after: Duration::ZERO,
            }));
        }
        Ok(())
    }

    /// Lets `user` read blob `hash` of `size` bytes, durably, within the
    /// quota.
    pub(crate) fn grant(&self, user: &str, exempt: bool, hash: &str, size: u64) -> Result<()> {
        if self
            .lock()
            .readers
            .get(hash)
            .is_some_and(|(_, u)| u.contains(user))
        {
            return Ok(());
        }
        self.room(user, exempt, hash, size)?;
        self.store
            .grant_blobs(&[(hash.to_owned(), user.to_owned(), size)])
            .map_err(Error::internal)?;
        let mut state = self.lock();
        let entry = state.readers.entry(hash.to_owned()).or_default();
        entry.0 = size;
        if entry.1.insert(user.to_owned()) {
            *state.held.entry(user.to_owned()).or_default() += size;
        }
        Ok(())
    }

    /// Forgets the grants of blobs that were removed, freeing their bytes.
    pub(crate) fn forget(&self, removed: &[String]) -> Result<()> {
        if removed.is_empty() {
            return Ok(());
        }
        self.store
            .drop_blob_grants(removed)
            .map_err(Error::internal)?;
        let mut state = self.lock();
        for hash in removed {
            let (size, users) = state.readers.remove(hash).unwrap_or_default();
            for user in users {
                if let Some(h) = state.held.get_mut(&user) {
                    *h = h.saturating_sub(size);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    fn hash(s: &str) -> String {
        blake3::hash(s.as_bytes()).to_hex().to_string()
    }

    #[test]
    fn a_user_reads_what_they_were_granted_and_holds_it_within_the_quota() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let g = BlobGrants::open(store.clone(), Some(100)).unwrap();
        let ada = Principal::new("ada", false, "t");
        let bob = Principal::new("bob", false, "u");
        let (a, b) = (hash("a"), hash("b"));
        g.grant("ada", false, &a, 60).unwrap();
        assert!(g.may_read(&ada, &a));
        assert!(!g.may_read(&bob, &a));
        assert!(g.may_read(&Principal::new("root", true, "r"), &a));
        // Granting again charges nothing.
        g.grant("ada", false, &a, 60).unwrap();
        let e = g.grant("ada", false, &b, 41).unwrap_err();
        let Error::Quota(q) = &e else { panic!("{e}") };
        assert_eq!(q.quota, "blob-store-bytes");
        assert!(q.message.contains("(100)") && q.message.contains("60 bytes"));
        assert_eq!(q.retry_after, Duration::ZERO);
        assert!(!g.may_read(&ada, &b));
        // Bob holds bytes of his own; admins are held to nothing.
        g.grant("bob", false, &a, 60).unwrap();
        g.grant("root", true, &b, 1000).unwrap();
        // Grants survive a restart.
        let g = BlobGrants::open(store, Some(100)).unwrap();
        assert!(g.may_read(&bob, &a));
        assert!(g.room("ada", false, &b, 41).is_err());
        // A removed blob's bytes are free again.
        g.forget(std::slice::from_ref(&a)).unwrap();
        assert!(!g.may_read(&ada, &a));
        g.grant("ada", false, &b, 41).unwrap();
    }
}
