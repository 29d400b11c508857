//! The node life cycle outside sessions: filling pools (provisioning) and taking nodes back
//! (deprovisioning), with the original Duffy's rules for reading mechanism results.
//!
//! Each step is split in two: a short transaction that *claims* nodes (moves them into a
//! transient state), and a *run* that calls the mechanism without holding any transaction
//! and then records the outcome with compare-and-set writes. A crash between the two leaves
//! nodes in a transient state, which the deadline job and the start-up reconciliation handle.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use chrono::NaiveDateTime;
use serde_json::{Map, Value};

use super::group::Grouped;
use super::results::RunResult;
use super::states::{self, Change};
use super::{Engine, EngineError, FillScope};
use crate::config::Pool;
use crate::mechanisms::{Deprovisioned, NodeInput};
use crate::store::nodes::{Node, NodeState, Saving};
use crate::store::{self, Db, StoreError};

/// How many orphaned nodes one deprovision round claims.
const DEPROVISION_BATCH: i64 = 256;
/// Upper bound on a reverse DNS lookup for a node without a hostname.
const REVERSE_DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// How many stale ready nodes of a pool are replaced at a time: a quarter of the fill
/// level, at least one, so a pool is renewed gradually and never runs short.
pub fn recycle_batch(fill_level: i64) -> i64 {
    (fill_level / 4).max(1)
}

/// Nodes of one pool handed to one mechanism run.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The pool whose mechanism runs.
    pub pool: String,
    /// The nodes, already in the run's transient state.
    pub nodes: Vec<Node>,
}

/// How a provisioning run ended, per node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProvisionReport {
    /// Nodes now ready.
    pub ready: usize,
    /// Nodes the mechanism did not deliver (deleted, or back to unused).
    pub dropped: usize,
    /// Nodes failed (e.g. an address already in use).
    pub failed: usize,
}

impl ProvisionReport {
    /// Counts how one node's provisioning ended.
    fn count(&mut self, outcome: Result<NodeState, EngineError>, pool: &str) {
        match outcome {
            Ok(NodeState::Ready) => self.ready += 1,
            Ok(NodeState::Failed) => self.failed += 1,
            Ok(_) => self.dropped += 1,
            Err(e) => {
                self.dropped += 1;
                tracing::error!(pool.name = %pool, error = %e, "pool {pool}: recording a provisioning result failed: {e}");
            }
        }
    }

    /// The sum of two reports.
    pub fn plus(&self, other: &ProvisionReport) -> ProvisionReport {
        ProvisionReport {
            ready: self.ready + other.ready,
            dropped: self.dropped + other.dropped,
            failed: self.failed + other.failed,
        }
    }
}

/// How a deprovisioning run ended, per node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeprovisionReport {
    /// Non-reusable nodes retired as `done`.
    pub done: usize,
    /// Reusable nodes back to `unused`.
    pub returned: usize,
    /// Nodes that ended `failed`.
    pub failed: usize,
}

/// What the node life cycle of an engine owns: the queue that groups the results of
/// mechanism runs, and which pools have unused nodes assigned to them.
pub(crate) struct LifecycleState {
    run_results: Grouped<Vec<RunResult>, Vec<i64>>,
    /// Pools that may hold `unused` nodes assigned to them (imported v2 hosts, nodes
    /// registered with a pool): their fill provisions those first. `None` until the first
    /// fill reads it from the database; every full round reads it again.
    assigned: Mutex<Option<BTreeSet<String>>>,
}

impl LifecycleState {
    /// The state of an engine on `db`.
    pub(crate) fn new(db: &Db) -> LifecycleState {
        LifecycleState {
            run_results: super::results::queue(db.clone()),
            assigned: Mutex::new(None),
        }
    }
}

/// What a provisioning run delivered for one node, not yet recorded.
struct Delivery {
    /// The node, still `provisioning`.
    node: Node,
    /// When its run claimed it.
    claimed_at: NaiveDateTime,
    hostname: String,
    ipaddr: String,
    entry: Map<String, Value>,
}

impl Delivery {
    /// The transition to `ready`.
    fn change(&self) -> Change<'static> {
        Change::Deliver {
            hostname: self.hostname.clone(),
            ipaddr: self.ipaddr.clone(),
            entry: self.entry.clone(),
        }
    }
}

/// Fails a node that should be deprovisioned but whose pool is not configured (any more).
pub(crate) fn pool_gone(node: &mut Node, now: NaiveDateTime) -> Result<(), states::Illegal> {
    let pool = node
        .pool
        .clone()
        .or_else(|| node.run_pool.clone())
        .unwrap_or_default();
    tracing::warn!(node.id = node.id, pool.name = %pool, "node {}: deprovisioning node failed, pool '{pool}' not found", node.id);
    states::apply(node, Change::PoolGone, now)
}

/// What a mechanism is told about a node.
fn input(node: &Node) -> NodeInput {
    NodeInput {
        id: node.id,
        hostname: node.hostname.clone(),
        ipaddr: node.ipaddr.clone(),
        data: node.data.0.clone(),
    }
}

/// Splits claimed nodes into runs: one per node with `run-parallel`, else one per pool.
fn batches(pool: &Pool, nodes: Vec<Node>) -> Vec<Batch> {
    if nodes.is_empty() {
        Vec::new()
    } else if pool.run_parallel {
        nodes
            .into_iter()
            .map(|n| Batch {
                pool: pool.name.clone(),
                nodes: vec![n],
            })
            .collect()
    } else {
        vec![Batch {
            pool: pool.name.clone(),
            nodes,
        }]
    }
}

/// Whether every key of `entry` has the same value in `provision` (the original's rule for
/// pairing deprovision results with nodes).
fn matches(entry: &Value, provision: Option<&Value>) -> bool {
    match (entry, provision) {
        (Value::Object(entry), Some(Value::Object(provision))) => {
            entry.iter().all(|(k, v)| provision.get(k) == Some(v))
        }
        _ => false,
    }
}

/// The host name of an address from reverse DNS, bounded in time.
async fn reverse_dns(ipaddr: &str) -> Option<String> {
    let ip: IpAddr = ipaddr.parse().ok()?;
    let lookup = tokio::task::spawn_blocking(move || dns_lookup::lookup_addr(&ip).ok());
    match tokio::time::timeout(REVERSE_DNS_TIMEOUT, lookup).await {
        Ok(Ok(Some(name))) if name != ipaddr => Some(name),
        _ => None,
    }
}

impl Engine {
    /// Claims what the pools in `scope` lack: new node rows (or matching unused reusable
    /// nodes) in `provisioning`, returned as mechanism runs. `FillScope::Nothing` means the
    /// periodic round, which looks at every pool like `All`.
    pub async fn claim_fill(&self, scope: &FillScope) -> Result<Vec<Batch>, EngineError> {
        let mut runs = Vec::new();
        self.load_assigned(matches!(scope, FillScope::All | FillScope::Nothing))
            .await?;
        for pool in self.config().nodepools.concrete() {
            let Some(fill_level) = pool.fill_level else {
                continue;
            };
            if let FillScope::Pools(names) = scope
                && !names.contains(&pool.name)
            {
                continue;
            }
            if self.pool_backoff().is_backing_off(&pool.name) {
                tracing::debug!(pool.name = %pool.name, "pool {} is backing off after failed provisioning; not filling it yet", pool.name);
                continue;
            }
            let nodes = self.claim_pool_fill(pool, i64::from(fill_level)).await?;
            if !nodes.is_empty() {
                tracing::info!(pool.name = %pool.name, nodes.count = nodes.len(), "pool {} below its fill level; provisioning {} node(s)", pool.name, nodes.len());
            }
            runs.extend(batches(pool, nodes));
        }
        Ok(runs)
    }

    async fn claim_pool_fill(
        &self,
        pool: &Pool,
        fill_level: i64,
    ) -> Result<Vec<Node>, EngineError> {
        let now = store::now();
        let assigned = self.has_assigned(&pool.name);
        if pool.reuse_nodes.is_none() && pool.max_ready_age.is_none() && !assigned {
            // The common case, on every hand-out: one statement.
            return Ok(store::nodes::fill_to_level(
                self.db(),
                &pool.name,
                now,
                fill_level,
                self.instance(),
            )
            .await?);
        }
        let mut tx = self.db().begin().await?;
        store::nodes::lock_pool(&mut tx, &pool.name).await?;
        // Unused nodes assigned to the pool go first; what they do not cover is filled as
        // usual (the counts below see them in `provisioning`).
        let mut adopted = Vec::new();
        if assigned {
            let quantity = fill_level - store::nodes::count_filling(&mut tx, &pool.name).await?;
            let waiting = store::nodes::assigned_unused(&mut tx, &pool.name).await?;
            let all_taken = i64::try_from(waiting.len()).unwrap_or(i64::MAX) <= quantity;
            for node in waiting {
                if adopted.len() as i64 >= quantity {
                    break;
                }
                adopted.extend(
                    self.provision_unused(&mut tx, node, &pool.name, now)
                        .await?,
                );
            }
            if all_taken {
                self.forget_assigned(&pool.name);
            }
        }
        // Ready nodes past `max-ready-age` get replacements first, a few at a time; they
        // are deprovisioned once the replacements are ready (see `claim_recycle`).
        let replacing = match pool.max_ready_age {
            Some(age) => {
                let before = now.checked_sub_signed(age).unwrap_or(NaiveDateTime::MIN);
                let stale = store::nodes::ready_before(&mut tx, &pool.name, before).await?;
                (stale.len() as i64).min(recycle_batch(fill_level))
            }
            None => 0,
        };
        let target = fill_level + replacing;
        let claimed = match &pool.reuse_nodes {
            None => {
                store::nodes::fill_to_level_in(&mut tx, &pool.name, now, target, self.instance())
                    .await?
            }
            Some(wanted) => {
                let quantity = target - store::nodes::count_filling(&mut tx, &pool.name).await?;
                if quantity <= 0 {
                    tx.commit().await?;
                    return Ok(adopted);
                }
                let wanted = match self.render_reuse_match(pool, wanted) {
                    Ok(w) => w,
                    Err(reason) => {
                        tracing::error!(pool.name = %pool.name, error = %reason, "pool {}: cannot match reusable nodes: {reason}; skipping its fill", pool.name);
                        tx.commit().await?;
                        return Ok(adopted);
                    }
                };
                let mut claimed = Vec::new();
                for node in store::nodes::reusable_unused(&mut tx).await? {
                    if claimed.len() as i64 >= quantity {
                        break;
                    }
                    if !wanted.iter().all(|(k, v)| node.data.0.get(k) == Some(v)) {
                        continue;
                    }
                    claimed.extend(
                        self.provision_unused(&mut tx, node, &pool.name, now)
                            .await?,
                    );
                }
                claimed
            }
        };
        tx.commit().await?;
        adopted.extend(claimed);
        Ok(adopted)
    }

    /// Claims an unused node for a provisioning run of `pool`; the node, if it was still
    /// unused.
    async fn provision_unused(
        &self,
        tx: &mut store::Tx,
        mut node: Node,
        pool: &str,
        now: NaiveDateTime,
    ) -> Result<Option<Node>, EngineError> {
        let by = self.instance();
        states::apply(&mut node, Change::Provision { pool, by }, now)?;
        Ok(store::nodes::save(tx, &node, NodeState::Unused)
            .await?
            .then_some(node))
    }

    /// Reads which pools have unused nodes assigned to them, the first time or when
    /// `again` (a full round).
    async fn load_assigned(&self, again: bool) -> Result<(), EngineError> {
        let known = self.lifecycle.assigned.lock().is_ok_and(|a| a.is_some());
        if known && !again {
            return Ok(());
        }
        let pools = store::nodes::pools_with_assigned_unused(self.db()).await?;
        if let Ok(mut assigned) = self.lifecycle.assigned.lock() {
            *assigned = Some(pools.into_iter().collect());
        }
        Ok(())
    }

    /// Whether `pool` may have unused nodes assigned to it.
    fn has_assigned(&self, pool: &str) -> bool {
        self.lifecycle
            .assigned
            .lock()
            .is_ok_and(|a| a.as_ref().is_some_and(|set| set.contains(pool)))
    }

    /// `pool` has no unused node assigned to it any more.
    fn forget_assigned(&self, pool: &str) {
        if let Ok(mut assigned) = self.lifecycle.assigned.lock()
            && let Some(set) = assigned.as_mut()
        {
            set.remove(pool);
        }
    }

    /// Claims the ready nodes past their pool's `max-ready-age` that can go without the
    /// pool dropping below its fill level (their replacements are ready), oldest first,
    /// and moves them to `deprovisioning`. Returns the deprovisioning runs to make.
    pub async fn claim_recycle(&self, scope: &FillScope) -> Result<Vec<Batch>, EngineError> {
        let mut runs = Vec::new();
        for pool in self.config().nodepools.concrete() {
            let (Some(fill_level), Some(age)) = (pool.fill_level, pool.max_ready_age) else {
                continue;
            };
            if let FillScope::Pools(names) = scope
                && !names.contains(&pool.name)
            {
                continue;
            }
            if self.pool_backoff().is_backing_off(&pool.name) {
                // No replacements come while provisioning fails: keep serving the old nodes.
                continue;
            }
            let now = store::now();
            let mut tx = self.db().begin().await?;
            store::nodes::lock_pool(&mut tx, &pool.name).await?;
            let before = now.checked_sub_signed(age).unwrap_or(NaiveDateTime::MIN);
            let stale = store::nodes::ready_before(&mut tx, &pool.name, before).await?;
            let spare =
                store::nodes::count_ready(&mut tx, &pool.name).await? - i64::from(fill_level);
            let mut claimed = Vec::new();
            for mut node in stale.into_iter().take(usize::try_from(spare).unwrap_or(0)) {
                let by = self.instance();
                states::apply(
                    &mut node,
                    Change::Deprovision {
                        pool: &pool.name,
                        by,
                    },
                    now,
                )?;
                if store::nodes::save(&mut tx, &node, NodeState::Ready).await? {
                    claimed.push(node);
                }
            }
            tx.commit().await?;
            if !claimed.is_empty() {
                let ids: Vec<i64> = claimed.iter().map(|n| n.id).collect();
                tracing::info!(pool.name = %pool.name, nodes.ids = ?ids, "pool {}: recycling {} ready node(s) older than max-ready-age {}", pool.name, ids.len(), crate::config::python_timedelta(age));
            }
            runs.extend(batches(pool, claimed));
        }
        Ok(runs)
    }

    /// The values `reuse-nodes` requires of a node's data: strings are templates rendered
    /// with the pool's settings, integers compare as integers (`docs/v3-api.md` §11).
    fn render_reuse_match(
        &self,
        pool: &Pool,
        wanted: &Map<String, Value>,
    ) -> Result<Map<String, Value>, String> {
        let env = crate::templates::environment();
        let mut rendered = Map::new();
        for (key, value) in wanted {
            let value = match value {
                Value::String(template) => Value::String(
                    env.render_str(template, minijinja::value::Serde(&pool.settings))
                        .map_err(|e| format!("reuse-nodes.{key}: {e}"))?,
                ),
                Value::Number(n) if n.is_i64() || n.is_u64() => value.clone(),
                other => return Err(format!("reuse-nodes.{key}: unsupported value {other}")),
            };
            rendered.insert(key.clone(), value);
        }
        Ok(rendered)
    }

    /// Runs a pool's mechanism on claimed `provisioning` nodes and records the results:
    /// entries pair with nodes by position, and only an entry with an `ipaddr` makes a node
    /// ready.
    pub async fn provision(&self, batch: Batch) -> ProvisionReport {
        self.provision_run(batch).await.0
    }

    /// Runs a fill round's runs concurrently, then feeds each pool's outcome into its
    /// backoff: a pool none of whose runs delivered a node failed, one that got any node
    /// works (so a partial failure of parallel runs does not pause the pool).
    pub async fn provision_round(&self, runs: Vec<Batch>) -> ProvisionReport {
        let pools: Vec<String> = runs.iter().map(|r| r.pool.clone()).collect();
        let outcomes =
            futures::future::join_all(runs.into_iter().map(|run| self.provision_run(run))).await;
        let mut by_pool: Vec<(String, ProvisionReport, Option<String>)> = Vec::new();
        let mut total = ProvisionReport::default();
        for (pool, (report, error)) in pools.into_iter().zip(outcomes) {
            total = total.plus(&report);
            match by_pool.iter_mut().find(|(name, _, _)| *name == pool) {
                Some((_, sum, last_error)) => {
                    *sum = sum.plus(&report);
                    if error.is_some() {
                        *last_error = error;
                    }
                }
                None => by_pool.push((pool, report, error)),
            }
        }
        for (pool, report, error) in by_pool {
            if self.concrete_pool(&pool).is_some() {
                self.record_round(&pool, &report, error);
            }
        }
        total
    }

    /// [`Engine::provision`], also returning the mechanism's error when it failed as a whole.
    async fn provision_run(&self, batch: Batch) -> (ProvisionReport, Option<String>) {
        let started = std::time::Instant::now();
        let pool_name = batch.pool.clone();
        let total = batch.nodes.len();
        let (report, error) = self.provision_nodes(batch).await;
        let outcome = match report.ready {
            n if n == total => "ok",
            0 => "failed",
            _ => "partial",
        };
        self.metrics()
            .mechanism_run(&pool_name, "provision", outcome, started.elapsed());
        if outcome != "ok" {
            let text = error.clone().unwrap_or_else(|| {
                format!(
                    "{} of {total} node(s) not delivered",
                    report.dropped + report.failed
                )
            });
            self.recent_errors().record(&pool_name, "provision", &text);
        }
        (report, error)
    }

    async fn provision_nodes(&self, batch: Batch) -> (ProvisionReport, Option<String>) {
        let pool = self.config().nodepools.get(&batch.pool);
        let mechanism = self.mechanisms().get(&batch.pool);
        let inputs: Vec<NodeInput> = batch.nodes.iter().map(input).collect();
        let mut mechanism_error = None;
        let entries = match (pool, mechanism) {
            (Some(pool), Some(mechanism)) => match mechanism.provision(pool, &inputs).await {
                Ok(entries) => entries,
                Err(e) => {
                    tracing::warn!(pool.name = %batch.pool, nodes.count = inputs.len(), error = %e, "pool {}: provisioning failed: {e}", batch.pool);
                    mechanism_error = Some(e.to_string());
                    Vec::new()
                }
            },
            _ => {
                tracing::warn!(pool.name = %batch.pool, "pool {} is no longer configured; dropping its provisioning nodes", batch.pool);
                Vec::new()
            }
        };
        let mut report = ProvisionReport::default();
        let mut entries = entries.into_iter();
        let mut delivered = Vec::new();
        for node in batch.nodes {
            let outcome = match entries.next() {
                Some(Value::Object(entry)) if valid_ipaddr(&entry).is_some() => {
                    delivered.push(self.delivered(node, entry).await);
                    continue;
                }
                _ => self.not_provisioned(node).await.map(|()| NodeState::Unused),
            };
            report.count(outcome, &batch.pool);
        }
        for outcome in self.record_ready(delivered).await {
            report.count(outcome, &batch.pool);
        }
        if report.ready > 0 {
            tracing::info!(pool.name = %batch.pool, nodes.ready = report.ready, nodes.dropped = report.dropped, nodes.failed = report.failed, "pool {}: {} node(s) ready", batch.pool, report.ready);
        }
        (report, mechanism_error)
    }

    /// Feeds a pool's provisioning round into its backoff: a round that delivered no node
    /// is a failure, one that delivered any clears the backoff.
    fn record_round(&self, pool: &str, report: &ProvisionReport, error: Option<String>) {
        if report.ready > 0 {
            if let Some(was) = self.pool_backoff().succeeded(pool) {
                tracing::info!(pool.name = %pool, pool.failures = was.failures, "pool {pool}: provisioning works again after {} failed round(s)", was.failures);
            }
            return;
        }
        if report.dropped + report.failed == 0 {
            return;
        }
        let error = error.unwrap_or_else(|| "the mechanism delivered no node".to_owned());
        let (failing, counted) = self.pool_backoff().failed(pool, &error);
        if counted {
            tracing::warn!(pool.name = %pool, pool.failures = failing.failures, backoff.secs = failing.delay.as_secs_f64(), "pool {pool}: provisioning failed {} time(s) in a row; backing off for {:?}", failing.failures, failing.delay);
            // The fill job re-arms its timer for the retry.
            self.wakers().fill(Some(&[pool.to_owned()]));
        }
    }

    /// What the mechanism delivered for a node: its host name (from the entry, else
    /// reverse DNS, else the address), its address and the entry.
    async fn delivered(&self, node: Node, entry: Map<String, Value>) -> Delivery {
        let ipaddr = valid_ipaddr(&entry).unwrap_or_default().to_owned();
        let hostname = match entry.get("hostname").and_then(Value::as_str) {
            Some(h) if !h.is_empty() => h.to_owned(),
            _ => reverse_dns(&ipaddr).await.unwrap_or_else(|| ipaddr.clone()),
        };
        Delivery {
            claimed_at: node.state_changed_at,
            node,
            hostname,
            ipaddr,
            entry,
        }
    }

    /// Makes the delivered nodes of a run ready, in one transaction. When an address or
    /// host name clashes with a live node, the run's nodes are saved one at a time instead,
    /// so that only the clashing ones fail.
    async fn record_ready(&self, delivered: Vec<Delivery>) -> Vec<Result<NodeState, EngineError>> {
        if delivered.is_empty() {
            return Vec::new();
        }
        let now = store::now();
        let mut ready = Vec::with_capacity(delivered.len());
        for delivery in &delivered {
            let mut node = delivery.node.clone();
            match states::apply(&mut node, delivery.change(), now) {
                Ok(()) => ready.push((node, delivery.claimed_at)),
                // Runs only get provisioning nodes: a bug if not.
                Err(e) => tracing::error!(node.id = node.id, error = %e, "{e}"),
            }
        }
        let run = RunResult::all(&ready, NodeState::Provisioning);
        match self.lifecycle.run_results.request(run).await {
            // A node not saved was taken meanwhile by a deadline, a restart or an admin.
            Ok(saved) => delivered
                .iter()
                .map(|d| {
                    Ok(if saved.contains(&d.node.id) {
                        NodeState::Ready
                    } else {
                        NodeState::Failed
                    })
                })
                .collect(),
            Err(EngineError::Store(StoreError::Duplicate { .. })) => {
                let mut outcomes = Vec::with_capacity(delivered.len());
                for delivery in delivered {
                    outcomes.push(self.provisioned(delivery).await);
                }
                outcomes
            }
            Err(e) => {
                // Every node gets the failure; the group's own text is not wrapped again.
                let text = match e {
                    EngineError::Store(StoreError::Shared(text)) => text,
                    other => other.to_string(),
                };
                delivered
                    .iter()
                    .map(|_| Err(StoreError::Shared(text.clone()).into()))
                    .collect()
            }
        }
    }

    /// Makes one delivered node ready, or failed when its address or host name is taken.
    async fn provisioned(&self, delivery: Delivery) -> Result<NodeState, EngineError> {
        let claimed_at = delivery.claimed_at;
        let mut node = delivery.node.clone();
        states::apply(&mut node, delivery.change(), store::now())?;
        let mut tx = self.db().begin().await?;
        match store::nodes::save_claimed(&mut tx, &node, NodeState::Provisioning, claimed_at).await
        {
            Ok(true) => {
                tx.commit().await?;
                Ok(NodeState::Ready)
            }
            // A deadline, a restart or an admin took the node meanwhile.
            Ok(false) => Ok(NodeState::Failed),
            Err(StoreError::Duplicate { field }) => {
                drop(tx);
                let detail =
                    format!("provisioning returned a {field} that a live node already has");
                tracing::warn!(node.id = node.id, pool.name = ?node.pool, "node {}: {detail}", node.id);
                let mut node = delivery.node;
                let failed = Change::DeliverFailed {
                    hostname: delivery.hostname,
                    ipaddr: delivery.ipaddr,
                    entry: delivery.entry,
                    detail: &detail,
                };
                states::apply(&mut node, failed, store::now())?;
                let mut tx = self.db().begin().await?;
                store::nodes::save_claimed(&mut tx, &node, NodeState::Provisioning, claimed_at)
                    .await?;
                tx.commit().await?;
                Ok(NodeState::Failed)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A node the mechanism did not deliver: a reusable one goes back to `unused` outside
    /// any pool; a fresh row is deleted; one with a machine of its own fails.
    async fn not_provisioned(&self, mut node: Node) -> Result<(), EngineError> {
        let claimed_at = node.state_changed_at;
        let mut tx = self.db().begin().await?;
        if node.reusable {
            states::apply(&mut node, Change::GiveBack, store::now())?;
            store::nodes::save_claimed(&mut tx, &node, NodeState::Provisioning, claimed_at).await?;
        } else if node.hostname.is_some() {
            // A machine of its own (an admin asked to provision it again): keep the record.
            let failed = Change::Fail {
                detail: "provisioning failed",
            };
            states::apply(&mut node, failed, store::now())?;
            store::nodes::save_claimed(&mut tx, &node, NodeState::Provisioning, claimed_at).await?;
        } else {
            store::nodes::delete_provisioning(&mut tx, node.id, claimed_at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Claims deployed nodes that no active session holds any more and moves them to
    /// `deprovisioning`; a node whose pool is not configured fails at once. Returns the
    /// mechanism runs to make.
    pub async fn claim_deprovision(&self) -> Result<Vec<Batch>, EngineError> {
        let now = store::now();
        let mut tx = self.db().begin().await?;
        let mut orphans = store::nodes::orphaned_deployed(&mut tx, DEPROVISION_BATCH).await?;
        let mut pools: Vec<Option<String>> = Vec::with_capacity(orphans.len());
        for node in &mut orphans {
            let pool = node
                .pool
                .clone()
                .filter(|p| self.concrete_pool(p).is_some());
            match &pool {
                Some(pool) => {
                    let by = self.instance();
                    states::apply(node, Change::Deprovision { pool, by }, now)?
                }
                None => pool_gone(node, now)?,
            }
            pools.push(pool);
        }
        let saving: Vec<Saving> = orphans
            .iter()
            .map(|node| Saving::new(node, NodeState::Deployed))
            .collect();
        let saved = store::nodes::save_all(&mut tx, &saving).await?;
        tx.commit().await?;
        let claimed = orphans
            .into_iter()
            .zip(pools)
            .filter(|(node, _)| saved.contains(&node.id))
            .filter_map(|(node, pool)| pool.map(|pool| (pool, node)))
            .collect();
        Ok(self.runs_by_pool(claimed))
    }

    /// Groups nodes just moved to `deprovisioning`, each with the pool it was in, into the
    /// mechanism runs of their pools.
    pub(crate) fn runs_by_pool(&self, mut nodes: Vec<(String, Node)>) -> Vec<Batch> {
        let mut runs = Vec::new();
        for pool in self.config().nodepools.concrete() {
            let (of_pool, rest): (Vec<_>, Vec<_>) =
                nodes.into_iter().partition(|(name, _)| *name == pool.name);
            nodes = rest;
            runs.extend(batches(pool, of_pool.into_iter().map(|(_, n)| n).collect()));
        }
        runs
    }

    /// Runs a pool's deprovisioning on claimed nodes and records how each ended: matched
    /// reusable nodes go back to `unused`, other matched nodes are `done`, the rest (and
    /// every node a tenant reported failed) end `failed`.
    pub async fn deprovision(&self, batch: Batch) -> DeprovisionReport {
        let started = std::time::Instant::now();
        let pool_name = batch.pool.clone();
        let total = batch.nodes.len();
        let (report, error) = self.deprovision_nodes(batch).await;
        let outcome = match report.failed {
            0 => "ok",
            n if n == total => "failed",
            _ => "partial",
        };
        self.metrics()
            .mechanism_run(&pool_name, "deprovision", outcome, started.elapsed());
        if outcome != "ok" {
            let text =
                error.unwrap_or_else(|| format!("{} of {total} node(s) failed", report.failed));
            self.recent_errors()
                .record(&pool_name, "deprovision", &text);
        }
        report
    }

    async fn deprovision_nodes(&self, batch: Batch) -> (DeprovisionReport, Option<String>) {
        let pool = self.config().nodepools.get(&batch.pool);
        let mechanism = self.mechanisms().get(&batch.pool);
        let inputs: Vec<NodeInput> = batch.nodes.iter().map(input).collect();
        let result = match (pool, mechanism) {
            (Some(pool), Some(mechanism)) => {
                if pool.contextualize {
                    // Results are ignored: the machine is being destroyed or reinstalled.
                    let ips = batch.nodes.iter().filter_map(|n| n.ipaddr.as_deref());
                    futures::future::join_all(
                        ips.map(|ip| self.contextualizer.decontextualize(ip)),
                    )
                    .await;
                }
                mechanism.deprovision(pool, &inputs).await.map_err(|e| e.0)
            }
            _ => Err(format!("pool '{}' is not configured", batch.pool)),
        };
        if let Err(e) = &result {
            tracing::warn!(pool.name = %batch.pool, nodes.count = inputs.len(), error = %e, "pool {}: deprovisioning failed: {e}", batch.pool);
        }
        let now = store::now();
        let mut report = DeprovisionReport::default();
        let mut finished = Vec::with_capacity(batch.nodes.len());
        for mut node in batch.nodes {
            let claimed_at = node.state_changed_at;
            let reported_failed = node.data.0.contains_key("error");
            let matched = match &result {
                Ok(Deprovisioned::All) => Ok(true),
                // An interrupted provisioning, never delivered: nothing to pair it with,
                // so a run that succeeded took back whatever there was.
                Ok(Deprovisioned::Entries(_)) if never_delivered(&node) => Ok(true),
                Ok(Deprovisioned::Entries(entries)) => Ok(entries
                    .iter()
                    .any(|e| matches(e, node.data.0.get("provision")))),
                Err(_) => Err("deprovisioning mechanism failed"),
            };
            let (change, outcome) = match matched {
                // The tenant reported the node broken: never reuse it.
                _ if reported_failed => (Change::FailAsReported, &mut report.failed),
                Ok(true) if node.reusable => (Change::Deprovisioned, &mut report.returned),
                Ok(true) => (Change::Deprovisioned, &mut report.done),
                Ok(false) => (
                    Change::Fail {
                        detail: "deprovisioning node failed",
                    },
                    &mut report.failed,
                ),
                Err(detail) => (Change::Fail { detail }, &mut report.failed),
            };
            match states::apply(&mut node, change, now) {
                Ok(()) => *outcome += 1,
                Err(e) => {
                    // Runs only get deprovisioning nodes; the save below would not match.
                    tracing::error!(node.id = node.id, error = %e, "{e}");
                    report.failed += 1;
                }
            }
            finished.push((node, claimed_at));
        }
        if let Err(e) = self.record_deprovisioned(&finished).await {
            tracing::error!(pool.name = %batch.pool, error = %e, "pool {}: recording a deprovisioning result failed: {e}", batch.pool);
        }
        tracing::info!(pool.name = %batch.pool, nodes.done = report.done, nodes.returned = report.returned, nodes.failed = report.failed, "pool {}: deprovisioned {} node(s)", batch.pool, finished.len());
        if report.returned > 0 {
            // A reusable node is free again: any pool may want it.
            self.wakers().fill(None);
        } else {
            self.wakers().fill(Some(std::slice::from_ref(&batch.pool)));
        }
        (report, result.err())
    }

    async fn record_deprovisioned(
        &self,
        nodes: &[(Node, NaiveDateTime)],
    ) -> Result<(), EngineError> {
        let run = RunResult::all(nodes, NodeState::Deprovisioning);
        self.lifecycle.run_results.request(run).await?;
        Ok(())
    }
}

/// Whether `node` is an interrupted provisioning taken over before it was delivered.
fn never_delivered(node: &Node) -> bool {
    !node.data.0.contains_key("provision")
        && node
            .data
            .0
            .get("taken_over")
            .and_then(|t| t.get("state"))
            .and_then(Value::as_str)
            == Some(NodeState::Provisioning.as_str())
}

/// The entry's `ipaddr` if it has a usable one.
fn valid_ipaddr(entry: &Map<String, Value>) -> Option<&str> {
    entry
        .get("ipaddr")
        .and_then(Value::as_str)
        .filter(|ip| !ip.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deprovision_entries_match_on_every_key() {
        let provision = json!({"ipaddr": "10.0.0.1", "hostname": "a", "extra": 1});
        assert!(matches(&json!({"ipaddr": "10.0.0.1"}), Some(&provision)));
        assert!(matches(
            &json!({"ipaddr": "10.0.0.1", "hostname": "a"}),
            Some(&provision)
        ));
        assert!(!matches(&json!({"ipaddr": "10.0.0.2"}), Some(&provision)));
        assert!(!matches(&json!({"other": 1}), Some(&provision)));
        assert!(!matches(&json!("10.0.0.1"), Some(&provision)));
        assert!(!matches(&json!({"ipaddr": "10.0.0.1"}), None));
    }

    #[test]
    fn only_entries_with_an_address_count() {
        let ok = json!({"ipaddr": "10.0.0.1"});
        assert_eq!(valid_ipaddr(ok.as_object().unwrap()), Some("10.0.0.1"));
        for bad in [json!({}), json!({"ipaddr": ""}), json!({"ipaddr": 5})] {
            assert_eq!(valid_ipaddr(bad.as_object().unwrap()), None);
        }
    }
}
