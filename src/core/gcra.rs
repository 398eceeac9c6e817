//! GCRA, the generic cell rate algorithm (as in `governor`): a burst of up
//! to `limit` requests, refilled at one request every `60 s / limit`. There
//! are no windows, so there is no window-edge double burst, and the "retry
//! after" is exact. A pure function with an injectable clock: the per-token
//! rate limit uses it in memory ([`crate::core::admission`]) and, as the same
//! math in one Lua script, in Redis. Per-trunk pacing ([`pace`]) is the
//! same algorithm with no burst: slots one emission interval apart, taken
//! ahead of time by whoever is willing to wait for them.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A monotonic clock, injectable so tests can move time by hand.
pub trait Clock: Send + Sync {
    /// Time since an arbitrary fixed origin; never goes backwards.
    fn now(&self) -> Duration;
}

/// The real monotonic clock.
pub struct MonotonicClock(Instant);

impl Default for MonotonicClock {
    fn default() -> Self {
        MonotonicClock(Instant::now())
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// A clock that only moves when told to (tests).
#[derive(Default)]
pub struct ManualClock(Mutex<Duration>);

impl ManualClock {
    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The verdict on one request, with what the `RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests per minute.
    pub limit: u32,
    /// Requests that could still be made right now.
    pub remaining: u32,
    /// Until the bucket is full again.
    pub reset: Duration,
    /// Until the next request would be allowed (zero when allowed).
    pub retry_after: Duration,
}

impl Decision {
    /// The response headers: IETF `RateLimit-*` and the common `X-RateLimit-*`,
    /// plus `Retry-After` when refused. Seconds are rounded up.
    pub fn headers(&self) -> Vec<(String, String)> {
        let reset = ceil_secs(self.reset).to_string();
        let mut h = vec![
            ("RateLimit-Limit".to_string(), self.limit.to_string()),
            (
                "RateLimit-Remaining".to_string(),
                self.remaining.to_string(),
            ),
            ("RateLimit-Reset".to_string(), reset.clone()),
            ("X-RateLimit-Limit".to_string(), self.limit.to_string()),
            (
                "X-RateLimit-Remaining".to_string(),
                self.remaining.to_string(),
            ),
            ("X-RateLimit-Reset".to_string(), reset),
        ];
        if !self.allowed {
            h.push((
                "Retry-After".to_string(),
                ceil_secs(self.retry_after).max(1).to_string(),
            ));
        }
        h
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// One GCRA step, a pure function. `tat` is the stored theoretical arrival
/// time (`None`: never seen). Returns the decision and the new `tat`.
pub fn gcra(tat: Option<Duration>, now: Duration, limit: u32) -> (Decision, Duration) {
    let limit = limit.max(1);
    let interval = Duration::from_secs(60) / limit;
    let tolerance = interval * (limit - 1);
    let tat = tat.map_or(now, |t| t.max(now));
    let ahead = tat - now;
    if ahead > tolerance {
        let decision = Decision {
            allowed: false,
            limit,
            remaining: 0,
            reset: ahead,
            retry_after: ahead - tolerance,
        };
        return (decision, tat);
    }
    let new_tat = tat + interval;
    let ahead = new_tat - now;
    let spare = (tolerance + interval).saturating_sub(ahead);
    let decision = Decision {
        allowed: true,
        limit,
        remaining: (spare.as_nanos() / interval.as_nanos()) as u32,
        reset: ahead,
        retry_after: Duration::ZERO,
    };
    (decision, new_tat)
}

/// The emission interval of `per_second` calls a second, stretched by 3 %:
/// a second spans `per_second` intervals, so the stretch absorbs up to 30 ms
/// of jitter between our go and the switch's INVITE (the agent's session
/// starts the dial on its next 20 ms media frame) and no second ever holds
/// `per_second + 1` INVITEs.
pub fn pace_interval(per_second: f64) -> Duration {
    Duration::from_secs_f64(1.03 / per_second.max(1e-3))
}

/// One pacing step (GCRA with no burst): the next slot is at `tat` (or now,
/// when the trunk has been idle). When it comes within `within`, it is
/// taken: returns how long to wait for it and the new `tat` (slot +
/// `interval`). Otherwise returns `Err` with how long it would have taken,
/// and nothing is taken.
pub fn pace(
    tat: Option<Duration>,
    now: Duration,
    interval: Duration,
    within: Duration,
) -> Result<(Duration, Duration), Duration> {
    let slot = tat.map_or(now, |t| t.max(now));
    let wait = slot - now;
    if wait > within {
        return Err(wait);
    }
    Ok((wait, slot + interval))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pace_spaces_slots_one_interval_apart_and_never_bursts() {
        let i = Duration::from_millis(500);
        let (w, tat) = pace(None, Duration::ZERO, i, Duration::ZERO).unwrap();
        assert_eq!((w, tat), (Duration::ZERO, i));
        // Asked at once again: the next slot is half a second away.
        assert_eq!(pace(Some(tat), Duration::ZERO, i, Duration::ZERO), Err(i));
        let (w, tat) = pace(Some(tat), Duration::ZERO, i, Duration::from_secs(1)).unwrap();
        assert_eq!((w, tat), (i, 2 * i));
        // After a long idle the next slot is now, not a burst of the missed ones.
        let now = Duration::from_secs(10);
        let (w, tat) = pace(Some(tat), now, i, Duration::ZERO).unwrap();
        assert_eq!((w, tat), (Duration::ZERO, now + i));
        assert!(pace(Some(tat), now, i, Duration::ZERO).is_err());
        assert_eq!(pace_interval(2.0), Duration::from_millis(515));
    }

    #[test]
    fn headers_round_up_and_add_retry_after_only_when_refused() {
        let (d, _) = gcra(None, Duration::ZERO, 10);
        let h = d.headers();
        assert!(h
            .iter()
            .any(|(n, v)| n == "RateLimit-Remaining" && v == "9"));
        assert!(h.iter().any(|(n, v)| n == "RateLimit-Reset" && v == "6"));
        assert!(!h.iter().any(|(n, _)| n == "Retry-After"));
        let (d, _) = gcra(Some(Duration::from_secs(61)), Duration::ZERO, 10);
        assert!(!d.allowed);
        assert!(d
            .headers()
            .iter()
            .any(|(n, v)| n == "Retry-After" && v == "7"));
    }
}
