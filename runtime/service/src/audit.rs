//! The audit trail: who registered, submitted, cancelled or fetched what,
//! and who changed users, tokens and endpoints, as one JSON object a line.
//!
//! Lines go through a channel to a writer thread, so that a call never waits
//! on the file; the writer flushes whenever the channel runs dry, so a line
//! is in the file within moments of its call. A line is written once the
//! action it records has been decided (committed, or refused).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde::Serialize;

use crate::core::Principal;

/// One audited action.
#[derive(Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub(crate) enum Event<'a> {
    Register {
        function: &'a str,
        bytes: u64,
        /// Its bytes came with this call (else it was known already).
        uploaded: bool,
    },
    Submit {
        task: &'a str,
        function: &'a str,
        export: &'a str,
        endpoint: &'a str,
    },
    SubmitRefused {
        reason: &'a str,
    },
    Cancel {
        task: &'a str,
    },
    FetchComponent {
        function: &'a str,
    },
    BlobPut {
        blob: &'a str,
        bytes: u64,
    },
    BlobGet {
        blob: &'a str,
    },
    BlobPin {
        blob: &'a str,
        pinned: bool,
    },
    Gc {
        removed: u64,
    },
    ClearMemo {
        removed: u64,
    },
    UserAdd {
        name: &'a str,
        admin: bool,
    },
    TokenCreate {
        id: &'a str,
        for_user: &'a str,
    },
    TokenRevoke {
        id: &'a str,
    },
    EndpointRegister {
        name: &'a str,
        rotated: bool,
    },
    EndpointPolicy {
        name: &'a str,
    },
    SessionOpen {
        endpoint: &'a str,
    },
    /// An elastic endpoint's block told to drain.
    Drain {
        endpoint: &'a str,
        block: &'a str,
    },
    /// A call whose token was missing, unknown, expired or revoked.
    Unauthenticated {
        reason: &'a str,
    },
}

#[derive(Serialize)]
struct Line<'a> {
    ts_ms: i64,
    user: &'a str,
    /// The token's id (never the secret); empty with auth off.
    token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    as_endpoint: Option<&'a str>,
    #[serde(flatten)]
    event: Event<'a>,
}

/// Where audit lines go; cheap to clone. Off, it records nothing.
#[derive(Clone)]
pub(crate) struct Audit {
    tx: Option<mpsc::Sender<String>>,
}

impl Audit {
    pub(crate) fn off() -> Audit {
        Audit { tx: None }
    }

    /// Appends to `path`, made with mode 0600 if new.
    pub(crate) fn open(path: &Path) -> anyhow::Result<Audit> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(path)
            .map_err(|e| anyhow::anyhow!("cannot open the audit log {}: {e}", path.display()))?;
        let (tx, rx) = mpsc::channel::<String>();
        let path: PathBuf = path.to_owned();
        std::thread::Builder::new()
            .name("ferry-audit".into())
            .spawn(move || write_lines(file, &path, &rx))?;
        Ok(Audit { tx: Some(tx) })
    }

    pub(crate) fn is_on(&self) -> bool {
        self.tx.is_some()
    }

    /// Records `event` done by `who`.
    pub(crate) fn record(&self, who: &Principal, event: Event<'_>) {
        self.line(&who.user, &who.token, who.endpoint.as_deref(), event);
    }

    /// Records `event` by a caller no token names.
    pub(crate) fn anonymous(&self, event: Event<'_>) {
        self.line("", "", None, event);
    }

    fn line(&self, user: &str, token: &str, as_endpoint: Option<&str>, event: Event<'_>) {
        let Some(tx) = &self.tx else { return };
        let line = Line {
            ts_ms: ferry_proto::now_ms(),
            user,
            token,
            as_endpoint,
            event,
        };
        if let Ok(text) = serde_json::to_string(&line) {
            let _ = tx.send(text);
        }
    }
}

fn write_lines(file: std::fs::File, path: &Path, rx: &mpsc::Receiver<String>) {
    let mut out = std::io::BufWriter::with_capacity(64 << 10, file);
    let mut failed = false;
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(line) = next {
            let r = out
                .write_all(line.as_bytes())
                .and_then(|()| out.write_all(b"\n"));
            if let Err(e) = r
                && !failed
            {
                // Said once, not per line: a full disk would flood the log.
                tracing::error!("writing the audit log {}: {e}", path.display());
                failed = true;
            }
            next = rx.try_recv().ok();
        }
        if out.flush().is_ok() {
            failed = false;
        }
    }
    let _ = out.flush();
    let _ = out.get_ref().sync_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_is_one_json_line_naming_who_and_what() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let audit = Audit::open(&path).unwrap();
        let ada = Principal::new("ada", false, "t1");
        audit.record(
            &ada,
            Event::Submit {
                task: "k1",
                function: "f00",
                export: "pi",
                endpoint: "local",
            },
        );
        audit.anonymous(Event::Unauthenticated { reason: "no token" });
        drop(audit);
        // The writer thread ends when the last sender goes, after a flush.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let lines = loop {
            let text = std::fs::read_to_string(&path).unwrap();
            let lines: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            if lines.len() == 2 || std::time::Instant::now() > deadline {
                break lines;
            }
            std::thread::yield_now();
        };
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "submit");
        assert_eq!(lines[0]["user"], "ada");
        assert_eq!(lines[0]["token"], "t1");
        assert_eq!(lines[0]["task"], "k1");
        assert_eq!(lines[0]["endpoint"], "local");
        assert!(lines[0]["ts_ms"].as_i64().unwrap() > 0);
        assert_eq!(lines[1]["event"], "unauthenticated");
        assert_eq!(lines[1]["reason"], "no token");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
