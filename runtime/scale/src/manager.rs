//! The manager: each period it reads the provider's jobs and the endpoint's
//! load, lets the [`Strategy`] decide, and carries the decisions out. What
//! it knows of the service comes through [`Fabric`], so that it holds no
//! transport type and is tested with a fabric of the test's own.

use std::collections::BTreeMap;
use std::path::PathBuf;

use futures::future::BoxFuture;
use tokio::time::Instant;

use crate::provider::{BlockSpec, JobEnd, JobId, Provider};
use crate::strategy::{Action, Event, Load, Strategy};

/// The service as the manager needs it.
pub trait Fabric: Send + Sync {
    /// The endpoint's queue, running tasks and connected workers.
    fn load(&self) -> BoxFuture<'_, anyhow::Result<Load>>;

    /// Tells a block's workers to take no more tasks, finish what they hold
    /// and exit.
    fn drain<'a>(&'a self, block: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// How each block's workers are started: the worker program and the
/// environment they share. `FERRY_BLOCK` is added per block.
#[derive(Debug, Clone, PartialEq)]
pub struct Workers {
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Blocks keep their scripts and output in a folder of their own here.
    pub work_dir: PathBuf,
}

/// What one period did, in the order it happened; each carries its reason
/// so that the log says why the endpoint grew or shrank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Submitted {
        block: String,
        job: JobId,
        reason: String,
    },
    SubmitFailed {
        block: String,
        error: String,
    },
    Cancelled {
        block: String,
        job: JobId,
        reason: String,
    },
    Drained {
        block: String,
        reason: String,
    },
    /// A block's job ended; `expected` is false when nobody here asked.
    Ended {
        block: String,
        job: JobId,
        end: JobEnd,
        expected: bool,
    },
    /// The provider or the service could not be asked; the period was
    /// skipped in part.
    Unavailable {
        what: &'static str,
        error: String,
    },
}

/// Runs a [`Strategy`] against a provider and the service.
pub struct Manager<P, F> {
    strategy: Strategy,
    provider: P,
    fabric: F,
    workers: Workers,
}

impl<P: Provider, F: Fabric> Manager<P, F> {
    pub fn new(strategy: Strategy, provider: P, fabric: F, workers: Workers) -> Self {
        Manager {
            strategy,
            provider,
            fabric,
            workers,
        }
    }

    pub fn strategy(&self) -> &Strategy {
        &self.strategy
    }

    pub fn provider(&self) -> &P {
        &self.provider
    }

    pub fn fabric(&self) -> &F {
        &self.fabric
    }

    /// One period: jobs first (so that a block ended at its walltime is
    /// known before the load is weighed), then the load, then the actions.
    pub async fn step(&mut self, now: Instant) -> Vec<Decision> {
        let mut done = Vec::new();
        let jobs = self.strategy.jobs();
        if !jobs.is_empty() {
            let ids: Vec<JobId> = jobs.iter().map(|(_, j)| j.clone()).collect();
            match self.provider.status(&ids).await {
                Ok(states) => {
                    let seen: Vec<_> = jobs.into_iter().map(|(b, _)| b).zip(states).collect();
                    for e in self.strategy.observe_jobs(&seen, now) {
                        done.push(from_event(e));
                    }
                }
                Err(e) => done.push(Decision::Unavailable {
                    what: "the provider's job states",
                    error: format!("{e:#}"),
                }),
            }
        }
        let load = match self.fabric.load().await {
            Ok(load) => load,
            Err(e) => {
                done.push(Decision::Unavailable {
                    what: "the endpoint's load",
                    error: format!("{e:#}"),
                });
                return done;
            }
        };
        for action in self.strategy.decide(&load, now) {
            match action {
                Action::Submit { block, reason } => {
                    let spec = self.spec(&block);
                    let got = self
                        .provider
                        .submit(&spec)
                        .await
                        .map_err(|e| format!("{e:#}"));
                    match self.strategy.submitted(&block, got.clone(), now) {
                        None => done.push(Decision::Submitted {
                            block,
                            job: got.expect("a submit the strategy took"),
                            reason,
                        }),
                        Some(e) => done.push(from_event(e)),
                    }
                }
                Action::Cancel { block, job, reason } => match self.provider.cancel(&job).await {
                    Ok(()) => done.push(Decision::Cancelled { block, job, reason }),
                    Err(e) => done.push(Decision::Unavailable {
                        what: "the provider's cancel",
                        error: format!("{e:#}"),
                    }),
                },
                Action::Drain { block, reason } => match self.fabric.drain(&block).await {
                    Ok(()) => done.push(Decision::Drained { block, reason }),
                    Err(e) => done.push(Decision::Unavailable {
                        what: "the service's drain",
                        error: format!("{e:#}"),
                    }),
                },
            }
        }
        done
    }

    /// Ends every block's job: the manager is stopping, and no block should
    /// outlive it. Tasks the workers held come back through their leases.
    pub async fn shutdown(&mut self) -> Vec<Decision> {
        let mut done = Vec::new();
        for (block, job) in self.strategy.jobs() {
            match self.provider.cancel(&job).await {
                Ok(()) => done.push(Decision::Cancelled {
                    block,
                    job,
                    reason: "the endpoint manager is stopping".into(),
                }),
                Err(e) => done.push(Decision::Unavailable {
                    what: "the provider's cancel",
                    error: format!("{e:#}"),
                }),
            }
        }
        done
    }

    fn spec(&self, block: &str) -> BlockSpec {
        let mut env = self.workers.env.clone();
        env.insert("FERRY_BLOCK".into(), block.to_owned());
        BlockSpec {
            block: block.to_owned(),
            workers: self.strategy.settings().workers_per_block,
            command: self.workers.command.clone(),
            env,
            work_dir: self.workers.work_dir.join(block),
        }
    }
}

fn from_event(e: Event) -> Decision {
    match e {
        Event::Ended {
            block,
            job,
            end,
            expected,
        } => Decision::Ended {
            block,
            job,
            end,
            expected,
        },
        Event::SubmitFailed { block, error, .. } => Decision::SubmitFailed { block, error },
    }
}

#[cfg(test)]
#[path = "manager_tests.rs"]
mod tests;
