//! What a task may have of this endpoint: its requirements checked against
//! what the endpoint has and grants the function, the capabilities lent to
//! its call, and its limits capped at the endpoint's ceilings.

use std::sync::Arc;
use std::time::Duration;

use ferry_host::{CallOptions, FailureKind, Files, Limits};
use ferry_proto::v1::{Assignment, TaskError};

use crate::{Agent, EndpointConfig, MaxLimits};

/// What this endpoint lends every call, one grant per capability; each call
/// gets only what its function is granted.
pub(super) fn lent(config: &EndpointConfig, blobs: Arc<crate::blobs::FetchedBlobs>) -> CallOptions {
    CallOptions {
        files: Files {
            mounts: config.mounts.clone(),
            scratch: Some(config.scratch_dir.clone()),
        },
        env: config.env.clone(),
        blobs: Some(blobs),
        ..CallOptions::default()
    }
}

impl Agent {
    /// Refuses a task that needs what this endpoint lacks or withholds: the
    /// same check, on the same grants, that the service made on this
    /// endpoint's advertisement.
    pub(super) fn check_requirements(&self, a: &Assignment) -> Result<(), TaskError> {
        self.check_policy(a)?;
        let needs = ferry_proto::requirements_from_wire(&a.requires).map_err(|e| TaskError {
            kind: FailureKind::UnsupportedRequirement.into(),
            message: format!("endpoint {}: {e}", self.config.name),
        })?;
        self.grants
            .check_all(&needs, &a.function_id)
            .map_err(|r| TaskError {
                kind: r.kind.into(),
                message: r.message,
            })
    }

    /// The owner's rules, again: a service that admitted what they forbid
    /// (a bug, or a compromise) still gets nothing run.
    fn check_policy(&self, a: &Assignment) -> Result<(), TaskError> {
        let c = &self.config;
        let denied = |message: String| TaskError {
            kind: FailureKind::Denied.into(),
            message,
        };
        if !c.submitters.is_empty() && !c.submitters.iter().any(|u| u == "*" || *u == a.submitter) {
            return Err(denied(format!(
                "endpoint {} runs no tasks for user `{}`",
                c.name, a.submitter
            )));
        }
        if !c.allowed_functions.is_empty()
            && !c
                .allowed_functions
                .iter()
                .any(|f| f.eq_ignore_ascii_case(&a.function_id))
        {
            return Err(denied(format!(
                "endpoint {} does not run function {}: it is not among its allowed functions",
                c.name, a.function_id
            )));
        }
        Ok(())
    }

    /// The submission's limits over the endpoint's defaults, refused past
    /// the endpoint's ceilings.
    pub(super) fn limits(
        &self,
        asked: Option<&ferry_proto::v1::Limits>,
    ) -> Result<Limits, ferry_host::Error> {
        capped(
            &self.config.name,
            &self.config.limits,
            &self.config.max_limits,
            asked,
        )
    }
}

/// `defaults` with what a submission asked for (0: the default), or an
/// `invalid-limits` error naming the ceiling that `asked` passes.
fn capped(
    endpoint: &str,
    defaults: &Limits,
    max: &MaxLimits,
    asked: Option<&ferry_proto::v1::Limits>,
) -> Result<Limits, ferry_host::Error> {
    let mut limits = defaults.clone();
    let Some(l) = asked else {
        return Ok(limits);
    };
    let over = |what: &str, asked: String, most: String| {
        ferry_host::Error::InvalidLimits(format!(
            "the task asks for {what} {asked}; endpoint {endpoint} allows at most {most}"
        ))
    };
    if l.timeout_ms > 0 {
        let t = Duration::from_millis(l.timeout_ms);
        if t > max.timeout {
            return Err(over(
                "a timeout of",
                format!("{t:?}"),
                format!("{:?}", max.timeout),
            ));
        }
        limits.timeout = t;
    }
    for (what, asked, most, into) in [
        ("memory", l.memory_bytes, max.memory, &mut limits.memory),
        ("output", l.output_bytes, max.output, &mut limits.output),
    ] {
        if asked > most {
            return Err(over(
                what,
                format!("{asked} bytes"),
                format!("{most} bytes"),
            ));
        }
        if asked > 0 {
            *into = asked;
        }
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submitted_limits_replace_the_defaults_up_to_the_ceilings() {
        let defaults = Limits::default();
        let max = MaxLimits {
            timeout: Duration::from_secs(60),
            memory: 1 << 30,
            output: 1 << 20,
        };
        let ask = |timeout_ms, memory_bytes, output_bytes| ferry_proto::v1::Limits {
            timeout_ms,
            memory_bytes,
            output_bytes,
        };
        assert_eq!(capped("lab", &defaults, &max, None).unwrap(), defaults);
        let l = capped("lab", &defaults, &max, Some(&ask(5_000, 0, 1024))).unwrap();
        assert_eq!(l.timeout, Duration::from_secs(5));
        assert_eq!(l.memory, defaults.memory, "0 keeps the default");
        assert_eq!(l.output, 1024);
        for (asked, needle) in [
            (
                ask(61_000, 0, 0),
                "a timeout of 61s; endpoint lab allows at most 60s",
            ),
            (
                ask(0, 2 << 30, 0),
                "memory 2147483648 bytes; endpoint lab allows at most 1073741824 bytes",
            ),
            (
                ask(0, 0, 2 << 20),
                "output 2097152 bytes; endpoint lab allows at most 1048576 bytes",
            ),
        ] {
            let e = capped("lab", &defaults, &max, Some(&asked)).unwrap_err();
            assert_eq!(e.kind(), "invalid-limits");
            assert!(e.to_string().contains(needle), "{e}");
        }
    }
}
