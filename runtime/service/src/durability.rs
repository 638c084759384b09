//! How much of the service's task state survives a crash.
//!
//! `strict` acknowledges a change only after its commit reached the disk
//! (fsync). `group` acknowledges once the change is in the store's memory
//! and syncs it on a short interval, as Postgres' `synchronous_commit = off`
//! and Redis' `appendfsync everysec` do. `none` keeps everything in memory,
//! as Ray, Dask and Parsl do: for like-for-like comparison with them.
//!
//! In every mode, transitions that arrive close together share one commit
//! (group commit): the mode decides only whether that commit waits for the
//! disk.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How often `group` durability syncs what it has acknowledged.
pub const GROUP_SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// How much of the service's state survives a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Acknowledged after fsync: a crash loses nothing acknowledged.
    #[default]
    Strict,
    /// Acknowledged before fsync, synced every [`GROUP_SYNC_INTERVAL`].
    Group,
    /// In memory only: a restart starts empty.
    None,
}

impl Durability {
    pub const ALL: [Durability; 3] = [Durability::Strict, Durability::Group, Durability::None];

    pub fn name(self) -> &'static str {
        match self {
            Durability::Strict => "strict",
            Durability::Group => "group",
            Durability::None => "none",
        }
    }

    /// What a crash of the service loses in this mode, said at start and in
    /// `ferry status`; `None` when it loses nothing acknowledged.
    pub fn loses(self) -> Option<String> {
        match self {
            Durability::Strict => None,
            Durability::Group => Some(format!(
                "a crash loses up to {} ms of acknowledged task changes (submissions, results, cancels): they are synced to disk every {} ms, not before each reply",
                GROUP_SYNC_INTERVAL.as_millis(),
                GROUP_SYNC_INTERVAL.as_millis()
            )),
            Durability::None => Some(
                "nothing is kept on disk: a restart loses every task, result, registered function, user and token"
                    .into(),
            ),
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Durability {
    type Err = String;

    fn from_str(s: &str) -> Result<Durability, String> {
        Durability::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| format!("unknown durability `{s}`: one of strict, group, none"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_the_relaxed_modes_say_what_they_lose() {
        for d in Durability::ALL {
            assert_eq!(d.name().parse::<Durability>(), Ok(d));
        }
        assert_eq!(Durability::default(), Durability::Strict);
        assert!(Durability::Strict.loses().is_none());
        assert!(Durability::Group.loses().unwrap().contains("100 ms"));
        assert!(
            Durability::None
                .loses()
                .unwrap()
                .contains("restart loses every task")
        );
        let e = "fast".parse::<Durability>().unwrap_err();
        assert!(
            e.contains("`fast`") && e.contains("strict, group, none"),
            "{e}"
        );
    }
}
