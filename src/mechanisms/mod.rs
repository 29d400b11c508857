//! Mechanisms create and destroy machines for pools: the engine decides *which* nodes, a
//! mechanism does the work and reports what it made.
//!
//! Each concrete pool gets its own mechanism instance, so pools with different playbooks or
//! providers run side by side. Results follow the original Duffy's contract: provisioning
//! returns one entry per node, paired by position; deprovisioning returns entries that are
//! matched against each node's `data.provision`.

pub mod ansible;
pub mod noop;

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Map, Value};

use crate::config::{Config, MechanismConfig, Pool};

/// What a mechanism is told about each node it works on (`duffy_in.nodes[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInput {
    /// The node's id: stable, usable in names.
    pub id: i64,
    /// Set for reused and deprovisioned nodes, `None` for fresh ones.
    pub hostname: Option<String>,
    /// Set for reused and deprovisioned nodes, `None` for fresh ones.
    pub ipaddr: Option<String>,
    /// The node's data (`provision` holds what provisioning returned for it).
    pub data: Map<String, Value>,
}

/// The outcome of a successful deprovisioning run.
#[derive(Debug, Clone, PartialEq)]
pub enum Deprovisioned {
    /// Entries to match against each node's `data.provision`; unmatched nodes failed.
    Entries(Vec<Value>),
    /// The pool has no deprovisioning step: every node is done (bare metal, `docs/deviations.md` D#8).
    All,
}

/// A mechanism failed as a whole (as opposed to leaving out some nodes).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct MechanismError(pub String);

/// Provisions and deprovisions the nodes of one pool.
pub trait Mechanism: Send + Sync {
    /// Makes machines for `nodes`; the result holds one entry per node, in the same order,
    /// and an entry counts only if it has an `ipaddr`.
    fn provision<'a>(
        &'a self,
        pool: &'a Pool,
        nodes: &'a [NodeInput],
    ) -> BoxFuture<'a, Result<Vec<Value>, MechanismError>>;

    /// Destroys or cleans the machines of `nodes`.
    fn deprovision<'a>(
        &'a self,
        pool: &'a Pool,
        nodes: &'a [NodeInput],
    ) -> BoxFuture<'a, Result<Deprovisioned, MechanismError>>;
}

/// The mechanism of every concrete pool, built once at start.
#[derive(Clone, Default)]
pub struct Mechanisms {
    by_pool: HashMap<String, Arc<dyn Mechanism>>,
}

impl std::fmt::Debug for Mechanisms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_pool.keys()).finish()
    }
}

/// A pool's mechanism could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The configured template does not compile.
    #[error("pool '{pool}': {reason}")]
    Invalid {
        /// The pool.
        pool: String,
        /// What is wrong.
        reason: String,
    },
}

impl Mechanisms {
    /// Builds the mechanism of every concrete pool of the configuration.
    pub fn from_config(config: &Config) -> Result<Self, SetupError> {
        let mut by_pool: HashMap<String, Arc<dyn Mechanism>> = HashMap::new();
        for pool in config.nodepools.concrete() {
            let mechanism: Arc<dyn Mechanism> = match &pool.mechanism {
                Some(MechanismConfig::Noop(noop)) => {
                    Arc::new(noop::Noop::new(&pool.name, noop).map_err(|reason| {
                        SetupError::Invalid {
                            pool: pool.name.clone(),
                            reason,
                        }
                    })?)
                }
                Some(MechanismConfig::Ansible(config)) => {
                    Arc::new(ansible::Ansible::new(&pool.name, config))
                }
                // Validation guarantees a mechanism on every concrete pool.
                None => continue,
            };
            by_pool.insert(pool.name.clone(), mechanism);
        }
        Ok(Mechanisms { by_pool })
    }

    /// Uses the given mechanism for a pool (tests inject their own).
    pub fn insert(&mut self, pool: &str, mechanism: Arc<dyn Mechanism>) {
        self.by_pool.insert(pool.to_owned(), mechanism);
    }

    /// The mechanism of a concrete pool.
    pub fn get(&self, pool: &str) -> Option<&Arc<dyn Mechanism>> {
        self.by_pool.get(pool)
    }
}
