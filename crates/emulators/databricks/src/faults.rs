//! Fault injection: latency, per-endpoint rate limits, 503s and dropped connections at random,
//! and the fault rules shared with the Azure emulator ([`emulator_faults`]), checked first.
//!
//! Every random decision comes from one seeded generator so a test that sets
//! `Options::seed` sees the same sequence of faults on every run (given the same
//! order of requests).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use emulator_faults::DropMode;
use emulator_faults::{Action, Rule, Rules, TokenBucket};

/// What the fault layer decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Serve,
    /// A fault rule's status.
    Status {
        status: u16,
        retry_after_secs: Option<u64>,
    },
    RateLimited {
        retry_after_secs: u64,
    },
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
    buckets: Mutex<HashMap<String, TokenBucket>>,
    /// `--fault` and `/emulator/faults` rules.
    pub rules: Rules,
}

impl Faults {
    pub fn new(
        latency: Duration,
        rate_limits: &HashMap<String, u32>,
        fail_503_fraction: f64,
        drop_fraction: f64,
        drop_mode: DropMode,
        seed: u64,
        rules: Vec<Rule>,
    ) -> Self {
        let buckets = rate_limits
            .iter()
            .map(|(key, rate)| (key.clone(), TokenBucket::new(*rate, f64::from(*rate))))
            .collect();
        Faults {
            latency,
            fail_503_fraction: fail_503_fraction.clamp(0.0, 1.0),
            drop_fraction: drop_fraction.clamp(0.0, 1.0),
            drop_mode,
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            buckets: Mutex::new(buckets),
            rules: Rules::new(rules),
        }
    }

    pub fn latency(&self) -> Duration {
        self.latency
    }

    /// Decides the fate of a `method` request to `path`, whose endpoint keys (short and long)
    /// are `keys`: a fault rule first, then rate limits, then the random faults.
    pub fn judge(&self, method: &str, path: &str, keys: &[&str]) -> Verdict {
        match self.rules.check(method, path) {
            Some(Action::Status {
                status,
                retry_after_secs,
            }) => {
                return Verdict::Status {
                    status,
                    retry_after_secs,
                }
            }
            Some(Action::Drop(mode)) => return Verdict::Drop(mode),
            None => {}
        }
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
    fn same_seed_same_faults() {
        let limits = HashMap::new();
        let a = Faults::new(
            Duration::ZERO,
            &limits,
            0.3,
            0.3,
            DropMode::After,
            7,
            Vec::new(),
        );
        let b = Faults::new(
            Duration::ZERO,
            &limits,
            0.3,
            0.3,
            DropMode::After,
            7,
            Vec::new(),
        );
        let seq_a: Vec<_> = (0..50).map(|_| a.judge("GET", "/x", &["x"])).collect();
        let seq_b: Vec<_> = (0..50).map(|_| b.judge("GET", "/x", &["x"])).collect();
        assert_eq!(seq_a, seq_b);
        assert!(seq_a.contains(&Verdict::Unavailable));
        assert!(seq_a.contains(&Verdict::Drop(DropMode::After)));
        assert!(seq_a.contains(&Verdict::Serve));
    }

    #[test]
    fn rules_come_before_random_faults() {
        let limits = HashMap::new();
        let rules = vec!["POST /api/2.1/jobs/runs/submit 500 times=1"
            .parse()
            .unwrap()];
        let f = Faults::new(
            Duration::ZERO,
            &limits,
            0.0,
            0.0,
            DropMode::Before,
            0,
            rules,
        );
        let submit = |f: &Faults| f.judge("POST", "/api/2.1/jobs/runs/submit", &["runs/submit"]);
        assert_eq!(
            submit(&f),
            Verdict::Status {
                status: 500,
                retry_after_secs: None
            }
        );
        assert_eq!(submit(&f), Verdict::Serve);
    }
}
