//! Keeps every concrete pool at its fill level.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{ERROR_PAUSE, spawn_deprovisioning};
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

    /// One full round, waiting for its runs: retires ready nodes past `max-ready-age`
    /// whose replacements are ready, claims what every pool lacks. What production runs
    /// on every wake-up, with the runs spawned instead of awaited.
    pub async fn tick(&self) -> Result<ProvisionReport, EngineError> {
        let (round, failure) = self.round(&FillScope::All).await;
        let report = round.finish(&self.engine).await;
        failure.map_or(Ok(report), Err)
    }

    /// Claims a round's work for the pools in `scope`. What was claimed is returned even
    /// when a later claim failed (its nodes are already in a transient state), with the
    /// failure.
    async fn round(&self, scope: &FillScope) -> (Round, Option<EngineError>) {
        let recycle = match self.engine.claim_recycle(scope).await {
            Ok(runs) => runs,
            Err(e) => {
                tracing::error!(error = %e, "recycling stale ready nodes failed: {e}");
                Vec::new()
            }
        };
        let (provision, failure) = match self.engine.claim_fill(scope).await {
            Ok(runs) => (runs, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        (Round { recycle, provision }, failure)
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
            let (round, failure) = self.round(&scope).await;
            round.spawn(&self.engine, &tracker);
            if let Some(e) = failure {
                tracing::error!(error = %e, "filling pools failed: {e}");
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
}

/// What a fill round claimed: deprovisioning runs of stale ready nodes, provisioning runs.
struct Round {
    recycle: Vec<Batch>,
    provision: Vec<Batch>,
}

impl Round {
    /// Runs everything and waits for it.
    async fn finish(self, engine: &Arc<Engine>) -> ProvisionReport {
        let (report, _) = futures::future::join(
            engine.provision_round(self.provision),
            futures::future::join_all(self.recycle.into_iter().map(|r| engine.deprovision(r))),
        )
        .await;
        report
    }

    /// Starts everything on `tracker`: a run per recycled batch, a task per pool's
    /// provisioning (a slow pool never holds up another's outcome).
    fn spawn(self, engine: &Arc<Engine>, tracker: &TaskTracker) {
        spawn_deprovisioning(engine, tracker, self.recycle);
        for runs in by_pool(self.provision) {
            let engine = engine.clone();
            tracker.spawn(async move { engine.provision_round(runs).await });
        }
    }
}
