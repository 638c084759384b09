//! One capability a task needs of its endpoint.

use std::fmt;
use std::str::FromStr;

/// What a task needs of its endpoint before it may run there. The string
/// form (`gpu`, `camera`, `camera:NAME`, `mount:/GUEST`, `env:NAME`) is what
/// the CLI takes and the store keeps; the wire carries it typed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Requirement {
    /// The endpoint's GPU (`ferry:host/gpu`).
    Gpu,
    /// A camera granted to the function: the one named, or any.
    Camera { name: Option<String> },
    /// The directory mounted at `guest`, granted to the function.
    Mount { guest: String },
    /// The environment variable `name`, granted to the function.
    Env { name: String },
}

impl Requirement {
    /// The forms a requirement takes, for error messages.
    pub const FORMS: &'static str = "gpu, camera, camera:NAME, mount:/GUEST/PATH, env:NAME";

    pub fn gpu() -> Requirement {
        Requirement::Gpu
    }

    /// Any camera granted to the function.
    pub fn any_camera() -> Requirement {
        Requirement::Camera { name: None }
    }

    pub fn camera(name: impl Into<String>) -> Requirement {
        Requirement::Camera {
            name: Some(name.into()),
        }
    }

    pub fn mount(guest: impl Into<String>) -> Requirement {
        Requirement::Mount {
            guest: guest.into(),
        }
    }

    pub fn env(name: impl Into<String>) -> Requirement {
        Requirement::Env { name: name.into() }
    }

    /// The capability this requirement belongs to: `gpu`, `camera`, `files`
    /// or `env`.
    pub fn capability(&self) -> &'static str {
        match self {
            Requirement::Gpu => "gpu",
            Requirement::Camera { .. } => "camera",
            Requirement::Mount { .. } => "files",
            Requirement::Env { .. } => "env",
        }
    }

    /// Checks what the type cannot: a mount's guest path is absolute and
    /// plain, names are not empty.
    pub fn validate(&self) -> Result<(), BadRequirement> {
        let bad = |why: String| Err(BadRequirement(why));
        match self {
            Requirement::Gpu | Requirement::Camera { name: None } => Ok(()),
            Requirement::Camera { name: Some(n) } if n.is_empty() => {
                bad("a camera requirement names no camera".into())
            }
            Requirement::Camera { .. } => Ok(()),
            Requirement::Mount { guest } => {
                if !guest.starts_with('/') {
                    return bad(format!(
                        "mount `{guest}`: the guest path must be absolute, like /data"
                    ));
                }
                if guest.split('/').any(|p| p == ".." || p == ".") {
                    return bad(format!(
                        "mount `{guest}`: the guest path may not contain `.` or `..`"
                    ));
                }
                Ok(())
            }
            Requirement::Env { name } => {
                let mut chars = name.chars();
                let first_ok = chars
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
                if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    Ok(())
                } else {
                    bad(format!(
                        "env `{name}`: a variable name is letters, digits and `_`, not starting with a digit"
                    ))
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirement::Gpu => f.write_str("gpu"),
            Requirement::Camera { name: None } => f.write_str("camera"),
            Requirement::Camera { name: Some(n) } => write!(f, "camera:{n}"),
            Requirement::Mount { guest } => write!(f, "mount:{guest}"),
            Requirement::Env { name } => write!(f, "env:{name}"),
        }
    }
}

/// A requirement that cannot be read or is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequirement(pub String);

impl FromStr for Requirement {
    type Err = BadRequirement;
    fn from_str(s: &str) -> Result<Requirement, BadRequirement> {
        let r = match s.split_once(':') {
            None if s == "gpu" => Requirement::Gpu,
            None if s == "camera" => Requirement::any_camera(),
            Some(("camera", name)) => Requirement::camera(name),
            Some(("mount", guest)) => Requirement::mount(guest),
            Some(("env", name)) => Requirement::env(name),
            _ => {
                return Err(BadRequirement(format!(
                    "unknown requirement `{s}`; a task may require: {}",
                    Requirement::FORMS
                )));
            }
        };
        r.validate()?;
        Ok(r)
    }
}

// Stored as its string form, as records written before requirements were
// typed hold them.
impl serde::Serialize for Requirement {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Requirement {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Requirement, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_reads_back_from_its_string() {
        for r in [
            Requirement::gpu(),
            Requirement::any_camera(),
            Requirement::camera("front"),
            Requirement::mount("/data/in"),
            Requirement::env("HDF5_DIR"),
        ] {
            assert_eq!(r.to_string().parse::<Requirement>(), Ok(r.clone()));
            let stored = rmp_serde::to_vec(&r).unwrap();
            assert_eq!(
                rmp_serde::from_slice::<String>(&stored).unwrap(),
                r.to_string()
            );
            assert_eq!(rmp_serde::from_slice::<Requirement>(&stored).unwrap(), r);
        }
    }

    #[test]
    fn bad_forms_are_refused_naming_the_problem() {
        for (text, needle) in [
            ("tpu", "unknown requirement `tpu`; a task may require: gpu,"),
            ("mount:data", "must be absolute"),
            ("mount:/a/../b", "may not contain"),
            ("env:1X", "letters, digits"),
            ("env:", "letters, digits"),
            ("camera:", "names no camera"),
        ] {
            let e = text.parse::<Requirement>().unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
