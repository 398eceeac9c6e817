//! The per-token rate limit in this process: one GCRA theoretical arrival
//! time per token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::core::gcra::{gcra, Clock, Decision};

/// The limiter: one theoretical arrival time per key (the token's name).
pub struct RateLimiter {
    clock: Arc<dyn Clock>,
    tats: Mutex<HashMap<String, Duration>>,
}

impl RateLimiter {
    /// A limiter reading time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> RateLimiter {
        RateLimiter {
            clock,
            tats: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request of `key` against `limit` per minute.
    pub fn check(&self, key: &str, limit: u32) -> Decision {
        let now = self.clock.now();
        let mut tats = self.tats.lock().unwrap_or_else(|e| e.into_inner());
        if tats.len() > 10_000 {
            // Keys whose bucket is full again carry no information.
            tats.retain(|_, t| *t > now);
        }
        let (decision, tat) = gcra(tats.get(key).copied(), now, limit);
        tats.insert(key.to_string(), tat);
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::gcra::ManualClock;
    use std::time::Duration;

    #[test]
    fn a_burst_of_limit_then_one_per_interval() {
        let clock = Arc::new(ManualClock::default());
        let rl = RateLimiter::new(clock.clone());
        for i in 0..10 {
            let d = rl.check("crm", 10);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 9 - i);
        }
        let d = rl.check("crm", 10);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_secs(6));
        assert_eq!(d.reset, Duration::from_secs(60));
        // Another token has its own bucket.
        assert!(rl.check("other", 10).allowed);
        clock.advance(Duration::from_millis(5_999));
        assert!(!rl.check("crm", 10).allowed);
        clock.advance(Duration::from_millis(1));
        let d = rl.check("crm", 10);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        assert!(!rl.check("crm", 10).allowed);
    }

    #[test]
    fn no_double_burst_at_any_edge() {
        // Whatever the timing, 20 requests never pass within 60 s of each other
        // unless the bucket had time to refill: at most limit + elapsed/interval.
        let clock = Arc::new(ManualClock::default());
        let rl = RateLimiter::new(clock.clone());
        clock.advance(Duration::from_millis(59_900));
        let mut passed = 0;
        for _ in 0..30 {
            passed += u32::from(rl.check("k", 10).allowed);
        }
        clock.advance(Duration::from_millis(200));
        for _ in 0..30 {
            passed += u32::from(rl.check("k", 10).allowed);
        }
        assert_eq!(passed, 10);
    }
}
