//! Takes back the nodes of retired and expired sessions.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{ERROR_PAUSE, spawn_deprovisioning};
use crate::engine::lifecycle::DeprovisionReport;
use crate::engine::{Engine, EngineError};

/// The deprovisioning job.
pub struct Deprovision {
    engine: Arc<Engine>,
}

impl Deprovision {
    /// A deprovisioning job for the engine's nodes.
    pub fn new(engine: Arc<Engine>) -> Self {
        Deprovision { engine }
    }

    /// Deprovisions every node no active session holds, waiting for the runs.
    pub async fn tick(&self) -> Result<DeprovisionReport, EngineError> {
        let mut total = DeprovisionReport::default();
        loop {
            let runs = self.engine.claim_deprovision().await?;
            if runs.is_empty() {
                return Ok(total);
            }
            let reports =
                futures::future::join_all(runs.into_iter().map(|run| self.engine.deprovision(run)))
                    .await;
            for r in reports {
                total.done += r.done;
                total.returned += r.returned;
                total.failed += r.failed;
            }
        }
    }

    /// Runs until cancelled: claims on every wake-up (a session was retired) and, as a
    /// safety net, on the fill interval; runs are spawned.
    pub async fn run(self, token: CancellationToken, tracker: TaskTracker) {
        let mut timer = tokio::time::interval(self.engine.config().tasks.fill_pools_interval);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = token.cancelled() => break,
                _ = self.engine.wakers().deprovision.notified() => {}
                _ = timer.tick() => {}
            }
            match self.engine.claim_deprovision().await {
                Ok(runs) => {
                    if !runs.is_empty() {
                        // There may be more than one batch's worth: look again.
                        self.engine.wakers().deprovision.notify_one();
                    }
                    spawn_deprovisioning(&self.engine, &tracker, runs);
                }
                Err(e) => {
                    tracing::error!(error = %e, "claiming nodes to deprovision failed: {e}");
                    tokio::time::sleep(ERROR_PAUSE).await;
                }
            }
        }
    }
}
