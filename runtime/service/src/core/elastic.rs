//! Elastic endpoints: the manager's view of its endpoint (queue, running
//! tasks, workers by block), the blocks it reports for `ferry status`, and
//! draining a block's workers so that scale-in never kills a busy one.

use tokio::sync::mpsc;

use super::{Board, Broker, Error, Result, ToEndpoint};

/// One connected agent of an endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerView {
    pub session: u64,
    /// The block it said it belongs to; empty for an agent started by hand.
    pub block: String,
    pub capacity: u32,
    pub in_flight: u32,
    pub draining: bool,
    pub last_seen_ms: i64,
}

/// One block as an endpoint's manager reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockReport {
    pub id: String,
    pub job: String,
    pub phase: String,
    pub workers: u32,
    pub in_flight: u32,
}

/// What an endpoint's manager last said of its blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManagerReport {
    /// `local`, `slurm`, `kubernetes`.
    pub provider: String,
    pub blocks: Vec<BlockReport>,
    pub at_ms: i64,
}

/// An endpoint's load, as its manager weighs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadView {
    /// Tasks waiting for a slot.
    pub queued: u64,
    /// Tasks leased to its workers and not yet answered.
    pub running: u64,
    pub workers: Vec<WorkerView>,
}

impl Board {
    pub(crate) fn workers(&self, endpoint: &str) -> Vec<WorkerView> {
        let mut workers: Vec<WorkerView> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.endpoint == endpoint)
            .map(|(&session, s)| WorkerView {
                session,
                block: s.block.clone(),
                capacity: s.capacity,
                in_flight: s.in_flight.len() as u32,
                draining: s.draining,
                last_seen_ms: s.last_seen_ms,
            })
            .collect();
        workers.sort_by_key(|w| w.session);
        workers
    }
}

impl Broker {
    /// A manager's period: keeps what it reports of its blocks and answers
    /// with the endpoint's load.
    pub fn manager_report(&self, endpoint: &str, mut report: ManagerReport) -> Result<LoadView> {
        report.at_ms = ferry_proto::now_ms();
        let (view, new_name) = {
            let mut b = self.board();
            b.facts.entry(endpoint.to_owned()).or_default().manager = Some(report);
            let workers = b.workers(endpoint);
            let view = LoadView {
                queued: b.queued(endpoint) as u64,
                running: workers.iter().map(|w| u64::from(w.in_flight)).sum(),
                workers,
            };
            (view, b.known_endpoints.insert(endpoint.to_owned()))
        };
        if new_name {
            self.store.put_endpoint(endpoint).map_err(Error::internal)?;
        }
        Ok(view)
    }

    /// Tells the workers of `block` to take no more tasks, finish what they
    /// hold and exit; they get no credits from now on. Returns how many were
    /// told (0: none of that block is connected, which a manager may meet
    /// when a block's workers left on their own).
    pub fn drain(&self, endpoint: &str, block: &str) -> Result<u32> {
        if block.is_empty() {
            return Err(Error::invalid(
                "drain needs a block: agents started by hand are stopped by their owners",
            ));
        }
        let mut b = self.board();
        let mut told = 0;
        for (sid, s) in b.sessions.iter_mut() {
            if s.endpoint != endpoint || s.block != block {
                continue;
            }
            if !s.draining {
                s.draining = true;
                s.credits = 0;
                tracing::info!(
                    session = sid,
                    endpoint,
                    block,
                    in_flight = s.in_flight.len(),
                    "draining"
                );
                // Behind whatever tasks are already on their way to it, so
                // it comes after them.
                if let Err(mpsc::error::TrySendError::Full(m)) =
                    s.outbox.try_send(ToEndpoint::Drain)
                    && let Ok(rt) = tokio::runtime::Handle::try_current()
                {
                    let outbox = s.outbox.clone();
                    rt.spawn(async move { outbox.send(m).await });
                }
            }
            told += 1;
        }
        Ok(told)
    }
}
