//! Sessions: handing nodes to tenants, extending and retiring their hold.
//!
//! A request gets all its nodes or none. The quota check and the reservation run in one
//! write transaction (serialized per tenant), so parallel requests can neither exceed a
//! quota nor share a node (`docs/deviations.md` D#13).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::FutureExt;

use chrono::{NaiveDateTime, TimeDelta};
use serde_json::Value;

use super::group::Grouped;
pub use super::handouts::NodesSpec;
use super::handouts::{Request, Target, hand_out, write_hand_outs};
use super::idempotency::{Claimed, IdempotencyKey, KeyClaim};
use super::states::{self, Change};
use super::{Engine, EngineError};
use crate::config::{Config, Defaults};
use crate::metrics::SessionOutcome;
use crate::protocol::v3::REPORTED_FAILED;
use crate::store::instances::InstanceId;
use crate::store::nodes::{Node, NodeState};
use crate::store::sessions::Session;
use crate::store::tenants::Tenant;
use crate::store::{self, Db, Tx};

/// A new `expires_at`, absolute or relative to the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiresAt {
    /// This time (UTC).
    At(NaiveDateTime),
    /// The current `expires_at` moved by this much.
    Delta(TimeDelta),
}

/// A `PUT /sessions/{id}`: every field optional, `{}` changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionUpdate {
    /// `Some(false)` retires the session.
    pub active: Option<bool>,
    /// Extend or shorten the session.
    pub expires_at: Option<ExpiresAt>,
    /// `Some(true)` marks every node as reported broken: held for debugging, never reused.
    pub fail_nodes: Option<bool>,
}

/// A session with what the API shows of it.
#[derive(Debug, Clone)]
pub struct SessionView {
    /// The session row.
    pub session: Session,
    /// The tenant holding it.
    pub tenant: Tenant,
    /// Its nodes as they are now, in id order.
    pub nodes: Vec<Node>,
}

/// What a session request with an `Idempotency-Key` answers.
#[derive(Debug, Clone)]
pub struct SessionGrant {
    /// The session.
    pub view: SessionView,
    /// Whether an earlier request with the same key created it.
    pub replayed: bool,
}

/// Who the session is for: the requester, or (admins only) the tenant named.
fn session_tenant(requester: &Tenant, tenant_id: Option<i64>) -> Result<Target, EngineError> {
    match tenant_id {
        None => Ok(Target {
            id: requester.id,
            for_other: false,
        }),
        Some(id) if id == requester.id => Ok(Target {
            id,
            for_other: false,
        }),
        Some(id) if requester.is_admin => Ok(Target {
            id,
            for_other: true,
        }),
        Some(_) => Err(EngineError::Forbidden(
            "can't create session for other tenant".into(),
        )),
    }
}

/// The most retires one statement takes.
const MAX_RETIRE_GROUP: usize = 64;

/// What the session side of the engine owns: the queue that groups hand-outs and the one
/// that groups plain retirements.
pub(crate) struct SessionQueues {
    handouts: Grouped<Request, super::handouts::Granted>,
    retires: Grouped<(i64, Option<i64>), Option<Session>>,
}

impl SessionQueues {
    /// The queues of an engine on `db`.
    pub(crate) fn new(
        db: &Db,
        config: Arc<Config>,
        defaults: Defaults,
        instance: InstanceId,
    ) -> SessionQueues {
        SessionQueues {
            handouts: super::handouts::queue(db.clone(), config, defaults, instance),
            retires: retire_queue(db.clone()),
        }
    }
}

/// The queue of plain retires (`(session id, holder)`): those that arrive together are
/// done by one statement. A session asked for twice in a group is retired for the first
/// request only; the second finds it retired, as it would one after the other.
fn retire_queue(db: Db) -> Grouped<(i64, Option<i64>), Option<Session>> {
    Grouped::new(
        "retire",
        MAX_RETIRE_GROUP,
        move |wanted: Vec<(i64, Option<i64>)>| {
            let db = db.clone();
            async move {
                let mut seen = HashSet::new();
                let distinct: Vec<(i64, Option<i64>)> = wanted
                    .iter()
                    .copied()
                    .filter(|(id, _)| seen.insert(*id))
                    .collect();
                let retired =
                    store::sessions::retire_all_if_held(&db, &distinct, store::now()).await?;
                let mut by_id: HashMap<i64, Session> =
                    retired.into_iter().map(|s| (s.id, s)).collect();
                // The first request for an id is the one in the statement: it takes the
                // session, and a later one for the same id finds none.
                Ok(wanted.iter().map(|(id, _)| Ok(by_id.remove(id))).collect())
            }
            .boxed()
        },
    )
}

/// Detail of the 503 when no node could be contextualized.
const CONTEXT_FAILED: &str = "contextualization of nodes failed";
/// Detail of the 503 when cleaning up after that failed too.
const DECONTEXT_FAILED: &str = "decontextualizing nodes failed after contextualization failure";

impl Engine {
    /// Grants a session: for every spec, `quantity` ready nodes of `pool`, least used first.
    /// An admin may act for another tenant with `tenant_id`.
    pub async fn request_session(
        &self,
        requester: &Tenant,
        tenant_id: Option<i64>,
        specs: Vec<NodesSpec>,
    ) -> Result<SessionView, EngineError> {
        self.request_session_keyed(requester, tenant_id, specs, None)
            .await
            .map(|grant| grant.view)
    }

    /// [`Engine::request_session`] with the client's `Idempotency-Key`: the session an
    /// earlier request with the same key and the same request created, if there is one;
    /// else a new one, bound to the key (see [`super::idempotency`]).
    pub async fn request_session_keyed(
        &self,
        requester: &Tenant,
        tenant_id: Option<i64>,
        specs: Vec<NodesSpec>,
        key: Option<IdempotencyKey>,
    ) -> Result<SessionGrant, EngineError> {
        let mut claim = None;
        if let Some(key) = &key {
            let fingerprint = super::idempotency::fingerprint(tenant_id, &specs);
            let started = std::time::Instant::now();
            loop {
                let id = match self.claim_key(requester, key, &fingerprint).await? {
                    Claimed::Mine(mine) => {
                        claim = Some(mine);
                        break;
                    }
                    Claimed::Replay(id) => id,
                };
                let view = match self.session(requester, id).await {
                    // Undone by a failed contextualization, its key about to be let go.
                    Err(EngineError::NotFound)
                        if started.elapsed() < super::idempotency::WAIT_FOR_FIRST =>
                    {
                        tokio::time::sleep(super::idempotency::POLL).await;
                        continue;
                    }
                    other => other?,
                };
                // The first request is still pushing keys: its answer is not known yet
                // (a failure retires the session and lets the key go, and this one tries
                // again).
                let settling = view.session.retired_at.is_none()
                    && view
                        .nodes
                        .iter()
                        .any(|n| n.state == NodeState::Contextualizing);
                if settling && started.elapsed() < super::idempotency::WAIT_FOR_FIRST {
                    tokio::time::sleep(super::idempotency::POLL).await;
                    continue;
                }
                tracing::info!(session.id = id, tenant.name = %requester.name, "answered a retried request with session {id} (same Idempotency-Key)");
                return Ok(SessionGrant {
                    view,
                    replayed: true,
                });
            }
        }
        let started = std::time::Instant::now();
        let result = self
            .grant_session(requester, tenant_id, specs, claim.clone())
            .await;
        if result.is_err()
            && let Some(claim) = &claim
        {
            self.release_key(claim).await;
        }
        let outcome = match &result {
            Ok(_) => SessionOutcome::Granted,
            Err(EngineError::CantReserve { .. }) => SessionOutcome::CantReserve,
            Err(EngineError::QuotaExceeded { .. }) => SessionOutcome::Quota,
            Err(EngineError::Paused(_)) => SessionOutcome::Paused,
            Err(EngineError::Unavailable(_)) => SessionOutcome::Unavailable,
            Err(EngineError::Store(_)) => SessionOutcome::Error,
            Err(_) => SessionOutcome::Refused,
        };
        self.metrics()
            .session_request(outcome, result.is_ok().then(|| started.elapsed()));
        result.map(|view| SessionGrant {
            view,
            replayed: false,
        })
    }

    async fn grant_session(
        &self,
        requester: &Tenant,
        tenant_id: Option<i64>,
        specs: Vec<NodesSpec>,
        key: Option<KeyClaim>,
    ) -> Result<SessionView, EngineError> {
        let target = session_tenant(requester, tenant_id)?;
        let needs_context = specs.iter().any(|s| self.contextualizes(Some(&s.pool)));
        let (tenant, session, nodes) = self.reserve(target, &specs, needs_context, key).await?;
        // The pools that just lost ready nodes refill at once (duplicates merge in the set).
        let pools: Vec<String> = specs.iter().map(|s| s.pool.clone()).collect();
        if !pools.is_empty() {
            self.wakers().fill(Some(&pools));
        }
        if let Some(at) = session.expires_at {
            self.wakers().expiry_at(at);
        }
        let nodes = if needs_context {
            self.contextualize_session(&tenant, &session, nodes).await?
        } else {
            nodes
        };
        tracing::info!(session.id = session.id, tenant.name = %tenant.name, nodes.count = nodes.len(), "granted session {} to {}", session.id, tenant.name);
        Ok(SessionView {
            session,
            tenant,
            nodes,
        })
    }

    /// Quota, session row and node claims, in one write transaction that parallel
    /// requests share (see [`super::handouts`]). Nodes end `deployed`, or
    /// `contextualizing` when some pool of the request pushes SSH keys. The tenant row is
    /// read again under its lock: a retire or a quota change that committed since
    /// authentication counts.
    async fn reserve(
        &self,
        target: Target,
        specs: &[NodesSpec],
        needs_context: bool,
        key: Option<KeyClaim>,
    ) -> Result<(Tenant, Session, Vec<Node>), EngineError> {
        // Read beside the write transaction (a reader, not the writer): a pause that
        // commits while a request is already in flight does not stop that request.
        let pools: Vec<&str> = specs.iter().map(|s| s.pool.as_str()).collect();
        if let Some(pause) = store::pauses::blocking(self.db(), &pools).await?.first() {
            return Err(EngineError::Paused(super::admin::paused_detail(pause)));
        }
        self.sessions
            .handouts
            .request(Request {
                target,
                specs: specs.to_vec(),
                needs_context,
                key,
            })
            .await
    }

    /// Claims up to `quantity` ready nodes of a spec's pool for a session.
    async fn claim(
        &self,
        tx: &mut Tx,
        session_id: i64,
        spec: &NodesSpec,
        quantity: i64,
        state: NodeState,
        now: NaiveDateTime,
    ) -> Result<Vec<Node>, EngineError> {
        let mut claimed = store::nodes::claim_ready(tx, &spec.pool, quantity).await?;
        for node in &mut claimed {
            hand_out(node, spec, state, self.instance(), now)?;
        }
        let handed: Vec<(i64, &str, &Node)> = claimed
            .iter()
            .map(|node| (session_id, spec.pool.as_str(), node))
            .collect();
        write_hand_outs(tx, &handed).await?;
        Ok(claimed)
    }

    /// Pushes the tenant's key to every node of a fresh session. A node that fails is marked
    /// failed and replaced by another ready node of its pool while there is one (`docs/deviations.md` D#14); when
    /// none is left, the session is undone and the request fails with 503.
    async fn contextualize_session(
        &self,
        tenant: &Tenant,
        session: &Session,
        nodes: Vec<Node>,
    ) -> Result<Vec<Node>, EngineError> {
        let mut done: Vec<Node> = Vec::new();
        let mut pending = nodes;
        while !pending.is_empty() {
            let results = futures::future::join_all(pending.iter().map(|node| async {
                match (
                    self.contextualizes(node.pool.as_deref()),
                    node.ipaddr.as_deref(),
                ) {
                    (false, _) => Ok(()),
                    (true, Some(ip)) => {
                        self.contextualizer.contextualize(ip, &tenant.ssh_key).await
                    }
                    (true, None) => Err(crate::contextualize::ContextError(
                        "node has no address".into(),
                    )),
                }
            }))
            .await;
            let mut failed = Vec::new();
            for (node, result) in pending.into_iter().zip(results) {
                match result {
                    Ok(()) => done.push(node),
                    Err(e) => {
                        tracing::warn!(node.id = node.id, session.id = session.id, error = %e, "node {}: contextualization failed: {e}", node.id);
                        failed.push(node);
                    }
                }
            }
            if failed.is_empty() {
                break;
            }
            match self.replace_failed(tenant.id, session.id, failed).await? {
                Some(replacements) => pending = replacements,
                None => return Err(self.undo_session(session.id, done).await),
            }
        }
        let now = store::now();
        let mut tx = self.db().begin().await?;
        // The session may have been retired meanwhile, by its tenant or by the deadline of
        // the contextualizing state (which also took the nodes back).
        let still_active = store::sessions::lock_by_id(&mut tx, session.id)
            .await?
            .is_some_and(|s| s.is_active());
        let mut all_saved = true;
        for node in &mut done {
            states::apply(node, Change::Deploy { spec: None }, now)?;
            all_saved &= store::nodes::save(&mut tx, node, NodeState::Contextualizing).await?;
        }
        if !all_saved {
            return Err(EngineError::Unavailable(CONTEXT_FAILED.into()));
        }
        tx.commit().await?;
        if !still_active {
            // Deployed nodes of a retired session are the deprovisioning job's.
            self.wakers().deprovision.notify_one();
            return Err(EngineError::Unavailable(CONTEXT_FAILED.into()));
        }
        done.sort_by_key(|n| n.id);
        Ok(done)
    }

    /// Fails nodes whose contextualization failed and claims one replacement for each, in
    /// one transaction under the tenant's lock so that a parallel request never sees the
    /// quota lowered in between. `None` when some pool has no ready node left: then only
    /// the failures are recorded.
    async fn replace_failed(
        &self,
        tenant_id: i64,
        session_id: i64,
        failed: Vec<Node>,
    ) -> Result<Option<Vec<Node>>, EngineError> {
        let now = store::now();
        let mut tx = self.db().begin().await?;
        store::tenants::lock_by_id(&mut tx, tenant_id).await?;
        let specs = fail_and_unlink(&mut tx, session_id, &failed, now).await?;
        let mut replacements = Vec::with_capacity(specs.len());
        for spec in &specs {
            let claimed = self
                .claim(
                    &mut tx,
                    session_id,
                    spec,
                    1,
                    NodeState::Contextualizing,
                    now,
                )
                .await?;
            if claimed.is_empty() {
                drop(tx);
                let mut tx = self.db().begin().await?;
                fail_and_unlink(&mut tx, session_id, &failed, now).await?;
                tx.commit().await?;
                return Ok(None);
            }
            replacements.extend(claimed);
        }
        tx.commit().await?;
        Ok(Some(replacements))
    }

    /// Undoes a session whose nodes could not all be contextualized: the nodes that were
    /// contextualized are cleaned and go back to ready, the session is deleted. Returns the
    /// error to answer with.
    async fn undo_session(&self, session_id: i64, contextualized: Vec<Node>) -> EngineError {
        let cleanups = futures::future::join_all(contextualized.iter().map(|node| async {
            match (
                self.contextualizes(node.pool.as_deref()),
                node.ipaddr.as_deref(),
            ) {
                (true, Some(ip)) => self.contextualizer.decontextualize(ip).await.is_ok(),
                _ => true,
            }
        }))
        .await;
        let all_clean = cleanups.iter().all(|ok| *ok);
        let now = store::now();
        let undo = async {
            let mut tx = self.db().begin().await?;
            // Nodes linked to the session but not yet contextualized go back to ready too.
            let linked = store::sessions::nodes_of_tx(&mut tx, session_id).await?;
            for mut node in linked {
                let clean = contextualized
                    .iter()
                    .position(|n| n.id == node.id)
                    .is_none_or(|i| cleanups[i]);
                let change = if clean {
                    Change::Withdraw
                } else {
                    Change::Fail {
                        detail: "decontextualizing node failed",
                    }
                };
                states::apply(&mut node, change, now)?;
                store::nodes::save(&mut tx, &node, NodeState::Contextualizing).await?;
            }
            store::sessions::delete(&mut tx, session_id).await?;
            tx.commit().await?;
            Ok::<(), EngineError>(())
        };
        if let Err(e) = undo.await {
            return e;
        }
        self.wakers().fill(None);
        EngineError::Unavailable(
            if all_clean {
                CONTEXT_FAILED
            } else {
                DECONTEXT_FAILED
            }
            .into(),
        )
    }

    /// Retires, extends or marks a session. Only its tenant or an admin may.
    pub async fn update_session(
        &self,
        requester: &Tenant,
        id: i64,
        update: SessionUpdate,
    ) -> Result<SessionView, EngineError> {
        let plain_retire = update.active == Some(false)
            && update.expires_at.is_none()
            && update.fail_nodes != Some(true);
        if plain_retire && let Some(view) = self.retire_held(requester, id).await? {
            return Ok(view);
        }
        let now = store::now();
        let mut tx = self.db().begin().await?;
        let mut session = store::sessions::lock_by_id(&mut tx, id)
            .await?
            .ok_or(EngineError::NotFound)?;
        if !requester.is_admin && session.tenant_id != requester.id {
            return Err(EngineError::Forbidden("Forbidden".into()));
        }
        if !session.is_active() {
            return Err(EngineError::SessionRetired(id));
        }
        let tenant = if session.tenant_id == requester.id {
            requester.clone()
        } else {
            store::tenants::by_id_tx(&mut tx, session.tenant_id)
                .await?
                .ok_or(EngineError::NotFound)?
        };
        if let Some(expires_at) = update.expires_at {
            let max = self.effective(&tenant).session_lifetime_max;
            session.expires_at = Some(clamp_expiry(
                &session,
                expires_at,
                now,
                max,
                requester.is_admin,
            )?);
        }
        if update.fail_nodes == Some(true) {
            for mut node in store::sessions::nodes_of_tx(&mut tx, id).await? {
                if node.state == NodeState::Deployed && !node.data.0.contains_key("error") {
                    let reported = Change::ReportFailed {
                        detail: REPORTED_FAILED,
                    };
                    states::apply(&mut node, reported, now)?;
                    store::nodes::save(&mut tx, &node, NodeState::Deployed).await?;
                }
            }
        }
        let retiring = update.active == Some(false);
        if retiring {
            session.retired_at = Some(now);
        }
        let session = store::sessions::save(&mut tx, &session).await?;
        tx.commit().await?;
        if update.expires_at.is_some() {
            self.wakers().expiry.notify_one();
        }
        if retiring {
            tracing::info!(session.id = id, tenant.name = %tenant.name, "retired session {id}");
            self.wakers().deprovision.notify_one();
        }
        let nodes = store::sessions::nodes_of(self.db(), id).await?;
        Ok(SessionView {
            session,
            tenant,
            nodes,
        })
    }

    /// The common case of `update_session`, a tenant retiring its own active session, in
    /// one statement; `None` when that is not the case (the full path then finds the right
    /// answer: not found, another tenant's, already retired).
    async fn retire_held(
        &self,
        requester: &Tenant,
        id: i64,
    ) -> Result<Option<SessionView>, EngineError> {
        let holder = (!requester.is_admin).then_some(requester.id);
        let Some(session) = self.sessions.retires.request((id, holder)).await? else {
            return Ok(None);
        };
        self.wakers().deprovision.notify_one();
        let view = self.view(requester, session).await?;
        tracing::info!(session.id = id, tenant.name = %view.tenant.name, "retired session {id}");
        Ok(Some(view))
    }

    /// A session as the API shows it: its tenant (the requester's own row when it is
    /// theirs) and its nodes as they are now.
    async fn view(&self, requester: &Tenant, session: Session) -> Result<SessionView, EngineError> {
        let tenant = if session.tenant_id == requester.id {
            requester.clone()
        } else {
            self.tenant(session.tenant_id).await?
        };
        let nodes = store::sessions::nodes_of(self.db(), session.id).await?;
        Ok(SessionView {
            session,
            tenant,
            nodes,
        })
    }

    /// One session, retired ones included; only its tenant or an admin may see it.
    pub async fn session(&self, requester: &Tenant, id: i64) -> Result<SessionView, EngineError> {
        let session = store::sessions::by_id(self.db(), id)
            .await?
            .ok_or(EngineError::NotFound)?;
        if !requester.is_admin && session.tenant_id != requester.id {
            return Err(EngineError::Forbidden("Forbidden".into()));
        }
        self.view(requester, session).await
    }

    /// Active sessions: all of them for admins and anonymous readers (`docs/deviations.md` D#1), a tenant's own
    /// otherwise. Three queries whatever the number of sessions.
    pub async fn active_sessions(
        &self,
        requester: Option<&Tenant>,
    ) -> Result<Vec<SessionView>, EngineError> {
        let filter = requester.filter(|t| !t.is_admin).map(|t| t.id);
        let sessions = store::sessions::list_active(self.db(), filter).await?;
        let links = store::sessions::nodes_of_active(self.db(), filter).await?;
        let tenants: HashMap<i64, Tenant> = match requester.filter(|t| !t.is_admin) {
            Some(t) => HashMap::from([(t.id, t.clone())]),
            None => self
                .tenants()
                .await?
                .into_iter()
                .map(|t| (t.id, t))
                .collect(),
        };
        let mut nodes: HashMap<i64, Vec<Node>> = HashMap::new();
        for link in links {
            nodes.entry(link.session_id).or_default().push(link.node);
        }
        Ok(sessions
            .into_iter()
            .filter_map(|session| {
                let tenant = tenants.get(&session.tenant_id)?.clone();
                let nodes = nodes.remove(&session.id).unwrap_or_default();
                Some(SessionView {
                    session,
                    tenant,
                    nodes,
                })
            })
            .collect())
    }
}

/// Marks nodes whose contextualization failed as failed and takes them out of the session;
/// returns the spec each replacement must follow.
async fn fail_and_unlink(
    tx: &mut Tx,
    session_id: i64,
    failed: &[Node],
    now: NaiveDateTime,
) -> Result<Vec<NodesSpec>, EngineError> {
    let mut specs = Vec::with_capacity(failed.len());
    for node in failed {
        let mut node = node.clone();
        let failed = Change::Fail {
            detail: "contextualizing node failed",
        };
        states::apply(&mut node, failed, now)?;
        store::nodes::save(tx, &node, NodeState::Contextualizing).await?;
        store::sessions::unlink_node(tx, session_id, node.id).await?;
        specs.push(NodesSpec {
            pool: node.pool.clone().unwrap_or_default(),
            quantity: node
                .data
                .0
                .get("nodes_spec")
                .and_then(|s| s.get("quantity"))
                .and_then(Value::as_i64)
                .unwrap_or(1),
        });
    }
    Ok(specs)
}

/// The new `expires_at` of a session (`docs/v3-api.md` §8): a delta counts from the current
/// `expires_at`; the result is never before `created_at` and, unless an admin asks, never
/// past `created_at` + the session tenant's maximum lifetime.
fn clamp_expiry(
    session: &Session,
    wanted: ExpiresAt,
    now: NaiveDateTime,
    max_lifetime: TimeDelta,
    by_admin: bool,
) -> Result<NaiveDateTime, EngineError> {
    let out_of_range = || EngineError::Unprocessable("expires_at is out of range".into());
    let mut new = match wanted {
        ExpiresAt::At(t) => t,
        ExpiresAt::Delta(d) => session
            .expires_at
            .unwrap_or(now)
            .checked_add_signed(d)
            .ok_or_else(out_of_range)?,
    };
    new = new.max(session.created_at);
    if !by_admin && let Some(limit) = session.created_at.checked_add_signed(max_lifetime) {
        new = new.min(limit);
    }
    Ok(store::truncate(new))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::JsonObject;

    fn session(created: NaiveDateTime, lifetime: TimeDelta) -> Session {
        Session {
            id: 1,
            created_at: created,
            retired_at: None,
            tenant_id: 1,
            expires_at: Some(created + lifetime),
            data: JsonObject::default(),
        }
    }

    #[test]
    fn clamping_follows_the_originals_examples() {
        // lifetime 6h, max 12h
        let created = store::now();
        let s = session(created, TimeDelta::hours(6));
        let max = TimeDelta::hours(12);
        let at = |d| clamp_expiry(&s, ExpiresAt::Delta(d), created, max, false).unwrap();
        assert_eq!(at(TimeDelta::hours(1)), created + TimeDelta::hours(7));
        assert_eq!(at(TimeDelta::days(1)), created + TimeDelta::hours(12));
        assert_eq!(at(TimeDelta::days(-2)), created);
        let admin = clamp_expiry(&s, ExpiresAt::Delta(TimeDelta::days(5)), created, max, true);
        assert_eq!(
            admin.unwrap(),
            created + TimeDelta::hours(6) + TimeDelta::days(5)
        );
        let absolute = clamp_expiry(
            &s,
            ExpiresAt::At(created - TimeDelta::hours(1)),
            created,
            max,
            true,
        );
        assert_eq!(absolute.unwrap(), created);
    }

    #[test]
    fn huge_deltas_are_an_error_not_a_panic() {
        let created = store::now();
        let s = session(created, TimeDelta::hours(6));
        let huge = TimeDelta::try_days(100_000_000).unwrap();
        let r = clamp_expiry(
            &s,
            ExpiresAt::Delta(huge),
            created,
            TimeDelta::hours(12),
            true,
        );
        assert!(r.is_err());
        // non-admins are clamped anyway, and the clamp happens after the addition
        let r = clamp_expiry(
            &s,
            ExpiresAt::Delta(TimeDelta::weeks(520)),
            created,
            TimeDelta::hours(12),
            false,
        );
        assert_eq!(r.unwrap(), created + TimeDelta::hours(12));
    }
}
