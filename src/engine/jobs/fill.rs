//! Keeps every concrete pool at its fill level.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::ERROR_PAUSE;
use crate::engine::lifecycle::{Batch, ProvisionReport};
use crate::engine::{Engine, EngineError, FillScope};

/// Groups runs by pool, in the order pools first appear.
fn by_pool(runs: Vec<Batch>) -> Vec<Vec<Batch>> {
    let mut groups: Vec<Vec<Batch>> = Vec::new();
    for run in runs {
        match groups.iter_mut().find(|g| g[0].pool == run.pool) {
            Some(group) => group.push(run),
            None => groups.push(vec![run]),
        }
    }
    groups
}

/// Sleeps until `at`; forever without it.
async fn until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The fill job.
pub struct FillPools {
    engine: Arc<Engine>,
}

impl FillPools {
    /// A fill job for the engine's pools.
    pub fn new(engine: Arc<Engine>) -> Self {
        FillPools { engine }
    }

    /// One full round: retires ready nodes past `max-ready-age` whose replacements are
    /// ready, claims what every pool lacks, and waits for the runs.
    pub async fn tick(&self) -> Result<ProvisionReport, EngineError> {
        let recycle = self.engine.claim_recycle(&FillScope::All).await?;
        let runs = self.engine.claim_fill(&FillScope::All).await?;
        let (report, _) = futures::future::join(
            self.engine.provision_round(runs),
            futures::future::join_all(recycle.into_iter().map(|r| self.engine.deprovision(r))),
        )
        .await;
        Ok(report)
    }

    /// How often a full round runs: the configured interval, or more often when a pool's
    /// `max-ready-age` is short, so stale nodes are noticed in time.
    fn period(&self) -> std::time::Duration {
        let interval = self.engine.config().tasks.fill_pools_interval;
        self.engine
            .config()
            .nodepools
            .concrete()
            .filter_map(|p| p.max_ready_age?.to_std().ok())
            .map(|age| (age / 2).max(std::time::Duration::from_millis(100)))
            .fold(interval, std::cmp::Ord::min)
    }

    /// Runs until cancelled: a full round on every interval, the pools asked for on every
    /// wake-up. Claims are made in the loop, runs are spawned so a slow mechanism never
    /// delays the next claim.
    pub async fn run(self, token: CancellationToken, tracker: TaskTracker) {
        let mut timer = tokio::time::interval(self.period());
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let scope = tokio::select! {
                biased;
                _ = token.cancelled() => break,
                _ = timer.tick() => FillScope::All,
                _ = self.engine.wakers().fill.notified() => self.engine.wakers().take_fill_scope(),
                // A pool that failed is retried when its backoff is over.
                _ = until(self.engine.pool_backoff().next_retry()) => FillScope::All,
            };
            if scope == FillScope::Nothing {
                continue;
            }
            match self.engine.claim_recycle(&scope).await {
                Ok(runs) => {
                    for run in runs {
                        let engine = self.engine.clone();
                        tracker.spawn(async move { engine.deprovision(run).await });
                    }
                }
                Err(e) => tracing::error!(error = %e, "recycling stale ready nodes failed: {e}"),
            }
            match self.engine.claim_fill(&scope).await {
                Ok(runs) => {
                    // One task per pool: a slow pool never holds up another's outcome.
                    for runs in by_pool(runs) {
                        let engine = self.engine.clone();
                        tracker.spawn(async move { engine.provision_round(runs).await });
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "filling pools failed: {e}");
                    tokio::time::sleep(ERROR_PAUSE).await;
                }
            }
        }
    }
}
