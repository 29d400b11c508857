//! Mechanism runs' results, saved together when they arrive together.
//!
//! Pools with `run-parallel` run one mechanism per node, so under load results come one
//! node at a time, each a transaction of its own on the single SQLite writer. Results
//! that queue while one is saved share the next transaction (see [`super::group`]). Each
//! node is still written only if it is as its run claimed it.

use std::sync::Arc;

use chrono::NaiveDateTime;
use futures::FutureExt;

use super::EngineError;
use super::group::{GroupOutcome, Grouped};
use crate::store::nodes::{Node, NodeState, Saving};
use crate::store::{self, Db, StoreError};

/// The most results (runs) one transaction takes.
const MAX_GROUP: usize = 64;

/// A node as a run leaves it, to be written if it is still in `expected` since
/// `claimed_at`.
#[derive(Debug, Clone)]
pub(crate) struct RunResult {
    /// The node as it is to be stored.
    pub node: Node,
    /// The state the run found it in (`provisioning`, `deprovisioning`).
    pub expected: NodeState,
    /// When the run claimed it.
    pub claimed_at: NaiveDateTime,
}

impl RunResult {
    /// A run's nodes, each with the time the run claimed it, found in `expected`.
    pub(crate) fn all(nodes: &[(Node, NaiveDateTime)], expected: NodeState) -> Vec<RunResult> {
        nodes
            .iter()
            .map(|(node, claimed_at)| RunResult {
                node: node.clone(),
                expected,
                claimed_at: *claimed_at,
            })
            .collect()
    }
}

/// The queue of run results of an engine: each request is one run's nodes, and its answer
/// the ids of those written. A clash of host names or addresses fails only the run it
/// is in, as [`StoreError::Duplicate`], for the caller to resolve node by node.
pub(crate) fn queue(db: Db) -> Grouped<Vec<RunResult>, Vec<i64>> {
    let db = Arc::new(db);
    Grouped::new("run-result", MAX_GROUP, move |runs: Vec<Vec<RunResult>>| {
        let db = Arc::clone(&db);
        async move { save(&db, &runs).await }.boxed()
    })
}

/// Saves every run in one transaction; after a clash, each run in a transaction of its own.
async fn save(db: &Db, runs: &[Vec<RunResult>]) -> GroupOutcome<Vec<i64>> {
    match save_runs(db, runs).await {
        Ok(saved) => Ok(runs.iter().map(|run| Ok(written(run, &saved))).collect()),
        Err(StoreError::Duplicate { .. }) if runs.len() > 1 => {
            let mut answers = Vec::with_capacity(runs.len());
            for run in runs {
                answers.push(
                    save_runs(db, std::slice::from_ref(run))
                        .await
                        .map(|saved| written(run, &saved))
                        .map_err(EngineError::from),
                );
            }
            Ok(answers)
        }
        Err(e @ StoreError::Duplicate { .. }) => Ok(vec![Err(e.into())]),
        Err(e) => Err(e.into()),
    }
}

async fn save_runs(db: &Db, runs: &[Vec<RunResult>]) -> Result<Vec<i64>, StoreError> {
    let saving: Vec<Saving> = runs
        .iter()
        .flatten()
        .map(|r| Saving::claimed(&r.node, r.expected, r.claimed_at))
        .collect();
    store::nodes::save_all_now(db, &saving).await
}

/// The ids of a run's nodes among those written.
fn written(run: &[RunResult], saved: &[i64]) -> Vec<i64> {
    run.iter()
        .map(|r| r.node.id)
        .filter(|id| saved.contains(id))
        .collect()
}
