//! Files: `wasi:filesystem` preopens, scoped per task.
//!
//! A task sees only the directories granted to it, each read-only or
//! read-write, and a fresh private `/scratch` that is removed when the task
//! ends. wasmtime-wasi resolves every path inside its preopen (cap-std), so
//! `..`, absolute host paths and symlinks that lead out of a mount all fail.
//! The WIT is WASI's own; this module holds the grants and the scratch space.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ferry_policy::{Offer, Resource};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use super::{Capability, Lent, Prepare, partition};
use crate::{Error, Host};

/// Where every task's private scratch directory appears.
pub const SCRATCH: &str = "/scratch";

/// A host directory a task may see, at `guest` (an absolute path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub host: PathBuf,
    pub guest: String,
    pub read_only: bool,
}

impl Mount {
    /// Checks the mount: an existing host directory, an absolute guest path
    /// without `..` that is not `/scratch`.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |why: String| Err(Error::BadMount(why));
        if !self.guest.starts_with('/') {
            return bad(format!(
                "guest path `{}` must be absolute, like /data",
                self.guest
            ));
        }
        if self
            .guest
            .split('/')
            .any(|part| part == ".." || part == ".")
        {
            return bad(format!(
                "guest path `{}` may not contain `.` or `..`",
                self.guest
            ));
        }
        if self.guest.trim_end_matches('/') == SCRATCH {
            return bad(format!(
                "guest path {SCRATCH} is each task's own scratch space"
            ));
        }
        match std::fs::metadata(&self.host) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => bad(format!("{} is not a directory", self.host.display())),
            Err(e) => bad(format!("{}: {e}", self.host.display())),
        }
    }
}

impl FromStr for Mount {
    type Err = Error;

    /// `HOST:GUEST`, `HOST:GUEST:ro` or `HOST:GUEST:rw` (read-write is the
    /// default here, as for `docker -v`).
    fn from_str(s: &str) -> Result<Mount, Error> {
        let parts: Vec<&str> = s.split(':').collect();
        let (host, guest, read_only) = match parts.as_slice() {
            [host, guest] => (*host, *guest, false),
            [host, guest, "ro"] => (*host, *guest, true),
            [host, guest, "rw"] => (*host, *guest, false),
            _ => {
                return Err(Error::BadMount(format!("`{s}` is not HOST:GUEST[:ro|:rw]")));
            }
        };
        if host.is_empty() {
            return Err(Error::BadMount(format!("`{s}` names no host directory")));
        }
        Ok(Mount {
            host: host.into(),
            guest: guest.into(),
            read_only,
        })
    }
}

/// A task's scratch directory on the host; removed when dropped, or kept
/// for a later task when the task left it empty.
pub(crate) struct Scratch {
    path: PathBuf,
    root: PathBuf,
    spares: Arc<Spares>,
}

/// Empty scratch directories a host keeps for reuse (root, directory): most
/// tasks never write to `/scratch`, and making and removing a directory per
/// task costs more than the rest of a small task's set-up (the filesystem
/// allocates and frees an inode each time). Removed with the host.
#[derive(Default)]
pub(crate) struct Spares(Mutex<Vec<(PathBuf, PathBuf)>>);

/// Most spare directories a host keeps.
const SPARES: usize = 64;

impl Spares {
    fn list(&self) -> std::sync::MutexGuard<'_, Vec<(PathBuf, PathBuf)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Spares {
    fn drop(&mut self) {
        for (_, dir) in self.list().drain(..) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// The number in the next scratch directory's name.
static NEXT: AtomicU64 = AtomicU64::new(0);

impl Scratch {
    fn create(root: &Path, spares: &Arc<Spares>) -> Result<Scratch, Error> {
        {
            let mut list = spares.list();
            if let Some(i) = list.iter().rposition(|(r, _)| r == root) {
                let (root, path) = list.swap_remove(i);
                return Ok(Scratch {
                    path,
                    root,
                    spares: spares.clone(),
                });
            }
        }
        std::fs::create_dir_all(root)
            .map_err(|e| Error::io(format!("creating scratch root {}", root.display()), e))?;
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        // A process killed earlier leaves its directories behind, and a
        // later one may get its pid: a name taken is passed over, never
        // shared.
        let path = loop {
            let name = format!(
                "task-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let path = root.join(name);
            match builder.create(&path) {
                Ok(()) => break path,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(Error::io(format!("creating scratch {}", path.display()), e));
                }
            }
        };
        Ok(Scratch {
            path,
            root: root.to_owned(),
            spares: spares.clone(),
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Reused only when nothing at all is left in it: a later task sees
        // an empty directory, as a fresh one would be.
        let empty = std::fs::read_dir(&self.path).is_ok_and(|mut d| d.next().is_none());
        if empty {
            let mut list = self.spares.list();
            if list.len() < SPARES {
                list.push((self.root.clone(), std::mem::take(&mut self.path)));
                return;
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!("ferry: removing scratch {}: {e}", self.path.display());
        }
    }
}

/// What files a call is lent: directories, each to the functions named, and
/// where each call's `/scratch` is made.
#[derive(Debug, Clone, Default)]
pub struct Files {
    pub mounts: Vec<Lent<Mount>>,
    /// Where the call's private `/scratch` is made (and removed after);
    /// `None` gives it no scratch space.
    pub scratch: Option<PathBuf>,
}

impl Files {
    /// `mounts` lent to every function.
    pub fn to_all(mounts: Vec<Mount>, scratch: Option<PathBuf>) -> Files {
        Files {
            mounts: mounts.into_iter().map(Lent::to_all).collect(),
            scratch,
        }
    }
}

/// Files: WASI's own interfaces, configured per task.
pub(crate) struct Factor;

impl Capability for Factor {
    const INTERFACE: Option<&'static str> = None;
    type Grant = Files;
    type State = ();

    fn advertise(files: &Files, _: &Host) -> Vec<Offer> {
        files
            .mounts
            .iter()
            .map(|m| Offer {
                resource: Resource::Mount {
                    guest: m.item.guest.clone(),
                    read_only: m.item.read_only,
                },
                functions: m.functions.clone(),
            })
            .collect()
    }

    fn prepare(files: &Files, task: &mut Prepare<'_>) -> Result<(), Error> {
        let (granted, _) = partition(&files.mounts, task.function);
        let granted: Vec<Mount> = granted.into_iter().cloned().collect();
        let spares = task.host.scratch_spares().clone();
        if let Some(scratch) = preopen(task.wasi, &granted, files.scratch.as_deref(), &spares)? {
            task.keep.push(Box::new(scratch));
        }
        Ok(())
    }
}

/// Grants `mounts` and, when `scratch_root` is set, a fresh `/scratch` made
/// under it; the returned guard removes the scratch directory.
fn preopen(
    builder: &mut WasiCtxBuilder,
    mounts: &[Mount],
    scratch_root: Option<&Path>,
    spares: &Arc<Spares>,
) -> Result<Option<Scratch>, Error> {
    for m in mounts {
        m.validate()?;
        if mounts.iter().filter(|o| o.guest == m.guest).count() > 1 {
            return Err(Error::BadMount(format!("two mounts at {}", m.guest)));
        }
        let perms = if m.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        builder
            .preopened_dir(&m.host, &m.guest, perms)
            .map_err(|e| Error::BadMount(format!("{}: {e:#}", m.host.display())))?;
    }
    let Some(root) = scratch_root else {
        return Ok(None);
    };
    let scratch = Scratch::create(root, spares)?;
    builder
        .preopened_dir(&scratch.path, SCRATCH, FsPerms::ReadWrite)
        .map_err(|e| Error::BadMount(format!("{}: {e:#}", scratch.path.display())))?;
    Ok(Some(scratch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mounts() {
        let m: Mount = "/srv/data:/data:ro".parse().unwrap();
        assert_eq!(
            m,
            Mount {
                host: "/srv/data".into(),
                guest: "/data".into(),
                read_only: true
            }
        );
        assert!(!"/a:/b".parse::<Mount>().unwrap().read_only);
        assert!("/a".parse::<Mount>().is_err());
        assert!("/a:/b:rx".parse::<Mount>().is_err());
    }

    #[test]
    fn validates_guest_paths_and_host_dirs() {
        let dir = std::env::temp_dir();
        let m = |guest: &str| Mount {
            host: dir.clone(),
            guest: guest.into(),
            read_only: true,
        };
        assert!(m("/data").validate().is_ok());
        for (guest, why) in [
            ("data", "absolute"),
            ("/data/../etc", "`..`"),
            ("/scratch", "scratch"),
        ] {
            let e = m(guest).validate().unwrap_err().to_string();
            assert!(e.contains(why), "{guest}: {e}");
        }
        let missing = Mount {
            host: dir.join("no-such-dir-for-ferry"),
            guest: "/x".into(),
            read_only: false,
        };
        assert!(missing.validate().is_err());
    }

    #[test]
    fn scratch_is_private_and_removed() {
        let root = tempfile::tempdir().unwrap();
        let s = Scratch::create(root.path(), &Arc::default()).unwrap();
        std::fs::write(s.path.join("f"), b"x").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&s.path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        let path = s.path.clone();
        drop(s);
        assert!(!path.exists());
    }

    #[test]
    fn an_empty_scratch_is_reused_and_a_used_one_is_not() {
        let root = tempfile::tempdir().unwrap();
        let spares = Arc::new(Spares::default());
        let first = Scratch::create(root.path(), &spares).unwrap();
        let empty = first.path.clone();
        drop(first);
        assert!(empty.exists(), "an empty scratch is kept for reuse");
        let again = Scratch::create(root.path(), &spares).unwrap();
        assert_eq!(again.path, empty);
        std::fs::create_dir(again.path.join("left-behind")).unwrap();
        drop(again);
        assert!(!empty.exists(), "a scratch with something in it is removed");
        let fresh = Scratch::create(root.path(), &spares).unwrap();
        assert_ne!(fresh.path, empty);
        assert_eq!(std::fs::read_dir(&fresh.path).unwrap().count(), 0);
        let kept = fresh.path.clone();
        drop(fresh);
        assert!(kept.exists());
        drop(spares);
        assert!(!kept.exists(), "spares go with their host");
    }

    #[test]
    fn a_name_left_by_an_earlier_process_is_passed_over() {
        let root = tempfile::tempdir().unwrap();
        // What a killed process of the same pid left: the next names taken,
        // one with a file in it.
        let next = NEXT.load(Ordering::Relaxed);
        for n in next..next + 100 {
            let dir = root.path().join(format!("task-{}-{n}", std::process::id()));
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("theirs"), b"x").unwrap();
        }
        let s = Scratch::create(root.path(), &Arc::default()).unwrap();
        assert_eq!(std::fs::read_dir(&s.path).unwrap().count(), 0);
        let left = root
            .path()
            .join(format!("task-{}-{next}", std::process::id()));
        assert!(
            left.join("theirs").exists(),
            "another's directory is left alone"
        );
    }
}
