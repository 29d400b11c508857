//! Backing off from pools whose mechanism keeps failing.
//!
//! A fill round in which none of a pool's runs delivers a node is a failure of the pool.
//! After a failure the pool is left alone for a delay that doubles with every further
//! failure, up to a cap; the fill job skips it meanwhile and retries when the delay is
//! over. The first round that delivers a node clears the state. A failure recorded while
//! the pool is already backing off (a concurrent round) counts once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::NaiveDateTime;
use tokio::time::Instant;

use crate::store;

/// Longest error text kept for the pool detail.
const ERROR_LIMIT: usize = 500;

/// Why and until when a pool is left alone.
#[derive(Debug, Clone, PartialEq)]
pub struct Failing {
    /// Failed provisioning rounds in a row.
    pub failures: u32,
    /// The current delay.
    pub delay: Duration,
    /// When the pool is filled again (UTC, for display).
    pub until: NaiveDateTime,
    /// The same moment on the runtime's clock, for the fill job's timer.
    pub retry_at: Instant,
    /// What the last failure said.
    pub error: String,
}

/// The backoff state of every pool.
#[derive(Debug)]
pub struct PoolBackoff {
    min: Duration,
    max: Duration,
    pools: Mutex<HashMap<String, Failing>>,
}

impl PoolBackoff {
    /// No pool backing off; delays from `min`, doubling up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        PoolBackoff {
            min,
            max: max.max(min),
            pools: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failing>> {
        // The map stays consistent even if a holder panicked: every update is one insert.
        self.pools.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a failed round of `pool`; returns the new state and whether the failure
    /// counted (false when the pool was already backing off).
    pub fn failed(&self, pool: &str, error: &str) -> (Failing, bool) {
        let now = Instant::now();
        let error: String = error.chars().take(ERROR_LIMIT).collect();
        let mut pools = self.lock();
        if let Some(current) = pools.get_mut(pool)
            && current.retry_at > now
        {
            current.error = error;
            return (current.clone(), false);
        }
        let failures = pools.get(pool).map_or(1, |f| f.failures.saturating_add(1));
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(31));
        let delay = self.min.saturating_mul(factor).min(self.max);
        let until = store::now()
            .checked_add_signed(chrono::TimeDelta::from_std(delay).unwrap_or_default())
            .unwrap_or(NaiveDateTime::MAX);
        let failing = Failing {
            failures,
            delay,
            until,
            retry_at: now + delay,
            error,
        };
        pools.insert(pool.to_owned(), failing.clone());
        (failing, true)
    }

    /// Records a round of `pool` that delivered nodes; returns the state it cleared.
    pub fn succeeded(&self, pool: &str) -> Option<Failing> {
        self.lock().remove(pool)
    }

    /// Whether `pool` is to be left alone now.
    pub fn is_backing_off(&self, pool: &str) -> bool {
        let now = Instant::now();
        self.lock().get(pool).is_some_and(|f| f.retry_at > now)
    }

    /// The failure state of `pool`, if its last round failed.
    pub fn state(&self, pool: &str) -> Option<Failing> {
        self.lock().get(pool).cloned()
    }

    /// The earliest moment a backing-off pool may be filled again.
    pub fn next_retry(&self) -> Option<Instant> {
        let now = Instant::now();
        self.lock()
            .values()
            .map(|f| f.retry_at)
            .filter(|at| *at > now)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_success_clears_them() {
        let backoff = PoolBackoff::new(Duration::from_millis(1), Duration::from_millis(4));
        let mut delays = Vec::new();
        for _ in 0..5 {
            let (f, counted) = backoff.failed("p", "boom");
            assert!(counted);
            delays.push(f.delay.as_millis());
            std::thread::sleep(f.delay + Duration::from_millis(2));
        }
        assert_eq!(delays, [1, 2, 4, 4, 4]);
        assert_eq!(backoff.state("p").map(|f| f.failures), Some(5));
        assert!(backoff.succeeded("p").is_some());
        assert!(backoff.state("p").is_none());
    }

    #[test]
    fn failures_while_backing_off_count_once() {
        let backoff = PoolBackoff::new(Duration::from_secs(60), Duration::from_secs(600));
        assert!(backoff.failed("p", "one").1);
        let (f, counted) = backoff.failed("p", "two");
        assert!(!counted);
        assert_eq!((f.failures, f.error.as_str()), (1, "two"));
        assert!(backoff.is_backing_off("p"));
        assert!(!backoff.is_backing_off("q"));
        assert!(backoff.next_retry().is_some());
    }
}
