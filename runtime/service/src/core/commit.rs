//! Group commit: transitions that arrive close together share one store
//! commit, pipelined with the next.
//!
//! A transition changes the board under the board lock and leaves its
//! records here as a batch, in order. The first transition to reach the
//! committer lock leads: it takes every batch waiting, commits them in one
//! transaction (one fsync under `strict` durability), and then, in order,
//! tells watchers and hands out work. The others find their batch committed
//! and return. While a leader waits on the disk, new transitions go on
//! changing the board and gathering the next batch; none of them is
//! acknowledged, watched or dispatched before its commit.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::time::Instant;

use super::{Broker, Error, Result, TaskRecord};

/// What one transition changed, waiting for its commit.
pub(crate) struct Batch {
    /// Transitions are numbered in the order they changed the board.
    pub(crate) seq: u64,
    pub(crate) changed: Vec<Arc<TaskRecord>>,
    pub(crate) memo: Vec<(String, Vec<u8>)>,
    /// Endpoints with new work, dispatched after the commit.
    pub(crate) wake: Vec<String>,
    /// Sessions found unable to take messages, dropped after the commit.
    pub(crate) drop_sessions: Vec<u64>,
}

#[derive(Default)]
pub(crate) struct Pipeline {
    /// Batches not yet committed, in order of `seq`.
    waiting: Mutex<Vec<Batch>>,
    /// Held by the transition committing.
    committer: Mutex<Committed>,
}

#[derive(Default)]
struct Committed {
    /// Every batch up to this one is committed and announced.
    through: u64,
    /// A commit failed: nothing after it will be.
    failed: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pipeline {
    /// Leaves a batch; called under the board lock, so that batches wait in
    /// the order they changed the board.
    pub(crate) fn push(&self, batch: Batch) {
        lock(&self.waiting).push(batch);
    }
}

impl Broker {
    /// Returns once batch `seq` is committed and announced, committing it
    /// (with every batch waiting) if no one has. Returns the sessions to
    /// drop, found unable to take their messages.
    pub(super) fn commit_through(&self, seq: u64) -> Result<Vec<u64>> {
        let mut committed = lock(&self.pipeline.committer);
        if committed.through >= seq {
            return Ok(Vec::new());
        }
        if committed.failed {
            return Err(Error::Unavailable(
                "the service's store failed a commit; it takes no changes until restarted".into(),
            ));
        }
        let mut batches = std::mem::take(&mut *lock(&self.pipeline.waiting));
        let Some(last) = batches.last().map(|b| b.seq) else {
            return Err(Error::internal(anyhow::anyhow!(
                "transition {seq} is neither committed nor waiting"
            )));
        };
        let memo: Vec<(String, Vec<u8>)> = batches
            .iter_mut()
            .flat_map(|b| std::mem::take(&mut b.memo))
            .collect();
        let tasks: Vec<&TaskRecord> = batches
            .iter()
            .flat_map(|b| b.changed.iter().map(|r| &**r))
            .collect();
        let started = std::time::Instant::now();
        if let Err(e) = self.store.commit(&tasks, &memo) {
            committed.failed = true;
            self.broken
                .store(true, std::sync::atomic::Ordering::Relaxed);
            tracing::error!("a commit failed; the broker stops taking transitions: {e:#}");
            return Err(Error::internal(e));
        }
        drop(tasks);
        self.metrics.commit.observe(started.elapsed());
        self.metrics
            .committed
            .fetch_add(batches.len() as u64, std::sync::atomic::Ordering::Relaxed);
        committed.through = last;

        let mut board = self.board();
        board.durable = last;
        let mut stuck = Vec::new();
        let mut wake: Vec<String> = Vec::new();
        let mut woken = HashSet::new();
        for b in batches {
            for rec in b.changed {
                tracing::debug!(task = %rec.id, state = rec.state.label(), "committed");
                board.notify(&rec);
                if rec.state.is_terminal() {
                    board.committed_finish(&rec);
                }
            }
            stuck.extend(b.drop_sessions);
            for e in b.wake {
                if woken.insert(e.clone()) {
                    wake.push(e);
                }
            }
        }
        stuck.extend(self.dispatch(&mut board, wake));
        Ok(stuck)
    }

    /// Hands queued work of these endpoints to their sessions.
    pub(super) fn dispatch(&self, board: &mut super::Board, endpoints: Vec<String>) -> Vec<u64> {
        let now = Instant::now();
        let mut stuck = Vec::new();
        for endpoint in endpoints {
            stuck.extend(board.dispatch(
                &endpoint,
                self.rules.lease_timeout,
                now,
                &self.metrics.dispatch_wait,
            ));
        }
        stuck
    }
}
