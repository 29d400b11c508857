//! Background work, in-process on tokio: keep pools filled, take nodes back, expire
//! sessions, enforce the deadlines of transient node states, and keep this instance's
//! heartbeat while taking over the work of dead ones.
//!
//! Every instance on a database runs every job. Each claim is a compare-and-set on the
//! node's state (the take-over's and a run's result also on the time it entered it), or
//! runs under the pool's lock, so two instances never claim the same node, and no job
//! needs a leader.
//!
//! Each job is a struct with a `tick()` that tests call directly: one round, claimed and
//! run to its end. Its `run()` is the same round in a loop that wakes on its timer, on the
//! engine's [`Wakers`](super::Wakers), or stops when the shared cancellation token fires;
//! it spawns the round's mechanism runs instead of waiting for them. Runs are spawned on
//! one [`TaskTracker`], so shutdown can wait for them (within a grace period) in one place.
//!
//! A job whose loop ends or panics while the service runs is logged at once, as an error
//! naming the job, and started again after a pause: a bug in one round must not leave the
//! pools unfilled until the next restart.

pub mod deadlines;
pub mod deprovision;
pub mod expire;
pub mod fill;
pub mod takeover;

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Engine;

pub use deadlines::EnforceDeadlines;
pub use deprovision::Deprovision;
pub use expire::ExpireSessions;
pub use fill::FillPools;
pub use takeover::Takeover;

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
            supervise("fill-pools", &token, {
                let (engine, token, tracker) = (engine.clone(), token.clone(), tracker.clone());
                move || {
                    FillPools::new(engine.clone())
                        .run(token.clone(), tracker.clone())
                        .boxed()
                }
            }),
            supervise("deprovision", &token, {
                let (engine, token, tracker) = (engine.clone(), token.clone(), tracker.clone());
                move || {
                    Deprovision::new(engine.clone())
                        .run(token.clone(), tracker.clone())
                        .boxed()
                }
            }),
            supervise("expire-sessions", &token, {
                let (engine, token) = (engine.clone(), token.clone());
                move || {
                    ExpireSessions::new(engine.clone())
                        .run(token.clone())
                        .boxed()
                }
            }),
            supervise("deadlines", &token, {
                let (engine, token, tracker) = (engine.clone(), token.clone(), tracker.clone());
                move || {
                    EnforceDeadlines::new(engine.clone())
                        .run(token.clone(), tracker.clone())
                        .boxed()
                }
            }),
            supervise("takeover", &token, {
                let (engine, token, tracker) = (engine.clone(), token.clone(), tracker.clone());
                move || {
                    Takeover::new(engine.clone())
                        .run(token.clone(), tracker.clone())
                        .boxed()
                }
            }),
            supervise("metrics-upkeep", &token, {
                let (metrics, token) = (engine.metrics().clone(), token.clone());
                move || crate::metrics::upkeep_loop(metrics.clone(), token.clone()).boxed()
            }),
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
                "{} mechanism run(s) still going at shutdown; their nodes are taken over by another instance or at the next start",
                self.tracker.len()
            );
        }
    }
}

/// Spawns deprovisioning runs on `tracker`, where shutdown waits for them.
pub(crate) fn spawn_deprovisioning(
    engine: &Arc<Engine>,
    tracker: &TaskTracker,
    runs: Vec<super::lifecycle::Batch>,
) {
    for run in runs {
        let engine = engine.clone();
        tracker.spawn(async move { engine.deprovision(run).await });
    }
}

/// A pause after a failed round, so a broken database does not turn a loop into a spin.
pub(crate) const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Runs a job's loop, made by `start`, until `token` is cancelled: a loop that ends or
/// panics before is logged at once and started again after [`ERROR_PAUSE`].
fn supervise<F>(
    name: &'static str,
    token: &CancellationToken,
    start: F,
) -> (&'static str, JoinHandle<()>)
where
    F: Fn() -> BoxFuture<'static, ()> + Send + 'static,
{
    let token = token.clone();
    let handle = tokio::spawn(async move {
        loop {
            let outcome = tokio::spawn(start()).await;
            if token.is_cancelled() {
                if let Err(e) = outcome {
                    tracing::error!(job = name, error = %e, "background job {name} ended abnormally at shutdown: {e}");
                }
                break;
            }
            match outcome {
                Ok(()) => tracing::error!(
                    job = name,
                    "background job {name} stopped on its own; starting it again"
                ),
                Err(e) => {
                    tracing::error!(job = name, error = %e, "background job {name} failed: {e}; starting it again")
                }
            }
            tokio::select! {
                _ = token.cancelled() => break,
                _ = tokio::time::sleep(ERROR_PAUSE) => {}
            }
        }
    });
    (name, handle)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A loop that panics, then one that returns, are both started again; cancelling the
    /// token ends the supervision.
    #[tokio::test(start_paused = true)]
    async fn a_job_that_panics_or_stops_is_started_again() {
        let token = CancellationToken::new();
        let starts = Arc::new(AtomicUsize::new(0));
        let (_, handle) = supervise("test", &token, {
            let starts = starts.clone();
            move || {
                let n = starts.fetch_add(1, Ordering::SeqCst);
                async move {
                    match n {
                        0 => panic!("a bug in a round"),
                        1 => {}
                        _ => std::future::pending().await,
                    }
                }
                .boxed()
            }
        });
        for _ in 0..100 {
            if starts.load(Ordering::SeqCst) >= 3 {
                break;
            }
            tokio::time::sleep(ERROR_PAUSE / 10).await;
        }
        assert_eq!(starts.load(Ordering::SeqCst), 3);
        token.cancel();
        // The third loop never ends by itself; cancelling stops the supervisor regardless.
        handle.abort();
        let _ = handle.await;
    }
}
