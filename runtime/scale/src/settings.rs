//! How an elastic endpoint sizes itself: Parsl's block settings, checked
//! once when the endpoint starts.

use std::time::Duration;

/// The strategy's settings (`[provider]` in an endpoint's config).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Blocks kept even with nothing to do.
    pub min_blocks: u32,
    /// Blocks asked for when the endpoint starts, whatever the queue.
    pub init_blocks: u32,
    /// Blocks never exceeded, counting pending and draining ones.
    pub max_blocks: u32,
    /// Worker agents a block runs (one per node of a Slurm block).
    pub workers_per_block: u32,
    /// Tasks one worker runs at once: a block holds
    /// `workers_per_block × worker_slots` tasks.
    pub worker_slots: u32,
    /// How much of the outstanding work to cover with blocks, from 0 (one
    /// block whenever there is work) to 1 (a slot for every task).
    pub parallelism: f64,
    /// How long every worker of a block must be idle before it is drained.
    pub max_idletime: Duration,
    /// How often the strategy looks at the queue.
    pub period: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            min_blocks: 0,
            init_blocks: 0,
            max_blocks: 1,
            workers_per_block: 1,
            worker_slots: 1,
            parallelism: 1.0,
            max_idletime: Duration::from_secs(120),
            period: Duration::from_secs(5),
        }
    }
}

/// A setting that cannot work, named.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("provider setting `{setting}`: {problem}")]
pub struct InvalidSetting {
    pub setting: &'static str,
    pub problem: String,
}

impl Settings {
    /// Checks the settings against each other.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let bad = |setting, problem: String| Err(InvalidSetting { setting, problem });
        if self.max_blocks == 0 {
            return bad("max_blocks", "must be at least 1".into());
        }
        if self.min_blocks > self.max_blocks {
            return bad(
                "min_blocks",
                format!(
                    "{} is more than max_blocks ({})",
                    self.min_blocks, self.max_blocks
                ),
            );
        }
        if self.init_blocks > self.max_blocks {
            return bad(
                "init_blocks",
                format!(
                    "{} is more than max_blocks ({})",
                    self.init_blocks, self.max_blocks
                ),
            );
        }
        if self.workers_per_block == 0 {
            return bad("workers_per_block", "must be at least 1".into());
        }
        if self.worker_slots == 0 {
            return bad("concurrency", "a worker needs at least one slot".into());
        }
        if !(0.0..=1.0).contains(&self.parallelism) {
            return bad(
                "parallelism",
                format!("{} is not between 0 and 1", self.parallelism),
            );
        }
        if self.period.is_zero() {
            return bad("strategy_period", "must be longer than zero".into());
        }
        Ok(())
    }

    /// Tasks one block holds at once.
    pub fn block_slots(&self) -> u64 {
        u64::from(self.workers_per_block) * u64::from(self.worker_slots)
    }

    /// Blocks that `outstanding` tasks (queued and running) call for,
    /// within `min_blocks..=max_blocks`.
    pub fn blocks_for(&self, outstanding: u64) -> u32 {
        let wanted = if outstanding == 0 {
            0
        } else {
            let covered = (outstanding as f64 * self.parallelism).ceil() as u64;
            covered.div_ceil(self.block_slots()).max(1)
        };
        wanted.clamp(u64::from(self.min_blocks), u64::from(self.max_blocks)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_follow_the_outstanding_work_within_the_bounds() {
        let s = Settings {
            min_blocks: 1,
            max_blocks: 4,
            workers_per_block: 2,
            worker_slots: 4,
            ..Settings::default()
        };
        assert_eq!(s.blocks_for(0), 1, "min_blocks holds with no work");
        assert_eq!(s.blocks_for(8), 1);
        assert_eq!(s.blocks_for(9), 2);
        assert_eq!(s.blocks_for(1_000), 4, "max_blocks caps it");
        let half = Settings {
            parallelism: 0.5,
            ..s.clone()
        };
        assert_eq!(half.blocks_for(32), 2);
        let one = Settings {
            min_blocks: 0,
            parallelism: 0.0,
            ..s
        };
        assert_eq!(one.blocks_for(0), 0);
        assert_eq!(
            one.blocks_for(1_000),
            1,
            "parallelism 0: one block for any work"
        );
    }

    #[test]
    fn contradictory_settings_are_named() {
        let s = Settings {
            min_blocks: 3,
            max_blocks: 2,
            ..Settings::default()
        };
        let e = s.validate().unwrap_err();
        assert_eq!(e.setting, "min_blocks");
        assert_eq!(
            e.to_string(),
            "provider setting `min_blocks`: 3 is more than max_blocks (2)"
        );
        let p = Settings {
            parallelism: 1.5,
            ..Settings::default()
        };
        assert_eq!(p.validate().unwrap_err().setting, "parallelism");
        assert!(Settings::default().validate().is_ok());
    }
}
