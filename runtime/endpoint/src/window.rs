//! How many tasks an endpoint asks the service for: enough to keep its
//! workers busy across a round trip to the service, and no more.
//!
//! Credits are a window, as in TCP: each one lets the service send one
//! task, and it is used up when that task ends here. A window of
//! `concurrency` alone leaves workers idle for a round trip after every
//! task, which caps short tasks at `concurrency / RTT` a second. So, unless
//! the owner fixes a prefetch, the window grows to hold [`AHEAD`] of work
//! beyond the running tasks, judged by how long tasks here take; long tasks
//! keep it at `2 × concurrency`, so that they stay spread across endpoints.

use std::time::Duration;

/// Work to hold here beyond what runs: longer than a round trip to a
/// service on a LAN.
const AHEAD: Duration = Duration::from_millis(5);

/// The most tasks held beyond those running.
const MAX_PREFETCH: u32 = 1024;

pub(crate) struct Window {
    concurrency: u32,
    /// A prefetch the owner set: the window is fixed.
    fixed: Option<u32>,
    /// Credits granted and not used up by a task that ended.
    open: u32,
    /// Mean time a task takes here, in nanoseconds (moving average).
    mean_ns: Option<f64>,
}

impl Window {
    pub(crate) fn new(concurrency: u32, prefetch: Option<u32>) -> Window {
        Window {
            concurrency: concurrency.max(1),
            fixed: prefetch,
            open: 0,
            mean_ns: None,
        }
    }

    /// Credits to grant when the session opens.
    pub(crate) fn open(&mut self) -> u32 {
        self.grant()
    }

    /// `n` tasks ran to their end, taking `ran` in all: the credits to grant
    /// now.
    pub(crate) fn ended(&mut self, n: u32, ran: Duration) -> u32 {
        if n > 0 {
            let each = ran.as_nanos() as f64 / f64::from(n);
            self.mean_ns = Some(match self.mean_ns {
                None => each,
                Some(m) => m + (each - m) * 0.2,
            });
        }
        self.freed(n)
    }

    /// `n` tasks left without running to their end (cancelled): the credits
    /// to grant now.
    pub(crate) fn freed(&mut self, n: u32) -> u32 {
        self.open = self.open.saturating_sub(n);
        self.grant()
    }

    fn grant(&mut self) -> u32 {
        let give = self.target().saturating_sub(self.open);
        self.open += give;
        give
    }

    /// The window now: running tasks plus those held ready.
    pub(crate) fn target(&self) -> u32 {
        let prefetch = match (self.fixed, self.mean_ns) {
            (Some(p), _) => p,
            (None, None) => self.concurrency,
            (None, Some(mean)) => {
                let per_worker = AHEAD.as_nanos() as f64 / mean.max(1.0);
                let ahead = (per_worker * f64::from(self.concurrency)).min(f64::from(MAX_PREFETCH));
                (ahead as u32).clamp(self.concurrency, MAX_PREFETCH.max(self.concurrency))
            }
        };
        self.concurrency.saturating_add(prefetch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_tasks_open_the_window_and_long_ones_keep_it_at_twice_the_workers() {
        let mut w = Window::new(2, None);
        assert_eq!(
            w.open(),
            4,
            "before any task ends: concurrency + concurrency"
        );
        // Four tasks of 20 µs each: 5 ms holds 250 per worker, capped.
        let give = w.ended(4, Duration::from_micros(80));
        assert_eq!(w.target(), 2 + 500);
        assert_eq!(give, 502, "the four used up, and the window grown");
        // Tasks that take a second each shrink it back: nothing is granted
        // until the window is under its target again.
        let mut granted = 0;
        for _ in 0..600 {
            granted += w.ended(1, Duration::from_secs(1));
        }
        assert_eq!(w.target(), 4);
        assert_eq!(w.open, 4);
        assert!(granted < 600 - 490, "{granted} granted while shrinking");
        assert_eq!(
            w.ended(1, Duration::from_secs(1)),
            1,
            "one ended, one granted"
        );
    }

    #[test]
    fn a_fixed_prefetch_fixes_the_window_and_cancels_give_credits_back() {
        let mut w = Window::new(3, Some(1));
        assert_eq!(w.open(), 4);
        assert_eq!(w.ended(2, Duration::from_nanos(10)), 2);
        assert_eq!(w.target(), 4, "fixed, however short the tasks");
        assert_eq!(w.freed(1), 1);
        assert_eq!(w.freed(0), 0);
    }

    #[test]
    fn the_window_never_passes_its_cap() {
        let mut w = Window::new(2, None);
        w.open();
        w.ended(1_000, Duration::from_nanos(1));
        assert_eq!(w.target(), 2 + MAX_PREFETCH);
        assert_eq!(w.open, 2 + MAX_PREFETCH);
    }
}
