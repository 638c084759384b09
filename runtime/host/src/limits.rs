use std::time::Duration;

use crate::Error;

/// Per-call limits. Every call gets its own; nothing one call does can spend
/// another's budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time for instantiation plus the call, enforced by epoch
    /// interruption.
    pub timeout: Duration,
    /// Total linear memory (all memories of the instance), in bytes.
    pub memory: u64,
    /// Size of the result, in bytes of its canonical encoding.
    pub output: u64,
    /// Bytes of stdout and of stderr kept, each; the rest is counted and dropped.
    pub stdio: usize,
    /// Log lines and progress events kept; the rest is counted and dropped.
    pub log_events: usize,
    /// Fuel units, when the host was built with fuel metering.
    pub fuel: Option<u64>,
    /// Largest GPU buffer the task may create, in bytes.
    pub gpu_buffer: u64,
    /// All of the task's GPU buffers together, in bytes.
    pub gpu_memory: u64,
    /// All the blobs the task writes together, in bytes.
    pub blob_output: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(300),
            memory: 1 << 30,
            output: 64 << 20,
            stdio: 64 << 10,
            log_events: 10_000,
            fuel: None,
            gpu_buffer: 256 << 20,
            gpu_memory: 1 << 30,
            blob_output: 16 << 30,
        }
    }
}

/// Parses a duration such as `5s`, `250ms`, `2m`, `1h` or `1.5s`.
pub fn parse_duration(text: &str) -> Result<Duration, Error> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().map_err(|_| {
        Error::InvalidLimits(format!("`{text}` is not a duration (try `5s`, `250ms`)"))
    })?;
    let scale = match unit.trim() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "" | "s" | "sec" | "secs" => 1.0,
        "m" | "min" | "mins" => 60.0,
        "h" | "hr" | "hours" => 3600.0,
        "d" | "day" | "days" => 86400.0,
        other => {
            return Err(Error::InvalidLimits(format!(
                "unknown time unit `{other}` in `{text}` (use ns, us, ms, s, m, h or d)"
            )));
        }
    };
    let secs = value * scale;
    if !secs.is_finite() || secs <= 0.0 || secs > 1e9 {
        return Err(Error::InvalidLimits(format!(
            "duration `{text}` is out of range"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a size such as `64MiB`, `1GiB`, `512KiB`, `10MB` or `4096`.
pub fn parse_bytes(text: &str) -> Result<u64, Error> {
    let (value, unit) = number_and_unit(text)
        .ok_or_else(|| Error::InvalidLimits(format!("`{text}` is not a size (try `64MiB`)")))?;
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024f64.powi(4),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => {
            return Err(Error::InvalidLimits(format!(
                "unknown size unit in `{text}` (use B, KiB, MiB, GiB or KB, MB, GB)"
            )));
        }
    };
    let bytes = value * scale;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(Error::InvalidLimits(format!(
            "size `{text}` is out of range"
        )));
    }
    Ok(bytes as u64)
}

/// Splits `1.5ms` into `(1.5, "ms")`.
fn number_and_unit(text: &str) -> Option<(f64, &str)> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    Some((number.parse().ok()?, unit.trim()))
}

/// Enforces [`Limits::memory`] across every memory of one instance and
/// remembers a refusal, so that the trap that follows reads as out-of-memory.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    limit: u64,
    committed: u64,
    pub(crate) peak: u64,
    /// Set when a grow was refused: the total the guest asked for.
    pub(crate) refused: Option<u64>,
}

impl MemoryLimiter {
    pub(crate) fn new(limit: u64) -> Self {
        MemoryLimiter {
            limit,
            committed: 0,
            peak: 0,
            refused: None,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.committed + (desired - current) as u64;
        // Past the memory's own maximum (or the pool's slot) the grow fails
        // anyway; refuse it here so the failure reads as out-of-memory.
        if total > self.limit || maximum.is_some_and(|m| desired > m) {
            self.refused = Some(total);
            return Ok(false);
        }
        self.committed = total;
        self.peak = self.peak.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|m| desired <= m) && desired <= 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(
            parse_duration("5 parsecs")
                .unwrap_err()
                .to_string()
                .contains("unknown time unit")
        );
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert!(
            parse_bytes("12 bananas")
                .unwrap_err()
                .to_string()
                .contains("unknown size unit")
        );
    }

    #[test]
    fn limiter_counts_all_memories_and_remembers_refusal() {
        use wasmtime::ResourceLimiter;
        let mut l = MemoryLimiter::new(100);
        assert!(l.memory_growing(0, 60, None).unwrap());
        assert!(l.memory_growing(0, 30, None).unwrap());
        assert!(!l.memory_growing(60, 80, None).unwrap());
        assert_eq!(l.refused, Some(110));
        assert_eq!(l.peak, 90);
        let mut l = MemoryLimiter::new(1000);
        assert!(
            !l.memory_growing(0, 200, Some(100)).unwrap(),
            "over the memory's own maximum"
        );
        assert_eq!(l.refused, Some(200));
    }
}
