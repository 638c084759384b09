//! Blob streams in both directions, shared by the client and the endpoint:
//! a file goes up in chunks read off the executor, and comes down hashed on
//! the way, appearing under its name only once whole and verified.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::auth::Conn;

use crate::v1::{BlobChunk, BlobInfo, GetBlobRequest, blobs_client::BlobsClient};

/// Bytes per chunk of a blob stream.
pub const CHUNK: usize = 1 << 20;

/// Bytes moved so far, for progress bars; shared with the transfer.
pub type Progress = Arc<AtomicU64>;

/// What can stop a transfer.
#[derive(Debug)]
pub enum TransferError {
    /// The service refused or the stream broke.
    Status(tonic::Status),
    /// A local file could not be read or written.
    File {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The bytes received do not hash to the blob's name.
    Mismatch { expected: String, actual: String },
    /// The blob has another size than its reference says.
    Size {
        hash: String,
        expected: u64,
        got: u64,
    },
}

impl std::fmt::Display for TransferError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransferError::Status(s) => write!(f, "{}", s.message()),
            TransferError::File { path, error } => write!(f, "{}: {error}", path.display()),
            TransferError::Mismatch { expected, actual } => {
                write!(f, "blob {expected}: the received bytes hash to {actual}")
            }
            TransferError::Size {
                hash,
                expected,
                got,
            } => write!(
                f,
                "blob {hash} has {got} bytes, not the {expected} its reference says"
            ),
        }
    }
}

impl std::error::Error for TransferError {}

impl From<tonic::Status> for TransferError {
    fn from(s: tonic::Status) -> Self {
        TransferError::Status(s)
    }
}

fn file(path: &Path) -> impl FnOnce(std::io::Error) -> TransferError + '_ {
    move |error| TransferError::File {
        path: path.to_owned(),
        error,
    }
}

/// blake3 and size of a file, read off the executor.
pub async fn hash_file(path: &Path) -> Result<(blake3::Hash, u64), TransferError> {
    let owned = path.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut f = std::fs::File::open(&owned)?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; CHUNK];
        let mut size = 0u64;
        loop {
            match f.read(&mut buf)? {
                0 => return Ok::<_, std::io::Error>((hasher.finalize(), size)),
                n => {
                    hasher.update(&buf[..n]);
                    size += n as u64;
                }
            }
        }
    })
    .await
    .map_err(|e| file(path)(std::io::Error::other(e)))?
    .map_err(file(path))
}

/// Hashes and writes a stream of chunks on a blocking thread, so that
/// receiving the next chunk overlaps with hashing and writing this one.
///
/// With [`Durability::Synced`], writeback of what is written is started
/// every few MiB (Linux), so the closing fsync waits for the tail of the file
/// rather than all of it.
pub struct Sink {
    tx: Option<tokio::sync::mpsc::Sender<Vec<u8>>>,
    done: Option<tokio::task::JoinHandle<std::io::Result<blake3::Hash>>>,
    ended: Option<std::io::Result<blake3::Hash>>,
}

/// Bytes between two starts of writeback for a synced sink.
const WRITEBACK: u64 = 16 << 20;

impl Sink {
    /// A sink into `file` (or, with `None`, one that only hashes).
    pub fn new(file: Option<std::fs::File>, durability: Durability) -> Sink {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        let done = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut file = file;
            let mut hasher = blake3::Hasher::new();
            let (mut written, mut flushed) = (0u64, 0u64);
            while let Some(data) = rx.blocking_recv() {
                hasher.update(&data);
                if let Some(f) = &mut file {
                    f.write_all(&data)?;
                }
                written += data.len() as u64;
                if durability == Durability::Synced && written - flushed >= WRITEBACK {
                    if let Some(f) = &file {
                        start_writeback(f, flushed, written - flushed);
                    }
                    flushed = written;
                }
            }
            if let Some(f) = &file
                && durability == Durability::Synced
            {
                f.sync_all()?;
            }
            Ok(hasher.finalize())
        });
        Sink {
            tx: Some(tx),
            done: Some(done),
            ended: None,
        }
    }

    /// Queues `data`; fails with the writer's error once it has stopped.
    pub async fn write(&mut self, data: Vec<u8>) -> std::io::Result<()> {
        if let Some(tx) = &self.tx
            && tx.send(data).await.is_ok()
        {
            return Ok(());
        }
        self.tx = None;
        Err(self
            .outcome()
            .await
            .err()
            .unwrap_or_else(|| std::io::Error::other("the sink stopped before its input ended")))
    }

    /// Waits for every queued chunk to be written (and synced, if asked);
    /// returns the hash of all of them.
    pub async fn finish(mut self) -> std::io::Result<blake3::Hash> {
        self.tx = None;
        self.outcome().await
    }

    /// The writer's result, awaited once and kept.
    async fn outcome(&mut self) -> std::io::Result<blake3::Hash> {
        if let Some(done) = self.done.take() {
            self.ended = Some(done.await.map_err(std::io::Error::other).and_then(|r| r));
        }
        match self.ended.as_ref().expect("awaited above") {
            Ok(v) => Ok(*v),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}

/// Asks the kernel to start writing `len` bytes at `offset` to the disk,
/// without waiting for them.
#[cfg(target_os = "linux")]
fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open descriptor and plain integers; the call only
    // schedules I/O and cannot touch this process's memory.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_: &std::fs::File, _: u64, _: u64) {}

/// The next [`CHUNK`] bytes of `f`, fewer only at its end (none past it).
pub fn read_chunk(f: &mut impl std::io::Read) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut data = Vec::with_capacity(CHUNK);
    f.take(CHUNK as u64).read_to_end(&mut data)?;
    Ok(data)
}

/// Uploads the file at `path`, whose blake3 and size the caller knows, in
/// chunks; memory stays at a few chunks whatever the size. An endpoint names
/// the `task` that wrote it.
pub async fn put_file(
    client: &mut BlobsClient<Conn>,
    path: &Path,
    hash: &str,
    size: u64,
    task: Option<&str>,
    progress: Option<Progress>,
) -> Result<BlobInfo, TransferError> {
    let task = task.unwrap_or_default().to_owned();
    let (tx, rx) = tokio::sync::mpsc::channel::<BlobChunk>(4);
    let reading = path.to_owned();
    let hash = hash.to_owned();
    let reader = tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::open(&reading)?;
        let mut head = Some(hash);
        loop {
            let data = read_chunk(&mut f)?;
            let filled = data.len();
            // The first chunk names the blob, even when it is empty.
            let chunk = match head.take() {
                Some(hash) => BlobChunk {
                    hash,
                    size,
                    data,
                    task: task.clone(),
                },
                None if filled == 0 => return Ok::<_, std::io::Error>(()),
                None => BlobChunk {
                    data,
                    ..Default::default()
                },
            };
            if tx.blocking_send(chunk).is_err() {
                return Ok(());
            }
            if let Some(p) = &progress {
                p.fetch_add(filled as u64, Ordering::Relaxed);
            }
            if filled < CHUNK {
                return Ok(());
            }
        }
    });
    let info = client
        .put(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await;
    reader
        .await
        .map_err(|e| file(path)(std::io::Error::other(e)))?
        .map_err(file(path))?;
    Ok(info?.into_inner())
}

/// Whether a downloaded file must reach the disk before it is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync before the rename: the file survives a crash whole or not at all.
    Synced,
    /// Left to the page cache: for caches that check what they find after a
    /// restart.
    Cached,
}

/// Downloads blob `hash` to `dest`, checking its bytes against the hash (and
/// `size`, when given) on the way; `dest` appears only once verified.
/// Returns the blob's size.
pub async fn get_file(
    client: &mut BlobsClient<Conn>,
    hash: &str,
    size: Option<u64>,
    dest: &Path,
    durability: Durability,
    progress: Option<Progress>,
) -> Result<u64, TransferError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let expected = blake3::Hash::from_hex(hash).map_err(|_| {
        TransferError::Status(tonic::Status::invalid_argument(format!(
            "`{hash}` is not a blob hash (64 hex digits of blake3)"
        )))
    })?;
    let mut stream = client
        .get(GetBlobRequest { hash: hash.into() })
        .await?
        .into_inner();
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(file(parent))?;
    }
    let mut name = dest.file_name().unwrap_or_default().to_owned();
    name.push(format!(
        ".partial-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = dest.with_file_name(name);
    let result = async {
        let out = std::fs::File::create(&tmp).map_err(file(&tmp))?;
        let mut sink = Sink::new(Some(out), durability);
        let mut got = 0u64;
        while let Some(chunk) = stream.message().await? {
            got += chunk.data.len() as u64;
            if let Some(expected) = size.filter(|&s| got > s) {
                return Err(TransferError::Size {
                    hash: hash.into(),
                    expected,
                    got,
                });
            }
            let n = chunk.data.len() as u64;
            sink.write(chunk.data).await.map_err(file(&tmp))?;
            if let Some(p) = &progress {
                p.fetch_add(n, Ordering::Relaxed);
            }
        }
        if let Some(expected) = size.filter(|&s| got != s) {
            return Err(TransferError::Size {
                hash: hash.into(),
                expected,
                got,
            });
        }
        let actual = sink.finish().await.map_err(file(&tmp))?;
        if actual != expected {
            return Err(TransferError::Mismatch {
                expected: hash.into(),
                actual: actual.to_hex().to_string(),
            });
        }
        tokio::fs::rename(&tmp, dest).await.map_err(file(dest))?;
        Ok(got)
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sink_writes_and_hashes_what_it_is_given_and_reports_write_errors() {
        let path = std::env::temp_dir().join(format!("ferry-sink-{}", std::process::id()));
        let mut sink = Sink::new(
            Some(std::fs::File::create(&path).unwrap()),
            Durability::Synced,
        );
        // Past the writeback step, in pieces of uneven size.
        let data: Vec<u8> = (0..(WRITEBACK as usize + 3_000_001))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        for piece in data.chunks(1_000_003) {
            sink.write(piece.to_vec()).await.unwrap();
        }
        assert_eq!(sink.finish().await.unwrap(), blake3::hash(&data));
        assert_eq!(std::fs::read(&path).unwrap(), data);

        // A file opened read-only: the first write fails, and so does the next.
        let mut sink = Sink::new(
            Some(std::fs::File::open(&path).unwrap()),
            Durability::Cached,
        );
        let mut failed = None;
        for _ in 0..8 {
            if let Err(e) = sink.write(vec![1; 4096]).await {
                failed = Some(e);
                break;
            }
        }
        assert!(failed.is_some(), "writes to a read-only file succeeded");
        assert!(sink.finish().await.is_err());
        std::fs::remove_file(&path).unwrap();
    }
}
