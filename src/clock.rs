//! The one place the service reads the wall clock.
//!
//! Token expiry, session lifetimes and (later) throttling windows all take "now" from a
//! [`Clock`], so tests can move time forward instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// System time plus an adjustable offset (always zero in production).
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_micros: Arc<AtomicI64>,
}

impl Clock {
    pub fn system() -> Self {
        Self::default()
    }

    /// The current time, truncated to microseconds: every backend stores that precision, so a
    /// value read back equals the value written.
    pub fn now(&self) -> DateTime<Utc> {
        let now = Utc::now() + TimeDelta::microseconds(self.offset_micros.load(Ordering::Relaxed));
        now.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(now)
    }

    /// Moves this clock (and every clone of it) forward; used by tests.
    pub fn advance(&self, by: TimeDelta) {
        let micros = by.num_microseconds().unwrap_or(i64::MAX);
        self.offset_micros.fetch_add(micros, Ordering::Relaxed);
    }
}
