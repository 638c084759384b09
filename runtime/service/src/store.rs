//! Durable state behind one trait; redb (embedded, ACID, crash-safe) is the
//! default, so nothing extra runs on a laptop and data survives `kill -9`.

use std::path::Path;

use anyhow::Context;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

/// A task as stored: everything needed to run it again after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: String,
    pub endpoint: String,
    pub function_id: String,
    pub export: String,
    /// MessagePack array of arguments, already checked against the signature.
    pub args: Vec<u8>,
    /// timeout ms, memory bytes, output bytes; 0 = the endpoint's default.
    pub limits: [u64; 3],
    /// A `ferry_proto::v1::TaskState` as i32.
    pub state: i32,
    /// (state, unix ms) for every state the task has been in.
    pub history: Vec<(i32, i64)>,
    pub result: Option<Vec<u8>>,
    pub error: Option<(String, String)>,
    /// What the task needs from its endpoint (`gpu`).
    #[serde(default)]
    pub requires: Vec<String>,
    /// Tasks whose results are among the arguments.
    #[serde(default)]
    pub deps: Vec<String>,
    /// The arguments as JSON with `{"$task": id}` references, until the last
    /// producer succeeds and they become `args`.
    #[serde(default)]
    pub pending_args: Option<String>,
    /// blake3 of function, export and arguments, when the result is memoized.
    #[serde(default)]
    pub memo_key: Option<String>,
    /// The result came from the memo.
    #[serde(default)]
    pub cache_hit: bool,
    /// Runs allowed after the first, for failures of the kinds in `retry_on`.
    #[serde(default)]
    pub retries: u32,
    #[serde(default)]
    pub retry_on: Vec<String>,
    /// Runs after the first so far.
    #[serde(default)]
    pub attempts: u32,
}

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
}

/// The service's durable state. Every method is one transaction.
pub trait Store: Send + Sync + 'static {
    fn put_function(&self, record: &FunctionRecord, bytes: &[u8]) -> anyhow::Result<()>;
    fn function(&self, id: &str) -> anyhow::Result<Option<FunctionRecord>>;
    fn function_bytes(&self, id: &str) -> anyhow::Result<Option<Vec<u8>>>;
    fn functions(&self) -> anyhow::Result<Vec<FunctionRecord>>;
    /// Writes (inserts or replaces) tasks atomically and durably.
    fn put_tasks(&self, tasks: &[TaskRecord]) -> anyhow::Result<()>;
    fn task(&self, id: &str) -> anyhow::Result<Option<TaskRecord>>;
    /// Every task, for rebuilding queues and counts at start.
    fn tasks(&self) -> anyhow::Result<Vec<TaskRecord>>;
    fn put_endpoint(&self, name: &str) -> anyhow::Result<()>;
    fn endpoints(&self) -> anyhow::Result<Vec<String>>;
    /// Turns memoization of every call of a function on or off.
    fn set_memoize(&self, id: &str, on: bool) -> anyhow::Result<Option<FunctionRecord>>;
    /// A memoized result.
    fn memo(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>>;
    fn put_memo(&self, key: &str, result: &[u8]) -> anyhow::Result<()>;
    /// Forgets every memoized result; returns how many there were.
    fn clear_memo(&self) -> anyhow::Result<u64>;
    /// Pins or unpins a blob: pinned blobs survive `gc`.
    fn pin_blob(&self, hash: &str, pinned: bool) -> anyhow::Result<()>;
    fn pinned_blobs(&self) -> anyhow::Result<Vec<String>>;
}

const FUNCTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("functions");
const FUNCTION_BYTES: TableDefinition<&str, &[u8]> = TableDefinition::new("function_bytes");
const TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("tasks");
const ENDPOINTS: TableDefinition<&str, ()> = TableDefinition::new("endpoints");
const PINS: TableDefinition<&str, ()> = TableDefinition::new("pinned_blobs");
const MEMO: TableDefinition<&str, &[u8]> = TableDefinition::new("memo");

/// The embedded default: one redb file in the data directory.
pub struct RedbStore {
    db: Database,
}

impl RedbStore {
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data dir {}", dir.display()))?;
        let path = dir.join("ferry.redb");
        let db =
            Database::create(&path).with_context(|| format!("opening store {}", path.display()))?;
        let txn = db.begin_write()?;
        txn.open_table(FUNCTIONS)?;
        txn.open_table(FUNCTION_BYTES)?;
        txn.open_table(TASKS)?;
        txn.open_table(ENDPOINTS)?;
        txn.open_table(PINS)?;
        txn.open_table(MEMO)?;
        txn.commit()?;
        Ok(RedbStore { db })
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

    fn all<T: for<'de> Deserialize<'de>>(
        &self,
        table: TableDefinition<&str, &[u8]>,
    ) -> anyhow::Result<Vec<T>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(table)?;
        let mut out = Vec::new();
        for entry in t.iter()? {
            let (_, v) = entry?;
            out.push(rmp_serde::from_slice(v.value()).context("decoding a stored record")?);
        }
        Ok(out)
    }
}

impl Store for RedbStore {
    fn put_function(&self, record: &FunctionRecord, bytes: &[u8]) -> anyhow::Result<()> {
        let txn = self.db.begin_write()?;
        {
            txn.open_table(FUNCTION_BYTES)?
                .insert(record.id.as_str(), bytes)?;
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

    fn function_bytes(&self, id: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(FUNCTION_BYTES)?;
        Ok(t.get(id)?.map(|v| v.value().to_vec()))
    }

    fn functions(&self) -> anyhow::Result<Vec<FunctionRecord>> {
        self.all(FUNCTIONS)
    }

    fn put_tasks(&self, tasks: &[TaskRecord]) -> anyhow::Result<()> {
        if tasks.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(TASKS)?;
            for task in tasks {
                let v = rmp_serde::to_vec(task)?;
                t.insert(task.id.as_str(), v.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn task(&self, id: &str) -> anyhow::Result<Option<TaskRecord>> {
        self.get(TASKS, id)
    }

    fn tasks(&self) -> anyhow::Result<Vec<TaskRecord>> {
        self.all(TASKS)
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

    fn set_memoize(&self, id: &str, on: bool) -> anyhow::Result<Option<FunctionRecord>> {
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
            record.memoize = on;
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

    fn put_memo(&self, key: &str, result: &[u8]) -> anyhow::Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(MEMO)?.insert(key, result)?;
        txn.commit()?;
        Ok(())
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
}

impl RedbStore {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, state: i32) -> TaskRecord {
        TaskRecord {
            id: id.into(),
            endpoint: "local".into(),
            function_id: "f".into(),
            export: "pi".into(),
            args: vec![0x92, 1, 2],
            limits: [0; 3],
            state,
            history: vec![(state, 1)],
            result: None,
            error: None,
            requires: vec!["gpu".into()],
            deps: vec![],
            pending_args: None,
            memo_key: None,
            cache_hit: false,
            retries: 0,
            retry_on: vec![],
            attempts: 0,
        }
    }

    #[test]
    fn everything_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = RedbStore::open(dir.path()).unwrap();
            s.put_tasks(&[task("a", 1), task("b", 4)]).unwrap();
            s.put_tasks(&[task("a", 5)]).unwrap();
            let f = FunctionRecord {
                id: "f".into(),
                size: 3,
                exports: vec![("pi".into(), "func()".into())],
                imports: vec![],
                registered_at_ms: 7,
                memoize: false,
            };
            s.put_function(&f, b"abc").unwrap();
            s.put_endpoint("local").unwrap();
            s.pin_blob("b1", true).unwrap();
            s.pin_blob("b2", true).unwrap();
            s.pin_blob("b1", false).unwrap();
        }
        let s = RedbStore::open(dir.path()).unwrap();
        assert_eq!(s.task("a").unwrap().unwrap().state, 5);
        assert_eq!(s.tasks().unwrap().len(), 2);
        assert_eq!(s.function_bytes("f").unwrap().unwrap(), b"abc");
        assert_eq!(s.function("f").unwrap().unwrap().registered_at_ms, 7);
        assert_eq!(s.endpoints().unwrap(), vec!["local".to_owned()]);
        assert!(s.task("zz").unwrap().is_none());
        assert_eq!(s.pinned_blobs().unwrap(), vec!["b2".to_owned()]);
        s.put_memo("k", b"r").unwrap();
        assert_eq!(s.memo("k").unwrap().unwrap(), b"r");
        assert!(s.set_memoize("f", true).unwrap().unwrap().memoize);
        assert!(s.function("f").unwrap().unwrap().memoize);
        assert!(s.set_memoize("zz", true).unwrap().is_none());
        assert_eq!(s.clear_memo().unwrap(), 1);
        assert!(s.memo("k").unwrap().is_none());
    }
}
