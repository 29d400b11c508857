//! The `nodes` table: every machine Duffy has provisioned, handed out or registered.
//!
//! State changes are compare-and-set: [`save`] only writes when the node is still in the
//! state the caller read, so a late mechanism result can never overwrite a newer decision
//! (a deadline that failed the node, a concurrent claim).

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDateTime;

use super::instances::InstanceId;
use super::{Db, JsonObject, StoreError, Tx, on_reader, on_tx, on_tx_per_backend};

/// The life cycle of a node (`docs/v3-api.md` §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeState {
    /// Registered or returned, not in a pool's cycle.
    Unused,
    /// A mechanism is creating or reinstalling it.
    Provisioning,
    /// Provisioned and waiting for a session.
    Ready,
    /// Being handed to a tenant (SSH key push).
    Contextualizing,
    /// Held by a session.
    Deployed,
    /// A mechanism is destroying or cleaning it.
    Deprovisioning,
    /// Retired after a successful deprovision (final).
    Done,
    /// Something went wrong; kept for an operator to look at (final).
    Failed,
    /// Taken out of service by an admin: never allocated, provisioned or deprovisioned
    /// until an admin recovers it (`data.downtime` says who, when, why and from where).
    Downtime,
}

impl NodeState {
    /// Every state, in life-cycle order.
    pub const ALL: [NodeState; 9] = [
        NodeState::Unused,
        NodeState::Provisioning,
        NodeState::Ready,
        NodeState::Contextualizing,
        NodeState::Deployed,
        NodeState::Deprovisioning,
        NodeState::Done,
        NodeState::Failed,
        NodeState::Downtime,
    ];

    /// The name stored in the database and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Unused => "unused",
            NodeState::Provisioning => "provisioning",
            NodeState::Ready => "ready",
            NodeState::Contextualizing => "contextualizing",
            NodeState::Deployed => "deployed",
            NodeState::Deprovisioning => "deprovisioning",
            NodeState::Done => "done",
            NodeState::Failed => "failed",
            NodeState::Downtime => "downtime",
        }
    }

    /// States a node must not stay in for long; each has a deadline.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            NodeState::Provisioning | NodeState::Contextualizing | NodeState::Deprovisioning
        )
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is none of the eight.
#[derive(Debug, thiserror::Error)]
#[error("unknown node state '{0}'")]
pub struct UnknownState(String);

impl FromStr for NodeState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodeState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

impl TryFrom<String> for NodeState {
    type Error = UnknownState;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A node row as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Node {
    /// Primary key.
    pub id: i64,
    /// When the row was created.
    pub created_at: NaiveDateTime,
    /// Set when the node left service for good (`done`).
    pub retired_at: Option<NaiveDateTime>,
    /// Known once provisioned (or registered).
    pub hostname: Option<String>,
    /// Known once provisioned (or registered).
    pub ipaddr: Option<String>,
    /// Where the node is in its life cycle.
    #[sqlx(try_from = "String")]
    pub state: NodeState,
    /// Free text for operators.
    pub comment: Option<String>,
    /// The pool whose cycle the node is in; `None` for unused reusable nodes.
    pub pool: Option<String>,
    /// Reusable nodes go back to `unused` after deprovisioning instead of `done`.
    pub reusable: bool,
    /// Mechanism results (`provision`), the hand-out spec (`nodes_spec`), errors (`error`).
    #[sqlx(try_from = "String")]
    pub data: JsonObject,
    /// How often the node was handed out; the least-used ready node goes first.
    pub used_count: i64,
    /// When the node entered its current state (deadlines of transient states).
    pub state_changed_at: NaiveDateTime,
    /// In a transient state: the instance whose run moves the node on (`None` when no live
    /// instance does, e.g. a row written by an older version). `None` in settled states.
    pub owner: Option<i64>,
    /// In a transient state: the pool whose mechanism the run uses (a deprovisioning node
    /// has left its pool already). `None` in settled states.
    pub run_pool: Option<String>,
}

/// A node registered through `POST /nodes` (reusable machines such as bare metal).
#[derive(Debug, Clone)]
pub struct NewNode {
    /// Host name, unique among live nodes.
    pub hostname: String,
    /// IP address, unique among live nodes.
    pub ipaddr: String,
    /// Free text.
    pub comment: Option<String>,
    /// Pool, normally `None` so that `reuse-nodes` pools can pick the node.
    pub pool: Option<String>,
    /// Back to `unused` after deprovisioning.
    pub reusable: bool,
    /// Facts the `reuse-nodes` matching reads (e.g. `architecture`).
    pub data: JsonObject,
}

/// One node by id, retired ones included.
pub async fn by_id(db: &Db, id: i64) -> Result<Option<Node>, StoreError> {
    const SQL: &str = "SELECT * FROM nodes WHERE id = $1";
    Ok(on_reader!(db, c => sqlx::query_as(SQL).bind(id).fetch_optional(c).await)?)
}

/// Live nodes (failed ones too), optionally of one pool, in id order: `GET /nodes`.
pub async fn list_live_in(db: &Db, pool: Option<&str>) -> Result<Vec<Node>, StoreError> {
    const SQL: &str = "SELECT * FROM nodes WHERE retired_at IS NULL \
        AND ($1 IS NULL OR pool = $1) ORDER BY id";
    Ok(on_reader!(db, c => sqlx::query_as(SQL).bind(pool).fetch_all(c).await)?)
}

/// One node by id inside a write transaction, locked on PostgreSQL until it ends.
pub async fn lock_by_id(tx: &mut Tx, id: i64) -> Result<Option<Node>, StoreError> {
    const SQLITE: &str = "SELECT * FROM nodes WHERE id = $1";
    const POSTGRES: &str = "SELECT * FROM nodes WHERE id = $1 FOR UPDATE";
    Ok(
        on_tx_per_backend!(tx, sqlite: SQLITE, postgres: POSTGRES, |c, sql| {
            sqlx::query_as(sql).bind(id).fetch_optional(c).await
        })?,
    )
}

/// Ready nodes of a pool that entered `ready` before `before`, oldest first: candidates
/// for recycling (`max-ready-age`).
pub async fn ready_before(
    tx: &mut Tx,
    pool: &str,
    before: NaiveDateTime,
) -> Result<Vec<Node>, StoreError> {
    const SQL: &str = "SELECT * FROM nodes WHERE retired_at IS NULL AND state = 'ready' \
        AND pool = $1 AND state_changed_at < $2 ORDER BY state_changed_at, id";
    Ok(on_tx!(tx, c => sqlx::query_as(SQL).bind(pool).bind(before).fetch_all(c).await)?)
}

/// Ready nodes of a pool.
pub async fn count_ready(tx: &mut Tx, pool: &str) -> Result<i64, StoreError> {
    const SQL: &str =
        "SELECT COUNT(*) FROM nodes WHERE retired_at IS NULL AND pool = $1 AND state = 'ready'";
    Ok(on_tx!(tx, c => sqlx::query_scalar(SQL).bind(pool).fetch_one(c).await)?)
}

/// Nodes in `state`, in id order (reconciliation, deadlines, operators' views).
pub async fn in_state(db: &Db, state: NodeState) -> Result<Vec<Node>, StoreError> {
    const SQL: &str = "SELECT * FROM nodes WHERE state = $1 AND retired_at IS NULL ORDER BY id";
    Ok(on_reader!(db, c => sqlx::query_as(SQL).bind(state.as_str()).fetch_all(c).await)?)
}

/// Registers a machine in state `unused`; a live node with the same hostname or address is
/// `StoreError::Duplicate`.
pub async fn insert_registered(
    tx: &mut Tx,
    new: &NewNode,
    now: NaiveDateTime,
) -> Result<Node, StoreError> {
    const SQL: &str = "INSERT INTO nodes \
        (created_at, hostname, ipaddr, state, comment, pool, reusable, data, state_changed_at) \
        VALUES ($1, $2, $3, 'unused', $4, $5, $6, $7, $1) RETURNING *";
    on_tx!(tx, c => sqlx::query_as(SQL)
        .bind(now)
        .bind(&new.hostname)
        .bind(&new.ipaddr)
        .bind(&new.comment)
        .bind(&new.pool)
        .bind(new.reusable)
        .bind(new.data.to_text())
        .fetch_one(c)
        .await)
    .map_err(StoreError::from_write)
}

/// Node counts of a pool by state, for the pool's `levels`.
pub async fn levels(db: &Db, pool: &str) -> Result<Vec<(NodeState, i64)>, StoreError> {
    const SQL: &str = "SELECT state, COUNT(*) FROM nodes \
        WHERE retired_at IS NULL AND pool = $1 GROUP BY state";
    let rows: Vec<(String, i64)> =
        on_reader!(db, c => sqlx::query_as(SQL).bind(pool).fetch_all(c).await)?;
    Ok(rows
        .into_iter()
        .filter_map(|(state, n)| state.parse().ok().map(|s| (s, n)))
        .collect())
}

/// Live node counts by pool and state, in one query (metrics, the status page).
pub async fn count_by_pool_state(
    db: &Db,
) -> Result<Vec<(Option<String>, NodeState, i64)>, StoreError> {
    const SQL: &str = "SELECT pool, state, COUNT(*) FROM nodes WHERE retired_at IS NULL \
        GROUP BY pool, state ORDER BY pool, state";
    let rows: Vec<(Option<String>, String, i64)> =
        on_reader!(db, c => sqlx::query_as(SQL).fetch_all(c).await)?;
    Ok(rows
        .into_iter()
        .filter_map(|(pool, state, n)| state.parse().ok().map(|s| (pool, s, n)))
        .collect())
}

/// Takes up to `quantity` ready nodes of a pool for a session, least used first. On
/// PostgreSQL the rows stay locked until the transaction ends and rows locked by a parallel
/// request are skipped, so two requests never get the same node.
pub async fn claim_ready(tx: &mut Tx, pool: &str, quantity: i64) -> Result<Vec<Node>, StoreError> {
    const SQLITE: &str = "SELECT * FROM nodes \
        WHERE retired_at IS NULL AND state = 'ready' AND pool = $1 \
        ORDER BY used_count, id LIMIT $2";
    const POSTGRES: &str = "SELECT * FROM nodes \
        WHERE retired_at IS NULL AND state = 'ready' AND pool = $1 \
        ORDER BY used_count, id LIMIT $2 FOR UPDATE SKIP LOCKED";
    Ok(
        on_tx_per_backend!(tx, sqlite: SQLITE, postgres: POSTGRES, |c, sql| {
            sqlx::query_as(sql).bind(pool).bind(quantity).fetch_all(c).await
        })?,
    )
}

/// Writes back a changed node if it is still in state `expected`; returns whether it was.
/// A clash with a live node's hostname or address is `StoreError::Duplicate`.
pub async fn save(tx: &mut Tx, node: &Node, expected: NodeState) -> Result<bool, StoreError> {
    const SQL: &str = "UPDATE nodes SET retired_at = $2, hostname = $3, ipaddr = $4, \
        state = $5, comment = $6, pool = $7, reusable = $8, data = $9, used_count = $10, \
        state_changed_at = $11, owner = $13, run_pool = $14 WHERE id = $1 AND state = $12";
    update(tx, SQL, node, expected, None).await
}

/// Records a mechanism run's outcome on a node, if the node is still as the run claimed
/// it: in state `expected` since `claimed_at`. A node an admin or a deadline moved on
/// meanwhile (even back into the same state, for a new run) is left alone.
pub async fn save_claimed(
    tx: &mut Tx,
    node: &Node,
    expected: NodeState,
    claimed_at: NaiveDateTime,
) -> Result<bool, StoreError> {
    const SQL: &str = "UPDATE nodes SET retired_at = $2, hostname = $3, ipaddr = $4, \
        state = $5, comment = $6, pool = $7, reusable = $8, data = $9, used_count = $10, \
        state_changed_at = $11, owner = $13, run_pool = $14 \
        WHERE id = $1 AND state = $12 AND state_changed_at = $15";
    update(tx, SQL, node, expected, Some(claimed_at)).await
}

/// One node of a [`save_all`]: written only if still in `expected` (and, with
/// `claimed_at`, in it since then), as [`save`] and [`save_claimed`] do for one node.
#[derive(Debug, Clone, Copy)]
pub struct Saving<'n> {
    /// The node as it is to be stored.
    pub node: &'n Node,
    /// The state it must still be in.
    pub expected: NodeState,
    /// When its mechanism run claimed it, for a run's result.
    pub claimed_at: Option<NaiveDateTime>,
}

impl<'n> Saving<'n> {
    /// `node`, if it is still in `expected` (as [`save`]).
    pub fn new(node: &'n Node, expected: NodeState) -> Self {
        Saving {
            node,
            expected,
            claimed_at: None,
        }
    }

    /// A run's result on `node`, if it is still in `expected` since the run claimed it at
    /// `claimed_at` (as [`save_claimed`]).
    pub fn claimed(node: &'n Node, expected: NodeState, claimed_at: NaiveDateTime) -> Self {
        Saving {
            node,
            expected,
            claimed_at: Some(claimed_at),
        }
    }
}

/// [`save_all`]'s statement (and [`save_all_now`]'s).
const SAVE_ALL_SQLITE: &str = "UPDATE nodes SET retired_at = w.retired_at, hostname = w.hostname, \
            ipaddr = w.ipaddr, state = w.state, comment = w.comment, pool = w.pool, \
            reusable = w.reusable, data = w.data, used_count = w.used_count, \
            state_changed_at = w.state_changed_at, owner = w.owner, run_pool = w.run_pool \
        FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS retired_at, \
            json_extract(value, '$[2]') AS hostname, json_extract(value, '$[3]') AS ipaddr, \
            json_extract(value, '$[4]') AS state, json_extract(value, '$[5]') AS comment, \
            json_extract(value, '$[6]') AS pool, json_extract(value, '$[7]') AS reusable, \
            json_extract(value, '$[8]') AS data, json_extract(value, '$[9]') AS used_count, \
            json_extract(value, '$[10]') AS state_changed_at, \
            json_extract(value, '$[11]') AS expected, json_extract(value, '$[12]') AS claimed_at, \
            json_extract(value, '$[13]') AS owner, json_extract(value, '$[14]') AS run_pool \
            FROM json_each($1)) AS w \
        WHERE nodes.id = w.id AND nodes.state = w.expected \
        AND (w.claimed_at IS NULL OR nodes.state_changed_at = w.claimed_at) RETURNING nodes.id";
/// The same for PostgreSQL. The ids again as an array, so that the planner looks the
/// nodes up by key: it guesses 100 rows for any JSON array and would scan the table.
const SAVE_ALL_POSTGRES: &str = "UPDATE nodes SET retired_at = (w.e->>1)::timestamp, \
            hostname = w.e->>2, ipaddr = w.e->>3, state = w.e->>4, comment = w.e->>5, \
            pool = w.e->>6, reusable = (w.e->>7)::boolean, data = w.e->>8, \
            used_count = (w.e->>9)::bigint, state_changed_at = (w.e->>10)::timestamp, \
            owner = (w.e->>13)::bigint, run_pool = w.e->>14 \
        FROM jsonb_array_elements($1::jsonb) AS w(e) \
        WHERE nodes.id = ANY(ARRAY(SELECT (x->>0)::bigint FROM jsonb_array_elements($1::jsonb) x)) \
        AND nodes.id = (w.e->>0)::bigint AND nodes.state = w.e->>11 \
        AND ((w.e->>12) IS NULL OR nodes.state_changed_at = (w.e->>12)::timestamp) \
        RETURNING nodes.id";

/// Writes back many changed nodes in one statement, each under its own compare-and-set
/// condition; returns the ids of those written. A group of hand-outs or a mechanism run's
/// results costs one round trip to the database instead of one per node. A clash with a
/// live node's hostname or address is `StoreError::Duplicate`, and then none is written.
pub async fn save_all(tx: &mut Tx, nodes: &[Saving<'_>]) -> Result<Vec<i64>, StoreError> {
    if nodes.is_empty() {
        return Ok(Vec::new());
    }
    let rows = saving_rows(nodes);
    on_tx_per_backend!(tx, sqlite: SAVE_ALL_SQLITE, postgres: SAVE_ALL_POSTGRES, |c, sql| {
        sqlx::query_scalar(sql).bind(&rows).fetch_all(c).await
    })
    .map_err(StoreError::from_write)
}

/// [`save_all`] as a transaction of its own: the one statement is atomic, and without
/// `BEGIN` and `COMMIT` it is one round trip instead of three.
pub async fn save_all_now(db: &Db, nodes: &[Saving<'_>]) -> Result<Vec<i64>, StoreError> {
    if nodes.is_empty() {
        return Ok(Vec::new());
    }
    let rows = saving_rows(nodes);
    match db {
        Db::Sqlite { writer, .. } => {
            sqlx::query_scalar(SAVE_ALL_SQLITE)
                .bind(&rows)
                .fetch_all(writer)
                .await
        }
        Db::Postgres(pool) => {
            sqlx::query_scalar(SAVE_ALL_POSTGRES)
                .bind(&rows)
                .fetch_all(pool)
                .await
        }
    }
    .map_err(StoreError::from_write)
}

/// The nodes of a [`save_all`] as one JSON array, a node per row, its timestamps as the
/// text sqlx stores.
fn saving_rows(nodes: &[Saving<'_>]) -> String {
    let rows: Vec<serde_json::Value> = nodes
        .iter()
        .map(|s| {
            let n = s.node;
            serde_json::json!([
                n.id,
                n.retired_at.map(super::db_time),
                n.hostname,
                n.ipaddr,
                n.state.as_str(),
                n.comment,
                n.pool,
                n.reusable,
                n.data.to_text(),
                n.used_count,
                super::db_time(n.state_changed_at),
                s.expected.as_str(),
                s.claimed_at.map(super::db_time),
                n.owner,
                n.run_pool,
            ])
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}

/// Runs one of the two compare-and-set updates above; `claimed_at` is bound as `$15`.
async fn update(
    tx: &mut Tx,
    sql: &'static str,
    node: &Node,
    expected: NodeState,
    claimed_at: Option<NaiveDateTime>,
) -> Result<bool, StoreError> {
    let done = on_tx!(tx, c => {
        let mut query = sqlx::query(sql)
            .bind(node.id)
            .bind(node.retired_at)
            .bind(&node.hostname)
            .bind(&node.ipaddr)
            .bind(node.state.as_str())
            .bind(&node.comment)
            .bind(&node.pool)
            .bind(node.reusable)
            .bind(node.data.to_text())
            .bind(node.used_count)
            .bind(node.state_changed_at)
            .bind(expected.as_str())
            .bind(node.owner)
            .bind(&node.run_pool);
        if let Some(at) = claimed_at {
            query = query.bind(at);
        }
        query.execute(c).await.map(|r| r.rows_affected())
    })
    .map_err(StoreError::from_write)?;
    Ok(done == 1)
}

/// Serializes fills of one pool so two fills never both see the same deficit. PostgreSQL
/// takes a transaction-scoped advisory lock keyed by the pool name; SQLite's single writer
/// already serializes.
pub async fn lock_pool(tx: &mut Tx, pool: &str) -> Result<(), StoreError> {
    if let Tx::Postgres(t) = tx {
        const SQL: &str = "SELECT pg_advisory_xact_lock($1)";
        sqlx::query(SQL)
            .bind(pool_lock_key(pool))
            .execute(&mut **t)
            .await?;
    }
    Ok(())
}

/// A stable 64-bit key for a pool's advisory lock (FNV-1a of the name).
fn pool_lock_key(pool: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in pool.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Nodes of a pool that count towards its fill level: ready or being provisioned.
pub async fn count_filling(tx: &mut Tx, pool: &str) -> Result<i64, StoreError> {
    const SQL: &str = "SELECT COUNT(*) FROM nodes WHERE retired_at IS NULL AND pool = $1 \
        AND state IN ('ready', 'provisioning')";
    Ok(on_tx!(tx, c => sqlx::query_scalar(SQL).bind(pool).fetch_one(c).await)?)
}

/// Creates `count` fresh node rows in `provisioning` for a pool, whatever it holds, in id
/// order. The service fills with [`fill_to_level`]; this sets up nodes for tests.
pub async fn insert_provisioning(
    tx: &mut Tx,
    pool: &str,
    now: NaiveDateTime,
    count: i64,
    owner: InstanceId,
) -> Result<Vec<Node>, StoreError> {
    // One statement for the whole fill, however many rows.
    const SQL: &str = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $3) \
        INSERT INTO nodes (created_at, state, pool, reusable, data, state_changed_at, owner, run_pool) \
        SELECT $1, 'provisioning', $2, FALSE, '{}', $1, $4, $2 FROM n RETURNING *";
    if count <= 0 {
        return Ok(Vec::new());
    }
    let mut nodes: Vec<Node> = on_tx!(tx, c => sqlx::query_as(SQL).bind(now).bind(pool).bind(count).bind(owner.0).fetch_all(c).await)?;
    nodes.sort_by_key(|n| n.id);
    Ok(nodes)
}

/// Counts a pool's ready and provisioning nodes and creates the missing ones up to `$3`
/// in `provisioning` ($1: now, $2: the pool, $4: the instance whose run provisions them),
/// in one statement.
const FILL_TO_LEVEL: &str = "WITH RECURSIVE need(k) AS (SELECT $3 - COUNT(*) FROM nodes \
        WHERE retired_at IS NULL AND pool = $2 AND state IN ('ready', 'provisioning')), \
    n(i) AS (SELECT 1 FROM need WHERE k >= 1 \
        UNION ALL SELECT i + 1 FROM n, need WHERE i < k) \
    INSERT INTO nodes (created_at, state, pool, reusable, data, state_changed_at, owner, run_pool) \
    SELECT $1, 'provisioning', $2, FALSE, '{}', $1, $4, $2 FROM n RETURNING *";

/// Brings a pool that makes new machines up to `fill_level` nodes ready or being
/// provisioned: creates the missing ones in `provisioning` and returns them, in id order.
/// On SQLite the one statement runs on the writer without a transaction of its own (one
/// round trip instead of four per refill), on PostgreSQL under the pool's advisory lock.
pub async fn fill_to_level(
    db: &Db,
    pool: &str,
    now: NaiveDateTime,
    fill_level: i64,
    owner: InstanceId,
) -> Result<Vec<Node>, StoreError> {
    match db {
        Db::Sqlite { writer, .. } => {
            let mut nodes: Vec<Node> = sqlx::query_as(FILL_TO_LEVEL)
                .bind(now)
                .bind(pool)
                .bind(fill_level)
                .bind(owner.0)
                .fetch_all(writer)
                .await?;
            nodes.sort_by_key(|n| n.id);
            Ok(nodes)
        }
        Db::Postgres(_) => {
            let mut tx = db.begin().await?;
            lock_pool(&mut tx, pool).await?;
            let nodes = fill_to_level_in(&mut tx, pool, now, fill_level, owner).await?;
            tx.commit().await?;
            Ok(nodes)
        }
    }
}

/// [`fill_to_level`] inside a write transaction that holds the pool's lock (a fill that
/// also replaces stale nodes).
pub async fn fill_to_level_in(
    tx: &mut Tx,
    pool: &str,
    now: NaiveDateTime,
    fill_level: i64,
    owner: InstanceId,
) -> Result<Vec<Node>, StoreError> {
    let mut nodes: Vec<Node> = on_tx!(tx, c => sqlx::query_as(FILL_TO_LEVEL)
        .bind(now)
        .bind(pool)
        .bind(fill_level)
        .bind(owner.0)
        .fetch_all(c)
        .await)?;
    nodes.sort_by_key(|n| n.id);
    Ok(nodes)
}

/// Unused nodes assigned to `pool` (hosts imported from Duffy v2, nodes registered with a
/// pool), least used first: the pool's fill provisions them before anything else.
pub async fn assigned_unused(tx: &mut Tx, pool: &str) -> Result<Vec<Node>, StoreError> {
    const SQL: &str = "SELECT * FROM nodes WHERE retired_at IS NULL AND pool = $1 \
        AND state = 'unused' ORDER BY used_count, id";
    Ok(on_tx!(tx, c => sqlx::query_as(SQL).bind(pool).fetch_all(c).await)?)
}

/// The pools that have unused nodes assigned to them.
pub async fn pools_with_assigned_unused(db: &Db) -> Result<Vec<String>, StoreError> {
    const SQL: &str = "SELECT DISTINCT pool FROM nodes WHERE state = 'unused' \
        AND retired_at IS NULL AND pool IS NOT NULL";
    Ok(on_reader!(db, c => sqlx::query_scalar(SQL).fetch_all(c).await)?)
}

/// Unused reusable nodes outside any pool, in id order: candidates for `reuse-nodes` pools.
pub async fn reusable_unused(tx: &mut Tx) -> Result<Vec<Node>, StoreError> {
    const SQL: &str = "SELECT * FROM nodes WHERE retired_at IS NULL AND pool IS NULL \
        AND reusable = TRUE AND state = 'unused' ORDER BY id";
    Ok(on_tx!(tx, c => sqlx::query_as(SQL).fetch_all(c).await)?)
}

/// Deletes a non-reusable node whose provisioning produced nothing, if it is still in the
/// provisioning its run claimed (since `claimed_at`); returns whether it was deleted.
pub async fn delete_provisioning(
    tx: &mut Tx,
    id: i64,
    claimed_at: NaiveDateTime,
) -> Result<bool, StoreError> {
    const SQL: &str = "DELETE FROM nodes WHERE id = $1 AND state = 'provisioning' \
        AND state_changed_at = $2";
    let done = on_tx!(tx, c => sqlx::query(SQL)
        .bind(id)
        .bind(claimed_at)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Deployed nodes that no active session holds any more: their session was retired or
/// expired, so they are due for deprovisioning. Derived from state, so a crash between
/// retiring a session and deprovisioning its nodes loses nothing.
pub async fn orphaned_deployed(tx: &mut Tx, limit: i64) -> Result<Vec<Node>, StoreError> {
    const SQL: &str = "SELECT * FROM nodes n WHERE n.retired_at IS NULL \
        AND n.state = 'deployed' AND NOT EXISTS (\
            SELECT 1 FROM sessions_nodes sn JOIN sessions s ON s.id = sn.session_id \
            WHERE sn.node_id = n.id AND s.retired_at IS NULL) \
        ORDER BY n.id LIMIT $1";
    Ok(on_tx!(tx, c => sqlx::query_as(SQL).bind(limit).fetch_all(c).await)?)
}

/// Nodes that entered `state` before `before` (transient states past their deadline).
pub async fn stuck(
    tx: &mut Tx,
    state: NodeState,
    before: NaiveDateTime,
) -> Result<Vec<Node>, StoreError> {
    const SQL: &str = "SELECT * FROM nodes WHERE retired_at IS NULL AND state = $1 \
        AND state_changed_at < $2 ORDER BY id";
    Ok(on_tx!(tx, c => sqlx::query_as(SQL)
        .bind(state.as_str())
        .bind(before)
        .fetch_all(c)
        .await)?)
}

/// Nodes in a transient state that no live instance tends: their owner stopped or was
/// declared dead, or they have none (written by an older version, or imported).
pub async fn untended(tx: &mut Tx) -> Result<Vec<Node>, StoreError> {
    const SQL: &str = "SELECT * FROM nodes n WHERE n.retired_at IS NULL \
        AND n.state IN ('provisioning', 'contextualizing', 'deprovisioning') \
        AND (n.owner IS NULL OR NOT EXISTS (\
            SELECT 1 FROM instances i WHERE i.id = n.owner AND i.stopped_at IS NULL)) \
        ORDER BY n.id";
    Ok(on_tx!(tx, c => sqlx::query_as(SQL).fetch_all(c).await)?)
}

/// The nodes of pool `$1`, as a condition on `nodes n`: the nodes in it, and those out
/// of every pool that served it alone (deprovisioned ones, which leave their pool, and ones
/// failed because their pool was no longer configured). A reusable machine back in stock
/// belongs to no pool, whatever it served. Both halves start from an index (`nodes_pool`,
/// `sessions_nodes_pool`), never from the pool-less nodes of the whole history.
macro_rules! of_pool {
    () => {
        "(n.pool = $1 OR (n.id IN (SELECT l.node_id FROM sessions_nodes l WHERE l.pool = $1) \
        AND n.pool IS NULL AND n.reusable = FALSE \
        AND NOT EXISTS (SELECT 1 FROM sessions_nodes o WHERE o.node_id = n.id AND o.pool <> $1)))"
    };
}
pub(crate) use of_pool;

/// Whether any node or any session's node names pool `pool`: whether the database has
/// heard of it at all.
pub async fn pool_is_known(tx: &mut Tx, pool: &str) -> Result<bool, StoreError> {
    const SQL: &str = "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM nodes WHERE pool = $1 LIMIT 1) a) \
        + (SELECT COUNT(*) FROM (SELECT 1 FROM sessions_nodes WHERE pool = $1 LIMIT 1) b)";
    let found: i64 = on_tx!(tx, c => sqlx::query_scalar(SQL).bind(pool).fetch_one(c).await)?;
    Ok(found > 0)
}

/// The live nodes of a pool (see `of_pool!`), in id order, locked on PostgreSQL until the
/// transaction ends: retiring a pool.
pub async fn lock_live_of_pool(tx: &mut Tx, pool: &str) -> Result<Vec<Node>, StoreError> {
    const SQLITE: &str = concat!(
        "SELECT * FROM nodes n WHERE n.retired_at IS NULL AND ",
        of_pool!(),
        " ORDER BY n.id"
    );
    const POSTGRES: &str = concat!(
        "SELECT * FROM nodes n WHERE n.retired_at IS NULL AND ",
        of_pool!(),
        " ORDER BY n.id FOR UPDATE"
    );
    Ok(
        on_tx_per_backend!(tx, sqlite: SQLITE, postgres: POSTGRES, |c, sql| {
            sqlx::query_as(sql).bind(pool).fetch_all(c).await
        })?,
    )
}

/// Puts the nodes of a pool that are out of every pool (see `of_pool!`) back under its
/// name, so that the statements purging the pool's history find all of its nodes by
/// `pool = $1` even once their links are gone. Only for a transaction that then deletes
/// them ([`delete_of_pool`]); returns how many there were.
pub async fn name_pool_leftovers(tx: &mut Tx, pool: &str) -> Result<u64, StoreError> {
    const SQL: &str = concat!(
        "UPDATE nodes SET pool = $1 WHERE id IN (SELECT n.id FROM nodes n WHERE n.pool IS NULL AND ",
        of_pool!(),
        ")"
    );
    Ok(on_tx!(tx, c => sqlx::query(SQL).bind(pool).execute(c).await.map(|r| r.rows_affected()))?)
}

/// Deletes every node of a pool, retired ones too; no session may link to them any more.
/// Returns how many were deleted. Ids are never handed out again: SQLite's tables are
/// `AUTOINCREMENT`, PostgreSQL's identity columns never go back.
pub async fn delete_of_pool(tx: &mut Tx, pool: &str) -> Result<u64, StoreError> {
    const SQL: &str = "DELETE FROM nodes WHERE pool = $1";
    Ok(on_tx!(tx, c => sqlx::query(SQL).bind(pool).execute(c).await.map(|r| r.rows_affected()))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for state in NodeState::ALL {
            assert_eq!(state.as_str().parse::<NodeState>().unwrap(), state);
        }
        assert!("bogus".parse::<NodeState>().is_err());
    }

    #[test]
    fn pool_lock_keys_differ_per_pool() {
        assert_ne!(pool_lock_key("a"), pool_lock_key("b"));
        assert_eq!(pool_lock_key("a"), pool_lock_key("a"));
    }
}
