//! Per-user quotas: requests a second, unfinished tasks, bytes uploaded an
//! hour, and bytes of blobs held (kept with the blob grants). Past one the answer is `RESOURCE_EXHAUSTED`, naming the quota
//! and its value, with a hint of when to try again; clients back off on it.
//!
//! Rates are token buckets (a burst of a second's worth of requests, an
//! hour's worth of bytes), kept in memory: a restart forgives.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use crate::core::Exceeded;
use crate::core::Principal;

/// Quotas every user is held to; `None` is no quota. Admins are held to
/// none (they run the service), nor are endpoint credentials: an endpoint's
/// calls are the service's own work.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quotas {
    pub requests_per_second: Option<u32>,
    /// Unfinished (queued, waiting or running) tasks a user may have.
    pub queued_tasks: Option<usize>,
    /// Bytes of components and blobs a user may upload an hour.
    pub upload_bytes_per_hour: Option<u64>,
    /// Bytes of blobs a user may hold: those they uploaded and those their
    /// tasks wrote, until a gc removes them.
    pub blob_store_bytes: Option<u64>,
}

/// The metadata key on a quota's refusal: the quota's name.
pub const QUOTA_METADATA: &str = "ferry-quota";
/// The metadata key on a quota's refusal: milliseconds to wait.
pub const RETRY_AFTER_METADATA: &str = "ferry-retry-after-ms";

struct Bucket {
    level: f64,
    at: Instant,
}

impl Bucket {
    /// Takes `amount` from a bucket of `capacity` that refills at `rate` a
    /// second; else how long until it could.
    fn take(
        &mut self,
        amount: f64,
        capacity: f64,
        rate: f64,
        now: Instant,
    ) -> Result<(), Duration> {
        self.level = (self.level + now.duration_since(self.at).as_secs_f64() * rate).min(capacity);
        self.at = now;
        if self.level >= amount {
            self.level -= amount;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                ((amount.min(capacity) - self.level) / rate).max(0.001),
            ))
        }
    }
}

/// The buckets of every user, for one service.
pub(crate) struct Meter {
    quotas: Quotas,
    requests: Mutex<HashMap<String, Bucket>>,
    uploads: Mutex<HashMap<String, Bucket>>,
}

impl Meter {
    pub(crate) fn new(quotas: Quotas) -> Meter {
        Meter {
            quotas,
            requests: Mutex::new(HashMap::new()),
            uploads: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request by `who`.
    pub(crate) fn request(&self, who: &Principal, now: Instant) -> Result<(), Exceeded> {
        let Some(rps) = self.quotas.requests_per_second else {
            return Ok(());
        };
        if who.admin || who.endpoint.is_some() {
            return Ok(());
        }
        let rate = f64::from(rps.max(1));
        charge(&self.requests, &who.user, 1.0, rate, rate, now).map_err(|retry_after| Exceeded {
            quota: "requests-per-second",
            message: format!(
                "quota requests-per-second ({rps}) reached for user `{}`; retry in {} ms",
                who.user,
                retry_after.as_millis()
            ),
            retry_after,
        })
    }

    /// Counts `bytes` uploaded by `who`.
    pub(crate) fn upload(&self, who: &Principal, bytes: u64, now: Instant) -> Result<(), Exceeded> {
        let Some(per_hour) = self.quotas.upload_bytes_per_hour else {
            return Ok(());
        };
        if who.admin || who.endpoint.is_some() {
            return Ok(());
        }
        if bytes > per_hour {
            // No wait would let it through.
            return Err(Exceeded {
                quota: "upload-bytes-per-hour",
                message: format!(
                    "quota upload-bytes-per-hour ({per_hour}) is below this upload of {bytes} bytes by user `{}`",
                    who.user
                ),
                retry_after: Duration::ZERO,
            });
        }
        let capacity = per_hour as f64;
        charge(&self.uploads, &who.user, bytes as f64, capacity, capacity / 3600.0, now).map_err(
            |retry_after| Exceeded {
                quota: "upload-bytes-per-hour",
                message: format!(
                    "quota upload-bytes-per-hour ({per_hour}) reached for user `{}`; {bytes} more bytes fit in {} s",
                    who.user,
                    retry_after.as_secs().max(1)
                ),
                retry_after,
            },
        )
    }
}

fn charge(
    buckets: &Mutex<HashMap<String, Bucket>>,
    user: &str,
    amount: f64,
    capacity: f64,
    rate: f64,
    now: Instant,
) -> Result<(), Duration> {
    let mut buckets = buckets.lock().unwrap_or_else(|p| p.into_inner());
    let bucket = match buckets.get_mut(user) {
        Some(b) => b,
        None => buckets.entry(user.to_owned()).or_insert(Bucket {
            level: capacity,
            at: now,
        }),
    };
    bucket.take(amount, capacity, rate, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_a_seconds_requests_then_the_rate() {
        let m = Meter::new(Quotas {
            requests_per_second: Some(10),
            ..Quotas::default()
        });
        let ada = Principal::new("ada", false, "t");
        let bob = Principal::new("bob", false, "u");
        let t0 = Instant::now();
        for _ in 0..10 {
            m.request(&ada, t0).unwrap();
        }
        let e = m.request(&ada, t0).unwrap_err();
        assert_eq!(e.quota, "requests-per-second");
        assert!(
            e.message.contains("(10)") && e.message.contains("`ada`"),
            "{}",
            e.message
        );
        assert!(e.retry_after > Duration::ZERO && e.retry_after <= Duration::from_millis(100));
        // Another user has a bucket of their own.
        m.request(&bob, t0).unwrap();
        // A tenth of a second later, one more fits.
        m.request(&ada, t0 + Duration::from_millis(100)).unwrap();
        assert!(m.request(&ada, t0 + Duration::from_millis(100)).is_err());
    }

    #[test]
    fn uploads_are_counted_in_bytes_an_hour() {
        let m = Meter::new(Quotas {
            upload_bytes_per_hour: Some(3600),
            ..Quotas::default()
        });
        let ada = Principal::new("ada", false, "t");
        let t0 = Instant::now();
        m.upload(&ada, 3000, t0).unwrap();
        let e = m.upload(&ada, 1000, t0).unwrap_err();
        assert_eq!(e.quota, "upload-bytes-per-hour");
        // 400 bytes short, at a byte a second.
        assert_eq!(e.retry_after.as_secs(), 400);
        m.upload(&ada, 1000, t0 + Duration::from_secs(400)).unwrap();
        let too_big = m.upload(&ada, 4000, t0).unwrap_err();
        assert_eq!(too_big.retry_after, Duration::ZERO);
    }

    #[test]
    fn endpoints_and_unset_quotas_are_not_metered() {
        let m = Meter::new(Quotas::default());
        let ada = Principal::new("ada", false, "t");
        for _ in 0..10_000 {
            m.request(&ada, Instant::now()).unwrap();
        }
        let m = Meter::new(Quotas {
            requests_per_second: Some(1),
            ..Quotas::default()
        });
        let mut ep = Principal::new("ada", false, "t");
        ep.endpoint = Some("lab".into());
        for _ in 0..100 {
            m.request(&ep, Instant::now()).unwrap();
        }
    }
}
