//! Environment variables: values an endpoint configures (`[[env]]`), passed
//! through `wasi:cli/environment` to the functions each is granted to, and
//! to no other. A task can require one (`env:NAME`), so that it runs only
//! where the variable is set for it; its value never leaves the endpoint.

use std::str::FromStr;

use super::{Capability, Lent, Prepare, partition};
use crate::{Error, Host};
use ferry_policy::{Offer, Resource};

/// One variable an endpoint passes to functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

impl EnvVar {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Result<EnvVar, Error> {
        let v = EnvVar {
            name: name.into(),
            value: value.into(),
        };
        ferry_policy::Requirement::env(&v.name)
            .validate()
            .map_err(|e| Error::BadEnv(format!("environment variable: {e}")))?;
        Ok(v)
    }
}

/// `NAME=VALUE`, as `ferry run --env` takes it.
impl FromStr for EnvVar {
    type Err = Error;
    fn from_str(s: &str) -> Result<EnvVar, Error> {
        let (name, value) = s.split_once('=').ok_or_else(|| {
            Error::BadEnv(format!("environment variable `{s}`: expected NAME=VALUE"))
        })?;
        EnvVar::new(name, value)
    }
}

/// The `env` capability: WASI's environment, filled per task.
pub(crate) struct Factor;

impl Capability for Factor {
    const INTERFACE: Option<&'static str> = None;
    type Grant = Vec<Lent<EnvVar>>;
    type State = ();

    fn advertise(vars: &Self::Grant, _: &Host) -> Vec<Offer> {
        vars.iter()
            .map(|v| Offer {
                resource: Resource::Env {
                    name: v.item.name.clone(),
                },
                functions: v.functions.clone(),
            })
            .collect()
    }

    fn prepare(vars: &Self::Grant, task: &mut Prepare<'_>) -> Result<(), Error> {
        for v in granted(vars, task.function) {
            task.wasi.env(&v.name, &v.value);
        }
        Ok(())
    }
}

/// The variables `function` is granted, the last of a name winning.
fn granted<'a>(vars: &'a [Lent<EnvVar>], function: &str) -> Vec<&'a EnvVar> {
    let (mut granted, _) = partition(vars, function);
    let mut seen = std::collections::HashSet::new();
    granted.reverse();
    granted.retain(|v| seen.insert(v.name.as_str()));
    granted.reverse();
    granted
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_policy::{Grants, Requirement, Scope};

    fn vars() -> Vec<Lent<EnvVar>> {
        vec![
            Lent::to_all("MODE=fast".parse().unwrap()),
            Lent::to(
                EnvVar::new("TOKEN", "s3cret").unwrap(),
                Scope::functions(["abc"]),
            ),
            Lent::to_all("MODE=careful".parse().unwrap()),
        ]
    }

    #[test]
    fn reads_name_equals_value_and_refuses_bad_names() {
        let v: EnvVar = "A_1=x=y".parse().unwrap();
        assert_eq!((v.name.as_str(), v.value.as_str()), ("A_1", "x=y"));
        for bad in ["NOVALUE", "1A=x", "=x", "A-B=x"] {
            let e = bad.parse::<EnvVar>().unwrap_err().to_string();
            assert!(e.contains("environment variable"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_function_gets_only_the_variables_granted_it() {
        let vars = vars();
        let names = |f: &str| -> Vec<(String, String)> {
            granted(&vars, f)
                .into_iter()
                .map(|v| (v.name.clone(), v.value.clone()))
                .collect()
        };
        assert_eq!(
            names("abc"),
            [
                ("TOKEN".to_owned(), "s3cret".to_owned()),
                ("MODE".to_owned(), "careful".to_owned())
            ]
        );
        assert_eq!(names("def"), [("MODE".to_owned(), "careful".to_owned())]);
    }

    #[test]
    fn advertises_names_and_scopes_but_never_values() {
        let host = Host::new(crate::HostConfig {
            pooling: false,
            ..crate::HostConfig::default()
        })
        .unwrap();
        let offers = Factor::advertise(&vars(), &host);
        assert_eq!(offers.len(), 3);
        assert!(!format!("{offers:?}").contains("s3cret"));
        let grants = Grants::new("lab", offers);
        assert!(grants.check(&Requirement::env("TOKEN"), "abc").is_ok());
        let refused = grants.check(&Requirement::env("TOKEN"), "def").unwrap_err();
        assert_eq!(
            refused.message,
            "variable TOKEN on endpoint lab is not granted to function def"
        );
    }
}
