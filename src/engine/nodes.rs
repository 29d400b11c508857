//! Nodes as operators see them, and registering machines for `reuse-nodes` pools.

use super::{Engine, EngineError};
use crate::store::nodes::{NewNode, Node, NodeState};
use crate::store::{self, StoreError};

impl Engine {
    /// Live nodes (failed ones too), optionally only those in `states` and of `pool`, in
    /// id order. Asking for states reads only those (the `nodes_state` index), not every
    /// node of the site.
    pub async fn nodes_where(
        &self,
        states: &[NodeState],
        pool: Option<&str>,
    ) -> Result<Vec<Node>, EngineError> {
        if states.is_empty() {
            return Ok(store::nodes::list_live_in(self.db(), pool).await?);
        }
        let mut nodes = Vec::new();
        for state in states {
            nodes.extend(store::nodes::in_state(self.db(), *state).await?);
        }
        if let Some(pool) = pool {
            nodes.retain(|n| n.pool.as_deref() == Some(pool));
        }
        nodes.sort_by_key(|n| n.id);
        nodes.dedup_by_key(|n| n.id);
        Ok(nodes)
    }

    /// One node by id, retired ones included.
    pub async fn node(&self, id: i64) -> Result<Node, EngineError> {
        store::nodes::by_id(self.db(), id)
            .await?
            .ok_or(EngineError::NotFound)
    }

    /// Registers an existing machine (state `unused`); its hostname and address must not
    /// belong to another live node.
    pub async fn register_node(&self, new: NewNode) -> Result<Node, EngineError> {
        let mut tx = self.db().begin().await?;
        let node = store::nodes::insert_registered(&mut tx, &new, store::now())
            .await
            .map_err(|e| match e {
                StoreError::Duplicate { field: "hostname" } => EngineError::Conflict(format!(
                    "node with hostname '{}' already exists",
                    new.hostname
                )),
                StoreError::Duplicate { .. } => EngineError::Conflict(format!(
                    "node with ipaddr '{}' already exists",
                    new.ipaddr
                )),
                other => other.into(),
            })?;
        tx.commit().await?;
        tracing::info!(node.id = node.id, node.hostname = %new.hostname, "registered node {}", node.id);
        // A `reuse-nodes` pool may be waiting for exactly this machine.
        self.wakers().fill(None);
        Ok(node)
    }
}
