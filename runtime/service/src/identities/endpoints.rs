//! Endpoints as owned things: a name, its owner, the hash of the credential
//! a session must present to serve it, and the owner's policy.

use ferry_policy::Requirement;
use serde::{Deserialize, Serialize};

use super::{Identities, check_name, random_hex};
use crate::core::{Error, Principal, Result, TaskLimits};

/// What an endpoint's owner allows. Empty lists are the defaults: the owner
/// alone submits, any function runs, every submitter may use the devices.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointPolicy {
    /// Users who may submit, or `*`; an admin always may.
    pub submitters: Vec<String>,
    /// blake3 ids; empty: any function.
    pub allowed_functions: Vec<String>,
    /// Ceilings on a task's limits; 0: none.
    pub max_limits: TaskLimits,
    /// Users who may use its GPU, cameras and mounts, or `*`.
    pub device_users: Vec<String>,
}

/// An endpoint, as stored: never its credential's secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub name: String,
    pub owner: String,
    /// The id part of the current credential.
    pub credential: String,
    pub hash: [u8; 32],
    pub created_ms: i64,
    pub policy: EndpointPolicy,
}

fn listed(list: &[String], user: &str) -> bool {
    list.iter().any(|u| u == "*" || u == user)
}

fn ms(v: u64) -> String {
    format!("{:.3}s", v as f64 / 1e3)
}

impl EndpointRecord {
    /// Whether `who` may send this task here: the service's check at submit.
    pub fn admit(
        &self,
        who: &Principal,
        function_id: &str,
        limits: &TaskLimits,
        requires: &[Requirement],
    ) -> Result<()> {
        let owner = who.admin || *who.user == *self.owner;
        if !owner && !listed(&self.policy.submitters, &who.user) {
            return Err(Error::denied(format!(
                "user `{}` may not submit to endpoint `{}`; its owner `{}` has not allowed it",
                who.user, self.name, self.owner
            )));
        }
        let allowed = &self.policy.allowed_functions;
        if !allowed.is_empty() && !allowed.iter().any(|f| f == function_id) {
            return Err(Error::denied(format!(
                "function {function_id} is not among the {} functions endpoint `{}` allows",
                allowed.len(),
                self.name
            )));
        }
        let max = &self.policy.max_limits;
        for (what, asked, ceiling, show) in [
            (
                "timeout",
                limits.timeout_ms,
                max.timeout_ms,
                ms as fn(u64) -> String,
            ),
            ("memory", limits.memory_bytes, max.memory_bytes, |b| {
                format!("{b} bytes")
            }),
            ("output", limits.output_bytes, max.output_bytes, |b| {
                format!("{b} bytes")
            }),
        ] {
            if ceiling > 0 && asked > ceiling {
                return Err(Error::invalid(format!(
                    "a {what} limit of {} is over endpoint `{}`'s ceiling of {}",
                    show(asked),
                    self.name,
                    show(ceiling)
                )));
            }
        }
        let devices = requires
            .iter()
            .any(|r| !matches!(r, Requirement::Env { .. }));
        let users = &self.policy.device_users;
        if devices && !owner && !users.is_empty() && !listed(users, &who.user) {
            return Err(Error::denied(format!(
                "user `{}` may not use endpoint `{}`'s GPU, cameras or mounts",
                who.user, self.name
            )));
        }
        Ok(())
    }
}

impl Identities {
    /// Creates endpoint `name` owned by the caller, or with `rotate` gives
    /// the owner's endpoint a new credential. Returns the record and the
    /// credential, shown once.
    pub fn register_endpoint(
        &self,
        by: &Principal,
        name: &str,
        rotate: bool,
        now_ms: i64,
    ) -> Result<(EndpointRecord, String)> {
        if by.endpoint.is_some() {
            return Err(Error::denied(
                "an endpoint's credential cannot register endpoints",
            ));
        }
        check_name(name).map_err(|e| e.context("endpoint name"))?;
        let existing = self.read().endpoints.get(name).cloned();
        let mut record = match existing {
            Some(r) if !rotate => {
                return Err(Error::exists(format!(
                    "endpoint `{name}` exists (owner `{}`); its owner can issue a new credential with `ferry endpoint register {name} --rotate`",
                    r.owner
                )));
            }
            Some(r) => {
                if r.owner != *by.user {
                    by.require_admin("rotate another user's endpoint credential")?;
                }
                r
            }
            None => EndpointRecord {
                name: name.to_owned(),
                owner: by.user.to_string(),
                credential: String::new(),
                hash: [0; 32],
                created_ms: now_ms,
                policy: EndpointPolicy::default(),
            },
        };
        let id = random_hex(6)?;
        let secret = random_hex(32)?;
        let old = std::mem::replace(&mut record.credential, id.clone());
        record.hash = *blake3::hash(secret.as_bytes()).as_bytes();
        self.save(&format!("endpoint/{name}"), &record)?;
        {
            let mut state = self.write();
            state.credentials.remove(&old);
            state.credentials.insert(id.clone(), name.to_owned());
            state.endpoints.insert(name.to_owned(), record.clone());
        }
        if !old.is_empty() {
            // Sessions on the old credential end.
            self.revocations.send_modify(|n| *n += 1);
        }
        tracing::info!(by = %by.user, endpoint = name, rotate, "endpoint credential issued");
        Ok((record, format!("ferryep_{id}_{secret}")))
    }

    /// Sets an endpoint's policy: its owner's or an admin's act.
    pub fn set_policy(
        &self,
        by: &Principal,
        name: &str,
        policy: EndpointPolicy,
    ) -> Result<EndpointRecord> {
        let mut record = self
            .endpoint(name)
            .ok_or_else(|| Error::not_found(format!("no endpoint `{name}`")))?;
        if record.owner != *by.user || by.endpoint.is_some() {
            by.require_admin("set another user's endpoint policy")?;
        }
        {
            let state = self.read();
            for u in policy.submitters.iter().chain(&policy.device_users) {
                if u != "*" && !state.users.contains_key(u) {
                    return Err(Error::invalid(format!("no user `{u}`")));
                }
            }
        }
        for f in &policy.allowed_functions {
            if f.len() != 64 || !f.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::invalid(format!(
                    "`{f}` is not a function id (64 hex digits of blake3)"
                )));
            }
        }
        record.policy = policy;
        self.save(&format!("endpoint/{name}"), &record)?;
        self.write()
            .endpoints
            .insert(name.to_owned(), record.clone());
        tracing::info!(by = %by.user, endpoint = name, "endpoint policy set");
        Ok(record)
    }

    pub fn endpoint(&self, name: &str) -> Option<EndpointRecord> {
        self.read().endpoints.get(name).cloned()
    }

    /// The endpoints a caller may see: an admin all, a user those they own
    /// or may submit to.
    pub fn endpoints(&self, by: &Principal) -> Vec<EndpointRecord> {
        self.read()
            .endpoints
            .values()
            .filter(|e| by.admin || e.owner == *by.user || listed(&e.policy.submitters, &by.user))
            .cloned()
            .collect()
    }

    /// Who an endpoint credential (`ferryep_<id>_<secret>`) speaks for.
    pub(super) fn authenticate_endpoint(&self, id: &str, secret: &str) -> Result<Principal> {
        let state = self.read();
        let invalid =
            || Error::unauthenticated("the endpoint credential is not valid on this service");
        let name = state.credentials.get(id).ok_or_else(invalid)?;
        let e = state.endpoints.get(name).ok_or_else(invalid)?;
        if blake3::hash(secret.as_bytes()) != blake3::Hash::from_bytes(e.hash) {
            return Err(invalid());
        }
        Ok(Principal::endpoint(&e.name, &e.owner, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use std::sync::Arc;

    #[test]
    fn an_endpoint_is_served_only_with_its_current_credential_and_admits_by_policy() {
        let ids = Identities::open(Arc::new(MemoryStore::default())).unwrap();
        let admin = ids
            .authenticate(&ids.bootstrap(0).unwrap().unwrap(), 0)
            .unwrap();
        ids.add_user(&admin, "ada", false, 0).unwrap();
        ids.add_user(&admin, "bob", false, 0).unwrap();
        let (_, t) = ids.create_token(&admin, Some("ada"), "", None, 0).unwrap();
        let ada = ids.authenticate(&t, 0).unwrap();
        let (_, t) = ids.create_token(&admin, Some("bob"), "", None, 0).unwrap();
        let bob = ids.authenticate(&t, 0).unwrap();

        let (rec, cred) = ids.register_endpoint(&ada, "lab", false, 0).unwrap();
        assert_eq!(rec.owner, "ada");
        let as_ep = ids.authenticate(&cred, 0).unwrap();
        assert_eq!(as_ep.endpoint.as_deref(), Some("lab"));
        assert!(!as_ep.admin);
        let e = ids.register_endpoint(&bob, "lab", false, 0).unwrap_err();
        assert!(
            matches!(&e, Error::Exists(m) if m.contains("--rotate")),
            "{e}"
        );
        let e = ids.register_endpoint(&bob, "lab", true, 0).unwrap_err();
        assert!(matches!(e, Error::Denied(_)), "{e}");
        let (_, fresh) = ids.register_endpoint(&ada, "lab", true, 0).unwrap();
        assert!(
            ids.authenticate(&cred, 0).is_err(),
            "the old credential is gone"
        );
        assert!(!ids.still_valid(&as_ep.token, 0));
        assert!(ids.authenticate(&fresh, 0).is_ok());

        let f = "a".repeat(64);
        let lab = ids.endpoint("lab").unwrap();
        assert!(lab.admit(&ada, &f, &TaskLimits::default(), &[]).is_ok());
        let e = lab
            .admit(&bob, &f, &TaskLimits::default(), &[])
            .unwrap_err();
        assert!(
            matches!(&e, Error::Denied(m) if m.contains("may not submit")),
            "{e}"
        );
        assert!(
            ids.set_policy(&bob, "lab", EndpointPolicy::default())
                .is_err()
        );
        let lab = ids
            .set_policy(
                &ada,
                "lab",
                EndpointPolicy {
                    submitters: vec!["bob".into()],
                    allowed_functions: vec![f.clone()],
                    max_limits: TaskLimits {
                        timeout_ms: 60_000,
                        ..TaskLimits::default()
                    },
                    device_users: vec!["ada".into()],
                },
            )
            .unwrap();
        assert!(lab.admit(&bob, &f, &TaskLimits::default(), &[]).is_ok());
        let other = "b".repeat(64);
        let e = lab
            .admit(&bob, &other, &TaskLimits::default(), &[])
            .unwrap_err();
        assert!(matches!(&e, Error::Denied(m) if m.contains(&other)), "{e}");
        let long = TaskLimits {
            timeout_ms: 120_000,
            ..TaskLimits::default()
        };
        let e = lab.admit(&bob, &f, &long, &[]).unwrap_err();
        assert!(
            matches!(&e, Error::Invalid(m) if m.contains("ceiling of 60.000s")),
            "{e}"
        );
        let e = lab
            .admit(&bob, &f, &TaskLimits::default(), &[Requirement::Gpu])
            .unwrap_err();
        assert!(matches!(&e, Error::Denied(m) if m.contains("GPU")), "{e}");
        assert!(
            lab.admit(&ada, &f, &TaskLimits::default(), &[Requirement::Gpu])
                .is_ok()
        );
        let e = ids
            .set_policy(
                &ada,
                "lab",
                EndpointPolicy {
                    submitters: vec!["eve".into()],
                    ..EndpointPolicy::default()
                },
            )
            .unwrap_err();
        assert!(matches!(&e, Error::Invalid(m) if m.contains("eve")), "{e}");
        assert_eq!(ids.endpoints(&bob).len(), 1);
        assert_eq!(ids.endpoints(&admin).len(), 1);
    }
}
