//! Retiring a pool that was removed from the configuration: its nodes stay in the
//! database as live rows of a pool nobody configures until an admin retires them here,
//! and, with `purge`, deletes the pool's history as well.
//!
//! The API (admins only) and `duffy admin retire-pool` (on the database) both come here.
//! Everything happens in one transaction: a refusal or a fault half-way changes nothing.
//! No mechanism runs (the pool's configuration is gone): the machines of nodes retired
//! here, if any still exist, are left as they are, and a warning says which nodes they were.

use serde_json::json;

use super::states::{self, Change, python_isoformat};
use super::{Engine, EngineError};
use crate::store::nodes::{NodeState, Saving};
use crate::store::{self, Tx};

/// How many session ids a refusal names before it only counts the rest.
const HOLDERS_NAMED: usize = 20;

/// What an admin asks when retiring a pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetirePool {
    /// Also delete the pool's history: its nodes, their links to sessions, and the
    /// sessions left without any node.
    pub purge: bool,
    /// Why, in the admin's words; recorded in each retired node's `data.admin_log`.
    pub reason: String,
}

/// What retiring a pool did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRetirement {
    /// The pool's name.
    pub pool: String,
    /// Live nodes of the pool that were retired now (`done`).
    pub retired_nodes: u64,
    /// The rows deleted, when the history was purged.
    pub purged: Option<Purged>,
    /// Whether the pool's allocations were paused: the pause is lifted with the pool.
    pub pause_lifted: bool,
}

/// The rows a purge deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Node rows of the pool, retired ones included.
    pub nodes: u64,
    /// Links between sessions and those nodes (or nodes handed out from the pool).
    pub sessions_nodes: u64,
    /// Sessions that had no other nodes.
    pub sessions: u64,
}

impl Engine {
    /// Retires every live node of a pool that is no longer configured (`done`, retired now,
    /// no mechanism run), keeping its history unless `purge` asks to delete it too, and
    /// lifts the pool's pause. Refused (409) while the configuration in force still has the
    /// pool or while an active session holds one of its nodes; 404 when neither a node nor
    /// a session's node names the pool.
    pub async fn retire_pool(
        &self,
        actor: &str,
        name: &str,
        request: &RetirePool,
    ) -> Result<PoolRetirement, EngineError> {
        let outcome = self.retire_pool_in_one(actor, name, request).await;
        match &outcome {
            Ok(done) => {
                let purged = done.purged.unwrap_or_default();
                tracing::info!(
                    pool.name = %name,
                    admin.actor = %actor,
                    admin.action = "retire-pool",
                    pool.purge = request.purge,
                    pool.retired_nodes = done.retired_nodes,
                    pool.pause_lifted = done.pause_lifted,
                    purged.nodes = purged.nodes,
                    purged.sessions_nodes = purged.sessions_nodes,
                    purged.sessions = purged.sessions,
                    "pool {name} retired by {actor}: {} live node(s) retired{}{}",
                    done.retired_nodes,
                    match done.purged {
                        Some(p) => format!(
                            ", history purged ({} node(s), {} session link(s), {} session(s))",
                            p.nodes, p.sessions_nodes, p.sessions
                        ),
                        None => String::new(),
                    },
                    if done.pause_lifted {
                        ", its pause lifted"
                    } else {
                        ""
                    },
                );
            }
            // The admin's mistake, not the service's: worth a line, not an error.
            Err(e @ (EngineError::NotFound | EngineError::Conflict(_))) => {
                tracing::info!(
                    pool.name = %name,
                    admin.actor = %actor,
                    admin.action = "retire-pool",
                    pool.purge = request.purge,
                    refused = %e,
                    "retiring pool {name} refused: {e}"
                );
            }
            // Faults are reported by the caller (the API's 500, the command's ERROR lines).
            Err(_) => {}
        }
        outcome
    }

    async fn retire_pool_in_one(
        &self,
        actor: &str,
        name: &str,
        request: &RetirePool,
    ) -> Result<PoolRetirement, EngineError> {
        if self.concrete_pool(name).is_some() {
            return Err(EngineError::Conflict(format!(
                "pool '{name}' is still configured: remove it from the configuration and \
                 restart the server before retiring it"
            )));
        }
        let now = store::now();
        let mut tx = self.db().begin().await?;
        // Two retirements of the same pool (or a fill under an old configuration) wait
        // for each other on PostgreSQL; SQLite's single writer serializes anyway.
        store::nodes::lock_pool(&mut tx, name).await?;
        if !store::nodes::pool_is_known(&mut tx, name).await? {
            return Err(EngineError::NotFound);
        }
        // The nodes first (locked), then who holds them: a hand-out that got one of them
        // has committed by the time the lock is ours, so its session is seen below.
        let mut nodes = store::nodes::lock_live_of_pool(&mut tx, name).await?;
        let holders = store::sessions::active_holding_pool(&mut tx, name).await?;
        if !holders.is_empty() {
            return Err(EngineError::Conflict(held_detail(name, &holders)));
        }
        let before: Vec<NodeState> = nodes.iter().map(|n| n.state).collect();
        for node in &mut nodes {
            super::admin::log_action(
                node,
                json!({
                    "at": python_isoformat(now),
                    "by": actor,
                    "action": "retire-pool",
                    "reason": request.reason,
                    "from": node.state.as_str(),
                }),
            );
            states::apply(node, Change::RetireWithPool, now)?;
        }
        let saving: Vec<Saving> = nodes
            .iter()
            .zip(&before)
            .map(|(node, state)| Saving::new(node, *state))
            .collect();
        let saved = store::nodes::save_all(&mut tx, &saving).await?;
        if saved.len() != nodes.len() {
            // Cannot happen under the locks above; if it does, nothing is changed.
            return Err(EngineError::Conflict(format!(
                "nodes of pool '{name}' changed while it was being retired: try again"
            )));
        }
        let pause_lifted = store::pauses::delete(&mut tx, name).await?.is_some();
        let purged = if request.purge {
            Some(purge_history(&mut tx, name).await?)
        } else {
            None
        };
        tx.commit().await?;
        let machines: Vec<i64> = nodes
            .iter()
            .filter(|n| n.hostname.is_some() || n.ipaddr.is_some())
            .map(|n| n.id)
            .collect();
        if !machines.is_empty() {
            tracing::warn!(
                pool.name = %name,
                nodes.count = machines.len(),
                nodes.ids = ?machines,
                "pool {name}: {} node(s) retired without deprovisioning: their machines, \
                 if they still exist, are left as they are",
                machines.len()
            );
        }
        Ok(PoolRetirement {
            pool: name.to_owned(),
            retired_nodes: nodes.len() as u64,
            purged,
            pause_lifted,
        })
    }
}

/// Deletes the pool's history inside the retiring transaction: its nodes (all retired by
/// now), every link of theirs, and the sessions left with no node at all.
async fn purge_history(tx: &mut Tx, name: &str) -> Result<Purged, EngineError> {
    store::nodes::name_pool_leftovers(tx, name).await?;
    let unlinked = store::sessions::unlink_pool(tx, name).await?;
    let nodes = store::nodes::delete_of_pool(tx, name).await?;
    Ok(Purged {
        nodes,
        sessions_nodes: unlinked.links,
        sessions: unlinked.sessions,
    })
}

/// The detail of the 409 while active sessions hold the pool's nodes: which sessions.
fn held_detail(name: &str, holders: &[i64]) -> String {
    let mut named: Vec<String> = holders
        .iter()
        .take(HOLDERS_NAMED)
        .map(i64::to_string)
        .collect();
    if holders.len() > HOLDERS_NAMED {
        named.push(format!("and {} more", holders.len() - HOLDERS_NAMED));
    }
    let (sessions, them) = if holders.len() == 1 {
        ("session", "it")
    } else {
        ("sessions", "them")
    };
    format!(
        "nodes of pool '{name}' are held by active {sessions} {}: retire {them} first",
        named.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_holding_sessions() {
        assert_eq!(
            held_detail("gone", &[7]),
            "nodes of pool 'gone' are held by active session 7: retire it first"
        );
        assert_eq!(
            held_detail("gone", &[7, 9]),
            "nodes of pool 'gone' are held by active sessions 7, 9: retire them first"
        );
        let many: Vec<i64> = (1..=25).collect();
        let text = held_detail("gone", &many);
        assert!(text.contains("19, 20, and 5 more: "), "{text}");
    }
}
