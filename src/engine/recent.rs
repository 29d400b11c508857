//! The last errors of the mechanisms, kept in memory for the status page: an operator
//! glancing at `/` sees what failed lately without reading the logs.

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::NaiveDateTime;

/// How many errors are kept; older ones drop out.
pub const KEPT: usize = 20;
/// Longest error text kept (Ansible output can be long).
const TEXT_LIMIT: usize = 1000;

/// One failed mechanism run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MechanismError {
    /// When it was recorded (UTC).
    pub at: NaiveDateTime,
    /// The pool whose mechanism failed.
    pub pool: String,
    /// `provision` or `deprovision`.
    pub phase: &'static str,
    /// What went wrong.
    pub error: String,
}

/// The last [`KEPT`] mechanism errors, newest first.
#[derive(Debug, Default)]
pub struct RecentErrors(Mutex<VecDeque<MechanismError>>);

impl RecentErrors {
    /// Records an error, dropping the oldest beyond [`KEPT`].
    pub fn record(&self, pool: &str, phase: &'static str, error: &str) {
        let error: String = error.chars().take(TEXT_LIMIT).collect();
        let entry = MechanismError {
            at: crate::store::now(),
            pool: pool.to_owned(),
            phase,
            error,
        };
        if let Ok(mut kept) = self.0.lock() {
            kept.push_front(entry);
            kept.truncate(KEPT);
        }
    }

    /// The errors kept, newest first.
    pub fn list(&self) -> Vec<MechanismError> {
        self.0
            .lock()
            .map(|kept| kept.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_and_bounded() {
        let r = RecentErrors::default();
        for i in 0..KEPT + 5 {
            r.record("p", "provision", &format!("e{i}"));
        }
        let list = r.list();
        assert_eq!(list.len(), KEPT);
        assert_eq!(list[0].error, format!("e{}", KEPT + 4));
        let long = "x".repeat(5000);
        r.record("p", "deprovision", &long);
        assert_eq!(r.list()[0].error.chars().count(), 1000);
    }
}
