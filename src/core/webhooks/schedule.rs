//! When to try again: the retry schedule as data, with jitter, the
//! receiver's `Retry-After` honoured, and a give-up horizon.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again after this long.
    RetryIn(Duration),
    /// The horizon is reached: dead-letter the event.
    GiveUp,
}

/// Delays between attempts (the last one repeats) and the horizon after
/// which an event is given up, counted from when it was created (or replayed).
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
    give_up_after: Duration,
    /// Each delay is spread uniformly over ±`jitter` of itself (0.0 to 1.0).
    jitter: f64,
}

impl RetrySchedule {
    /// A schedule with ±20 % jitter. An empty `delays` means one second.
    pub fn new(delays: Vec<Duration>, give_up_after: Duration) -> RetrySchedule {
        let delays = if delays.is_empty() {
            vec![Duration::from_secs(1)]
        } else {
            delays
        };
        RetrySchedule {
            delays,
            give_up_after,
            jitter: 0.2,
        }
    }

    /// The same schedule with another jitter fraction (clamped to 0..=1).
    pub fn with_jitter(mut self, jitter: f64) -> RetrySchedule {
        self.jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// The scheduled delay after `failed` failed attempts (1 = after the first).
    pub fn base_delay(&self, failed: u32) -> Duration {
        let i = (failed.max(1) as usize - 1).min(self.delays.len() - 1);
        self.delays[i]
    }

    /// `base` spread by the jitter; `unit` is a random number in `[0, 1)`.
    pub fn jittered(&self, base: Duration, unit: f64) -> Duration {
        let factor = 1.0 - self.jitter + 2.0 * self.jitter * unit.clamp(0.0, 1.0);
        base.mul_f64(factor.max(0.0))
    }

    /// What follows the `failed`-th failed attempt of an event created at
    /// `created`: the jittered schedule delay, but never sooner than the
    /// receiver's `Retry-After`; given up when that lands past the horizon.
    pub fn next(
        &self,
        failed: u32,
        retry_after: Option<Duration>,
        created: SystemTime,
        now: SystemTime,
    ) -> Next {
        let mut delay = self.jittered(self.base_delay(failed), random_unit());
        if let Some(ra) = retry_after {
            delay = delay.max(ra);
        }
        let horizon = created + self.give_up_after;
        match now.checked_add(delay) {
            Some(at) if at <= horizon => Next::RetryIn(delay),
            _ => Next::GiveUp,
        }
    }
}

/// A random number in `[0, 1)` (from the OS generator behind UUID v4).
pub fn random_unit() -> f64 {
    let bits = (uuid::Uuid::new_v4().as_u128() >> 75) as u64; // 53 random bits
    bits as f64 / (1u64 << 53) as f64
}

/// A `Retry-After` value: delay-seconds or an HTTP-date (past dates mean 0).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = parse_http_date(v)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// An HTTP-date in any of the three forms of RFC 9110: IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`)
/// and asctime (`Sun Nov  6 08:49:37 1994`).
pub fn parse_http_date(value: &str) -> Option<SystemTime> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let tokens: Vec<&str> = value
        .split([' ', ',', '-'])
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.len() < 5 {
        return None;
    }
    let (mut day, mut month, mut year, mut hms) = (None, None, None, None);
    for t in &tokens[1..] {
        if let Some(m) = MONTHS.iter().position(|m| t.eq_ignore_ascii_case(m)) {
            month = Some(m as u32 + 1);
        } else if t.contains(':') {
            let p: Vec<u32> = t.split(':').filter_map(|x| x.parse().ok()).collect();
            if p.len() != 3 || p[0] > 23 || p[1] > 59 || p[2] > 60 {
                return None;
            }
            hms = Some(p[0] * 3600 + p[1] * 60 + p[2]);
        } else if let Ok(n) = t.parse::<i64>() {
            // In all three forms the day comes before the year.
            if day.is_none() {
                day = Some(n);
            } else if year.is_none() {
                year = Some(match (t.len(), n) {
                    (2, 70..) => 1900 + n,
                    (2, _) => 2000 + n,
                    _ => n,
                });
            } else {
                return None;
            }
        } else if !t.eq_ignore_ascii_case("GMT") {
            return None;
        }
    }
    let (day, month, year, hms) = (day?, month?, year?, hms?);
    if !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day as u32);
    let secs = days.checked_mul(86_400)?.checked_add(i64::from(hms))?;
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

// Howard Hinnant's civil-to-days algorithm.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn follows_the_schedule_and_repeats_its_last_delay() {
        let s = RetrySchedule::new(vec![ms(10), ms(20), ms(40)], ms(1000));
        assert_eq!(s.base_delay(1), ms(10));
        assert_eq!(s.base_delay(2), ms(20));
        assert_eq!(s.base_delay(3), ms(40));
        assert_eq!(s.base_delay(9), ms(40));
    }

    #[test]
    fn jitter_stays_within_its_band_and_varies() {
        let s = RetrySchedule::new(vec![ms(1000)], ms(100_000));
        assert_eq!(s.jittered(ms(1000), 0.0), ms(800));
        assert_eq!(s.jittered(ms(1000), 0.5), ms(1000));
        let now = SystemTime::now();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let Next::RetryIn(d) = s.next(1, None, now, now) else {
                panic!("gave up too early")
            };
            assert!(d >= ms(800) && d <= ms(1200), "{d:?}");
            seen.insert(d);
        }
        assert!(seen.len() > 10, "no jitter: {seen:?}");
        let flat = s.clone().with_jitter(0.0);
        assert_eq!(flat.next(1, None, now, now), Next::RetryIn(ms(1000)));
    }

    #[test]
    fn retry_after_wins_when_later_and_the_horizon_gives_up() {
        let s = RetrySchedule::new(vec![ms(100)], ms(5000)).with_jitter(0.0);
        let now = SystemTime::now();
        assert_eq!(s.next(1, Some(ms(2000)), now, now), Next::RetryIn(ms(2000)));
        assert_eq!(s.next(1, Some(ms(10)), now, now), Next::RetryIn(ms(100)));
        assert_eq!(s.next(1, Some(ms(6000)), now, now), Next::GiveUp);
        let old = now - ms(4950);
        assert_eq!(s.next(3, None, old, now), Next::GiveUp);
    }

    #[test]
    fn parses_retry_after_seconds_and_all_http_date_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // 1994-11-06 08:49:37
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        for form in [
            "Sun, 06 Nov 1994 08:51:37 GMT",
            "Sunday, 06-Nov-94 08:51:37 GMT",
            "Sun Nov  6 08:51:37 1994",
        ] {
            assert_eq!(
                parse_retry_after(form, now),
                Some(Duration::from_secs(120)),
                "{form}"
            );
        }
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 25:00:00 GMT", now),
            None
        );
    }
}
