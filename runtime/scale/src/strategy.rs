//! The strategy: each period it sees the endpoint's queue and workers, and
//! the jobs of its blocks, and decides which blocks to ask for, which
//! pending ones to cancel and which idle ones to drain. It does no I/O and
//! reads no clock, so it is tested on simulated time.
//!
//! Parsl's `htex_auto_scale` with its users' bugs fixed: pending blocks
//! that are no longer needed are cancelled (Parsl issue 2627); only blocks
//! idle past `max_idletime` are scaled in, so a steady load does not
//! oscillate (issue 3696); a busy worker is drained, never killed; a block
//! its resource manager ends at walltime is noticed, and replaced if work
//! remains.
//!
//! Scale-out follows the work now; scale-in follows the most it called for
//! over a hold window, at first `max_idletime`, so a load that wobbles about
//! a block's edge keeps the block it peaks into. A block asked for again
//! within the hold of a scale-in is a flap: the hold doubles, up to 8 ×
//! `max_idletime`, and goes back to `max_idletime` once the endpoint has
//! had no work at all for a whole hold.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use crate::provider::{JobEnd, JobId, JobState};
use crate::settings::Settings;

/// Where a block stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Asked for; the provider has not yet named its job.
    Submitting,
    /// Its job waits for resources, or its workers have not yet joined.
    Pending,
    Running,
    /// Its workers take no more tasks, finish what they hold and exit.
    Draining,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Submitting => "submitting",
            Phase::Pending => "pending",
            Phase::Running => "running",
            Phase::Draining => "draining",
        }
    }
}

/// One block as the strategy tracks it.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub id: String,
    pub job: Option<JobId>,
    pub phase: Phase,
    /// Worker agents of this block connected now.
    pub workers: u32,
    /// Tasks those workers hold.
    pub in_flight: u32,
    /// Since when all its workers (or, before any joined, its running job)
    /// have held nothing.
    idle_since: Option<Instant>,
    joined: bool,
    cancel_sent: bool,
}

/// One worker agent as the service reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerLoad {
    /// The block it says it belongs to.
    pub block: String,
    /// Tasks leased to it and not yet answered.
    pub in_flight: u32,
}

/// The endpoint's load, as the service reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Load {
    /// Tasks waiting for a slot.
    pub queued: u64,
    /// Tasks leased to a worker and not yet answered.
    pub running: u64,
    pub workers: Vec<WorkerLoad>,
}

/// What the strategy asks the manager to do, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Ask the provider for this block.
    Submit { block: String, reason: String },
    /// End this block's job: it is pending and no longer needed, or it is
    /// draining and has no worker left to drain.
    Cancel {
        block: String,
        job: JobId,
        reason: String,
    },
    /// Tell this block's workers to take nothing more and exit when done.
    Drain { block: String, reason: String },
}

/// Something that happened to a block outside the strategy's choosing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The block's job ended. `expected` is false when nobody here asked
    /// for it (walltime, a node failure, someone's scancel): its tasks come
    /// back through their leases.
    Ended {
        block: String,
        job: JobId,
        end: JobEnd,
        expected: bool,
    },
    /// The provider could not start a block; the next try waits `retry_in`.
    SubmitFailed {
        block: String,
        error: String,
        retry_in: Duration,
    },
}

/// Sizes an endpoint's blocks to its queue.
pub struct Strategy {
    settings: Settings,
    blocks: BTreeMap<String, Block>,
    prefix: String,
    next: u64,
    started: bool,
    /// Blocks in a row that ended or failed before any worker joined.
    failures: u32,
    retry_at: Option<Instant>,
    /// The blocks wanted in each recent period, within `hold`.
    wanted: VecDeque<(Instant, u32)>,
    /// How far back scale-in looks for the most blocks wanted.
    hold: Duration,
    /// The last scale-in.
    scaled_in: Option<Instant>,
    /// Since when no task has been queued or running.
    lull_since: Option<Instant>,
}

const MAX_BACKOFF: Duration = Duration::from_secs(300);

impl Strategy {
    /// `prefix` names this manager's blocks (`<prefix>-<n>`); it should be
    /// unique per manager run, so that a restarted manager's blocks are
    /// not mistaken for the old ones'.
    pub fn new(settings: Settings, prefix: impl Into<String>) -> Self {
        Strategy {
            hold: settings.max_idletime,
            settings,
            blocks: BTreeMap::new(),
            prefix: prefix.into(),
            next: 0,
            started: false,
            failures: 0,
            retry_at: None,
            wanted: VecDeque::new(),
            scaled_in: None,
            lull_since: None,
        }
    }

    /// How far back scale-in looks now: `max_idletime`, or longer after
    /// flaps.
    pub fn hold(&self) -> Duration {
        self.hold
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The blocks held now, by id.
    pub fn blocks(&self) -> impl Iterator<Item = &Block> {
        self.blocks.values()
    }

    /// Jobs to ask the provider about.
    pub fn jobs(&self) -> Vec<(String, JobId)> {
        self.blocks
            .values()
            .filter_map(|b| b.job.clone().map(|j| (b.id.clone(), j)))
            .collect()
    }

    /// The provider named the job of a block it was asked for, or failed.
    pub fn submitted(
        &mut self,
        block: &str,
        job: Result<JobId, String>,
        now: Instant,
    ) -> Option<Event> {
        match job {
            Ok(job) => {
                if let Some(b) = self.blocks.get_mut(block) {
                    b.job = Some(job);
                    b.phase = Phase::Pending;
                }
                None
            }
            Err(error) => {
                self.blocks.remove(block);
                let retry_in = self.failed(now);
                Some(Event::SubmitFailed {
                    block: block.to_owned(),
                    error,
                    retry_in,
                })
            }
        }
    }

    /// What the provider says of the blocks' jobs.
    pub fn observe_jobs(&mut self, states: &[(String, JobState)], now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        for (id, state) in states {
            let Some(b) = self.blocks.get_mut(id) else {
                continue;
            };
            match state {
                JobState::Pending => {}
                JobState::Running => {
                    if b.phase == Phase::Pending && !b.joined && b.idle_since.is_none() {
                        // Its workers start; until they join, the block
                        // counts as idle from here, so that one whose
                        // workers never come is let go in max_idletime.
                        b.idle_since = Some(now);
                    }
                }
                JobState::Ended(end) => {
                    let Some(b) = self.blocks.remove(id) else {
                        continue;
                    };
                    let expected = b.phase == Phase::Draining || b.cancel_sent;
                    if !expected && !b.joined {
                        self.failed(now);
                    }
                    events.push(Event::Ended {
                        block: b.id,
                        job: b.job.unwrap_or_else(|| JobId(String::new())),
                        end: end.clone(),
                        expected,
                    });
                }
            }
        }
        events
    }

    /// One period's decisions on the endpoint's load.
    pub fn decide(&mut self, load: &Load, now: Instant) -> Vec<Action> {
        self.see_workers(load, now);
        let s = &self.settings;
        let outstanding = load.queued + load.running;
        let mut target = s.blocks_for(outstanding);
        if !self.started {
            target = target.max(s.init_blocks.min(s.max_blocks));
            self.started = true;
        }
        // A whole hold with no work at all ends the flapping's memory: the
        // next burst is a new load.
        if outstanding > 0 {
            self.lull_since = None;
        } else if now.saturating_duration_since(*self.lull_since.get_or_insert(now)) >= self.hold {
            self.hold = s.max_idletime;
        }
        // The most wanted within the hold: what scale-in may go down to.
        let hold = self.hold;
        while self
            .wanted
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) >= hold)
        {
            self.wanted.pop_front();
        }
        while self.wanted.back().is_some_and(|(_, w)| *w <= target) {
            self.wanted.pop_back();
        }
        self.wanted.push_back((now, target));
        let keep = self.wanted.front().map_or(target, |(_, w)| *w);
        let held = self
            .blocks
            .values()
            .filter(|b| b.phase != Phase::Draining)
            .count() as u32;
        let total = self.blocks.len() as u32;
        let why = format!(
            "{outstanding} tasks outstanding ({} queued), {held} blocks of {} slots held, {target} wanted now, {keep} at most within {:?}",
            load.queued,
            s.block_slots(),
            self.hold
        );
        let mut actions = Vec::new();
        if target > held {
            if self.retry_at.is_some_and(|t| now < t) {
                return actions;
            }
            let mut room = s.max_blocks.saturating_sub(total);
            if self.failures > 0 {
                // While blocks fail to start, one at a time probes.
                room = room.min(1);
            }
            let asking = (target - held).min(room);
            if asking > 0
                && self
                    .scaled_in
                    .is_some_and(|t| now.saturating_duration_since(t) < self.hold)
            {
                // A flap: what was let go is wanted again.
                self.hold = (self.hold * 2).min(s.max_idletime * 8);
            }
            for _ in 0..asking {
                self.next += 1;
                let id = format!("{}-{}", self.prefix, self.next);
                self.blocks.insert(
                    id.clone(),
                    Block {
                        id: id.clone(),
                        job: None,
                        phase: Phase::Submitting,
                        workers: 0,
                        in_flight: 0,
                        idle_since: None,
                        joined: false,
                        cancel_sent: false,
                    },
                );
                actions.push(Action::Submit {
                    block: id,
                    reason: why.clone(),
                });
            }
        } else if keep < held {
            let mut excess = held - keep;
            // Pending blocks first, the newest first: they hold no work.
            let pending: Vec<(String, JobId)> = self
                .blocks
                .values()
                .rev()
                .filter(|b| b.phase == Phase::Pending && !b.joined && b.idle_since.is_none())
                .filter_map(|b| b.job.clone().map(|j| (b.id.clone(), j)))
                .collect();
            for (id, job) in pending.into_iter().take(excess as usize) {
                if let Some(b) = self.blocks.get_mut(&id) {
                    b.phase = Phase::Draining;
                    b.cancel_sent = true;
                }
                excess -= 1;
                actions.push(Action::Cancel {
                    block: id,
                    job,
                    reason: format!("pending and no longer needed: {why}"),
                });
            }
            // Then blocks idle past max_idletime, the longest idle first.
            let mut idle: Vec<(Instant, String)> = self
                .blocks
                .values()
                .filter(|b| matches!(b.phase, Phase::Running | Phase::Pending))
                .filter_map(|b| b.idle_since.map(|t| (t, b.id.clone())))
                .filter(|(t, _)| now.saturating_duration_since(*t) >= s.max_idletime)
                .collect();
            idle.sort();
            for (since, id) in idle.into_iter().take(excess as usize) {
                let Some(b) = self.blocks.get_mut(&id) else {
                    continue;
                };
                b.phase = Phase::Draining;
                let reason = format!(
                    "idle for {:.1?} (max_idletime {:?}): {why}",
                    now.saturating_duration_since(since),
                    s.max_idletime
                );
                if b.workers == 0
                    && let Some(job) = b.job.clone()
                {
                    b.cancel_sent = true;
                    actions.push(Action::Cancel {
                        block: id,
                        job,
                        reason: format!("{reason}; no worker joined"),
                    });
                } else {
                    actions.push(Action::Drain { block: id, reason });
                }
            }
            if !actions.is_empty() {
                self.scaled_in = Some(now);
            }
        }
        // A draining block whose workers have all left but whose job lives
        // on (a scheduler slow to notice) is ended.
        for b in self.blocks.values_mut() {
            if b.phase == Phase::Draining
                && b.joined
                && b.workers == 0
                && !b.cancel_sent
                && let Some(job) = b.job.clone()
            {
                b.cancel_sent = true;
                actions.push(Action::Cancel {
                    block: b.id.clone(),
                    job,
                    reason: "drained: its workers have exited".into(),
                });
            }
        }
        actions
    }

    fn see_workers(&mut self, load: &Load, now: Instant) {
        let mut seen: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
        for w in &load.workers {
            let e = seen.entry(w.block.as_str()).or_default();
            e.0 += 1;
            e.1 += w.in_flight;
        }
        let mut joined_now = false;
        for b in self.blocks.values_mut() {
            let (workers, in_flight) = seen.get(b.id.as_str()).copied().unwrap_or_default();
            b.workers = workers;
            b.in_flight = in_flight;
            if workers > 0 && !b.joined {
                b.joined = true;
                joined_now = true;
                if b.phase == Phase::Pending {
                    b.phase = Phase::Running;
                }
                b.idle_since = None;
            }
            if in_flight > 0 {
                b.idle_since = None;
            } else if b.joined {
                b.idle_since.get_or_insert(now);
            }
        }
        if joined_now {
            self.failures = 0;
            self.retry_at = None;
        }
    }

    /// Counts a block that never got going, and backs off the next submit.
    fn failed(&mut self, now: Instant) -> Duration {
        self.failures += 1;
        let wait = self
            .settings
            .period
            .saturating_mul(1 << self.failures.min(16))
            .min(MAX_BACKOFF);
        self.retry_at = Some(now + wait);
        wait
    }
}

#[cfg(test)]
#[path = "strategy_tests.rs"]
mod tests;
