//! Fault injection: latency, per-endpoint rate limits, 503s and dropped connections.
//!
//! Every random decision comes from one seeded generator so a test that sets
//! `Options::seed` sees the same sequence of faults on every run (given the same
//! order of requests).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When a dropped connection is closed, relative to the request's processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DropMode {
    /// Close before the request reaches its handler: nothing happened server-side.
    #[default]
    Before,
    /// Process the request, then close without answering: the client cannot tell
    /// whether its (possibly mutating) request took effect.
    After,
}

impl std::str::FromStr for DropMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "before" => Ok(DropMode::Before),
            "after" => Ok(DropMode::After),
            other => Err(format!(
                "drop mode must be 'before' or 'after', not '{other}'"
            )),
        }
    }
}

/// A token bucket that refills `rate` tokens per second up to a burst of `rate`.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u32) -> Self {
        Bucket {
            rate: f64::from(rate.max(1)),
            tokens: f64::from(rate.max(1)),
            last: Instant::now(),
        }
    }

    /// Takes a token, or tells how many whole seconds to wait for one.
    fn take(&mut self, now: Instant) -> Result<(), u64> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / self.rate;
            // Retry-After is whole seconds; never advertise 0, clients would spin.
            Err((wait.ceil() as u64).max(1))
        }
    }
}

/// What the fault layer decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Serve,
    RateLimited { retry_after_secs: u64 },
    Unavailable,
    Drop(DropMode),
}

/// Shared, lock-protected fault state.
#[derive(Debug)]
pub struct Faults {
    latency: Duration,
    fail_503_fraction: f64,
    drop_fraction: f64,
    drop_mode: DropMode,
    rng: Mutex<fastrand::Rng>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Faults {
    pub fn new(
        latency: Duration,
        rate_limits: &HashMap<String, u32>,
        fail_503_fraction: f64,
        drop_fraction: f64,
        drop_mode: DropMode,
        seed: u64,
    ) -> Self {
        let buckets = rate_limits
            .iter()
            .map(|(key, rate)| (key.clone(), Bucket::new(*rate)))
            .collect();
        Faults {
            latency,
            fail_503_fraction: fail_503_fraction.clamp(0.0, 1.0),
            drop_fraction: drop_fraction.clamp(0.0, 1.0),
            drop_mode,
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            buckets: Mutex::new(buckets),
        }
    }

    pub fn latency(&self) -> Duration {
        self.latency
    }

    /// Decides the fate of a request to `keys` (its short and its long endpoint key).
    pub fn judge(&self, keys: &[&str]) -> Verdict {
        if let Ok(mut buckets) = self.buckets.lock() {
            let now = Instant::now();
            for key in keys {
                if let Some(bucket) = buckets.get_mut(*key) {
                    if let Err(retry_after_secs) = bucket.take(now) {
                        return Verdict::RateLimited { retry_after_secs };
                    }
                    break;
                }
            }
        }
        if self.fail_503_fraction <= 0.0 && self.drop_fraction <= 0.0 {
            return Verdict::Serve;
        }
        let Ok(mut rng) = self.rng.lock() else {
            return Verdict::Serve;
        };
        if self.fail_503_fraction > 0.0 && rng.f64() < self.fail_503_fraction {
            return Verdict::Unavailable;
        }
        if self.drop_fraction > 0.0 && rng.f64() < self.drop_fraction {
            return Verdict::Drop(self.drop_mode);
        }
        Verdict::Serve
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_asks_to_wait() {
        let mut bucket = Bucket::new(2);
        let now = Instant::now();
        assert!(bucket.take(now).is_ok());
        assert!(bucket.take(now).is_ok());
        assert_eq!(bucket.take(now), Err(1));
        assert!(bucket.take(now + Duration::from_millis(600)).is_ok());
    }

    #[test]
    fn same_seed_same_faults() {
        let limits = HashMap::new();
        let a = Faults::new(Duration::ZERO, &limits, 0.3, 0.3, DropMode::After, 7);
        let b = Faults::new(Duration::ZERO, &limits, 0.3, 0.3, DropMode::After, 7);
        let seq_a: Vec<_> = (0..50).map(|_| a.judge(&["x"])).collect();
        let seq_b: Vec<_> = (0..50).map(|_| b.judge(&["x"])).collect();
        assert_eq!(seq_a, seq_b);
        assert!(seq_a.contains(&Verdict::Unavailable));
        assert!(seq_a.contains(&Verdict::Drop(DropMode::After)));
        assert!(seq_a.contains(&Verdict::Serve));
    }
}
