//! The strategy on simulated time: a small model of a resource manager
//! whose jobs start after a delay, and of workers that run what they are
//! leased and exit when drained.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::{Instant, advance};

use super::*;

const PERIOD: Duration = Duration::from_secs(1);

fn settings() -> Settings {
    Settings {
        min_blocks: 0,
        init_blocks: 0,
        max_blocks: 3,
        workers_per_block: 2,
        worker_slots: 2,
        parallelism: 1.0,
        max_idletime: Duration::from_secs(10),
        period: PERIOD,
    }
}

/// A block's job in the model.
struct Job {
    block: String,
    submitted: Instant,
    ended: Option<JobEnd>,
    draining: bool,
    /// Tasks each worker holds; empty until the workers join.
    workers: Vec<u32>,
}

/// A resource manager whose jobs run `start` after they are asked for,
/// with workers that join `join` later, and each finish what they hold
/// within a period.
struct Model {
    strategy: Strategy,
    jobs: BTreeMap<JobId, Job>,
    start: Duration,
    join: Duration,
    queued: u64,
    done: u64,
    arrived: u64,
    submits: u32,
    drains: u32,
    cancels: u32,
    killed_busy: u32,
    most_blocks: u32,
    events: Vec<Event>,
}

impl Model {
    fn new(settings: Settings) -> Self {
        Model {
            strategy: Strategy::new(settings, "ep"),
            jobs: BTreeMap::new(),
            start: Duration::from_secs(2),
            join: Duration::from_secs(1),
            queued: 0,
            done: 0,
            arrived: 0,
            submits: 0,
            drains: 0,
            cancels: 0,
            killed_busy: 0,
            most_blocks: 0,
            events: Vec::new(),
        }
    }

    fn arrive(&mut self, n: u64) {
        self.queued += n;
        self.arrived += n;
    }

    fn state(&self, job: &Job, now: Instant) -> JobState {
        if let Some(end) = &job.ended {
            JobState::Ended(end.clone())
        } else if now >= job.submitted + self.start {
            JobState::Running
        } else {
            JobState::Pending
        }
    }

    /// The workers run a period: what they held is done, and they are
    /// leased more from the queue unless draining. Drained workers that
    /// hold nothing exit, and their job completes.
    fn work(&mut self, now: Instant) {
        let slots = self.strategy.settings().worker_slots;
        let (start, join) = (self.start, self.join);
        for job in self.jobs.values_mut() {
            if job.ended.is_some() {
                continue;
            }
            if job.workers.is_empty() && now >= job.submitted + start + join && !job.draining {
                job.workers = vec![0; self.strategy.settings().workers_per_block as usize];
            }
            for held in &mut job.workers {
                self.done += u64::from(*held);
                *held = 0;
                if !job.draining {
                    let take = self.queued.min(u64::from(slots));
                    *held = take as u32;
                    self.queued -= take;
                }
            }
            if job.draining && job.workers.iter().all(|h| *h == 0) {
                job.ended = Some(JobEnd::Completed);
                job.workers.clear();
            }
        }
    }

    fn load(&self) -> Load {
        let mut running = 0;
        let mut workers = Vec::new();
        for job in self.jobs.values().filter(|j| j.ended.is_none()) {
            for held in &job.workers {
                running += u64::from(*held);
                workers.push(WorkerLoad {
                    block: job.block.clone(),
                    in_flight: *held,
                });
            }
        }
        Load {
            queued: self.queued,
            running,
            workers,
        }
    }

    /// One strategy period, as the manager runs it.
    fn tick(&mut self) {
        let now = Instant::now();
        self.work(now);
        let states: Vec<(String, JobState)> = self
            .strategy
            .jobs()
            .into_iter()
            .map(|(block, id)| {
                let s = self.state(&self.jobs[&id], now);
                (block, s)
            })
            .collect();
        let ended = self.strategy.observe_jobs(&states, now);
        self.events.extend(ended);
        let load = self.load();
        for action in self.strategy.decide(&load, now) {
            match action {
                Action::Submit { block, .. } => {
                    self.submits += 1;
                    let id = JobId(format!("job{}", self.submits));
                    self.jobs.insert(
                        id.clone(),
                        Job {
                            block: block.clone(),
                            submitted: now,
                            ended: None,
                            draining: false,
                            workers: Vec::new(),
                        },
                    );
                    assert_eq!(self.strategy.submitted(&block, Ok(id), now), None);
                }
                Action::Cancel { job, .. } => {
                    self.cancels += 1;
                    let j = self.jobs.get_mut(&job).expect("a job it was given");
                    if j.workers.iter().any(|h| *h > 0) {
                        self.killed_busy += 1;
                    }
                    // A cancelled job's workers are killed: what they held
                    // goes back to the queue, as leases bring it back.
                    self.queued += j.workers.iter().map(|h| u64::from(*h)).sum::<u64>();
                    j.workers.clear();
                    j.ended = Some(JobEnd::Cancelled);
                }
                Action::Drain { block, .. } => {
                    self.drains += 1;
                    let j = self
                        .jobs
                        .values_mut()
                        .find(|j| j.block == block)
                        .expect("a block it was given");
                    j.draining = true;
                }
            }
        }
        let live = self.strategy.blocks().count() as u32;
        self.most_blocks = self.most_blocks.max(live);
        assert!(
            live <= self.strategy.settings().max_blocks,
            "{live} blocks held, over max_blocks"
        );
    }

    async fn run_for(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.tick();
            advance(PERIOD).await;
        }
    }

    /// `periods` of arrivals that wobble between 3 and 9 a period.
    async fn steady(&mut self, seed: &mut u64, periods: u32) {
        for _ in 0..periods {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.arrive(3 + (*seed >> 33) % 7);
            self.tick();
            advance(PERIOD).await;
        }
    }

    fn phases(&self) -> Vec<Phase> {
        self.strategy.blocks().map(|b| b.phase).collect()
    }
}

#[tokio::test(start_paused = true)]
async fn a_burst_scales_out_to_what_it_needs_and_no_further() {
    let mut m = Model::new(settings());
    m.arrive(6);
    m.tick();
    // 6 tasks over blocks of 4 slots: two blocks.
    assert_eq!(m.submits, 2);
    assert_eq!(m.phases(), vec![Phase::Pending, Phase::Pending]);
    // Pending blocks count as capacity: nothing more while they start.
    advance(PERIOD).await;
    m.tick();
    assert_eq!(m.submits, 2);
    // A bigger burst asks for the third block and stops at max_blocks.
    m.arrive(100);
    advance(PERIOD).await;
    m.tick();
    assert_eq!(m.submits, 3);
    m.run_for(Duration::from_secs(60)).await;
    assert_eq!(m.done, m.arrived, "every task ran");
    assert_eq!(m.most_blocks, 3);
}

#[tokio::test(start_paused = true)]
async fn pending_blocks_no_longer_needed_are_cancelled() {
    let mut m = Model::new(settings());
    m.start = Duration::from_secs(3600);
    m.arrive(12);
    m.tick();
    assert_eq!(m.submits, 3);
    // The work goes elsewhere (another agent of the endpoint's name). The
    // blocks are kept while the burst is recent, then cancelled.
    m.queued = 0;
    m.run_for(Duration::from_secs(9)).await;
    assert_eq!(m.cancels, 0, "cancelled within max_idletime of the burst");
    m.run_for(Duration::from_secs(2)).await;
    assert_eq!(m.cancels, 3, "all three pending blocks are cancelled");
    advance(PERIOD).await;
    m.tick();
    assert_eq!(m.strategy.blocks().count(), 0);
    assert!(
        m.events
            .iter()
            .all(|e| matches!(e, Event::Ended { expected: true, .. })),
        "{:?}",
        m.events
    );
    // Only the excess goes: with 4 tasks back, one block is kept.
    let mut m = Model::new(settings());
    m.start = Duration::from_secs(3600);
    m.arrive(12);
    m.tick();
    m.queued = 4;
    m.run_for(Duration::from_secs(11)).await;
    assert_eq!(m.cancels, 2);
    assert_eq!(
        m.phases().iter().filter(|p| **p == Phase::Pending).count(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn idle_blocks_drain_after_max_idletime_and_busy_ones_never() {
    let mut s = settings();
    s.min_blocks = 1;
    let mut m = Model::new(s);
    m.arrive(200);
    while m.done < m.arrived {
        m.tick();
        advance(PERIOD).await;
    }
    assert_eq!(m.submits, 3);
    // Idle now; nothing drains before max_idletime.
    m.run_for(Duration::from_secs(8)).await;
    assert_eq!(m.drains, 0, "drained before max_idletime");
    m.run_for(Duration::from_secs(5)).await;
    // Two drained; min_blocks keeps one.
    assert_eq!(m.drains, 2);
    m.run_for(Duration::from_secs(5)).await;
    assert_eq!(m.phases(), vec![Phase::Running]);
    assert_eq!(m.killed_busy, 0);
    // A block that stays busy is never drained, however long it runs: the
    // backlog of its first seconds brings in two more blocks, which go idle
    // and are drained; the first keeps its steady load.
    let mut m = Model::new(settings());
    for _ in 0..120 {
        m.arrive(4);
        m.tick();
        advance(PERIOD).await;
    }
    assert_eq!(m.drains, 2);
    assert_eq!(m.cancels, 0);
    assert_eq!(m.killed_busy, 0);
    let first = m.strategy.blocks().next().expect("the busy block is held");
    assert_eq!((first.id.as_str(), first.phase), ("ep-1", Phase::Running));
    assert_eq!(m.strategy.blocks().count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_drained_block_finishes_its_tasks_before_it_ends() {
    let mut m = Model::new(settings());
    m.arrive(4);
    m.run_for(Duration::from_secs(5)).await;
    // The block is running; it is drained while its workers hold tasks.
    m.arrive(4);
    m.tick();
    let block = m.strategy.blocks().next().unwrap().id.clone();
    let job = m.jobs.values_mut().find(|j| j.block == block).unwrap();
    assert!(job.workers.iter().any(|h| *h > 0), "busy when drained");
    job.draining = true;
    m.strategy.blocks.get_mut(&block).unwrap().phase = Phase::Draining;
    m.run_for(Duration::from_secs(3)).await;
    assert_eq!(m.done, 8, "the draining workers finished what they held");
    assert!(m.events.iter().any(|e| matches!(
        e,
        Event::Ended {
            end: JobEnd::Completed,
            expected: true,
            ..
        }
    )));
    assert_eq!(m.killed_busy, 0);
}

#[tokio::test(start_paused = true)]
async fn a_block_ended_at_walltime_is_noticed_and_replaced() {
    let mut m = Model::new(settings());
    m.arrive(1_000);
    m.run_for(Duration::from_secs(5)).await;
    let submits = m.submits;
    // Slurm ends one block at its walltime: its workers die with it.
    let job = m.jobs.values_mut().find(|j| j.ended.is_none()).unwrap();
    let held: u64 = job.workers.iter().map(|h| u64::from(*h)).sum();
    job.workers.clear();
    job.ended = Some(JobEnd::TimedOut);
    m.queued += held;
    m.run_for(Duration::from_secs(120)).await;
    assert!(m.events.iter().any(|e| matches!(
        e,
        Event::Ended {
            end: JobEnd::TimedOut,
            expected: false,
            ..
        }
    )));
    assert_eq!(m.submits, submits + 1, "a replacement block was asked for");
    assert_eq!(m.done, m.arrived, "no task lost");
}

#[tokio::test(start_paused = true)]
async fn a_steady_load_does_not_oscillate() {
    let mut s = settings();
    s.max_blocks = 8;
    let mut m = Model::new(s);
    // 6 tasks a period against blocks of 4 slots: two blocks, busy in
    // turn, with arrivals that wobble between 3 and 9.
    let mut seed: u64 = 7;
    m.steady(&mut seed, 3_600).await;
    // The third block is wanted for one period in seven, and let go when
    // no peak came for a whole hold; each time it is asked for again the
    // hold doubles, so the flapping dies out within minutes.
    assert!(m.submits <= 12, "{} blocks asked for in an hour", m.submits);
    assert!(m.strategy.hold() > Duration::from_secs(10));
    let (submits, scaled_in) = (m.submits, m.drains + m.cancels);
    m.steady(&mut seed, 1_800).await;
    assert_eq!(
        (m.submits, m.drains + m.cancels),
        (submits, scaled_in),
        "still scaling in and out after an hour of the same load"
    );
    assert!(
        m.queued < 40,
        "the load was kept up with: {} queued",
        m.queued
    );
}

#[tokio::test(start_paused = true)]
async fn bursts_and_lulls_never_exceed_max_blocks() {
    let mut m = Model::new(settings());
    let mut seed: u64 = 11;
    for i in 0..2_000u64 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        if i % 97 < 10 {
            m.arrive((seed >> 40) % 50);
        }
        m.tick();
        advance(PERIOD).await;
    }
    m.run_for(Duration::from_secs(60)).await;
    assert_eq!(m.done, m.arrived);
    assert!(m.most_blocks <= 3);
    assert_eq!(m.killed_busy, 0, "a busy worker was killed");
    assert!(m.drains > 0, "lulls past max_idletime scale in");
}

#[tokio::test(start_paused = true)]
async fn init_and_min_blocks_hold_with_no_work() {
    let mut s = settings();
    s.init_blocks = 2;
    s.min_blocks = 1;
    let mut m = Model::new(s);
    m.tick();
    assert_eq!(m.submits, 2, "init_blocks at start");
    m.run_for(Duration::from_secs(60)).await;
    assert_eq!(
        m.strategy.blocks().count(),
        1,
        "down to min_blocks when idle"
    );
    assert_eq!(m.submits, 2);
}

#[tokio::test(start_paused = true)]
async fn a_provider_that_keeps_failing_is_asked_less_and_less() {
    let mut st = Strategy::new(settings(), "ep");
    let load = Load {
        queued: 10,
        ..Load::default()
    };
    let mut asked = Vec::new();
    for _ in 0..120 {
        let now = Instant::now();
        for a in st.decide(&load, now) {
            if let Action::Submit { block, .. } = a {
                asked.push(now);
                let e = st.submitted(&block, Err("sbatch: error: invalid partition".into()), now);
                assert!(matches!(e, Some(Event::SubmitFailed { .. })));
            }
        }
        advance(PERIOD).await;
    }
    // Three at first; then one at a time, each wait twice the last.
    let gaps: Vec<u64> = asked.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
    assert!(asked.len() <= 8, "asked {} times: {gaps:?}", asked.len());
    assert!(gaps.windows(2).all(|w| w[1] >= w[0]), "{gaps:?}");
}
