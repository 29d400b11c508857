//! Background work, in-process on tokio: keep pools filled, take nodes back, expire
//! sessions, and enforce the deadlines of transient node states.
//!
//! Each job is a struct with a deterministic `tick()` that tests call directly, and a
//! `run()` loop that wakes on its timer, on the engine's [`Wakers`](super::Wakers), or
//! stops when the shared cancellation token fires. Mechanism runs are spawned on one
//! [`TaskTracker`], so shutdown can wait for them (within a grace period) in one place.

pub mod deadlines;
pub mod deprovision;
pub mod expire;
pub mod fill;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Engine;

pub use deadlines::EnforceDeadlines;
pub use deprovision::Deprovision;
pub use expire::ExpireSessions;
pub use fill::FillPools;

/// The running background jobs.
pub struct Jobs {
    loops: Vec<(&'static str, JoinHandle<()>)>,
    tracker: TaskTracker,
}

impl Jobs {
    /// Starts every job; they run until `token` is cancelled. Fill and expiry run once at
    /// once, then on their intervals and whenever the engine wakes them. Mechanism runs are
    /// spawned on `tracker` (which may already hold the runs of the start-up reconciliation).
    pub fn start(engine: Arc<Engine>, token: CancellationToken, tracker: TaskTracker) -> Jobs {
        let loops = vec![
            (
                "fill-pools",
                tokio::spawn(FillPools::new(engine.clone()).run(token.clone(), tracker.clone())),
            ),
            (
                "deprovision",
                tokio::spawn(Deprovision::new(engine.clone()).run(token.clone(), tracker.clone())),
            ),
            (
                "expire-sessions",
                tokio::spawn(ExpireSessions::new(engine.clone()).run(token.clone())),
            ),
            (
                "deadlines",
                tokio::spawn(
                    EnforceDeadlines::new(engine.clone()).run(token.clone(), tracker.clone()),
                ),
            ),
            (
                "metrics-upkeep",
                tokio::spawn(crate::metrics::upkeep_loop(engine.metrics().clone(), token)),
            ),
        ];
        Jobs { loops, tracker }
    }

    /// Waits for the loops to stop (cancel their token first), then gives running mechanism
    /// runs up to `grace` to finish. Runs still going are abandoned: their nodes stay in a
    /// transient state that the next start reconciles.
    pub async fn shutdown(self, grace: Duration) {
        for (name, handle) in self.loops {
            if let Err(e) = handle.await {
                tracing::error!(job = name, error = %e, "background job {name} ended abnormally: {e}");
            }
        }
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                runs = self.tracker.len(),
                "{} mechanism run(s) still going at shutdown; their nodes are reconciled at the next start",
                self.tracker.len()
            );
        }
    }
}

/// A pause after a failed round, so a broken database does not turn a loop into a spin.
pub(crate) const ERROR_PAUSE: Duration = Duration::from_secs(1);
