//! The board's unfinished tasks, by id, in as little memory as a million of
//! them allow.
//!
//! A `HashMap<String, TaskRecord>` holds each id twice (key and record) and
//! grows to twice its entries in slots, each the size of a whole record:
//! most of what a service with a million queued tasks held. Here a slot is
//! one pointer to a boxed record, found by the record's own id.

use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::TaskRecord;

#[derive(Default)]
pub(crate) struct Tasks {
    table: HashTable<Box<TaskRecord>>,
    hasher: foldhash::fast::RandomState,
}

impl Tasks {
    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    pub(crate) fn get(&self, id: &str) -> Option<&TaskRecord> {
        self.table.find(self.hash(id), |t| t.id == id).map(|t| &**t)
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut TaskRecord> {
        let hash = self.hash(id);
        self.table.find_mut(hash, |t| t.id == id).map(|t| &mut **t)
    }

    pub(crate) fn contains_key(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// Puts a record in, replacing the one of its id; returns the old one.
    pub(crate) fn insert(&mut self, rec: TaskRecord) -> Option<TaskRecord> {
        let hash = self.hash(&rec.id);
        let hasher = &self.hasher;
        match self
            .table
            .entry(hash, |t| t.id == rec.id, |t| hasher.hash_one(t.id.as_str()))
        {
            hashbrown::hash_table::Entry::Occupied(mut o) => {
                Some(std::mem::replace(&mut **o.get_mut(), rec))
            }
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(Box::new(rec));
                None
            }
        }
    }

    pub(crate) fn remove(&mut self, id: &str) -> Option<TaskRecord> {
        let hash = self.hash(id);
        match self.table.find_entry(hash, |t| t.id == id) {
            Ok(o) => Some(*o.remove().0),
            Err(_) => None,
        }
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &TaskRecord> {
        self.table.iter().map(|t| &**t)
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    pub(crate) fn reserve(&mut self, more: usize) {
        let hasher = &self.hasher;
        self.table.reserve(more, |t| hasher.hash_one(t.id.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, attempts: u32) -> TaskRecord {
        let mut t = TaskRecord::new(id.into(), "e".into(), "f".into(), "x".into(), 1);
        t.attempts = attempts;
        t
    }

    #[test]
    fn records_are_found_replaced_and_removed_by_their_id() {
        let mut t = Tasks::default();
        t.reserve(1000);
        for i in 0..1000 {
            assert!(t.insert(rec(&format!("t{i}"), 0)).is_none());
        }
        assert_eq!(t.len(), 1000);
        assert_eq!(t.insert(rec("t7", 3)).map(|r| r.attempts), Some(0));
        assert_eq!(t.get("t7").map(|r| r.attempts), Some(3));
        t.get_mut("t8").unwrap().attempts = 9;
        assert_eq!(t.get("t8").unwrap().attempts, 9);
        assert_eq!(t.remove("t9").map(|r| r.id), Some("t9".to_owned()));
        assert!(t.remove("t9").is_none());
        assert!(!t.contains_key("t9") && t.contains_key("t10"));
        assert_eq!(t.len(), 999);
        assert_eq!(t.values().count(), 999);
    }
}
