//! The heartbeat, and taking over the work of dead instances.
//!
//! Every round (a third of `tasks.lease`) this instance renews its heartbeat, declares dead
//! the instances that are ([`crate::engine::instances::why_dead`]), and takes over every
//! node in a transient state that no live instance owns. The work is continued, not failed:
//! * `deprovisioning` → deprovisioned again by its pool's mechanism (deprovisioning is
//!   written to be repeatable);
//! * `provisioning` → handed to the pool's deprovisioning with what it has (its id, and any
//!   hostname, address and data), so that whatever the interrupted run made is removed,
//!   and then dropped; the pool refills;
//! * `contextualizing` → its session is retired (the tenant may hold its key) and the node
//!   deprovisioned.
//!
//! Only a node whose deprovisioning then fails ends `failed`, with the reason. Each node is
//! claimed by compare-and-set on its state and the time it entered it, so when several
//! instances find the same dead one, each node is taken over once. The same round runs at
//! start, before the API serves: after a restart, the previous process's work is taken over
//! at once (on SQLite the serve lock says no other server runs; on PostgreSQL a process of
//! the same machine that is gone is dead at once, others after the lease).

use std::sync::Arc;

use chrono::NaiveDateTime;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{ERROR_PAUSE, spawn_deprovisioning};
use crate::engine::instances::{heartbeat_period, why_dead};
use crate::engine::lifecycle::{Batch, pool_gone};
use crate::engine::states::{self, Change, python_isoformat};
use crate::engine::{Engine, EngineError};
use crate::store::instances::{self, InstanceId};
use crate::store::nodes::NodeState;
use crate::store::{self, Backend};

/// How long a stopped instance that owns nothing is kept in the table.
const KEEP_STOPPED: chrono::TimeDelta = chrono::TimeDelta::days(7);
/// How often an instance forgets what is past keeping.
const PRUNE_EVERY: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// What a round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TakeoverReport {
    /// Instances this round declared dead.
    pub dead: Vec<i64>,
    /// Nodes taken over in `provisioning`: now being deprovisioned.
    pub provisioning: Vec<i64>,
    /// Nodes taken over in `contextualizing`: session retired, now being deprovisioned.
    pub contextualizing: Vec<i64>,
    /// Nodes taken over in `deprovisioning`: being deprovisioned again.
    pub deprovisioning: Vec<i64>,
    /// Nodes failed because their pool is not configured any more.
    pub failed: Vec<i64>,
}

impl TakeoverReport {
    /// How many nodes were taken over.
    pub fn nodes(&self) -> usize {
        self.provisioning.len()
            + self.contextualizing.len()
            + self.deprovisioning.len()
            + self.failed.len()
    }
}

/// The heartbeat and take-over job.
pub struct Takeover {
    engine: Arc<Engine>,
    /// Since when this instance has renewed its heartbeat without a gap: only an instance
    /// that has for a whole lease may judge others by theirs. After the database was out
    /// of reach, every heartbeat is old; the first instance back must not take the work of
    /// the others, which were cut off just as long.
    beating_since: Option<NaiveDateTime>,
    /// When this instance last renewed its heartbeat.
    last_beat: Option<NaiveDateTime>,
    /// When it last forgot old instances and `Idempotency-Key`s.
    last_prune: Option<NaiveDateTime>,
}

impl Takeover {
    /// The job of the engine's instance.
    pub fn new(engine: Arc<Engine>) -> Self {
        Takeover {
            engine,
            beating_since: None,
            last_beat: None,
            last_prune: None,
        }
    }

    /// One round, waiting for the deprovisioning runs it starts.
    pub async fn tick(&mut self) -> Result<TakeoverReport, EngineError> {
        let (report, runs) = self.round(false).await?;
        futures::future::join_all(runs.into_iter().map(|run| self.engine.deprovision(run))).await;
        Ok(report)
    }

    /// The round at start, before the API serves; its runs are spawned on `tracker`.
    pub async fn start_up(&mut self, tracker: &TaskTracker) -> Result<TakeoverReport, EngineError> {
        let (report, runs) = self.round(true).await?;
        spawn_deprovisioning(&self.engine, tracker, runs);
        Ok(report)
    }

    /// Runs until cancelled, a round every third of the lease.
    pub async fn run(mut self, token: CancellationToken, tracker: TaskTracker) {
        let period = heartbeat_period(self.engine.config().tasks.lease);
        loop {
            tokio::select! {
                biased;
                _ = token.cancelled() => break,
                _ = tokio::time::sleep(period) => {}
            }
            match self.round(false).await {
                Ok((_, runs)) => spawn_deprovisioning(&self.engine, &tracker, runs),
                Err(e) => {
                    tracing::error!(error = %e, "heartbeat and take-over round failed: {e}");
                    tokio::time::sleep(ERROR_PAUSE).await;
                }
            }
        }
    }

    async fn round(&mut self, at_start: bool) -> Result<(TakeoverReport, Vec<Batch>), EngineError> {
        let engine = self.engine.clone();
        let me = engine.instance();
        let now = store::now();
        let lease = chrono::TimeDelta::from_std(engine.config().tasks.lease)
            .unwrap_or(chrono::TimeDelta::MAX);
        let beat = instances::heartbeat(engine.db(), me, now).await;
        let gap = self.last_beat.is_none_or(|last| now - last > lease / 2);
        if beat.is_err() || gap {
            self.beating_since = None;
        }
        let beat = beat?;
        self.last_beat = Some(now);
        let beating_since = *self.beating_since.get_or_insert(now);
        // Judged by their heartbeats only once this one's covers a whole lease.
        let judge_lease = now - beating_since >= lease;
        if !beat {
            tracing::error!(
                instance.id = me.0,
                "this instance was declared dead by another (its heartbeat came too late: a \
                 pause longer than tasks.lease?); its nodes were taken over, and it carries on"
            );
        }
        let sole_server = at_start && engine.db().backend() == Backend::Sqlite;
        let mut report = TakeoverReport::default();
        let mut tx = engine.db().begin().await?;
        for other in instances::live_in(&mut tx).await? {
            let Some(why) = why_dead(&other, me, now, judge_lease.then_some(lease), sole_server)
            else {
                continue;
            };
            if instances::declare_dead(&mut tx, InstanceId(other.id), now).await? {
                tracing::warn!(
                    instance.id = other.id,
                    instance.host = %other.host,
                    instance.pid = other.pid,
                    "instance {} ({} pid {}) is dead: {why}; taking its work over",
                    other.id,
                    other.host,
                    other.pid
                );
                report.dead.push(other.id);
            }
        }
        let mut runs = Vec::new();
        for mut node in store::nodes::untended(&mut tx).await? {
            let (state, claimed_at, from) = (node.state, node.state_changed_at, node.owner);
            let pool = node
                .run_pool
                .clone()
                .or_else(|| node.pool.clone())
                .filter(|p| engine.concrete_pool(p).is_some());
            if state == NodeState::Contextualizing {
                store::sessions::retire_holding(&mut tx, node.id, now).await?;
            }
            node.data.0.insert(
                "taken_over".into(),
                json!({"at": python_isoformat(now), "from_instance": from, "state": state.as_str()}),
            );
            match &pool {
                Some(pool) => states::apply(&mut node, Change::Deprovision { pool, by: me }, now)?,
                None => pool_gone(&mut node, now)?,
            }
            if !store::nodes::save_claimed(&mut tx, &node, state, claimed_at).await? {
                // Another instance took it over first, or its run ended meanwhile.
                continue;
            }
            tracing::info!(
                node.id = node.id,
                node.from = state.as_str(),
                instance.from = ?from,
                "node {}: {state} was left by {}; taking it over{}",
                node.id,
                from.map_or("no live instance".to_owned(), |i| format!("instance {i}")),
                if pool.is_some() { " and deprovisioning it" } else { "" }
            );
            match (pool, state) {
                (None, _) => report.failed.push(node.id),
                (Some(pool), state) => {
                    match state {
                        NodeState::Provisioning => report.provisioning.push(node.id),
                        NodeState::Contextualizing => report.contextualizing.push(node.id),
                        _ => report.deprovisioning.push(node.id),
                    }
                    runs.push((pool, node));
                }
            }
        }
        tx.commit().await?;
        if report.nodes() > 0 {
            tracing::warn!(
                nodes.provisioning = ?report.provisioning,
                nodes.contextualizing = ?report.contextualizing,
                nodes.deprovisioning = ?report.deprovisioning,
                nodes.failed = ?report.failed,
                "took over {} node(s) that no live instance tended",
                report.nodes()
            );
        }
        if self.last_prune.is_none_or(|at| now - at > PRUNE_EVERY) {
            // Housekeeping: a failure must not cost the round's take-over runs.
            if let Err(e) = self.prune(now).await {
                tracing::warn!(error = %e, "forgetting old instances and Idempotency-Keys failed: {e}");
            }
        }
        Ok((report, engine.runs_by_pool(runs)))
    }

    /// Forgets instances stopped long ago that own nothing, and `Idempotency-Key`s past
    /// their window.
    async fn prune(&mut self, now: NaiveDateTime) -> Result<(), EngineError> {
        let db = self.engine.db();
        instances::prune(db, now - KEEP_STOPPED).await?;
        let window = chrono::TimeDelta::from_std(self.engine.config().app.idempotency_window)
            .unwrap_or(chrono::TimeDelta::MAX);
        if let Some(before) = now.checked_sub_signed(window) {
            crate::store::idempotency::prune(db, before).await?;
        }
        self.last_prune = Some(now);
        Ok(())
    }
}
