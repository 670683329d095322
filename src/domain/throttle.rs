//! The login throttle's rules, as pure functions of a counter and the time.
//!
//! After `slow_after` failures in a window, each further attempt must wait: 1 s after the last
//! failure, then 2 s, 4 s… (an earlier attempt is refused with its wait). At `lock_after`
//! failures the key is locked for `lock`, doubling with each lock in the window up to
//! `max_lock`, and the count falls back to `slow_after`. A window with no failure for `window`
//! starts over. No lock is ever longer than `max_lock`: an attacker can delay a real user, not
//! shut them out.

use chrono::{DateTime, TimeDelta, Utc};

/// Thresholds for one kind of key (accounts or client addresses).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub slow_after: u32,
    pub lock_after: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub enabled: bool,
    pub account: Limits,
    pub address: Limits,
    pub lock: TimeDelta,
    pub max_lock: TimeDelta,
    pub window: TimeDelta,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            account: Limits {
                slow_after: 3,
                lock_after: 6,
            },
            address: Limits {
                slow_after: 10,
                lock_after: 30,
            },
            lock: TimeDelta::seconds(30),
            max_lock: TimeDelta::seconds(300),
            window: TimeDelta::seconds(900),
        }
    }
}

/// One key's failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    pub failures: u32,
    pub window_started_at: DateTime<Utc>,
    pub last_failure_at: DateTime<Utc>,
    pub locked_until: Option<DateTime<Utc>>,
    pub lock_level: u32,
}

impl ThrottlePolicy {
    /// The counter as it stands at `now`: an expired window starts over.
    fn current(&self, counter: &Counter, now: DateTime<Utc>) -> Option<Counter> {
        let locked = counter.locked_until.is_some_and(|until| until > now);
        if !locked && now - counter.last_failure_at >= self.window {
            None
        } else {
            Some(counter.clone())
        }
    }

    /// How long an attempt at `now` must still wait, if it must.
    pub fn wait(&self, counter: &Counter, limits: Limits, now: DateTime<Utc>) -> Option<TimeDelta> {
        let counter = self.current(counter, now)?;
        if let Some(until) = counter.locked_until
            && until > now
        {
            return Some(until - now);
        }
        if counter.failures >= limits.slow_after {
            let exponent = (counter.failures - limits.slow_after).min(16);
            let delay = TimeDelta::seconds(1_i64 << exponent).min(self.lock);
            let next = counter.last_failure_at + delay;
            if next > now {
                return Some(next - now);
            }
        }
        None
    }

    /// The counter after one more failure at `now`.
    pub fn fail(&self, counter: Option<&Counter>, limits: Limits, now: DateTime<Utc>) -> Counter {
        let mut next = counter.and_then(|c| self.current(c, now)).unwrap_or(Counter {
            failures: 0,
            window_started_at: now,
            last_failure_at: now,
            locked_until: None,
            lock_level: 0,
        });
        next.failures += 1;
        next.last_failure_at = now;
        if next.failures >= limits.lock_after {
            let factor = 1_i32 << next.lock_level.min(16);
            next.locked_until = Some(now + (self.lock * factor).min(self.max_lock));
            next.lock_level += 1;
            next.failures = limits.slow_after;
        }
        next
    }
}

/// Rounds a wait up to whole seconds, for `Retry-After`.
pub fn retry_after_secs(wait: TimeDelta) -> u64 {
    let millis = wait.num_milliseconds().max(0).unsigned_abs();
    millis.div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn slows_then_locks_with_escalation_capped() {
        let p = ThrottlePolicy::default();
        let l = p.account;
        let mut c: Option<Counter> = None;
        for i in 0..3 {
            assert_eq!(c.as_ref().and_then(|c| p.wait(c, l, at(i))), None);
            c = Some(p.fail(c.as_ref(), l, at(i)));
        }
        // Slowed: 1 s after the third failure, then 2 s after the fourth.
        assert_eq!(p.wait(c.as_ref().unwrap(), l, at(2)), Some(TimeDelta::seconds(1)));
        assert_eq!(p.wait(c.as_ref().unwrap(), l, at(3)), None);
        c = Some(p.fail(c.as_ref(), l, at(3)));
        assert_eq!(p.wait(c.as_ref().unwrap(), l, at(4)), Some(TimeDelta::seconds(1)));
        c = Some(p.fail(c.as_ref(), l, at(5)));
        c = Some(p.fail(c.as_ref(), l, at(9)));
        // Sixth failure: locked 30 s.
        assert_eq!(
            p.wait(c.as_ref().unwrap(), l, at(9)),
            Some(TimeDelta::seconds(30))
        );
        // Keep failing at every opportunity: locks double up to the cap.
        let mut now = 39;
        let mut longest = TimeDelta::zero();
        for _ in 0..40 {
            while let Some(w) = p.wait(c.as_ref().unwrap(), l, at(now)) {
                longest = longest.max(w);
                now += w.num_seconds();
            }
            c = Some(p.fail(c.as_ref(), l, at(now)));
        }
        assert_eq!(longest, TimeDelta::seconds(300));
    }

    #[test]
    fn quiet_windows_start_over() {
        let p = ThrottlePolicy::default();
        let l = p.account;
        let mut c = p.fail(None, l, at(0));
        for i in 1..3 {
            c = p.fail(Some(&c), l, at(i));
        }
        assert!(p.wait(&c, l, at(2)).is_some());
        assert_eq!(p.wait(&c, l, at(2 + 900)), None);
        let again = p.fail(Some(&c), l, at(2 + 900));
        assert_eq!(again.failures, 1);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(TimeDelta::milliseconds(1500)), 2);
        assert_eq!(retry_after_secs(TimeDelta::zero()), 1);
    }
}
