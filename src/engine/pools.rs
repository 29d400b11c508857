//! Pools as clients see them: the configured pools and how many nodes each has per state;
//! and the overview the status page and `/metrics` read (nodes per pool and state, active
//! sessions per tenant).

use super::{Engine, EngineError};
use crate::config::Pool;
use crate::store::{self, nodes::NodeState};

/// Node counts of a pool in the five states the API reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Levels {
    /// Being provisioned.
    pub provisioning: i64,
    /// Ready to be handed out.
    pub ready: i64,
    /// Being handed out.
    pub contextualizing: i64,
    /// In sessions.
    pub deployed: i64,
    /// Being taken back.
    pub deprovisioning: i64,
}

impl Engine {
    /// The pools `GET /pools` lists: concrete pools with a fill level, in configuration order.
    pub fn listed_pools(&self) -> impl Iterator<Item = &Pool> {
        self.config()
            .nodepools
            .concrete()
            .filter(|p| p.fill_level.is_some())
    }

    /// A configured concrete pool: the only pools that hold nodes and have a mechanism.
    pub fn concrete_pool(&self, name: &str) -> Option<&Pool> {
        self.config().nodepools.get(name).filter(|p| !p.is_abstract)
    }

    /// Whether a node's pool pushes SSH keys at hand-out (`contextualize`).
    pub fn contextualizes(&self, pool: Option<&str>) -> bool {
        pool.and_then(|p| self.concrete_pool(p))
            .is_some_and(|p| p.contextualize)
    }

    /// A pool with its levels. Any pool can be looked up, abstract ones included, but one
    /// without a fill level cannot report levels (422, as the original).
    pub async fn pool_levels(&self, name: &str) -> Result<(&Pool, Levels), EngineError> {
        let pool = self
            .config()
            .nodepools
            .get(name)
            .ok_or(EngineError::NotFound)?;
        if pool.fill_level.is_none() {
            return Err(EngineError::Unprocessable("Unprocessable Entity".into()));
        }
        let mut levels = Levels::default();
        for (state, count) in store::nodes::levels(self.db(), name).await? {
            match state {
                NodeState::Provisioning => levels.provisioning = count,
                NodeState::Ready => levels.ready = count,
                NodeState::Contextualizing => levels.contextualizing = count,
                NodeState::Deployed => levels.deployed = count,
                NodeState::Deprovisioning => levels.deprovisioning = count,
                _ => {}
            }
        }
        Ok((pool, levels))
    }

    /// Live nodes (not `done`) per pool and state; the pool is `None` for nodes in no pool.
    pub async fn node_counts(&self) -> Result<Vec<(Option<String>, NodeState, i64)>, EngineError> {
        Ok(store::nodes::count_by_pool_state(self.db()).await?)
    }

    /// Active sessions per tenant name, every tenant listed (0 for none), by name.
    pub async fn active_sessions_by_tenant(&self) -> Result<Vec<(String, i64)>, EngineError> {
        Ok(store::sessions::active_by_tenant(self.db()).await?)
    }
}
