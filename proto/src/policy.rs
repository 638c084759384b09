//! `ferry-policy`'s types to and from their messages: requirements travel
//! typed, and so do the offers an endpoint advertises.

use ferry_policy::{BadRequirement, Offer, Requirement, Resource, Scope};

use crate::v1 as pb;
use pb::offer::What;
use pb::requirement::Need;

impl From<&Requirement> for pb::Requirement {
    fn from(r: &Requirement) -> pb::Requirement {
        let need = match r {
            Requirement::Gpu => Need::Gpu(pb::GpuNeed {}),
            Requirement::Camera { name } => Need::Camera(pb::CameraNeed {
                name: name.clone().unwrap_or_default(),
            }),
            Requirement::Mount { guest } => Need::Mount(pb::MountNeed {
                guest: guest.clone(),
            }),
            Requirement::Env { name } => Need::Env(pb::EnvNeed { name: name.clone() }),
        };
        pb::Requirement { need: Some(need) }
    }
}

impl TryFrom<&pb::Requirement> for Requirement {
    type Error = BadRequirement;
    fn try_from(r: &pb::Requirement) -> Result<Requirement, BadRequirement> {
        let r = match &r.need {
            None => {
                return Err(BadRequirement(format!(
                    "a requirement names no capability; a task may require: {}",
                    Requirement::FORMS
                )));
            }
            Some(Need::Gpu(_)) => Requirement::Gpu,
            Some(Need::Camera(c)) if c.name.is_empty() => Requirement::any_camera(),
            Some(Need::Camera(c)) => Requirement::camera(&c.name),
            Some(Need::Mount(m)) => Requirement::mount(&m.guest),
            Some(Need::Env(e)) => Requirement::env(&e.name),
        };
        r.validate()?;
        Ok(r)
    }
}

/// Reads a message's requirements, refusing the first malformed one.
pub fn requirements_from_wire(rs: &[pb::Requirement]) -> Result<Vec<Requirement>, BadRequirement> {
    rs.iter().map(Requirement::try_from).collect()
}

impl From<&Offer> for pb::Offer {
    fn from(o: &Offer) -> pb::Offer {
        let what = match &o.resource {
            Resource::Gpu {
                name,
                backend,
                device_type,
                driver,
            } => What::Gpu(pb::GpuInfo {
                name: name.clone(),
                backend: backend.clone(),
                device_type: device_type.clone(),
                driver: driver.clone(),
            }),
            Resource::Camera { name, backend } => What::Camera(pb::CameraOffer {
                name: name.clone(),
                backend: backend.clone(),
            }),
            Resource::Mount { guest, read_only } => What::Mount(pb::MountOffer {
                guest: guest.clone(),
                read_only: *read_only,
            }),
            Resource::Env { name } => What::Env(pb::EnvOffer { name: name.clone() }),
        };
        pb::Offer {
            functions: o.functions.ids().to_vec(),
            what: Some(what),
        }
    }
}

/// An endpoint's advertised offers; one of a kind this build does not know
/// (from a newer endpoint) is left out, since nothing here can need it.
pub fn offers_from_wire(offers: &[pb::Offer]) -> Vec<Offer> {
    offers
        .iter()
        .filter_map(|o| {
            let resource = match o.what.as_ref()? {
                What::Gpu(g) => Resource::Gpu {
                    name: g.name.clone(),
                    backend: g.backend.clone(),
                    device_type: g.device_type.clone(),
                    driver: g.driver.clone(),
                },
                What::Camera(c) => Resource::Camera {
                    name: c.name.clone(),
                    backend: c.backend.clone(),
                },
                What::Mount(m) => Resource::Mount {
                    guest: m.guest.clone(),
                    read_only: m.read_only,
                },
                What::Env(e) => Resource::Env {
                    name: e.name.clone(),
                },
            };
            Some(Offer {
                resource,
                functions: Scope::functions(o.functions.iter().cloned()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_and_offers_survive_the_wire() {
        let needs = ["gpu", "camera", "camera:front", "mount:/data", "env:HOME"]
            .map(|s| s.parse::<Requirement>().unwrap());
        let wire: Vec<pb::Requirement> = needs.iter().map(Into::into).collect();
        assert_eq!(requirements_from_wire(&wire).unwrap(), needs);
        let empty = requirements_from_wire(&[pb::Requirement { need: None }]).unwrap_err();
        assert!(empty.0.contains("names no capability"), "{empty}");
        let bad = pb::Requirement {
            need: Some(Need::Mount(pb::MountNeed {
                guest: "data".into(),
            })),
        };
        assert!(requirements_from_wire(&[bad]).is_err());

        let offers = vec![
            Offer {
                resource: Resource::Mount {
                    guest: "/data".into(),
                    read_only: true,
                },
                functions: Scope::functions(["abc"]),
            },
            Offer {
                resource: Resource::Env { name: "X".into() },
                functions: Scope::all(),
            },
        ];
        let wire: Vec<pb::Offer> = offers.iter().map(Into::into).collect();
        assert_eq!(offers_from_wire(&wire), offers);
    }
}
