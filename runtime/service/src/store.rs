//! Durable state behind one trait; redb (embedded, ACID, crash-safe) is the
//! default, so nothing extra runs on a laptop and data survives `kill -9`.
//! [`MemoryStore`] keeps the same contract in memory, for tests.
//!
//! Unfinished tasks are indexed apart from finished ones, and finished ones
//! are counted by state and indexed by when they finished, so a service
//! starts by reading only the tasks it still has to run, and old results
//! can be pruned without a scan.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::core::{TaskRecord, TaskState};
use crate::durability::{Durability, GROUP_SYNC_INTERVAL};

/// What the service remembers about a registered function besides its bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionRecord {
    pub id: String,
    pub size: u64,
    pub exports: Vec<(String, String)>,
    pub imports: Vec<String>,
    pub registered_at_ms: i64,
    /// Every call is memoized.
    #[serde(default)]
    pub memoize: bool,
    /// The users who registered it (the component is shared by hash; a
    /// user's listing holds what they registered).
    #[serde(default)]
    pub registrants: Vec<String>,
}

/// The service's durable state. Every method is one transaction.
pub trait Store: Send + Sync + 'static {
    /// Records a function whose component is already kept on disk.
    fn put_function(&self, record: &FunctionRecord) -> anyhow::Result<()>;
    fn function(&self, id: &str) -> anyhow::Result<Option<FunctionRecord>>;
    /// Hands over the component bytes a store written before components
    /// were files holds, then forgets them; returns how many there were.
    fn move_function_bytes(
        &self,
        _to: &mut dyn FnMut(&str, &[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<u64> {
        Ok(0)
    }
    fn functions(&self) -> anyhow::Result<Vec<FunctionRecord>>;
    /// Writes (inserts or replaces) tasks and memo entries atomically, in
    /// order (a later version of a task replaces an earlier one), and as
    /// durably as the store's [`Durability`] says.
    fn commit(&self, tasks: &[&TaskRecord], memo: &[(String, Vec<u8>)]) -> anyhow::Result<()>;
    fn put_tasks(&self, tasks: &[TaskRecord]) -> anyhow::Result<()> {
        self.commit(&tasks.iter().collect::<Vec<_>>(), &[])
    }
    fn task(&self, id: &str) -> anyhow::Result<Option<TaskRecord>>;
    /// The tasks not finished, for rebuilding the queues at start.
    fn live_tasks(&self) -> anyhow::Result<Vec<TaskRecord>>;
    /// Stored finished tasks by final state.
    fn finished_counts(&self) -> anyhow::Result<HashMap<TaskState, u64>>;
    /// Visits every stored task (for blob gc), without holding all of them.
    fn scan_tasks(&self, visit: &mut dyn FnMut(&TaskRecord)) -> anyhow::Result<()>;
    /// Finished tasks listed in order of id, after `after`, at most `limit`.
    fn list_tasks(
        &self,
        after: &str,
        limit: usize,
        filter: &dyn Fn(&TaskRecord) -> bool,
    ) -> anyhow::Result<Vec<TaskRecord>>;
    /// Removes finished tasks that finished before `before_ms`, except those
    /// `keep` names, at most `limit`; returns how many went.
    fn prune_finished(
        &self,
        before_ms: i64,
        keep: &dyn Fn(&str) -> bool,
        limit: usize,
    ) -> anyhow::Result<u64>;
    fn put_endpoint(&self, name: &str) -> anyhow::Result<()>;
    fn endpoints(&self) -> anyhow::Result<Vec<String>>;
    /// Changes a function's record in one transaction; `None` if unknown.
    fn update_function(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut FunctionRecord),
    ) -> anyhow::Result<Option<FunctionRecord>>;
    /// Turns memoization of every call of a function on or off.
    fn set_memoize(&self, id: &str, on: bool) -> anyhow::Result<Option<FunctionRecord>> {
        self.update_function(id, &mut |f| f.memoize = on)
    }
    /// A memoized result.
    fn memo(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// Forgets every memoized result; returns how many there were.
    fn clear_memo(&self) -> anyhow::Result<u64>;
    /// Pins or unpins a blob: pinned blobs survive `gc`.
    fn pin_blob(&self, hash: &str, pinned: bool) -> anyhow::Result<()>;
    fn pinned_blobs(&self) -> anyhow::Result<Vec<String>>;
    /// Lets users read blobs: (blob hash, user, blob size) each.
    fn grant_blobs(&self, grants: &[(String, String, u64)]) -> anyhow::Result<()>;
    /// Every grant, as [`Store::grant_blobs`] took them.
    fn blob_grants(&self) -> anyhow::Result<Vec<(String, String, u64)>>;
    /// Forgets every grant of blobs that are gone.
    fn drop_blob_grants(&self, hashes: &[String]) -> anyhow::Result<()>;
    /// Sets (or, with `None`, removes) a record of users and tokens, stored
    /// under a key such as `user/NAME`; the identities module owns the bytes.
    fn put_identity(&self, key: &str, value: Option<&[u8]>) -> anyhow::Result<()>;
    fn identities(&self) -> anyhow::Result<Vec<(String, Vec<u8>)>>;
}

const FUNCTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("functions");
/// Component bytes, in stores written before components were files: moved
/// out to files when the service opens.
const FUNCTION_BYTES: TableDefinition<&str, &[u8]> = TableDefinition::new("function_bytes");
const TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("tasks");
/// Unfinished task ids.
const LIVE: TableDefinition<&str, ()> = TableDefinition::new("live_tasks");
/// (finished at ms, id) of finished tasks.
const FINISHED: TableDefinition<(i64, &str), ()> = TableDefinition::new("finished_tasks");
/// Finished tasks stored, by state code.
const COUNTS: TableDefinition<i32, u64> = TableDefinition::new("finished_counts");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const ENDPOINTS: TableDefinition<&str, ()> = TableDefinition::new("endpoints");
const PINS: TableDefinition<&str, ()> = TableDefinition::new("pinned_blobs");
const MEMO: TableDefinition<&str, &[u8]> = TableDefinition::new("memo");
const IDENTITIES: TableDefinition<&str, &[u8]> = TableDefinition::new("identities");
/// (blob, user) → the blob's size: who may read what.
const BLOB_GRANTS: TableDefinition<(&str, &str), u64> = TableDefinition::new("blob_grants");

/// redb's page cache. Its default, 1 GiB, is what a million queued tasks
/// made the service hold on top of their records; the kernel's page cache
/// still serves reads past this. 64 MiB rather than 128 took a million
/// queued from about 1,040 to 950 MiB, with admission, restart and no-op
/// throughput unchanged.
const CACHE_BYTES: usize = 64 << 20;

/// Version 2 indexes live and finished tasks.
const SCHEMA: u64 = 2;

fn decode(bytes: &[u8]) -> anyhow::Result<TaskRecord> {
    rmp_serde::from_slice(bytes).context("decoding a stored task")
}

/// The embedded default: one redb file in the data directory.
pub struct RedbStore {
    db: Arc<Database>,
    /// Under `group` durability, the thread that syncs task commits.
    syncer: Option<Syncer>,
}

impl RedbStore {
    /// Opens the store with `strict` durability: every commit is synced.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        Self::open_with(dir, Durability::Strict)
    }

    /// Opens the store; with `group` durability, task commits return before
    /// they are synced, and a thread syncs them every
    /// [`GROUP_SYNC_INTERVAL`]. Other records (functions, users, tokens,
    /// grants) are synced before each returns in every mode.
    pub fn open_with(dir: &Path, durability: Durability) -> anyhow::Result<Self> {
        let db = Arc::new(Self::open_db(dir)?);
        let syncer = (durability == Durability::Group).then(|| Syncer::start(db.clone()));
        Ok(RedbStore { db, syncer })
    }

    fn open_db(dir: &Path) -> anyhow::Result<Database> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data dir {}", dir.display()))?;
        let path = dir.join("ferry.redb");
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .with_context(|| format!("opening store {}", path.display()))?;
        let txn = db.begin_write()?;
        txn.open_table(FUNCTIONS)?;
        txn.open_table(FUNCTION_BYTES)?;
        txn.open_table(ENDPOINTS)?;
        txn.open_table(PINS)?;
        txn.open_table(MEMO)?;
        txn.open_table(IDENTITIES)?;
        txn.open_table(BLOB_GRANTS)?;
        let schema = txn
            .open_table(META)?
            .get("schema")?
            .map_or(0, |v| v.value());
        if schema < SCHEMA {
            // Index a store written before live and finished tasks were kept
            // apart: one scan, once.
            let tasks = txn.open_table(TASKS)?;
            let mut live = txn.open_table(LIVE)?;
            let mut finished = txn.open_table(FINISHED)?;
            let mut counts: HashMap<i32, u64> = HashMap::new();
            for entry in tasks.iter()? {
                let (id, v) = entry?;
                let t = decode(v.value())?;
                match t.finished_at_ms() {
                    Some(at) => {
                        finished.insert((at, id.value()), ())?;
                        *counts.entry(t.state.code()).or_default() += 1;
                    }
                    None => {
                        live.insert(id.value(), ())?;
                    }
                }
            }
            let mut c = txn.open_table(COUNTS)?;
            for (state, n) in counts {
                c.insert(state, n)?;
            }
            txn.open_table(META)?.insert("schema", SCHEMA)?;
        }
        txn.commit()?;
        Ok(db)
    }

    fn get<T: for<'de> Deserialize<'de>>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> anyhow::Result<Option<T>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(table)?;
        match t.get(key)? {
            Some(v) => Ok(Some(
                rmp_serde::from_slice(v.value()).context("decoding a stored record")?,
            )),
            None => Ok(None),
        }
    }

    fn keys(&self, table: TableDefinition<&str, ()>) -> anyhow::Result<Vec<String>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(table)?;
        let mut out = Vec::new();
        for entry in t.iter()? {
            out.push(entry?.0.value().to_owned());
        }
        Ok(out)
    }
}

impl Store for RedbStore {
    fn put_function(&self, record: &FunctionRecord) -> anyhow::Result<()> {
        let txn = self.db.begin_write()?;
        {
            let meta = rmp_serde::to_vec(record)?;
            txn.open_table(FUNCTIONS)?
                .insert(record.id.as_str(), meta.as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    fn function(&self, id: &str) -> anyhow::Result<Option<FunctionRecord>> {
        self.get(FUNCTIONS, id)
    }

    fn move_function_bytes(
        &self,
        to: &mut dyn FnMut(&str, &[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<u64> {
        let txn = self.db.begin_write()?;
        let mut moved = 0;
        {
            let mut t = txn.open_table(FUNCTION_BYTES)?;
            for entry in t.iter()? {
                let (id, bytes) = entry?;
                to(id.value(), bytes.value())?;
                moved += 1;
            }
            t.retain(|_, _| false)?;
        }
        txn.commit()?;
        Ok(moved)
    }

    fn functions(&self) -> anyhow::Result<Vec<FunctionRecord>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(FUNCTIONS)?;
        let mut out = Vec::new();
        for entry in t.iter()? {
            let (_, v) = entry?;
            out.push(rmp_serde::from_slice(v.value()).context("decoding a stored record")?);
        }
        Ok(out)
    }

    fn commit(&self, tasks: &[&TaskRecord], memo: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
        if tasks.is_empty() && memo.is_empty() {
            return Ok(());
        }
        let mut txn = self.db.begin_write()?;
        if let Some(syncer) = &self.syncer {
            txn.set_durability(redb::Durability::None)?;
            syncer.dirty.store(true, Ordering::Release);
        }
        {
            let mut t = txn.open_table(TASKS)?;
            let mut live = txn.open_table(LIVE)?;
            let mut finished = txn.open_table(FINISHED)?;
            let mut counted: HashMap<i32, u64> = HashMap::new();
            let mut v = Vec::new();
            for &task in tasks {
                v.clear();
                rmp_serde::encode::write(&mut v, task)?;
                let existed = t.insert(task.id.as_str(), v.as_slice())?.is_some();
                let was_live = live.remove(task.id.as_str())?.is_some();
                match task.finished_at_ms() {
                    Some(at) if was_live || !existed => {
                        finished.insert((at, task.id.as_str()), ())?;
                        *counted.entry(task.state.code()).or_default() += 1;
                    }
                    Some(_) => {}
                    None => {
                        live.insert(task.id.as_str(), ())?;
                    }
                }
            }
            if !counted.is_empty() {
                let mut c = txn.open_table(COUNTS)?;
                for (state, n) in counted {
                    let was = c.get(state)?.map_or(0, |v| v.value());
                    c.insert(state, was + n)?;
                }
            }
            if !memo.is_empty() {
                let mut m = txn.open_table(MEMO)?;
                for (key, result) in memo {
                    m.insert(key.as_str(), result.as_slice())?;
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn task(&self, id: &str) -> anyhow::Result<Option<TaskRecord>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(TASKS)?;
        t.get(id)?.map(|v| decode(v.value())).transpose()
    }

    fn live_tasks(&self) -> anyhow::Result<Vec<TaskRecord>> {
        let txn = self.db.begin_read()?;
        let live = txn.open_table(LIVE)?;
        let t = txn.open_table(TASKS)?;
        let (n, all) = (live.len()?, t.len()?);
        let mut out = Vec::with_capacity(n as usize);
        if n.saturating_mul(4) < all {
            // Few live among many finished: look each up.
            for entry in live.iter()? {
                let (id, _) = entry?;
                if let Some(v) = t.get(id.value())? {
                    out.push(decode(v.value())?);
                }
            }
            return Ok(out);
        }
        // Mostly live: one pass over both, in the order of id they share.
        let mut ids = live.iter()?;
        let mut next = ids.next().transpose()?;
        for entry in t.iter()? {
            let (id, v) = entry?;
            // A live id with no record (never written so) is passed over.
            while next.as_ref().is_some_and(|(w, _)| w.value() < id.value()) {
                next = ids.next().transpose()?;
            }
            let Some((want, _)) = &next else { break };
            if want.value() == id.value() {
                out.push(decode(v.value())?);
                next = ids.next().transpose()?;
            }
        }
        Ok(out)
    }

    fn finished_counts(&self) -> anyhow::Result<HashMap<TaskState, u64>> {
        let txn = self.db.begin_read()?;
        let c = txn.open_table(COUNTS)?;
        let mut out = HashMap::new();
        for entry in c.iter()? {
            let (state, n) = entry?;
            if let Some(s) = TaskState::from_code(state.value()) {
                out.insert(s, n.value());
            }
        }
        Ok(out)
    }

    fn scan_tasks(&self, visit: &mut dyn FnMut(&TaskRecord)) -> anyhow::Result<()> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(TASKS)?;
        for entry in t.iter()? {
            let (_, v) = entry?;
            visit(&decode(v.value())?);
        }
        Ok(())
    }

    fn list_tasks(
        &self,
        after: &str,
        limit: usize,
        filter: &dyn Fn(&TaskRecord) -> bool,
    ) -> anyhow::Result<Vec<TaskRecord>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(TASKS)?;
        let mut out = Vec::new();
        let range = if after.is_empty() {
            t.iter()?
        } else {
            t.range::<&str>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))?
        };
        for entry in range {
            let (_, v) = entry?;
            let task = decode(v.value())?;
            if filter(&task) {
                out.push(task);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn prune_finished(
        &self,
        before_ms: i64,
        keep: &dyn Fn(&str) -> bool,
        limit: usize,
    ) -> anyhow::Result<u64> {
        let txn = self.db.begin_write()?;
        let removed = {
            let mut finished = txn.open_table(FINISHED)?;
            let mut gone: Vec<(i64, String)> = Vec::new();
            for entry in finished.range::<(i64, &str)>(..(before_ms, ""))? {
                let (key, _) = entry?;
                let (at, id) = key.value();
                if !keep(id) {
                    gone.push((at, id.to_owned()));
                    if gone.len() >= limit {
                        break;
                    }
                }
            }
            let mut t = txn.open_table(TASKS)?;
            let mut counted: HashMap<i32, u64> = HashMap::new();
            for (at, id) in &gone {
                finished.remove((*at, id.as_str()))?;
                if let Some(v) = t.remove(id.as_str())? {
                    let state = decode(v.value())?.state.code();
                    *counted.entry(state).or_default() += 1;
                }
            }
            let mut c = txn.open_table(COUNTS)?;
            for (state, n) in counted {
                let was = c.get(state)?.map_or(0, |v| v.value());
                c.insert(state, was.saturating_sub(n))?;
            }
            gone.len() as u64
        };
        txn.commit()?;
        Ok(removed)
    }

    fn put_endpoint(&self, name: &str) -> anyhow::Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(ENDPOINTS)?.insert(name, ())?;
        txn.commit()?;
        Ok(())
    }

    fn endpoints(&self) -> anyhow::Result<Vec<String>> {
        self.keys(ENDPOINTS)
    }

    fn update_function(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut FunctionRecord),
    ) -> anyhow::Result<Option<FunctionRecord>> {
        let txn = self.db.begin_write()?;
        let record = {
            let mut t = txn.open_table(FUNCTIONS)?;
            let Some(mut record): Option<FunctionRecord> = t
                .get(id)?
                .map(|v| rmp_serde::from_slice(v.value()))
                .transpose()
                .context("decoding a stored record")?
            else {
                return Ok(None);
            };
            change(&mut record);
            let meta = rmp_serde::to_vec(&record)?;
            t.insert(id, meta.as_slice())?;
            record
        };
        txn.commit()?;
        Ok(Some(record))
    }

    fn memo(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(MEMO)?;
        Ok(t.get(key)?.map(|v| v.value().to_vec()))
    }

    fn clear_memo(&self) -> anyhow::Result<u64> {
        let txn = self.db.begin_write()?;
        let n = {
            let mut t = txn.open_table(MEMO)?;
            let n = t.len()?;
            t.retain(|_, _| false)?;
            n
        };
        txn.commit()?;
        Ok(n)
    }

    fn pin_blob(&self, hash: &str, pinned: bool) -> anyhow::Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(PINS)?;
            if pinned {
                t.insert(hash, ())?;
            } else {
                t.remove(hash)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn pinned_blobs(&self) -> anyhow::Result<Vec<String>> {
        self.keys(PINS)
    }

    fn grant_blobs(&self, grants: &[(String, String, u64)]) -> anyhow::Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(BLOB_GRANTS)?;
            for (hash, user, size) in grants {
                t.insert((hash.as_str(), user.as_str()), size)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn blob_grants(&self) -> anyhow::Result<Vec<(String, String, u64)>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(BLOB_GRANTS)?;
        let mut out = Vec::new();
        for entry in t.iter()? {
            let (k, v) = entry?;
            let (hash, user) = k.value();
            out.push((hash.to_owned(), user.to_owned(), v.value()));
        }
        Ok(out)
    }

    fn drop_blob_grants(&self, hashes: &[String]) -> anyhow::Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(BLOB_GRANTS)?;
            for hash in hashes {
                let mut users = Vec::new();
                // Every user sorts after "" and before the next hash.
                for entry in t.range::<(&str, &str)>((hash.as_str(), "")..)? {
                    let (k, _) = entry?;
                    let (h, user) = k.value();
                    if h != hash {
                        break;
                    }
                    users.push(user.to_owned());
                }
                for user in &users {
                    t.remove((hash.as_str(), user.as_str()))?;
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn put_identity(&self, key: &str, value: Option<&[u8]>) -> anyhow::Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(IDENTITIES)?;
            match value {
                Some(v) => t.insert(key, v).map(drop)?,
                None => t.remove(key).map(drop)?,
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn identities(&self) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(IDENTITIES)?;
        let mut out = Vec::new();
        for entry in t.iter()? {
            let (k, v) = entry?;
            out.push((k.value().to_owned(), v.value().to_vec()));
        }
        Ok(out)
    }
}

/// Syncs the commits `group` durability left unsynced, on an interval.
struct Syncer {
    dirty: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Syncer {
    fn start(db: Arc<Database>) -> Syncer {
        let dirty = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (d, s) = (dirty.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("ferry-store-sync".into())
            .spawn(move || {
                loop {
                    std::thread::park_timeout(GROUP_SYNC_INTERVAL);
                    let stopping = s.load(Ordering::Acquire);
                    if d.swap(false, Ordering::AcqRel)
                        && let Err(e) = sync(&db)
                    {
                        tracing::error!("syncing the store: {e:#}");
                        d.store(true, Ordering::Release);
                    }
                    if stopping {
                        break;
                    }
                }
            })
            .expect("spawning the store's sync thread");
        Syncer {
            dirty,
            stop,
            thread: Some(thread),
        }
    }
}

/// One synced commit: it makes every unsynced commit before it durable.
fn sync(db: &Database) -> anyhow::Result<()> {
    let txn = db.begin_write()?;
    txn.open_table(META)?
        .insert("synced_at_ms", ferry_proto::now_ms().max(0) as u64)?;
    txn.commit()?;
    Ok(())
}

impl Drop for Syncer {
    /// Syncs what is left before the store closes.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// The same contract in memory: nothing survives the process. The broker's
/// unit tests run on it; `fail_commits` makes commits fail on demand.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Memory>,
    /// Every commit fails while set.
    pub fail_commits: std::sync::atomic::AtomicBool,
    /// While held, a commit waits (as on a slow disk), so that a test can
    /// see what gathers behind it.
    #[cfg(test)]
    gate: (Mutex<Gate>, std::sync::Condvar),
}

#[cfg(test)]
#[derive(Default)]
struct Gate {
    held: bool,
    /// Commits waiting at the gate.
    waiting: u32,
}

#[derive(Default)]
struct Memory {
    functions: HashMap<String, FunctionRecord>,
    tasks: std::collections::BTreeMap<String, TaskRecord>,
    finished: BTreeSet<(i64, String)>,
    endpoints: BTreeSet<String>,
    memo: HashMap<String, Vec<u8>>,
    pins: BTreeSet<String>,
    identities: std::collections::BTreeMap<String, Vec<u8>>,
    grants: std::collections::BTreeMap<(String, String), u64>,
    commits: u64,
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Commits so far.
    pub fn commits(&self) -> u64 {
        self.lock().commits
    }

    /// Makes commits wait at a gate until [`MemoryStore::release_commits`].
    #[cfg(test)]
    pub(crate) fn hold_commits(&self) {
        self.gate.0.lock().unwrap().held = true;
    }

    #[cfg(test)]
    pub(crate) fn release_commits(&self) {
        self.gate.0.lock().unwrap().held = false;
        self.gate.1.notify_all();
    }

    /// Blocks until `n` commits wait at the gate.
    #[cfg(test)]
    pub(crate) fn until_waiting(&self, n: u32) {
        let mut g = self.gate.0.lock().unwrap();
        while g.waiting < n {
            g = self.gate.1.wait(g).unwrap();
        }
    }
}

impl Store for MemoryStore {
    fn put_function(&self, record: &FunctionRecord) -> anyhow::Result<()> {
        self.lock()
            .functions
            .insert(record.id.clone(), record.clone());
        Ok(())
    }
    fn function(&self, id: &str) -> anyhow::Result<Option<FunctionRecord>> {
        Ok(self.lock().functions.get(id).cloned())
    }
    fn functions(&self) -> anyhow::Result<Vec<FunctionRecord>> {
        Ok(self.lock().functions.values().cloned().collect())
    }
    fn commit(&self, tasks: &[&TaskRecord], memo: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
        #[cfg(test)]
        {
            let mut g = self.gate.0.lock().unwrap();
            g.waiting += 1;
            self.gate.1.notify_all();
            while g.held {
                g = self.gate.1.wait(g).unwrap();
            }
            g.waiting -= 1;
        }
        if self.fail_commits.load(std::sync::atomic::Ordering::Relaxed) {
            anyhow::bail!("the test store refuses commits");
        }
        let mut m = self.lock();
        m.commits += 1;
        for &t in tasks {
            if let Some(at) = t.finished_at_ms() {
                m.finished.insert((at, t.id.clone()));
            }
            m.tasks.insert(t.id.clone(), t.clone());
        }
        for (k, v) in memo {
            m.memo.insert(k.clone(), v.clone());
        }
        Ok(())
    }
    fn task(&self, id: &str) -> anyhow::Result<Option<TaskRecord>> {
        Ok(self.lock().tasks.get(id).cloned())
    }
    fn live_tasks(&self) -> anyhow::Result<Vec<TaskRecord>> {
        Ok(self
            .lock()
            .tasks
            .values()
            .filter(|t| !t.state.is_terminal())
            .cloned()
            .collect())
    }
    fn finished_counts(&self) -> anyhow::Result<HashMap<TaskState, u64>> {
        let mut out = HashMap::new();
        for t in self.lock().tasks.values() {
            if t.state.is_terminal() {
                *out.entry(t.state).or_default() += 1;
            }
        }
        Ok(out)
    }
    fn scan_tasks(&self, visit: &mut dyn FnMut(&TaskRecord)) -> anyhow::Result<()> {
        self.lock().tasks.values().for_each(visit);
        Ok(())
    }
    fn list_tasks(
        &self,
        after: &str,
        limit: usize,
        filter: &dyn Fn(&TaskRecord) -> bool,
    ) -> anyhow::Result<Vec<TaskRecord>> {
        Ok(self
            .lock()
            .tasks
            .values()
            .filter(|t| t.id.as_str() > after && filter(t))
            .take(limit)
            .cloned()
            .collect())
    }
    fn prune_finished(
        &self,
        before_ms: i64,
        keep: &dyn Fn(&str) -> bool,
        limit: usize,
    ) -> anyhow::Result<u64> {
        let mut m = self.lock();
        let gone: Vec<(i64, String)> = m
            .finished
            .iter()
            .filter(|(at, id)| *at < before_ms && !keep(id))
            .take(limit)
            .cloned()
            .collect();
        for g in &gone {
            m.finished.remove(g);
            m.tasks.remove(&g.1);
        }
        Ok(gone.len() as u64)
    }
    fn put_endpoint(&self, name: &str) -> anyhow::Result<()> {
        self.lock().endpoints.insert(name.to_owned());
        Ok(())
    }
    fn endpoints(&self) -> anyhow::Result<Vec<String>> {
        Ok(self.lock().endpoints.iter().cloned().collect())
    }
    fn update_function(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut FunctionRecord),
    ) -> anyhow::Result<Option<FunctionRecord>> {
        let mut m = self.lock();
        Ok(m.functions.get_mut(id).map(|f| {
            change(f);
            f.clone()
        }))
    }
    fn memo(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.lock().memo.get(key).cloned())
    }
    fn clear_memo(&self) -> anyhow::Result<u64> {
        let mut m = self.lock();
        let n = m.memo.len() as u64;
        m.memo.clear();
        Ok(n)
    }
    fn pin_blob(&self, hash: &str, pinned: bool) -> anyhow::Result<()> {
        let mut m = self.lock();
        if pinned {
            m.pins.insert(hash.to_owned());
        } else {
            m.pins.remove(hash);
        }
        Ok(())
    }
    fn pinned_blobs(&self) -> anyhow::Result<Vec<String>> {
        Ok(self.lock().pins.iter().cloned().collect())
    }
    fn grant_blobs(&self, grants: &[(String, String, u64)]) -> anyhow::Result<()> {
        let mut m = self.lock();
        for (hash, user, size) in grants {
            m.grants.insert((hash.clone(), user.clone()), *size);
        }
        Ok(())
    }
    fn blob_grants(&self) -> anyhow::Result<Vec<(String, String, u64)>> {
        Ok(self
            .lock()
            .grants
            .iter()
            .map(|((h, u), s)| (h.clone(), u.clone(), *s))
            .collect())
    }
    fn drop_blob_grants(&self, hashes: &[String]) -> anyhow::Result<()> {
        let mut m = self.lock();
        m.grants.retain(|(h, _), _| !hashes.contains(h));
        Ok(())
    }
    fn put_identity(&self, key: &str, value: Option<&[u8]>) -> anyhow::Result<()> {
        let mut m = self.lock();
        match value {
            Some(v) => m.identities.insert(key.to_owned(), v.to_vec()),
            None => m.identities.remove(key),
        };
        Ok(())
    }
    fn identities(&self) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let m = self.lock();
        Ok(m.identities
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, state: TaskState, at: i64) -> TaskRecord {
        let mut t = TaskRecord::new(id.into(), "local".into(), "f".into(), "pi".into(), 1);
        t.args = vec![0x92, 1, 2];
        t.requires = vec![ferry_policy::Requirement::gpu()];
        if state != TaskState::WaitingForEndpoint {
            t.set_state(state, at);
        }
        t
    }

    #[test]
    fn group_durability_keeps_what_it_acknowledged_once_closed_or_synced() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = RedbStore::open_with(dir.path(), Durability::Group).unwrap();
            s.put_tasks(&[task("a", TaskState::WaitingForEndpoint, 1)])
                .unwrap();
            s.commit(&[&task("a", TaskState::Succeeded, 2)], &[])
                .unwrap();
            assert_eq!(s.task("a").unwrap().unwrap().state, TaskState::Succeeded);
        }
        let s = RedbStore::open(dir.path()).unwrap();
        assert_eq!(s.task("a").unwrap().unwrap().state, TaskState::Succeeded);
        assert_eq!(s.finished_counts().unwrap()[&TaskState::Succeeded], 1);
    }

    #[test]
    fn live_tasks_are_read_whole_whether_few_or_most_are_live() {
        for finished in [2usize, 100] {
            let dir = tempfile::tempdir().unwrap();
            let s = RedbStore::open(dir.path()).unwrap();
            let mut tasks = Vec::new();
            for i in 0..(10 + finished) {
                let state = if i % (1 + finished / 10) == 0
                    && tasks
                        .iter()
                        .filter(|t: &&TaskRecord| !t.state.is_terminal())
                        .count()
                        < 10
                {
                    TaskState::WaitingForEndpoint
                } else {
                    TaskState::Succeeded
                };
                tasks.push(task(&format!("t{i:04}"), state, i as i64));
            }
            s.put_tasks(&tasks).unwrap();
            let want: Vec<&str> = tasks
                .iter()
                .filter(|t| !t.state.is_terminal())
                .map(|t| t.id.as_str())
                .collect();
            let got = s.live_tasks().unwrap();
            let got: Vec<&str> = got.iter().map(|t| t.id.as_str()).collect();
            assert_eq!(got, want, "{finished} finished");
            assert_eq!(got.len(), 10);
        }
    }

    #[test]
    fn everything_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = RedbStore::open(dir.path()).unwrap();
            s.put_tasks(&[
                task("a", TaskState::WaitingForEndpoint, 1),
                task("b", TaskState::Succeeded, 2),
            ])
            .unwrap();
            s.commit(
                &[&task("a", TaskState::Failed, 3)],
                &[("k".into(), b"r".to_vec())],
            )
            .unwrap();
            let f = FunctionRecord {
                id: "f".into(),
                size: 3,
                exports: vec![("pi".into(), "func()".into())],
                imports: vec![],
                registered_at_ms: 7,
                memoize: false,
                registrants: vec!["ada".into()],
            };
            s.put_function(&f).unwrap();
            s.put_endpoint("local").unwrap();
            s.pin_blob("b1", true).unwrap();
            s.pin_blob("b2", true).unwrap();
            s.pin_blob("b1", false).unwrap();
            let g = |h: &str, u: &str, n| (h.to_owned(), u.to_owned(), n);
            s.grant_blobs(&[g("b1", "ada", 3), g("b1", "bob", 3), g("b2", "ada", 9)])
                .unwrap();
            s.grant_blobs(&[g("b10", "ada", 4)]).unwrap();
            s.drop_blob_grants(&["b1".to_owned()]).unwrap();
        }
        let s = RedbStore::open(dir.path()).unwrap();
        assert_eq!(s.task("a").unwrap().unwrap().state, TaskState::Failed);
        let mut n = 0;
        s.scan_tasks(&mut |_| n += 1).unwrap();
        assert_eq!(n, 2);
        assert_eq!(s.function("f").unwrap().unwrap().registered_at_ms, 7);
        assert_eq!(s.endpoints().unwrap(), vec!["local".to_owned()]);
        assert!(s.task("zz").unwrap().is_none());
        assert_eq!(s.pinned_blobs().unwrap(), vec!["b2".to_owned()]);
        // Dropping b1's grants leaves b10's, whose name starts the same.
        assert_eq!(
            s.blob_grants().unwrap(),
            vec![
                ("b10".to_owned(), "ada".to_owned(), 4),
                ("b2".to_owned(), "ada".to_owned(), 9)
            ]
        );
        assert_eq!(s.memo("k").unwrap().unwrap(), b"r");
        assert!(s.set_memoize("f", true).unwrap().unwrap().memoize);
        assert!(s.function("f").unwrap().unwrap().memoize);
        assert!(s.set_memoize("zz", true).unwrap().is_none());
        assert_eq!(s.clear_memo().unwrap(), 1);
        assert!(s.memo("k").unwrap().is_none());
    }

    #[test]
    fn component_bytes_of_an_older_store_are_handed_over_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = RedbStore::open(dir.path()).unwrap();
        let txn = s.db.begin_write().unwrap();
        {
            let mut t = txn.open_table(FUNCTION_BYTES).unwrap();
            t.insert("f1", b"one".as_slice()).unwrap();
            t.insert("f2", b"two".as_slice()).unwrap();
        }
        txn.commit().unwrap();
        let mut got = Vec::new();
        let moved = s
            .move_function_bytes(&mut |id, bytes| {
                got.push((id.to_owned(), bytes.to_vec()));
                Ok(())
            })
            .unwrap();
        assert_eq!(moved, 2);
        assert_eq!(
            got,
            vec![
                ("f1".into(), b"one".to_vec()),
                ("f2".into(), b"two".to_vec())
            ]
        );
        assert_eq!(s.move_function_bytes(&mut |_, _| Ok(())).unwrap(), 0);
        // A hand-over that fails keeps the bytes for the next start.
        let txn = s.db.begin_write().unwrap();
        txn.open_table(FUNCTION_BYTES)
            .unwrap()
            .insert("f3", b"three".as_slice())
            .unwrap();
        txn.commit().unwrap();
        assert!(
            s.move_function_bytes(&mut |_, _| anyhow::bail!("no room"))
                .is_err()
        );
        assert_eq!(s.move_function_bytes(&mut |_, _| Ok(())).unwrap(), 1);
    }

    #[test]
    fn live_and_finished_tasks_are_kept_apart_counted_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let s = RedbStore::open(dir.path()).unwrap();
        s.put_tasks(&[
            task("a", TaskState::WaitingForEndpoint, 0),
            task("b", TaskState::Succeeded, 10),
            task("c", TaskState::Failed, 20),
            task("d", TaskState::Succeeded, 30),
        ])
        .unwrap();
        let ids = |v: Vec<TaskRecord>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(ids(s.live_tasks().unwrap()), ["a"]);
        let counts = s.finished_counts().unwrap();
        assert_eq!(counts[&TaskState::Succeeded], 2);
        assert_eq!(counts[&TaskState::Failed], 1);
        // Re-storing a finished task does not count it twice.
        s.put_tasks(&[task("b", TaskState::Succeeded, 10)]).unwrap();
        assert_eq!(s.finished_counts().unwrap()[&TaskState::Succeeded], 2);
        // `a` finishes: no longer live, counted.
        s.put_tasks(&[task("a", TaskState::Cancelled, 40)]).unwrap();
        assert!(s.live_tasks().unwrap().is_empty());
        assert_eq!(s.finished_counts().unwrap()[&TaskState::Cancelled], 1);
        // Prune what finished before 25, keeping `b`.
        assert_eq!(s.prune_finished(25, &|id| id == "b", 100).unwrap(), 1);
        assert!(s.task("c").unwrap().is_none());
        assert!(s.task("b").unwrap().is_some());
        assert!(s.task("d").unwrap().is_some());
        assert_eq!(s.finished_counts().unwrap()[&TaskState::Failed], 0);
        assert_eq!(
            ids(s.list_tasks("a", 10, &|_| true).unwrap()),
            ["b", "d"],
            "listed after `a`, in id order"
        );
        drop(s);
        // Reopened: the indexes are there, not rebuilt.
        let s = RedbStore::open(dir.path()).unwrap();
        assert_eq!(s.finished_counts().unwrap()[&TaskState::Succeeded], 2);
    }
}
