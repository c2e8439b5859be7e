//! A token bucket, the rate limit the emulators apply: Databricks' per-endpoint limits, and
//! Azure Resource Manager's per-subscription write limit (a bucket of 200 refilled at 10 a
//! second since ARM's 2024 regional throttling).

use std::time::Instant;

/// Holds up to `burst` tokens, refilled at `per_second`; each request takes one.
#[derive(Debug)]
pub struct TokenBucket {
    burst: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(burst: u32, per_second: f64) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            burst,
            per_second: per_second.max(0.001),
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// Takes a token, or tells how many whole seconds to wait for one (at least 1: a
    /// `Retry-After` of 0 would make clients spin).
    pub fn take(&mut self, now: Instant) -> Result<(), u64> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / self.per_second;
            Err((wait.ceil() as u64).max(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_refill_rate() {
        let start = Instant::now();
        let mut b = TokenBucket::new(3, 2.0);
        for _ in 0..3 {
            assert_eq!(b.take(start), Ok(()));
        }
        assert_eq!(b.take(start), Err(1));
        // Half a second refills one token at 2 a second.
        assert_eq!(b.take(start + Duration::from_millis(500)), Ok(()));
        assert_eq!(b.take(start + Duration::from_millis(500)), Err(1));
        // Never more than the burst, however long it rests.
        let later = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(b.take(later), Ok(()));
        }
        assert!(b.take(later).is_err());
        // A slow refill asks for a longer wait.
        let mut slow = TokenBucket::new(1, 0.25);
        assert_eq!(slow.take(start), Ok(()));
        assert_eq!(slow.take(start), Err(4));
    }
}
