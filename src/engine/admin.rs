//! Operating the service: taking nodes out of service and back, retiring and re-running
//! nodes, pausing allocations, and finding nodes held too long.
//!
//! The API (admins only), `duffy admin` (on the database) and the v2 admin paths (through
//! the API) all come here, so the rules below hold whoever asks:
//! * a node held by an active session is its tenant's: only downtime may touch it;
//! * a node in `contextualizing` is being handed out right now and is left alone;
//! * every action is recorded in the node's `data.admin_log` with who, when and why;
//! * a mechanism run an action starts is returned as a [`Run`]: the API starts it in the
//!   background, the command line waits for it.

use chrono::{NaiveDateTime, TimeDelta};
use serde_json::{Value, json};

use super::lifecycle::{Batch, DeprovisionReport, ProvisionReport};
use super::states::{self, Change, python_isoformat};
use super::{Engine, EngineError};
use crate::store::nodes::{Node, NodeState};
use crate::store::pauses::{self, Pause};
use crate::store::sessions::HeldNode;
use crate::store::{self, Tx};

/// How many admin actions a node's `data.admin_log` keeps (the oldest go first).
pub const ADMIN_LOG_LIMIT: usize = 20;

/// What an admin can do to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeAction {
    /// Take it out of service (v2 `/NodeSetAdmin`): never allocated, provisioned or
    /// deprovisioned until recovered.
    Downtime,
    /// Bring it back from downtime (v2 `/NodeRecover`), to the state it was taken from.
    Recover,
    /// Forget a failed, unused or downtime node: it ends `done` and retired. Its machine,
    /// if any, is left as it is.
    Retire,
    /// Run the pool's provisioning on it again (reinstall); it ends `ready` or `failed`.
    Provision,
    /// Run the pool's deprovisioning on it; it ends `done`, `unused` or `failed`.
    Deprovision,
}

impl NodeAction {
    /// Every action, as the API spells them.
    pub const ALL: [NodeAction; 5] = [
        NodeAction::Downtime,
        NodeAction::Recover,
        NodeAction::Retire,
        NodeAction::Provision,
        NodeAction::Deprovision,
    ];

    /// The action's name in requests, logs and `data.admin_log`.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeAction::Downtime => "downtime",
            NodeAction::Recover => "recover",
            NodeAction::Retire => "retire",
            NodeAction::Provision => "provision",
            NodeAction::Deprovision => "deprovision",
        }
    }

    /// The action named `name`, if any.
    pub fn parse(name: &str) -> Option<NodeAction> {
        NodeAction::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// An admin's request about one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCommand {
    /// What to do.
    pub action: NodeAction,
    /// Why, in the admin's words; recorded with the action.
    pub reason: String,
    /// For provision and deprovision: the pool whose mechanism runs, when the node has
    /// none (a node that failed while deprovisioning has left its pool).
    pub pool: Option<String>,
}

/// A mechanism run an admin action set in motion.
#[derive(Debug, Clone)]
pub enum Run {
    /// Provisioning the node again.
    Provision(Batch),
    /// Deprovisioning the node.
    Deprovision(Batch),
}

/// How a [`Run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunReport {
    /// The provisioning run's outcome.
    Provision(ProvisionReport),
    /// The deprovisioning run's outcome.
    Deprovision(DeprovisionReport),
}

/// Who did something: a tenant's name, or `duffy admin` with the system user.
pub fn cli_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("duffy admin ({user})")
}

/// Appends an action to `data.admin_log`, keeping the last [`ADMIN_LOG_LIMIT`].
pub(super) fn log_action(node: &mut Node, entry: Value) {
    let log = node
        .data
        .0
        .entry("admin_log")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !log.is_array() {
        *log = Value::Array(Vec::new());
    }
    if let Value::Array(entries) = log {
        entries.push(entry);
        let excess = entries.len().saturating_sub(ADMIN_LOG_LIMIT);
        entries.drain(..excess);
    }
}

fn conflict(node: &Node, why: &str) -> EngineError {
    EngineError::Conflict(format!("node {} is {}: {why}", node.id, node.state))
}

impl Engine {
    /// Carries out an admin's command on a node, in one transaction. Returns the node as
    /// it is now and the mechanism run to make, if the action needs one.
    pub async fn node_action(
        &self,
        actor: &str,
        id: i64,
        command: &NodeCommand,
    ) -> Result<(Node, Option<Run>), EngineError> {
        let now = store::now();
        let mut tx = self.db().begin().await?;
        let mut node = store::nodes::lock_by_id(&mut tx, id)
            .await?
            .ok_or(EngineError::NotFound)?;
        let before = node.state;
        if before == NodeState::Done || node.retired_at.is_some() {
            return Err(conflict(&node, "it is retired"));
        }
        if command.action == NodeAction::Downtime && before == NodeState::Downtime {
            // Already out of service: the first downtime's record stands.
            return Ok((node, None));
        }
        let mut entry = json!({
            "at": python_isoformat(now),
            "by": actor,
            "action": command.action.as_str(),
            "reason": command.reason,
            "from": before.as_str(),
        });
        let run = match command.action {
            NodeAction::Downtime => {
                self.take_down(&mut node, actor, &command.reason, now)?;
                None
            }
            NodeAction::Recover => {
                self.recover(&mut node, now)?;
                None
            }
            NodeAction::Retire => {
                refuse_held(&mut tx, &node).await?;
                if !matches!(
                    before,
                    NodeState::Failed | NodeState::Downtime | NodeState::Unused
                ) {
                    return Err(conflict(
                        &node,
                        "only failed, unused or downtime nodes can be retired",
                    ));
                }
                states::apply(&mut node, Change::Retire, now)?;
                None
            }
            NodeAction::Provision | NodeAction::Deprovision => {
                refuse_held(&mut tx, &node).await?;
                if matches!(before, NodeState::Contextualizing | NodeState::Deployed) {
                    return Err(conflict(&node, "it is being handed out or held"));
                }
                let pool = self.run_pool(&node, command.pool.as_deref())?;
                // The old outcome no longer decides: the new run's will.
                for key in ["error", "downtime", "nodes_spec"] {
                    if let Some(old) = node.data.0.shift_remove(key)
                        && key == "error"
                    {
                        entry["error"] = old;
                    }
                }
                let batch = |node: &Node| Batch {
                    pool: pool.clone(),
                    nodes: vec![node.clone()],
                };
                if command.action == NodeAction::Provision {
                    let by = self.instance();
                    states::apply(&mut node, Change::Provision { pool: &pool, by }, now)?;
                    log_action(&mut node, entry.take());
                    Some(Run::Provision(batch(&node)))
                } else {
                    let by = self.instance();
                    states::apply(&mut node, Change::Deprovision { pool: &pool, by }, now)?;
                    log_action(&mut node, entry.take());
                    Some(Run::Deprovision(batch(&node)))
                }
            }
        };
        if !entry.is_null() {
            log_action(&mut node, entry);
        }
        store::nodes::save(&mut tx, &node, before).await?;
        tx.commit().await?;
        tracing::info!(
            node.id = id,
            admin.actor = %actor,
            admin.action = command.action.as_str(),
            node.from = before.as_str(),
            node.to = node.state.as_str(),
            "node {id}: {} by {actor} ({} → {}): {}",
            command.action.as_str(),
            before,
            node.state,
            command.reason
        );
        // A node that left `ready` is replaced; one that came back may be needed.
        match (before, node.state) {
            (NodeState::Ready, _) | (_, NodeState::Ready | NodeState::Unused) => {
                self.wakers().fill(None)
            }
            (_, NodeState::Deployed) => self.wakers().deprovision.notify_one(),
            _ => {}
        }
        Ok((node, run))
    }

    /// `downtime`: any settled node may be taken out of service, even one a tenant holds
    /// (it stays in the session but is never handed out or taken back automatically).
    fn take_down(
        &self,
        node: &mut Node,
        actor: &str,
        reason: &str,
        now: NaiveDateTime,
    ) -> Result<(), EngineError> {
        if node.state.is_transient() {
            return Err(conflict(
                node,
                "a run is under way; wait for it, or for its deadline (tasks.deadlines)",
            ));
        }
        let record = json!({
            "since": python_isoformat(now),
            "by": actor,
            "reason": reason,
            "from": node.state.as_str(),
        });
        states::apply(node, Change::TakeDown { record }, now)?;
        Ok(())
    }

    /// `recover`: back to the state the node was taken down from. A ready node whose
    /// pool is gone cannot be ready again and fails; a deployed one whose session ended
    /// meanwhile is left to the deprovisioning job.
    fn recover(&self, node: &mut Node, now: NaiveDateTime) -> Result<(), EngineError> {
        if node.state != NodeState::Downtime {
            return Err(conflict(node, "only a node in downtime can be recovered"));
        }
        let from = node
            .data
            .0
            .get("downtime")
            .and_then(|d| d.get("from").and_then(Value::as_str))
            .and_then(|s| s.parse::<NodeState>().ok());
        let change = match from {
            Some(NodeState::Ready)
                if node
                    .pool
                    .as_deref()
                    .is_some_and(|p| self.concrete_pool(p).is_some()) =>
            {
                Change::Recover {
                    to: NodeState::Ready,
                }
            }
            // Held or not: the deprovisioning job takes it back once no session holds it.
            Some(to @ (NodeState::Deployed | NodeState::Unused | NodeState::Failed)) => {
                Change::Recover { to }
            }
            Some(NodeState::Ready) => {
                let pool = node.pool.clone().unwrap_or_default();
                let detail =
                    format!("recovered from downtime, but pool '{pool}' is not configured");
                return Ok(states::apply(
                    node,
                    Change::RecoverFailed { detail: &detail },
                    now,
                )?);
            }
            _ => Change::RecoverFailed {
                detail: "recovered from downtime, but the state it was taken from is unknown",
            },
        };
        Ok(states::apply(node, change, now)?)
    }

    /// The pool whose mechanism runs for a node: the one asked for, else the node's own,
    /// else the one it was handed out from.
    fn run_pool(&self, node: &Node, asked: Option<&str>) -> Result<String, EngineError> {
        let from_spec = node
            .data
            .0
            .get("nodes_spec")
            .and_then(|s| s.get("pool"))
            .and_then(Value::as_str);
        let pool = asked
            .or(node.pool.as_deref())
            .or(from_spec)
            .ok_or_else(|| {
                EngineError::Unprocessable(format!(
                    "node {} is in no pool: name the pool whose mechanism should run",
                    node.id
                ))
            })?;
        match self.concrete_pool(pool) {
            Some(p) if p.mechanism.is_some() => Ok(p.name.clone()),
            _ => Err(EngineError::Unprocessable(format!(
                "pool '{pool}' is not a configured concrete pool"
            ))),
        }
    }

    /// Starts an admin's run in the background; shutdown waits for it like any other run.
    pub fn start_run(self: &std::sync::Arc<Self>, run: Run) {
        let engine = self.clone();
        self.runs()
            .spawn(async move { engine.finish_run(run).await });
    }

    /// Makes an admin's run and waits for its outcome.
    pub async fn finish_run(&self, run: Run) -> RunReport {
        match run {
            Run::Provision(batch) => RunReport::Provision(self.provision(batch).await),
            Run::Deprovision(batch) => RunReport::Deprovision(self.deprovision(batch).await),
        }
    }

    /// Pauses allocations from the whole service (`pool` is `None`) or one pool. Pausing
    /// what is already paused keeps the first pause.
    pub async fn pause(
        &self,
        actor: &str,
        pool: Option<&str>,
        reason: &str,
    ) -> Result<Pause, EngineError> {
        let scope = self.pause_scope(pool)?;
        let mut tx = self.db().begin().await?;
        let pause = pauses::insert(
            &mut tx,
            &Pause {
                scope: scope.clone(),
                paused_at: store::now(),
                paused_by: actor.to_owned(),
                reason: reason.to_owned(),
            },
        )
        .await?;
        tx.commit().await?;
        tracing::info!(pause.scope = %scope, admin.actor = %actor, "allocations paused ({scope}) by {actor}: {reason}");
        Ok(pause)
    }

    /// Resumes allocations; returns the pause that was lifted, if there was one.
    pub async fn resume(
        &self,
        actor: &str,
        pool: Option<&str>,
    ) -> Result<Option<Pause>, EngineError> {
        let scope = self.pause_scope(pool)?;
        let mut tx = self.db().begin().await?;
        let lifted = pauses::delete(&mut tx, &scope).await?;
        tx.commit().await?;
        if lifted.is_some() {
            tracing::info!(pause.scope = %scope, admin.actor = %actor, "allocations resumed ({scope}) by {actor}");
        }
        Ok(lifted)
    }

    /// Every pause in force, the service-wide one first.
    pub async fn pauses(&self) -> Result<Vec<Pause>, EngineError> {
        Ok(pauses::list(self.db()).await?)
    }

    /// The scope a pool's pause is stored under; unknown pools are 404, abstract 422.
    fn pause_scope(&self, pool: Option<&str>) -> Result<String, EngineError> {
        let Some(name) = pool else {
            return Ok(pauses::SERVICE.to_owned());
        };
        match self.config().nodepools.get(name) {
            None => Err(EngineError::NotFound),
            Some(p) if p.is_abstract => Err(EngineError::Unprocessable(format!(
                "pool '{name}' is abstract: it hands out no nodes"
            ))),
            Some(p) => Ok(p.name.clone()),
        }
    }

    /// Nodes of active sessions granted more than `threshold` ago, longest held first.
    pub async fn overtime(&self, threshold: TimeDelta) -> Result<Vec<HeldNode>, EngineError> {
        let before = store::now()
            .checked_sub_signed(threshold)
            .unwrap_or(NaiveDateTime::MIN);
        Ok(store::sessions::held_since_before(self.db(), before).await?)
    }
}

/// Refuses to move a node an active session holds: it is the tenant's until retired.
async fn refuse_held(tx: &mut Tx, node: &Node) -> Result<(), EngineError> {
    match store::sessions::active_holder(tx, node.id).await? {
        Some(session) => Err(EngineError::Conflict(format!(
            "node {} is held by session {session}: retire the session first",
            node.id
        ))),
        None => Ok(()),
    }
}

/// The detail of the 503 a paused request gets.
pub fn paused_detail(pause: &Pause) -> String {
    let what = if pause.scope == pauses::SERVICE {
        "allocations are paused".to_owned()
    } else {
        format!("allocations from pool '{}' are paused", pause.scope)
    };
    if pause.reason.is_empty() {
        what
    } else {
        format!("{what}: {}", pause.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip() {
        for a in NodeAction::ALL {
            assert_eq!(NodeAction::parse(a.as_str()), Some(a));
        }
        assert_eq!(NodeAction::parse("bogus"), None);
    }

    #[test]
    fn paused_details_name_the_scope_and_reason() {
        let mut p = Pause {
            scope: "*".into(),
            paused_at: store::now(),
            paused_by: "admin".into(),
            reason: "maintenance".into(),
        };
        assert_eq!(paused_detail(&p), "allocations are paused: maintenance");
        p.scope = "pool-a".into();
        p.reason.clear();
        assert_eq!(
            paused_detail(&p),
            "allocations from pool 'pool-a' are paused"
        );
    }
}
