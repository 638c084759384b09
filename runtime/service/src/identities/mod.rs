//! Users and their tokens. A token is `ferry_<id>_<secret>`: the id names
//! it in lists and revocations, and the service keeps only the blake3 of
//! the secret, so that a copy of the store lets no one in.

mod endpoints;

pub use endpoints::{EndpointPolicy, EndpointRecord};

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::core::{Error, Principal, Result};
use crate::store::Store;

/// A user, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub admin: bool,
    pub created_ms: i64,
}

/// A token, as stored: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    pub id: String,
    pub user: String,
    pub label: String,
    /// blake3 of the secret.
    pub hash: [u8; 32],
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

/// The name the first admin gets on a service's first start.
pub const FIRST_ADMIN: &str = "admin";

/// Users and tokens, in memory and in the store.
pub struct Identities {
    store: Arc<dyn Store>,
    state: RwLock<State>,
    /// Bumped at each revocation: open streams re-check their token.
    revocations: tokio::sync::watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    users: BTreeMap<String, User>,
    tokens: BTreeMap<String, Token>,
    endpoints: BTreeMap<String, EndpointRecord>,
    /// Current endpoint credential id → endpoint name.
    credentials: BTreeMap<String, String>,
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(Error::internal)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// A user name: what `ferry user add` takes, and what logs and lists show.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "`{name}` is not a user name: use 1 to 64 letters, digits, `-`, `_`, `.` or `@`"
        )))
    }
}

impl Identities {
    pub fn open(store: Arc<dyn Store>) -> anyhow::Result<Identities> {
        let mut state = State::default();
        for (key, bytes) in store.identities()? {
            if let Some(name) = key.strip_prefix("user/") {
                let u: User = rmp_serde::from_slice(&bytes)
                    .map_err(|e| anyhow::anyhow!("reading user {name}: {e}"))?;
                state.users.insert(u.name.clone(), u);
            } else if let Some(id) = key.strip_prefix("token/") {
                let t: Token = rmp_serde::from_slice(&bytes)
                    .map_err(|e| anyhow::anyhow!("reading token {id}: {e}"))?;
                state.tokens.insert(t.id.clone(), t);
            } else if let Some(name) = key.strip_prefix("endpoint/") {
                let e: EndpointRecord = rmp_serde::from_slice(&bytes)
                    .map_err(|e| anyhow::anyhow!("reading endpoint {name}: {e}"))?;
                state
                    .credentials
                    .insert(e.credential.clone(), e.name.clone());
                state.endpoints.insert(e.name.clone(), e);
            }
        }
        Ok(Identities {
            store,
            state: RwLock::new(state),
            revocations: tokio::sync::watch::Sender::new(0),
        })
    }

    /// Whether `user` is an admin (an unknown user is not).
    pub fn is_admin(&self, user: &str) -> bool {
        self.read().users.get(user).is_some_and(|u| u.admin)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn save<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        let bytes = rmp_serde::to_vec_named(value).map_err(Error::internal)?;
        self.store
            .put_identity(key, Some(&bytes))
            .map_err(Error::internal)
    }

    /// On a service's first start (no users yet): the first admin and a
    /// token for it that never expires. `None` once there are users.
    pub fn bootstrap(&self, now_ms: i64) -> Result<Option<String>> {
        if !self.read().users.is_empty() {
            return Ok(None);
        }
        let user = User {
            name: FIRST_ADMIN.to_owned(),
            admin: true,
            created_ms: now_ms,
        };
        self.save(&format!("user/{}", user.name), &user)?;
        self.write().users.insert(user.name.clone(), user);
        let (_, secret) = self.issue(FIRST_ADMIN, "created on first start", None, now_ms)?;
        Ok(Some(secret))
    }

    /// Who `token` speaks for, at `now_ms`.
    pub fn authenticate(&self, token: &str, now_ms: i64) -> Result<Principal> {
        let malformed = || {
            Error::unauthenticated(
                "the token is not a ferry token (`ferry_<id>_<secret>`, or an endpoint credential `ferryep_<id>_<secret>`)",
            )
        };
        if let Some(rest) = token.strip_prefix("ferryep_") {
            let (id, secret) = rest.split_once('_').ok_or_else(malformed)?;
            return self.authenticate_endpoint(id, secret);
        }
        let rest = token.strip_prefix("ferry_").ok_or_else(malformed)?;
        let (id, secret) = rest.split_once('_').ok_or_else(malformed)?;
        let state = self.read();
        let invalid = || Error::unauthenticated("the token is not valid on this service");
        let t = state.tokens.get(id).ok_or_else(invalid)?;
        // blake3's Hash compares in constant time.
        if blake3::hash(secret.as_bytes()) != blake3::Hash::from_bytes(t.hash) {
            return Err(invalid());
        }
        if t.revoked_ms.is_some() {
            return Err(Error::unauthenticated(format!("token {id} was revoked")));
        }
        if let Some(at) = t.expires_ms
            && at <= now_ms
        {
            return Err(Error::unauthenticated(format!("token {id} expired")));
        }
        let user = state.users.get(&t.user).ok_or_else(invalid)?;
        Ok(Principal::new(&user.name, user.admin, id))
    }

    /// Whether the token `id` still lets its holder in at `now_ms`.
    pub fn still_valid(&self, id: &str, now_ms: i64) -> bool {
        let state = self.read();
        state.credentials.contains_key(id)
            || state.tokens.get(id).is_some_and(|t| {
                t.revoked_ms.is_none() && t.expires_ms.is_none_or(|at| at > now_ms)
            })
    }

    /// Changes when any token is revoked.
    pub fn revocations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.revocations.subscribe()
    }

    pub fn add_user(&self, by: &Principal, name: &str, admin: bool, now_ms: i64) -> Result<User> {
        by.require_admin("add users")?;
        check_name(name)?;
        if self.read().users.contains_key(name) {
            return Err(Error::exists(format!("user `{name}` exists already")));
        }
        let user = User {
            name: name.to_owned(),
            admin,
            created_ms: now_ms,
        };
        self.save(&format!("user/{name}"), &user)?;
        self.write().users.insert(name.to_owned(), user.clone());
        tracing::info!(by = %by.user, user = name, admin, "user added");
        Ok(user)
    }

    pub fn users(&self, by: &Principal) -> Result<Vec<User>> {
        by.require_admin("list users")?;
        Ok(self.read().users.values().cloned().collect())
    }

    /// A new token for `user` (the caller when `None`); only an admin makes
    /// one for someone else. Returns the record and the secret, shown once.
    pub fn create_token(
        &self,
        by: &Principal,
        user: Option<&str>,
        label: &str,
        expires_in_ms: Option<u64>,
        now_ms: i64,
    ) -> Result<(Token, String)> {
        let user = user.filter(|u| !u.is_empty()).unwrap_or(&by.user);
        if user != &*by.user {
            by.require_admin("create tokens for other users")?;
        }
        if !self.read().users.contains_key(user) {
            return Err(Error::not_found(format!("no user `{user}`")));
        }
        let expires =
            expires_in_ms.map(|ms| now_ms.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)));
        let issued = self.issue(user, label, expires, now_ms)?;
        tracing::info!(by = %by.user, user, token = %issued.0.id, "token created");
        Ok(issued)
    }

    fn issue(
        &self,
        user: &str,
        label: &str,
        expires_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<(Token, String)> {
        let id = random_hex(6)?;
        let secret = random_hex(32)?;
        let token = Token {
            id: id.clone(),
            user: user.to_owned(),
            label: label.to_owned(),
            hash: *blake3::hash(secret.as_bytes()).as_bytes(),
            created_ms: now_ms,
            expires_ms,
            revoked_ms: None,
        };
        self.save(&format!("token/{id}"), &token)?;
        self.write().tokens.insert(id.clone(), token.clone());
        Ok((token, format!("ferry_{id}_{secret}")))
    }

    /// Revokes one of the caller's tokens, or (admin) anyone's.
    pub fn revoke(&self, by: &Principal, id: &str, now_ms: i64) -> Result<Token> {
        let mut token = self
            .read()
            .tokens
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("no token `{id}`")))?;
        if token.user != *by.user {
            by.require_admin("revoke other users' tokens")?;
        }
        if token.revoked_ms.is_none() {
            token.revoked_ms = Some(now_ms);
            self.save(&format!("token/{id}"), &token)?;
            self.write().tokens.insert(id.to_owned(), token.clone());
            self.revocations.send_modify(|n| *n += 1);
            tracing::info!(by = %by.user, token = id, user = %token.user, "token revoked");
        }
        Ok(token)
    }

    /// The caller's tokens, or (admin) everyone's.
    pub fn tokens(&self, by: &Principal) -> Vec<Token> {
        self.read()
            .tokens
            .values()
            .filter(|t| by.admin || t.user == *by.user)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn open() -> (Identities, Arc<MemoryStore>) {
        let store = Arc::new(MemoryStore::default());
        (Identities::open(store.clone()).unwrap(), store)
    }

    #[test]
    fn the_first_start_makes_an_admin_once_and_keeps_only_hashes() {
        let (ids, store) = open();
        let token = ids.bootstrap(1_000).unwrap().unwrap();
        assert!(ids.bootstrap(2_000).unwrap().is_none());
        let who = ids.authenticate(&token, 5_000).unwrap();
        assert_eq!(&*who.user, FIRST_ADMIN);
        assert!(who.admin);
        let secret = token.rsplit('_').next().unwrap();
        for (_, bytes) in store.identities().unwrap() {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "the secret is not stored"
            );
        }
        // Reopened from the store, the token still works.
        let again = Identities::open(store).unwrap();
        assert_eq!(again.authenticate(&token, 6_000).unwrap(), who);
    }

    #[test]
    fn wrong_expired_and_revoked_tokens_are_refused_naming_why() {
        let (ids, _) = open();
        let admin = ids
            .authenticate(&ids.bootstrap(0).unwrap().unwrap(), 0)
            .unwrap();
        ids.add_user(&admin, "ada", false, 0).unwrap();
        let (t, short) = ids
            .create_token(&admin, Some("ada"), "", Some(1_000), 0)
            .unwrap();
        assert!(ids.authenticate(&short, 999).is_ok());
        let e = ids.authenticate(&short, 1_000).unwrap_err();
        assert!(
            matches!(&e, Error::Unauthenticated(m) if m.contains("expired")),
            "{e}"
        );
        let (_, long) = ids.create_token(&admin, Some("ada"), "", None, 0).unwrap();
        let ada = ids.authenticate(&long, 10).unwrap();
        assert!(!ada.admin);
        let mut forged = long.clone();
        forged.pop();
        forged.push('0');
        for bad in [forged.as_str(), "hunter2", "ferry_nope_nope"] {
            let e = ids.authenticate(bad, 10).unwrap_err();
            assert!(matches!(e, Error::Unauthenticated(_)), "{bad}: {e}");
        }
        let changed = ids.revocations();
        ids.revoke(&ada, &ada.token, 20).unwrap();
        assert!(changed.has_changed().unwrap());
        let e = ids.authenticate(&long, 30).unwrap_err();
        assert!(
            matches!(&e, Error::Unauthenticated(m) if m.contains("revoked")),
            "{e}"
        );
        assert!(!ids.still_valid(&ada.token, 30));
        assert!(!ids.still_valid(&t.id, 2_000));
    }

    #[test]
    fn only_an_admin_manages_others() {
        let (ids, _) = open();
        let admin = ids
            .authenticate(&ids.bootstrap(0).unwrap().unwrap(), 0)
            .unwrap();
        ids.add_user(&admin, "ada", false, 0).unwrap();
        ids.add_user(&admin, "bob", false, 0).unwrap();
        let e = ids.add_user(&admin, "ada", false, 0).unwrap_err();
        assert!(matches!(e, Error::Exists(_)), "{e}");
        assert!(matches!(
            ids.add_user(&admin, "no spaces", false, 0),
            Err(Error::Invalid(_))
        ));
        let (_, a) = ids.create_token(&admin, Some("ada"), "", None, 0).unwrap();
        let (bt, _) = ids.create_token(&admin, Some("bob"), "", None, 0).unwrap();
        let ada = ids.authenticate(&a, 0).unwrap();
        for e in [
            ids.add_user(&ada, "eve", false, 0).unwrap_err(),
            ids.create_token(&ada, Some("bob"), "", None, 0)
                .unwrap_err(),
            ids.revoke(&ada, &bt.id, 0).unwrap_err(),
            ids.users(&ada).unwrap_err(),
        ] {
            assert!(matches!(&e, Error::Denied(m) if m.contains("admin")), "{e}");
        }
        // Her own: allowed, and she sees only hers.
        ids.create_token(&ada, None, "laptop", None, 0).unwrap();
        let mine = ids.tokens(&ada);
        assert_eq!(mine.len(), 2);
        assert!(mine.iter().all(|t| t.user == "ada"));
        assert_eq!(ids.tokens(&admin).len(), 4);
    }
}
