//! Blob names: a `blob-ref`'s hash, and where a blob with that name lives in
//! a blob directory. The service's store, endpoint caches and the host's
//! directory source share this one layout.

use std::path::{Path, PathBuf};

/// Where a blob lives in a blob directory: `<dir>/<first two hex>/<hash>`.
pub fn blob_path(dir: &Path, hash: &str) -> Result<PathBuf, String> {
    let hex = parse_blob_hash(hash)?.to_hex();
    Ok(dir.join(&hex[..2]).join(hex.as_str()))
}

/// A blob's name: 64 hex digits of blake3.
pub fn parse_blob_hash(hash: &str) -> Result<blake3::Hash, String> {
    blake3::Hash::from_hex(hash)
        .map_err(|_| format!("`{hash}` is not a blob hash (64 hex digits of blake3)"))
}
