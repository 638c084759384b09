//! Backing off on a quota: a call the service refused for a user's quota
//! (`RESOURCE_EXHAUSTED`, marked with the quota's name) is tried again after
//! the wait the service hints, growing, until the client's patience ends.
//! Refusals no wait would change (a payload past a cap) return at once.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// The metadata keys the service marks a quota's refusal with.
const QUOTA_METADATA: &str = "ferry-quota";
const RETRY_AFTER_METADATA: &str = "ferry-retry-after-ms";

const FIRST_WAIT: Duration = Duration::from_millis(50);
const LONGEST_WAIT: Duration = Duration::from_secs(5);

/// How long the service says to wait, if `s` is a quota's refusal that a
/// wait can lift.
fn retry_after(s: &tonic::Status) -> Option<Option<Duration>> {
    if s.code() != tonic::Code::ResourceExhausted || s.metadata().get(QUOTA_METADATA).is_none() {
        return None;
    }
    let hint = s
        .metadata()
        .get(RETRY_AFTER_METADATA)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .map(Duration::from_millis);
    match hint {
        // The service says no wait would do.
        Some(d) if d.is_zero() => None,
        hint => Some(hint),
    }
}

/// Runs `call` until it is not refused for a quota, or `patience` is spent.
pub(crate) async fn patiently<T, F, Fut>(
    patience: Duration,
    mut call: F,
) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let start = Instant::now();
    let mut wait = FIRST_WAIT;
    loop {
        let status = match call().await {
            Err(s) => s,
            ok => return ok,
        };
        let Some(hint) = retry_after(&status) else {
            return Err(status);
        };
        // The hint, but never less than the growing wait, and a little
        // spread so that many clients do not return at once.
        let pause = hint
            .unwrap_or(wait)
            .max(wait)
            .min(LONGEST_WAIT.max(hint.unwrap_or_default()));
        let spread = pause.mul_f64(f64::from(start.elapsed().subsec_nanos() % 1000) / 4000.0);
        if start.elapsed() + pause > patience {
            return Err(status);
        }
        tokio::time::sleep(pause + spread).await;
        wait = (wait * 2).min(LONGEST_WAIT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(ms: &str) -> tonic::Status {
        let mut s = tonic::Status::resource_exhausted("quota queued-tasks (2) reached");
        s.metadata_mut()
            .insert(QUOTA_METADATA, "queued-tasks".parse().unwrap());
        s.metadata_mut()
            .insert(RETRY_AFTER_METADATA, ms.parse().unwrap());
        s
    }

    #[tokio::test(start_paused = true)]
    async fn a_quota_refusal_is_tried_again_until_it_passes() {
        let mut tries = 0;
        let began = tokio::time::Instant::now();
        let r = patiently(Duration::from_secs(60), || {
            tries += 1;
            let n = tries;
            async move { if n < 4 { Err(quota("100")) } else { Ok(n) } }
        })
        .await;
        assert_eq!(r.unwrap(), 4);
        // Three waits of at least the hint each.
        assert!(began.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn other_refusals_and_hopeless_quotas_return_at_once() {
        let mut tries = 0;
        let r: Result<(), _> = patiently(Duration::from_secs(60), || {
            tries += 1;
            async { Err(tonic::Status::resource_exhausted("blob over the cap")) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(tries, 1);
        let mut tries = 0;
        let r: Result<(), _> = patiently(Duration::from_secs(60), || {
            tries += 1;
            async { Err(quota("0")) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(tries, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn patience_ends_the_retries() {
        let began = tokio::time::Instant::now();
        let r: Result<(), _> =
            patiently(Duration::from_secs(10), || async { Err(quota("1000")) }).await;
        let s = r.unwrap_err();
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert!(began.elapsed() <= Duration::from_secs(10));
        assert!(began.elapsed() >= Duration::from_secs(5));
    }
}
