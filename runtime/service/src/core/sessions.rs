//! Endpoint sessions: opened by a `Hello`, fed by credits, kept alive by
//! heartbeats that renew the leases of the tasks they list, and lost on
//! disconnect or silence.

use ferry_policy::{Grants, Offer};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Broker, Error, Hello, ManagerReport, Result, Session, ToEndpoint, WorkerView};

/// One endpoint name as the service sees it, for `ferry status`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointView {
    pub name: String,
    pub sessions: u32,
    pub capacity: u32,
    pub in_flight: u32,
    pub queued: u64,
    pub last_heartbeat_ms: i64,
    /// What its live sessions (or, with none live, its last ones) offer,
    /// each thing once.
    pub offers: Vec<Offer>,
    pub tasks_run: u64,
    /// Its connected agents, in the order they joined.
    pub workers: Vec<WorkerView>,
    /// What its manager last reported, if it is elastic.
    pub manager: Option<ManagerReport>,
}

impl Broker {
    /// Opens a session for an endpoint. It gets tasks once it sends
    /// credits.
    pub fn open_session(&self, hello: Hello) -> Result<(u64, mpsc::Receiver<ToEndpoint>)> {
        let name = hello.name.trim().to_owned();
        if name.is_empty() {
            return Err(Error::invalid("an endpoint needs a name"));
        }
        let (tx, rx) = mpsc::channel(self.rules.session_buffer.max(1));
        let (sid, new_name) = {
            let mut b = self.board();
            let sid = b.fresh_id();
            b.sessions.insert(
                sid,
                Session {
                    endpoint: name.clone(),
                    outbox: tx,
                    credits: 0,
                    capacity: hello.concurrency,
                    in_flight: Default::default(),
                    suspect: None,
                    last_seen: Instant::now(),
                    last_seen_ms: ferry_proto::now_ms(),
                    grants: Grants::new(name.clone(), hello.offers.clone()),
                    block: hello.block.clone(),
                    draining: false,
                },
            );
            b.gather_facts(&name);
            (sid, b.known_endpoints.insert(name.clone()))
        };
        if new_name {
            self.store.put_endpoint(&name).map_err(Error::internal)?;
        }
        tracing::info!(session = sid, endpoint = %name, block = %hello.block, version = %hello.version, "session opened");
        Ok((sid, rx))
    }

    /// More free slots on a session: the broker may lease it this many more
    /// tasks.
    pub fn add_credits(&self, sid: u64, credits: u32) -> Result<()> {
        self.transition(|txn| {
            if let Some(s) = txn.board.sessions.get_mut(&sid)
                && !s.draining
            {
                s.credits = s.credits.saturating_add(credits);
                let endpoint = s.endpoint.clone();
                txn.wake(endpoint);
            }
            Ok(())
        })
    }

    /// A sign of life from a session, with the tasks it holds: their leases
    /// are renewed. Tasks it lists that it does not hold a lease for are
    /// cancelled on it (their lease expired and they went elsewhere).
    pub fn heartbeat(&self, sid: u64, holding: Option<&[String]>) {
        let now = Instant::now();
        let mut b = self.board();
        let Some(s) = b.sessions.get_mut(&sid) else {
            return;
        };
        s.last_seen = now;
        s.last_seen_ms = ferry_proto::now_ms();
        let Some(holding) = holding else {
            return;
        };
        let deadline = now + self.rules.lease_timeout;
        let mut stale = Vec::new();
        for id in holding {
            match b.leases.get_mut(id) {
                Some(l) if l.session == sid => l.deadline = deadline,
                _ => stale.push(id.clone()),
            }
        }
        if !stale.is_empty()
            && let Some(s) = b.sessions.get(&sid)
        {
            tracing::info!(
                session = sid,
                tasks = stale.len(),
                "a session holds tasks it has no lease for; cancelling them there"
            );
            let _ = s.outbox.try_send(ToEndpoint::Cancel(stale));
        }
    }

    /// A session that ended (disconnect, silence): each task it held comes
    /// back, counting a loss.
    pub fn session_lost(&self, sid: u64) -> Result<()> {
        self.transition(|txn| {
            let Some(session) = txn.board.sessions.remove(&sid) else {
                return Ok(());
            };
            tracing::info!(session = sid, endpoint = %session.endpoint, in_flight = session.in_flight.len(), "session lost");
            txn.board
                .facts
                .entry(session.endpoint.clone())
                .or_default()
                .last_heartbeat_ms = session.last_seen_ms;
            txn.board.gather_facts(&session.endpoint);
            let why = format!("session {sid} ended");
            let mut ids: Vec<String> = session.in_flight.into_iter().collect();
            // Back to the front in their original order.
            ids.sort_by(|a, b| b.cmp(a));
            for id in ids {
                if txn.board.leases.get(&id).is_some_and(|l| l.session == sid) {
                    txn.lost(&id, &why);
                }
            }
            Ok(())
        })
    }

    /// Drops sessions silent past the heartbeat timeout and takes back tasks
    /// whose leases expired. Returns how many leases expired.
    pub fn expire(&self, now: Instant) -> Result<usize> {
        let silent: Vec<u64> = self
            .board()
            .sessions
            .iter()
            .filter(|(_, s)| {
                now.saturating_duration_since(s.last_seen) > self.rules.heartbeat_timeout
            })
            .map(|(id, _)| *id)
            .collect();
        for sid in silent {
            tracing::warn!(
                session = sid,
                "a session missed its heartbeats; dropping it"
            );
            self.session_lost(sid)?;
        }
        self.transition(|txn| {
            let mut expired: Vec<(String, u64)> = txn
                .board
                .leases
                .iter()
                .filter(|(_, l)| l.deadline <= now)
                .map(|(id, l)| (id.clone(), l.session))
                .collect();
            expired.sort();
            for (id, session) in &expired {
                txn.board.leases_expired += 1;
                txn.lost(id, &format!("its lease on session {session} expired"));
            }
            Ok(expired.len())
        })
    }

    /// Endpoint names with their sessions, queues and what they lend.
    pub fn endpoints(&self) -> Vec<EndpointView> {
        let b = self.board();
        let mut names: Vec<&String> = b.known_endpoints.iter().collect();
        names.sort();
        names
            .into_iter()
            .map(|name| {
                let sessions: Vec<&Session> = b
                    .sessions
                    .values()
                    .filter(|x| &x.endpoint == name)
                    .collect();
                let facts = b.facts.get(name).cloned().unwrap_or_default();
                EndpointView {
                    name: name.clone(),
                    sessions: sessions.len() as u32,
                    capacity: sessions.iter().map(|x| x.capacity).sum(),
                    in_flight: sessions.iter().map(|x| x.in_flight.len() as u32).sum(),
                    queued: b.queued(name) as u64,
                    last_heartbeat_ms: sessions
                        .iter()
                        .map(|x| x.last_seen_ms)
                        .max()
                        .unwrap_or(facts.last_heartbeat_ms),
                    offers: {
                        let mut offers: Vec<Offer> = Vec::new();
                        for g in facts.grants.iter().flatten() {
                            for o in g.offers() {
                                if !offers.contains(o) {
                                    offers.push(o.clone());
                                }
                            }
                        }
                        offers
                    },
                    tasks_run: facts.tasks_run,
                    workers: b.workers(name),
                    manager: facts.manager,
                }
            })
            .collect()
    }

    /// What the service knows of an endpoint name when it checks a
    /// submission: `None` for a name it does not know; inside, the grants
    /// of its live (or last) sessions, `None` when no session ever said.
    pub fn endpoint_grants(&self, name: &str) -> Option<Option<Vec<Grants>>> {
        let b = self.board();
        if !b.known_endpoints.contains(name) {
            return None;
        }
        Some(b.facts.get(name).and_then(|f| f.grants.clone()))
    }
}
