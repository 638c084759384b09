//! Where a client finds its token: `--token`, else `FERRY_TOKEN`, else the
//! credentials file that `ferry login` (or `ferry up`) writes.
//!
//! The file is `<config>/credentials`, one `URL TOKEN` pair a line, kept
//! private to its owner (mode 0600), with `<config>` from
//! `FERRY_CONFIG_DIR`, else `$XDG_CONFIG_HOME/ferry`, else
//! `$HOME/.config/ferry`.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The environment variable a token may come from.
pub const TOKEN_ENV: &str = "FERRY_TOKEN";

/// The directory ferry's client configuration lives in.
pub fn config_dir() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = var("FERRY_CONFIG_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = var("XDG_CONFIG_HOME") {
        return Some(PathBuf::from(d).join("ferry"));
    }
    var("HOME").map(|h| PathBuf::from(h).join(".config").join("ferry"))
}

/// The credentials file, if there is a config directory at all.
pub fn file() -> Option<PathBuf> {
    config_dir().map(|d| d.join("credentials"))
}

/// A URL as the file keys it: no trailing slash.
fn key(url: &str) -> &str {
    url.trim().trim_end_matches('/')
}

/// The key an endpoint's credential is saved under, beside its service's
/// user tokens.
pub fn endpoint_key(url: &str, name: &str) -> String {
    format!("{}#endpoint={name}", key(url))
}

/// Holds `<config>/credentials.lock` until dropped: one process at a time
/// registers an endpoint and saves its credential.
pub fn lock() -> std::io::Result<std::fs::File> {
    let dir = config_dir().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no config directory: set HOME or FERRY_CONFIG_DIR",
        )
    })?;
    std::fs::create_dir_all(&dir)?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("credentials.lock"))?;
    f.lock()?;
    Ok(f)
}

/// The token for `url`: the one given, else `FERRY_TOKEN`, else the file's.
pub fn token_for(url: &str, given: Option<&str>) -> Option<String> {
    if let Some(t) = given.filter(|t| !t.is_empty()) {
        return Some(t.to_owned());
    }
    if let Ok(t) = std::env::var(TOKEN_ENV)
        && !t.trim().is_empty()
    {
        return Some(t.trim().to_owned());
    }
    read(&file()?, url)
}

/// The token the file at `path` holds for `url`.
pub fn read(path: &Path, url: &str) -> Option<String> {
    // Shared with other readers, never with a writer: a writer rewrites the
    // file in place, and a read between its truncation and its write would
    // find it empty.
    let mut file = std::fs::File::open(path).ok()?;
    file.lock_shared().ok()?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text).ok()?;
    let _ = file.unlock();
    text.lines()
        .filter_map(|l| l.split_once(char::is_whitespace))
        .filter(|(u, _)| !u.starts_with('#') && key(u) == key(url))
        .map(|(_, t)| t.trim().to_owned())
        .next_back()
}

/// Sets the token for `url` in the file at `path`, keeping every other
/// line. Writers take the file's lock, so that two services starting at
/// once both keep their entries.
pub fn store(path: &Path, url: &str, token: &str) -> std::io::Result<()> {
    if url.split_whitespace().count() != 1 || token.split_whitespace().count() != 1 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a URL or token with spaces in it cannot be stored",
        ));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    file.lock()?;
    let text = std::fs::read_to_string(path)?;
    let mut out = String::new();
    for line in text.lines() {
        let same = line
            .split_once(char::is_whitespace)
            .is_some_and(|(u, _)| key(u) == key(url));
        if !same && !line.trim().is_empty() {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(&format!("{} {}\n", key(url), token.trim()));
    // Rewritten in place under the lock: a rename would leave the lock
    // behind on the old file.
    file.set_len(0)?;
    let mut f = &file;
    f.write_all(out.as_bytes())?;
    file.sync_all()?;
    file.unlock()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_kept_per_url_and_replaced() {
        let dir = std::env::temp_dir().join(format!("ferry-cred-{}", std::process::id()));
        let path = dir.join("credentials");
        let _ = std::fs::remove_file(&path);
        store(&path, "http://127.0.0.1:7171/", "a1").unwrap();
        store(&path, "https://ferry.example.org", "b1").unwrap();
        store(&path, "http://127.0.0.1:7171", "a2").unwrap();
        assert_eq!(read(&path, "http://127.0.0.1:7171").as_deref(), Some("a2"));
        assert_eq!(
            read(&path, "https://ferry.example.org/").as_deref(),
            Some("b1")
        );
        assert_eq!(read(&path, "http://127.0.0.1:9").as_deref(), None);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(store(&path, "http://x", "two words").is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
