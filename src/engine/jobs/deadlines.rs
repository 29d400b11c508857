//! Deadlines of the transient node states, and the reconciliation after a restart.
//!
//! A node may stay `provisioning`, `contextualizing` or `deprovisioning` only so long
//! (`tasks.deadlines`). Past that, the run that should have moved it on is hung or gone:
//! * `provisioning` → `failed`: a machine may or may not exist, an operator should look;
//! * `contextualizing` → its session is retired and the node deprovisioned, since the
//!   tenant may already hold its key;
//! * `deprovisioning` → `failed`: the machine's state is unknown.
//!
//! A run that did not hang but died with its instance (a crash, a `kill -9`) is not failed
//! here: its node is taken over and its work continued ([`super::takeover`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{ERROR_PAUSE, spawn_deprovisioning};
use crate::config::python_timedelta;
use crate::engine::lifecycle::{Batch, pool_gone};
use crate::engine::states::{self, Change};
use crate::engine::{Engine, EngineError};
use crate::store::{self, nodes::NodeState};

/// How often the deadline job looks at most.
const MAX_PERIOD: Duration = Duration::from_secs(60);

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Ids of provisioning nodes failed.
    pub provisioning_failed: Vec<i64>,
    /// Ids of contextualizing nodes sent to deprovisioning.
    pub contextualizing_taken_back: Vec<i64>,
    /// Ids of deprovisioning nodes failed.
    pub deprovisioning_failed: Vec<i64>,
}

/// The deadline job.
pub struct EnforceDeadlines {
    engine: Arc<Engine>,
}

impl EnforceDeadlines {
    /// A deadline job for the engine's nodes.
    pub fn new(engine: Arc<Engine>) -> Self {
        EnforceDeadlines { engine }
    }

    /// Handles every node past its deadline, waiting for the deprovisioning runs it starts.
    pub async fn tick(&self) -> Result<SweepReport, EngineError> {
        let (report, runs) = self.sweep(store::now()).await?;
        futures::future::join_all(runs.into_iter().map(|run| self.engine.deprovision(run))).await;
        Ok(report)
    }

    /// Runs until cancelled, looking a few times per shortest deadline.
    pub async fn run(self, token: CancellationToken, tracker: TaskTracker) {
        let d = &self.engine.config().tasks.deadlines;
        let shortest = [d.provisioning, d.contextualizing, d.deprovisioning]
            .into_iter()
            .min()
            .and_then(|t| t.to_std().ok())
            .unwrap_or(MAX_PERIOD);
        let period = (shortest / 4).clamp(Duration::from_millis(100), MAX_PERIOD);
        loop {
            tokio::select! {
                biased;
                _ = token.cancelled() => break,
                _ = tokio::time::sleep(period) => {}
            }
            match self.sweep(store::now()).await {
                Ok((_, runs)) => spawn_deprovisioning(&self.engine, &tracker, runs),
                Err(e) => {
                    tracing::error!(error = %e, "checking node deadlines failed: {e}");
                    tokio::time::sleep(ERROR_PAUSE).await;
                }
            }
        }
    }

    async fn sweep(&self, now: NaiveDateTime) -> Result<(SweepReport, Vec<Batch>), EngineError> {
        let deadlines = &self.engine.config().tasks.deadlines;
        let cutoff = |limit: TimeDelta| now.checked_sub_signed(limit).unwrap_or(now);
        let detail = |state: &str, limit: TimeDelta| {
            format!(
                "{state} did not finish within {} (tasks.deadlines.{state})",
                python_timedelta(limit)
            )
        };
        let mut report = SweepReport::default();
        let mut tx = self.engine.db().begin().await?;

        let before = cutoff(deadlines.provisioning);
        for mut node in store::nodes::stuck(&mut tx, NodeState::Provisioning, before).await? {
            let why = detail("provisioning", deadlines.provisioning);
            states::apply(&mut node, Change::Fail { detail: &why }, now)?;
            if store::nodes::save(&mut tx, &node, NodeState::Provisioning).await? {
                tracing::warn!(node.id = node.id, pool.name = ?node.pool, "node {}: {why}", node.id);
                report.provisioning_failed.push(node.id);
            }
        }

        let before = cutoff(deadlines.deprovisioning);
        for mut node in store::nodes::stuck(&mut tx, NodeState::Deprovisioning, before).await? {
            let why = detail("deprovisioning", deadlines.deprovisioning);
            states::apply(&mut node, Change::Fail { detail: &why }, now)?;
            if store::nodes::save(&mut tx, &node, NodeState::Deprovisioning).await? {
                tracing::warn!(node.id = node.id, "node {}: {why}", node.id);
                report.deprovisioning_failed.push(node.id);
            }
        }

        let before = cutoff(deadlines.contextualizing);
        let mut taken_back = Vec::new();
        for mut node in store::nodes::stuck(&mut tx, NodeState::Contextualizing, before).await? {
            store::sessions::retire_holding(&mut tx, node.id, now).await?;
            let pool = node
                .pool
                .clone()
                .filter(|p| self.engine.concrete_pool(p).is_some());
            match &pool {
                Some(pool) => {
                    let by = self.engine.instance();
                    states::apply(&mut node, Change::Deprovision { pool, by }, now)?
                }
                None => pool_gone(&mut node, now)?,
            }
            if store::nodes::save(&mut tx, &node, NodeState::Contextualizing).await? {
                tracing::warn!(
                    node.id = node.id,
                    "node {}: {}; retiring its session and deprovisioning it",
                    node.id,
                    detail("contextualizing", deadlines.contextualizing)
                );
                report.contextualizing_taken_back.push(node.id);
                if let Some(pool) = pool {
                    taken_back.push((pool, node));
                }
            }
        }
        tx.commit().await?;
        Ok((report, self.engine.runs_by_pool(taken_back)))
    }
}
