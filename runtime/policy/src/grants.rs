//! What an endpoint has, which functions each thing is lent to, and the
//! one check of a requirement against them.

use crate::{FailureKind, Requirement};

/// The functions something is lent to: every function, or those listed by
/// id (blake3 hex).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope {
    functions: Vec<String>,
}

impl Scope {
    pub fn all() -> Scope {
        Scope {
            functions: vec!["*".into()],
        }
    }

    /// These function ids; `*` among them means every function.
    pub fn functions(ids: impl IntoIterator<Item = impl Into<String>>) -> Scope {
        Scope {
            functions: ids.into_iter().map(Into::into).collect(),
        }
    }

    pub fn covers(&self, function_id: &str) -> bool {
        self.functions.iter().any(|f| f == "*" || f == function_id)
    }

    /// The ids as listed (`*` for every function).
    pub fn ids(&self) -> &[String] {
        &self.functions
    }
}

/// One thing an endpoint has for tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Gpu {
        name: String,
        /// vulkan, metal or dx12.
        backend: String,
        /// discrete-gpu, integrated-gpu, virtual-gpu, cpu or other.
        device_type: String,
        driver: String,
    },
    Camera {
        name: String,
        /// `test-pattern 1280x720@30`, `v4l2 /dev/video0`, `replay DIR @10`.
        backend: String,
    },
    /// A directory at `guest`; where it lives on the endpoint stays there.
    Mount { guest: String, read_only: bool },
    /// An environment variable by name; its value stays on the endpoint.
    Env { name: String },
}

/// A resource and the functions it is lent to: what an endpoint
/// advertises of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub resource: Resource,
    pub functions: Scope,
}

/// Why a requirement cannot be met, in words a submitter can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub requirement: Requirement,
    pub kind: FailureKind,
    pub message: String,
}

/// An endpoint's policy: everything it offers, each to the functions named.
/// The endpoint enforces it before a task runs; the service pre-checks a
/// submission against the offers the endpoint advertised.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grants {
    endpoint: String,
    offers: Vec<Offer>,
}

impl Grants {
    pub fn new(endpoint: impl Into<String>, offers: Vec<Offer>) -> Grants {
        Grants {
            endpoint: endpoint.into(),
            offers,
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn offers(&self) -> &[Offer] {
        &self.offers
    }

    /// The GPU offered, if any.
    pub fn gpu(&self) -> Option<&Offer> {
        self.offers
            .iter()
            .find(|o| matches!(o.resource, Resource::Gpu { .. }))
    }

    /// Whether a task of `function_id` with these requirements may run here.
    pub fn serves(&self, needs: &[Requirement], function_id: &str) -> bool {
        self.check_all(needs, function_id).is_ok()
    }

    /// The first of `needs` that cannot be met here, refused.
    pub fn check_all(&self, needs: &[Requirement], function_id: &str) -> Result<(), Refusal> {
        needs.iter().try_for_each(|n| self.check(n, function_id))
    }

    /// Whether the endpoint has what `need` names and lends it to
    /// `function_id`.
    pub fn check(&self, need: &Requirement, function_id: &str) -> Result<(), Refusal> {
        let endpoint = &self.endpoint;
        let refuse = |kind: FailureKind, message: String| {
            Err(Refusal {
                requirement: need.clone(),
                kind,
                message,
            })
        };
        let matching: Vec<&Offer> = self
            .offers
            .iter()
            .filter(|o| match (need, &o.resource) {
                (Requirement::Gpu, Resource::Gpu { .. }) => true,
                (Requirement::Camera { name }, Resource::Camera { name: have, .. }) => {
                    name.as_ref().is_none_or(|n| n == have)
                }
                (Requirement::Mount { guest }, Resource::Mount { guest: have, .. }) => {
                    guest.trim_end_matches('/') == have.trim_end_matches('/')
                }
                (Requirement::Env { name }, Resource::Env { name: have }) => name == have,
                _ => false,
            })
            .collect();
        let granted = matching.iter().any(|o| o.functions.covers(function_id));
        if granted {
            return Ok(());
        }
        let none = matching.is_empty();
        match need {
            Requirement::Gpu if none => refuse(
                FailureKind::NoGpu,
                format!("endpoint {endpoint} has no GPU adapter"),
            ),
            Requirement::Gpu => refuse(
                FailureKind::NoGpu,
                format!("the GPU of endpoint {endpoint} is not granted to function {function_id}"),
            ),
            Requirement::Camera { name: None } if none => refuse(
                FailureKind::NoCamera,
                format!("endpoint {endpoint} has no camera"),
            ),
            Requirement::Camera { name: None } => refuse(
                FailureKind::NoCamera,
                format!("endpoint {endpoint} grants function {function_id} no camera"),
            ),
            Requirement::Camera { name: Some(n) } if none => refuse(
                FailureKind::NoCamera,
                format!("endpoint {endpoint} has no camera named {n}"),
            ),
            Requirement::Camera { name: Some(n) } => refuse(
                FailureKind::NoCamera,
                format!(
                    "camera {n} on endpoint {endpoint} is not granted to function {function_id}"
                ),
            ),
            Requirement::Mount { guest } if none => refuse(
                FailureKind::BadMount,
                format!("endpoint {endpoint} has no mount at {guest}"),
            ),
            Requirement::Mount { guest } => refuse(
                FailureKind::BadMount,
                format!(
                    "mount {guest} on endpoint {endpoint} is not granted to function {function_id}"
                ),
            ),
            Requirement::Env { name } if none => refuse(
                FailureKind::NoEnv,
                format!("endpoint {endpoint} has no variable {name}"),
            ),
            Requirement::Env { name } => refuse(
                FailureKind::NoEnv,
                format!(
                    "variable {name} on endpoint {endpoint} is not granted to function {function_id}"
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab() -> Grants {
        let some = || Scope::functions(["abc"]);
        Grants::new(
            "lab",
            vec![
                Offer {
                    resource: Resource::Gpu {
                        name: "llvmpipe".into(),
                        backend: "vulkan".into(),
                        device_type: "cpu".into(),
                        driver: "mesa".into(),
                    },
                    functions: Scope::all(),
                },
                Offer {
                    resource: Resource::Camera {
                        name: "front".into(),
                        backend: "test-pattern 320x240@30".into(),
                    },
                    functions: Scope::all(),
                },
                Offer {
                    resource: Resource::Camera {
                        name: "secret".into(),
                        backend: "test-pattern 320x240@30".into(),
                    },
                    functions: some(),
                },
                Offer {
                    resource: Resource::Mount {
                        guest: "/private".into(),
                        read_only: true,
                    },
                    functions: some(),
                },
                Offer {
                    resource: Resource::Env {
                        name: "TOKEN".into(),
                    },
                    functions: some(),
                },
            ],
        )
    }

    #[test]
    fn a_requirement_is_met_by_an_offer_that_covers_the_function() {
        let g = lab();
        for need in [
            "gpu",
            "camera",
            "camera:front",
            "camera:secret",
            "mount:/private",
            "mount:/private/",
            "env:TOKEN",
        ] {
            let need: Requirement = need.parse().unwrap();
            assert_eq!(g.check(&need, "abc"), Ok(()), "{need}");
        }
        assert!(g.serves(&[Requirement::gpu(), Requirement::camera("front")], "def"));
    }

    #[test]
    fn each_capability_refuses_what_is_missing_or_withheld_naming_it() {
        let g = lab();
        let bare = Grants::new("bare", vec![]);
        for (grants, need, kind, message) in [
            (
                &bare,
                "gpu",
                FailureKind::NoGpu,
                "endpoint bare has no GPU adapter",
            ),
            (
                &bare,
                "camera",
                FailureKind::NoCamera,
                "endpoint bare has no camera",
            ),
            (
                &g,
                "camera:nope",
                FailureKind::NoCamera,
                "endpoint lab has no camera named nope",
            ),
            (
                &g,
                "camera:secret",
                FailureKind::NoCamera,
                "camera secret on endpoint lab is not granted to function def",
            ),
            (
                &g,
                "mount:/nowhere",
                FailureKind::BadMount,
                "endpoint lab has no mount at /nowhere",
            ),
            (
                &g,
                "mount:/private",
                FailureKind::BadMount,
                "mount /private on endpoint lab is not granted to function def",
            ),
            (
                &g,
                "env:HOME",
                FailureKind::NoEnv,
                "endpoint lab has no variable HOME",
            ),
            (
                &g,
                "env:TOKEN",
                FailureKind::NoEnv,
                "variable TOKEN on endpoint lab is not granted to function def",
            ),
        ] {
            let need: Requirement = need.parse().unwrap();
            let r = grants.check(&need, "def").unwrap_err();
            assert_eq!((r.kind, r.message.as_str()), (kind, message));
            assert_eq!(r.requirement, need);
        }
        let withheld = Grants::new(
            "lab",
            vec![Offer {
                resource: Resource::Camera {
                    name: "secret".into(),
                    backend: String::new(),
                },
                functions: Scope::functions(["abc"]),
            }],
        );
        assert_eq!(
            withheld
                .check(&Requirement::any_camera(), "def")
                .unwrap_err()
                .message,
            "endpoint lab grants function def no camera"
        );
        let first = g
            .check_all(&[Requirement::gpu(), Requirement::env("HOME")], "abc")
            .unwrap_err();
        assert_eq!(first.requirement, Requirement::env("HOME"));
    }
}
