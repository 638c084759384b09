//! What a process that hosts functions sets up before its first thread.

use std::path::PathBuf;

/// Gives the process a private `XDG_RUNTIME_DIR` when it has none.
///
/// Mesa's Vulkan drivers (lavapipe included) print `error: XDG_RUNTIME_DIR is
/// invalid or not set in the environment` on every adapter probe without
/// it, which reads as a failure to users though nothing failed. The
/// directory is `<tmp>/ferry-runtime-<uid>`, mode 0700; one that exists but
/// is not ours alone is left unused. Returns the directory set, if any.
///
/// # Safety
///
/// Changes the environment: call it before the process starts any thread
/// (first thing in `main`), as [`std::env::set_var`] requires.
pub unsafe fn prepare_environment() -> Option<PathBuf> {
    if std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|v| !v.is_empty()) {
        return None;
    }
    let dir = private_runtime_dir()?;
    // SAFETY: the caller guarantees no other thread runs yet.
    unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
    Some(dir)
}

#[cfg(unix)]
fn private_runtime_dir() -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let dir = std::env::temp_dir().join(format!("ferry-runtime-{uid}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    // Not followed if a link: another user could have planted one.
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    (meta.is_dir() && meta.uid() == uid && meta.permissions().mode() & 0o077 == 0).then_some(dir)
}

#[cfg(not(unix))]
fn private_runtime_dir() -> Option<PathBuf> {
    None
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    #[test]
    fn the_private_runtime_dir_is_ours_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = super::private_runtime_dir().expect("a private runtime dir");
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{}", dir.display());
    }
}
