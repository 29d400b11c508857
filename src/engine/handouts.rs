//! The hand-out transaction: quota, session rows and node claims for a group of session
//! requests that arrived together (queued by [`super::group`]).
//!
//! The tenants are locked and counted once, the ready nodes of each pool are read once,
//! and one commit grants every request that fits. The rules are the ones of one request at
//! a time, applied in arrival order: a request that exceeds its tenant's quota or finds too
//! few ready nodes is refused and takes nothing, so the next request sees exactly what it
//! would have seen had the refused one run and rolled back alone.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::NaiveDateTime;
use futures::FutureExt;
use serde_json::{Map, Value, json};

use super::group::{GroupOutcome, Grouped};
use super::idempotency::KeyClaim;
use super::states::{self, Change, Illegal};
use super::{Effective, EngineError};
use crate::config::{Config, Defaults};
use crate::store::instances::InstanceId;
use crate::store::nodes::{Node, NodeState, Saving};
use crate::store::sessions::{NewSession, Session};
use crate::store::tenants::Tenant;
use crate::store::{self, Db, JsonObject, StoreError, Tx};

/// The most requests one transaction takes: bounds how long the writer is held.
const MAX_GROUP: usize = 64;

/// Whom a session is for, decided before the hand-out reads the tenant under its lock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    /// The tenant's id.
    pub id: i64,
    /// An admin acting for another tenant (`tenant_id`): problems with that tenant are 422s.
    pub for_other: bool,
}

/// What a granted request gets: the tenant as locked, the new session, its nodes.
pub(crate) type Granted = (Tenant, Session, Vec<Node>);

/// One line of a session request: so many nodes of one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodesSpec {
    /// The pool to take nodes from.
    pub pool: String,
    /// How many nodes (at least 1).
    pub quantity: i64,
}

impl NodesSpec {
    /// The spec as stored in `data` (`{"quantity": …, "pool": …}`, the original's key order).
    pub(crate) fn to_json(&self) -> Value {
        json!({"quantity": self.quantity, "pool": self.pool})
    }
}

/// One session request.
pub(crate) struct Request {
    /// Whom the session is for.
    pub target: Target,
    /// What it asks for.
    pub specs: Vec<NodesSpec>,
    /// Nodes end `contextualizing` instead of `deployed`.
    pub needs_context: bool,
    /// The `Idempotency-Key` the request claimed: the session is bound to it in the
    /// transaction that creates it, if the request still holds it then.
    pub key: Option<KeyClaim>,
}

/// A request the group grants: its tenant as locked, the tenant's values, the nodes taken.
struct Decision<'r> {
    tenant: Tenant,
    limit: Effective,
    taken: Vec<(&'r NodesSpec, Node)>,
}

struct Inner {
    config: Arc<Config>,
    defaults: Defaults,
    db: Db,
    /// The instance that contextualizes what it hands out.
    instance: InstanceId,
}

/// Marks a ready node as handed out for `spec`, into `state` (`contextualizing` when its
/// pool pushes SSH keys, else `deployed`); the store write follows.
pub(crate) fn hand_out(
    node: &mut Node,
    spec: &NodesSpec,
    state: NodeState,
    by: InstanceId,
    now: NaiveDateTime,
) -> Result<(), Illegal> {
    let spec = spec.to_json();
    let change = if state == NodeState::Contextualizing {
        Change::HandOut { spec, by }
    } else {
        Change::Deploy { spec: Some(spec) }
    };
    states::apply(node, change, now)
}

/// Writes nodes just handed out (`(session, pool, node)`, each still `ready` as read) and
/// links those written to their sessions with a copy of their data; returns the ids
/// written. A group of hand-outs, or a session's replacements, is two statements.
pub(crate) async fn write_hand_outs(
    tx: &mut Tx,
    handed: &[(i64, &str, &Node)],
) -> Result<Vec<i64>, StoreError> {
    let saving: Vec<Saving> = handed
        .iter()
        .map(|(_, _, node)| Saving::new(node, NodeState::Ready))
        .collect();
    let saved = store::nodes::save_all(tx, &saving).await?;
    let links: Vec<_> = handed
        .iter()
        .filter(|(_, _, node)| saved.contains(&node.id))
        .map(|(session, pool, node)| (*session, node.id, *pool, &node.data))
        .collect();
    store::sessions::link_all(tx, &links).await?;
    Ok(saved)
}

/// The session row a granted request gets: its lifetime from now, and the specs asked for.
fn new_session(request: &Request, decision: &Decision, now: NaiveDateTime) -> NewSession {
    // Lifetimes are bounded when set; the fallback only guards against overflow.
    let expires_at = now
        .checked_add_signed(decision.limit.session_lifetime)
        .unwrap_or(NaiveDateTime::MAX);
    let mut data = Map::new();
    data.insert(
        "nodes_specs".into(),
        Value::Array(request.specs.iter().map(NodesSpec::to_json).collect()),
    );
    NewSession {
        tenant_id: decision.tenant.id,
        expires_at: Some(store::truncate(expires_at)),
        data: JsonObject(data),
    }
}

/// The hand-out queue of an engine, granting nodes of the configured pools from `db`.
pub(crate) fn queue(
    db: Db,
    config: Arc<Config>,
    defaults: Defaults,
    instance: InstanceId,
) -> Grouped<Request, Granted> {
    let inner = Arc::new(Inner {
        config,
        defaults,
        db,
        instance,
    });
    Grouped::new("hand-out", MAX_GROUP, move |requests: Vec<Request>| {
        let inner = Arc::clone(&inner);
        async move { inner.grant(&requests).await }.boxed()
    })
}

impl Inner {
    /// Whether nodes can be taken from this pool (configured and not abstract).
    fn concrete(&self, pool: &str) -> bool {
        self.config
            .nodepools
            .get(pool)
            .is_some_and(|p| !p.is_abstract)
    }

    /// The transaction of a group: one answer per request, in order. An `Err` is a
    /// database failure, and nothing of the group was granted.
    async fn grant(&self, requests: &[Request]) -> GroupOutcome<Granted> {
        let now = store::now();
        let mut tx = self.db.begin().await?;
        // Tenants in id order, so that two groups (or processes) never wait on each other.
        let mut tenants: BTreeMap<i64, Option<(Tenant, i64)>> =
            requests.iter().map(|r| (r.target.id, None)).collect();
        for (id, slot) in tenants.iter_mut() {
            if let Some(tenant) = store::tenants::lock_by_id(&mut tx, *id).await? {
                let held = if tenant.is_active() && !tenant.is_admin {
                    store::sessions::count_active_nodes(&mut tx, *id).await?
                } else {
                    0
                };
                *slot = Some((tenant, held));
            }
        }
        // The ready nodes every request of the group could want, least used first.
        let mut wanted: HashMap<&str, i64> = HashMap::new();
        for request in requests {
            for spec in request.specs.iter().filter(|s| self.concrete(&s.pool)) {
                *wanted.entry(spec.pool.as_str()).or_default() += spec.quantity;
            }
        }
        let mut ready: HashMap<&str, (Vec<Node>, usize)> = HashMap::new();
        for (pool, quantity) in wanted {
            let nodes = store::nodes::claim_ready(&mut tx, pool, quantity).await?;
            ready.insert(pool, (nodes, 0));
        }
        // A request whose key a retry took over meanwhile (it waited so long that its claim
        // looked abandoned) gives way: the retry answers for it.
        let mut holds_key = Vec::with_capacity(requests.len());
        for request in requests {
            holds_key.push(match &request.key {
                None => true,
                Some(claim) => {
                    store::idempotency::still_held(
                        &mut tx,
                        claim.tenant_id,
                        &claim.key,
                        self.instance,
                        claim.claimed_at,
                    )
                    .await?
                }
            });
        }
        let decisions: Vec<_> = requests
            .iter()
            .zip(holds_key)
            .map(|(request, holds_key)| match &request.key {
                Some(claim) if !holds_key => Err(EngineError::Conflict(format!(
                    "a retry with Idempotency-Key {} took this request over",
                    claim.key
                ))),
                _ => self.decide(request, &mut tenants, &mut ready),
            })
            .collect();
        // Only now the writes, for the requests granted: one statement each for the
        // sessions, the nodes and the links of the whole group.
        let new_sessions: Vec<NewSession> = requests
            .iter()
            .zip(&decisions)
            .filter_map(|(request, decision)| {
                Some(new_session(request, decision.as_ref().ok()?, now))
            })
            .collect();
        let mut sessions = store::sessions::insert_all(&mut tx, now, &new_sessions)
            .await?
            .into_iter();
        let answers: Vec<Result<_, EngineError>> = requests
            .iter()
            .zip(decisions)
            .map(|(request, decision)| {
                let Decision { tenant, taken, .. } = decision?;
                let session = sessions.next().ok_or_else(|| {
                    EngineError::Unavailable("a session of the group was not created".into())
                })?;
                let state = if request.needs_context {
                    NodeState::Contextualizing
                } else {
                    NodeState::Deployed
                };
                let taken = taken
                    .into_iter()
                    .map(|(spec, mut node)| {
                        hand_out(&mut node, spec, state, self.instance, now)?;
                        Ok((spec, node))
                    })
                    .collect::<Result<Vec<(&NodesSpec, Node)>, EngineError>>()?;
                Ok((tenant, session, taken))
            })
            .collect();
        let handed: Vec<(i64, &str, &Node)> = answers
            .iter()
            .flatten()
            .flat_map(|(_, session, taken)| {
                taken
                    .iter()
                    .map(|(spec, node)| (session.id, spec.pool.as_str(), node))
            })
            .collect();
        for (request, answer) in requests.iter().zip(&answers) {
            if let (Some(claim), Ok((_, session, _))) = (&request.key, answer) {
                store::idempotency::bind(&mut tx, claim.tenant_id, &claim.key, session.id).await?;
            }
        }
        if write_hand_outs(&mut tx, &handed).await?.len() != handed.len() {
            // Read in this transaction and under the writer (SQLite) or row locks
            // (PostgreSQL): the nodes cannot have moved.
            return Err(EngineError::Unavailable(
                "a node changed during its hand-out".into(),
            ));
        }
        tx.commit().await?;
        Ok(answers
            .into_iter()
            .map(|answer| {
                answer.map(|(tenant, session, taken)| {
                    let mut nodes: Vec<Node> = taken.into_iter().map(|(_, node)| node).collect();
                    nodes.sort_by_key(|n| n.id);
                    (tenant, session, nodes)
                })
            })
            .collect())
    }

    /// Decides one request of a group against what the requests before it left: its
    /// tenant, quota and nodes. A granted request counts towards its tenant's holding.
    fn decide<'r>(
        &self,
        request: &'r Request,
        tenants: &mut BTreeMap<i64, Option<(Tenant, i64)>>,
        ready: &mut HashMap<&str, (Vec<Node>, usize)>,
    ) -> Result<Decision<'r>, EngineError> {
        let slot = tenants.get_mut(&request.target.id).and_then(Option::as_mut);
        let (tenant, held) = match slot {
            Some((tenant, held)) if tenant.is_active() => (tenant, held),
            other => return Err(refusal(request.target, other.map(|(t, _)| &*t))),
        };
        let limit = Effective::of(&self.defaults, tenant);
        let requested: i64 = request.specs.iter().map(|s| s.quantity).sum();
        if !tenant.is_admin && requested + *held > limit.node_quota {
            return Err(EngineError::QuotaExceeded {
                requested,
                current: *held,
                quota: limit.node_quota,
            });
        }
        let taken = take(ready, &request.specs)?;
        *held += requested;
        Ok(Decision {
            tenant: tenant.clone(),
            limit,
            taken,
        })
    }
}

/// Why a request's tenant may not get a session: it is retired or unknown.
fn refusal(target: Target, tenant: Option<&Tenant>) -> EngineError {
    match (tenant, target.for_other) {
        (Some(t), true) => EngineError::Unprocessable(format!("tenant '{}' isn't active", t.name)),
        (None, true) => {
            EngineError::Unprocessable(format!("can't find tenant with id {}", target.id))
        }
        // The requester itself was retired since it authenticated.
        (_, false) => EngineError::Forbidden("Forbidden".into()),
    }
}

/// Takes every spec's nodes from the group's ready lists, or nothing when some spec finds
/// too few (those nodes stay for the next request).
fn take<'s>(
    ready: &mut HashMap<&str, (Vec<Node>, usize)>,
    specs: &'s [NodesSpec],
) -> Result<Vec<(&'s NodesSpec, Node)>, EngineError> {
    // First check, spec by spec as they would be claimed, then take.
    let mut needed: HashMap<&str, usize> = HashMap::new();
    for spec in specs {
        let need = needed.entry(spec.pool.as_str()).or_default();
        *need += usize::try_from(spec.quantity).unwrap_or(0);
        let left = ready
            .get(spec.pool.as_str())
            .map_or(0, |(nodes, at)| nodes.len() - at);
        if *need > left {
            return Err(EngineError::CantReserve {
                quantity: spec.quantity,
                pool: spec.pool.clone(),
            });
        }
    }
    let mut taken = Vec::new();
    for spec in specs {
        if let Some((nodes, at)) = ready.get_mut(spec.pool.as_str()) {
            let quantity = usize::try_from(spec.quantity).unwrap_or(0);
            taken.extend(nodes[*at..*at + quantity].iter().map(|n| (spec, n.clone())));
            *at += quantity;
        }
    }
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(pool: &str, ids: std::ops::Range<i64>) -> (Vec<Node>, usize) {
        let now = store::now();
        let nodes = ids
            .map(|id| Node {
                id,
                created_at: now,
                retired_at: None,
                hostname: Some(format!("n{id}")),
                ipaddr: None,
                state: NodeState::Ready,
                comment: None,
                pool: Some(pool.to_owned()),
                reusable: false,
                data: JsonObject::default(),
                used_count: 0,
                state_changed_at: now,
                owner: None,
                run_pool: None,
            })
            .collect();
        (nodes, 0)
    }

    fn spec(pool: &str, quantity: i64) -> NodesSpec {
        NodesSpec {
            pool: pool.to_owned(),
            quantity,
        }
    }

    fn ids(taken: &[(&NodesSpec, Node)]) -> Vec<i64> {
        taken.iter().map(|(_, n)| n.id).collect()
    }

    #[test]
    fn a_refused_request_leaves_its_nodes_to_the_next() {
        let mut lists = HashMap::from([("a", ready("a", 1..5)), ("b", ready("b", 10..11))]);
        let first = [spec("a", 1)];
        assert_eq!(ids(&take(&mut lists, &first).unwrap()), [1]);
        // 2 of a would fit, 2 of b do not: the request takes nothing.
        let greedy = [spec("a", 2), spec("b", 2)];
        let refused = take(&mut lists, &greedy).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "can't reserve nodes: quantity=2 pool='b'"
        );
        let next = [spec("a", 2), spec("b", 1)];
        assert_eq!(ids(&take(&mut lists, &next).unwrap()), [2, 3, 10]);
        // Two specs of one pool take different nodes.
        let twice = [spec("a", 1), spec("a", 1)];
        assert!(take(&mut lists, &twice).is_err(), "only node 4 is left");
        assert_eq!(ids(&take(&mut lists, &first).unwrap()), [4]);
        let unknown = [spec("c", 1)];
        assert!(take(&mut lists, &unknown).is_err());
    }
}
