//! The `sessions` and `sessions_nodes` tables: who holds which nodes, until when.

use chrono::NaiveDateTime;

use super::nodes::Node;
use super::{Db, JsonObject, StoreError, Tx, on_reader, on_tx, on_tx_per_backend, on_writer};

/// A session row as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Session {
    /// Primary key; also the legacy `ssid`.
    pub id: i64,
    /// When the session was granted.
    pub created_at: NaiveDateTime,
    /// Set when the session was retired or expired; `None` means active.
    pub retired_at: Option<NaiveDateTime>,
    /// The tenant holding the session.
    pub tenant_id: i64,
    /// When the session expires; `None` never expires.
    pub expires_at: Option<NaiveDateTime>,
    /// `{"nodes_specs": [...]}` as requested.
    #[sqlx(try_from = "String")]
    pub data: JsonObject,
}

impl Session {
    /// Active sessions hold their nodes; retired ones are history.
    pub fn is_active(&self) -> bool {
        self.retired_at.is_none()
    }
}

/// A node together with the session it was listed under.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionNode {
    /// The session the link belongs to.
    pub session_id: i64,
    /// The node as it is now.
    #[sqlx(flatten)]
    pub node: Node,
}

/// A session about to be created by [`insert_all`].
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The tenant it is for.
    pub tenant_id: i64,
    /// When it expires.
    pub expires_at: Option<NaiveDateTime>,
    /// `{"nodes_specs": [...]}` as requested.
    pub data: JsonObject,
}

/// Creates many session rows in one statement (a group of hand-outs), created at `now`;
/// returns them in the order asked.
pub async fn insert_all(
    tx: &mut Tx,
    now: NaiveDateTime,
    new: &[NewSession],
) -> Result<Vec<Session>, StoreError> {
    const SQLITE: &str = "INSERT INTO sessions (created_at, tenant_id, expires_at, data) \
        SELECT $1, json_extract(value, '$[0]'), json_extract(value, '$[1]'), \
        json_extract(value, '$[2]') FROM json_each($2) ORDER BY key RETURNING *";
    const POSTGRES: &str = "INSERT INTO sessions (created_at, tenant_id, expires_at, data) \
        SELECT $1, (w.e->>0)::bigint, (w.e->>1)::timestamp, w.e->>2 \
        FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS w(e, n) ORDER BY w.n \
        RETURNING *";
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<serde_json::Value> = new
        .iter()
        .map(|s| {
            serde_json::json!([
                s.tenant_id,
                s.expires_at.map(super::db_time),
                s.data.to_text()
            ])
        })
        .collect();
    let rows = serde_json::Value::Array(rows).to_string();
    let mut created: Vec<Session> = on_tx_per_backend!(tx, sqlite: SQLITE, postgres: POSTGRES, |c, sql| {
        sqlx::query_as(sql).bind(now).bind(&rows).fetch_all(c).await
    })?;
    // Which id went to which row is the database's choice: pair them by content. Rows
    // alike in every column are interchangeable.
    created.sort_by_key(|s| s.id);
    let mut ordered = Vec::with_capacity(new.len());
    for wanted in new {
        let at = created.iter().position(|s| {
            s.tenant_id == wanted.tenant_id
                && s.expires_at == wanted.expires_at
                && s.data == wanted.data
        });
        match at {
            Some(at) => ordered.push(created.remove(at)),
            None => {
                return Err(StoreError::Shared(format!(
                    "a session created for tenant {} came back unlike the request",
                    wanted.tenant_id
                )));
            }
        }
    }
    Ok(ordered)
}

/// Links many nodes to their sessions in one statement: `(session, node, pool, data)`,
/// the node's data as it was handed out.
pub async fn link_all(
    tx: &mut Tx,
    links: &[(i64, i64, &str, &JsonObject)],
) -> Result<(), StoreError> {
    const SQLITE: &str = "INSERT INTO sessions_nodes (session_id, node_id, pool, data) \
        SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), \
        json_extract(value, '$[2]'), json_extract(value, '$[3]') FROM json_each($1)";
    const POSTGRES: &str = "INSERT INTO sessions_nodes (session_id, node_id, pool, data) \
        SELECT (e->>0)::bigint, (e->>1)::bigint, e->>2, e->>3 \
        FROM jsonb_array_elements($1::jsonb) AS e";
    if links.is_empty() {
        return Ok(());
    }
    let rows: Vec<serde_json::Value> = links
        .iter()
        .map(|(session, node, pool, data)| serde_json::json!([session, node, pool, data.to_text()]))
        .collect();
    let rows = serde_json::Value::Array(rows).to_string();
    on_tx_per_backend!(tx, sqlite: SQLITE, postgres: POSTGRES, |c, sql| {
        sqlx::query(sql).bind(&rows).execute(c).await.map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// Removes the link between a session and a node whose hand-out was undone.
pub async fn unlink_node(tx: &mut Tx, session_id: i64, node_id: i64) -> Result<(), StoreError> {
    const SQL: &str = "DELETE FROM sessions_nodes WHERE session_id = $1 AND node_id = $2";
    on_tx!(tx, c => sqlx::query(SQL).bind(session_id).bind(node_id).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Deletes a session whose allocation failed, with its links; nothing else is hard-deleted.
pub async fn delete(tx: &mut Tx, id: i64) -> Result<(), StoreError> {
    const LINKS: &str = "DELETE FROM sessions_nodes WHERE session_id = $1";
    const SESSION: &str = "DELETE FROM sessions WHERE id = $1";
    on_tx!(tx, c => sqlx::query(LINKS).bind(id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    on_tx!(tx, c => sqlx::query(SESSION).bind(id).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// One session by id, retired ones included.
pub async fn by_id(db: &Db, id: i64) -> Result<Option<Session>, StoreError> {
    const SQL: &str = "SELECT * FROM sessions WHERE id = $1";
    Ok(on_reader!(db, c => sqlx::query_as(SQL).bind(id).fetch_optional(c).await)?)
}

/// One session by id, locked until the transaction ends so that two parallel changes of
/// the same session happen one after the other (PostgreSQL row lock; SQLite's single
/// writer already serializes).
pub async fn lock_by_id(tx: &mut Tx, id: i64) -> Result<Option<Session>, StoreError> {
    const SQLITE: &str = "SELECT * FROM sessions WHERE id = $1";
    const POSTGRES: &str = "SELECT * FROM sessions WHERE id = $1 FOR UPDATE";
    Ok(
        on_tx_per_backend!(tx, sqlite: SQLITE, postgres: POSTGRES, |c, sql| {
            sqlx::query_as(sql).bind(id).fetch_optional(c).await
        })?,
    )
}

/// Active sessions of every tenant, or of one, in id order.
pub async fn list_active(db: &Db, tenant_id: Option<i64>) -> Result<Vec<Session>, StoreError> {
    const ALL: &str = "SELECT * FROM sessions WHERE retired_at IS NULL ORDER BY id";
    const OF_TENANT: &str =
        "SELECT * FROM sessions WHERE retired_at IS NULL AND tenant_id = $1 ORDER BY id";
    Ok(match tenant_id {
        None => on_reader!(db, c => sqlx::query_as(ALL).fetch_all(c).await)?,
        Some(t) => on_reader!(db, c => sqlx::query_as(OF_TENANT).bind(t).fetch_all(c).await)?,
    })
}

/// The nodes of the active sessions listed by [`list_active`] with the same filter, in
/// session then node order: one query for a whole listing.
pub async fn nodes_of_active(
    db: &Db,
    tenant_id: Option<i64>,
) -> Result<Vec<SessionNode>, StoreError> {
    // CROSS JOIN keeps SQLite's planner starting from the (few) active sessions instead
    // of scanning every link of the history; PostgreSQL plans it like a plain join.
    const ALL: &str = "SELECT sn.session_id, n.* FROM sessions s \
        CROSS JOIN sessions_nodes sn CROSS JOIN nodes n \
        WHERE sn.session_id = s.id AND n.id = sn.node_id AND s.retired_at IS NULL \
        ORDER BY sn.session_id, n.id";
    const OF_TENANT: &str = "SELECT sn.session_id, n.* FROM sessions s \
        CROSS JOIN sessions_nodes sn CROSS JOIN nodes n \
        WHERE sn.session_id = s.id AND n.id = sn.node_id AND s.retired_at IS NULL \
        AND s.tenant_id = $1 ORDER BY sn.session_id, n.id";
    Ok(match tenant_id {
        None => on_reader!(db, c => sqlx::query_as(ALL).fetch_all(c).await)?,
        Some(t) => on_reader!(db, c => sqlx::query_as(OF_TENANT).bind(t).fetch_all(c).await)?,
    })
}

/// The nodes of one session, in node order.
pub async fn nodes_of(db: &Db, session_id: i64) -> Result<Vec<Node>, StoreError> {
    const SQL: &str = "SELECT n.* FROM sessions_nodes sn JOIN nodes n ON n.id = sn.node_id \
        WHERE sn.session_id = $1 ORDER BY n.id";
    Ok(on_reader!(db, c => sqlx::query_as(SQL).bind(session_id).fetch_all(c).await)?)
}

/// The nodes of one session inside a write transaction.
pub async fn nodes_of_tx(tx: &mut Tx, session_id: i64) -> Result<Vec<Node>, StoreError> {
    const SQL: &str = "SELECT n.* FROM sessions_nodes sn JOIN nodes n ON n.id = sn.node_id \
        WHERE sn.session_id = $1 ORDER BY n.id";
    Ok(on_tx!(tx, c => sqlx::query_as(SQL).bind(session_id).fetch_all(c).await)?)
}

/// How many nodes the tenant's active sessions hold: the "current allocation" of the quota.
pub async fn count_active_nodes(tx: &mut Tx, tenant_id: i64) -> Result<i64, StoreError> {
    const SQL: &str = "SELECT COUNT(*) FROM sessions_nodes sn \
        JOIN sessions s ON s.id = sn.session_id \
        WHERE s.tenant_id = $1 AND s.retired_at IS NULL";
    Ok(on_tx!(tx, c => sqlx::query_scalar(SQL).bind(tenant_id).fetch_one(c).await)?)
}

/// Writes back `expires_at` and `retired_at` of a loaded session.
pub async fn save(tx: &mut Tx, session: &Session) -> Result<Session, StoreError> {
    const SQL: &str =
        "UPDATE sessions SET expires_at = $2, retired_at = $3 WHERE id = $1 RETURNING *";
    Ok(on_tx!(tx, c => sqlx::query_as(SQL)
        .bind(session.id)
        .bind(session.expires_at)
        .bind(session.retired_at)
        .fetch_one(c)
        .await)?)
}

/// Retires, in one statement, the sessions of `wanted` (`(id, holder)`) that are active
/// and held by `holder` (by anyone when `None`): a group of retires costs one round trip.
/// Returns the sessions retired, in no particular order.
pub async fn retire_all_if_held(
    db: &Db,
    wanted: &[(i64, Option<i64>)],
    now: NaiveDateTime,
) -> Result<Vec<Session>, StoreError> {
    // The pairs travel as one JSON array; RETURNING may only name the updated table.
    const SQLITE: &str = "UPDATE sessions SET retired_at = $1 FROM (SELECT \
            json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS holder \
            FROM json_each($2)) AS w \
        WHERE sessions.id = w.id AND sessions.retired_at IS NULL \
        AND (w.holder IS NULL OR w.holder = sessions.tenant_id) RETURNING *";
    const POSTGRES: &str = "UPDATE sessions s SET retired_at = $1 \
        FROM jsonb_array_elements($2::jsonb) AS w(pair) \
        WHERE s.id = (w.pair->>0)::bigint AND s.retired_at IS NULL \
        AND ((w.pair->>1) IS NULL OR (w.pair->>1)::bigint = s.tenant_id) RETURNING s.*";
    let pairs = serde_json::to_string(wanted).unwrap_or_else(|_| "[]".to_owned());
    Ok(match db {
        Db::Sqlite { writer, .. } => {
            sqlx::query_as(SQLITE)
                .bind(now)
                .bind(pairs)
                .fetch_all(writer)
                .await?
        }
        Db::Postgres(pool) => {
            sqlx::query_as(POSTGRES)
                .bind(now)
                .bind(pairs)
                .fetch_all(pool)
                .await?
        }
    })
}

/// Makes every active session of a tenant expire at `when` (retiring a tenant).
pub async fn expire_all_of_tenant(
    tx: &mut Tx,
    tenant_id: i64,
    when: NaiveDateTime,
) -> Result<u64, StoreError> {
    const SQL: &str =
        "UPDATE sessions SET expires_at = $2 WHERE tenant_id = $1 AND retired_at IS NULL";
    let done = on_tx!(tx, c => sqlx::query(SQL).bind(tenant_id).bind(when).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(done)
}

/// Retires every active session whose `expires_at` has come; returns their ids.
pub async fn retire_expired(db: &Db, now: NaiveDateTime) -> Result<Vec<i64>, StoreError> {
    const SQL: &str = "UPDATE sessions SET retired_at = $1 \
        WHERE retired_at IS NULL AND expires_at IS NOT NULL AND expires_at < $1 RETURNING id";
    Ok(on_writer!(db, c => sqlx::query_scalar(SQL).bind(now).fetch_all(c).await)?)
}

/// The earliest `expires_at` among active sessions: the expiry job sleeps until then.
pub async fn next_expiry(db: &Db) -> Result<Option<NaiveDateTime>, StoreError> {
    const SQL: &str = "SELECT MIN(expires_at) FROM sessions WHERE retired_at IS NULL";
    Ok(on_reader!(db, c => sqlx::query_scalar(SQL).fetch_one(c).await)?)
}

/// Retires the active sessions holding a node (a node stuck in hand-out is taken back).
pub async fn retire_holding(
    tx: &mut Tx,
    node_id: i64,
    now: NaiveDateTime,
) -> Result<u64, StoreError> {
    const SQL: &str = "UPDATE sessions SET retired_at = $2 WHERE retired_at IS NULL \
        AND id IN (SELECT session_id FROM sessions_nodes WHERE node_id = $1)";
    let done = on_tx!(tx, c => sqlx::query(SQL).bind(node_id).bind(now).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(done)
}

/// The active session holding a node, if any: a held node is the tenant's, not an admin's
/// to move.
pub async fn active_holder(tx: &mut Tx, node_id: i64) -> Result<Option<i64>, StoreError> {
    const SQL: &str = "SELECT sn.session_id FROM sessions_nodes sn \
        JOIN sessions s ON s.id = sn.session_id \
        WHERE sn.node_id = $1 AND s.retired_at IS NULL ORDER BY sn.session_id LIMIT 1";
    Ok(on_tx!(tx, c => sqlx::query_scalar(SQL).bind(node_id).fetch_optional(c).await)?)
}

/// The active sessions holding a node of pool `$1` (see `nodes::of_pool!`) or one handed
/// out from it, in id order: a pool is not retired under its tenants' feet.
pub async fn active_holding_pool(tx: &mut Tx, pool: &str) -> Result<Vec<i64>, StoreError> {
    const SQL: &str = concat!(
        "SELECT DISTINCT s.id FROM sessions s JOIN sessions_nodes sn ON sn.session_id = s.id \
        JOIN nodes n ON n.id = sn.node_id WHERE s.retired_at IS NULL AND (sn.pool = $1 OR ",
        super::nodes::of_pool!(),
        ") ORDER BY s.id"
    );
    Ok(on_tx!(tx, c => sqlx::query_scalar(SQL).bind(pool).fetch_all(c).await)?)
}

/// The links of pool `$1` as a condition on `sessions_nodes sn`, once all of the pool's
/// nodes carry its name (`nodes::name_pool_leftovers`): handed out from it, or of one of
/// its nodes.
macro_rules! link_of_pool {
    () => {
        "(sn.pool = $1 OR sn.node_id IN (SELECT id FROM nodes WHERE pool = $1))"
    };
}

/// What purging a pool's history deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unlinked {
    /// Links between sessions and the pool's nodes.
    pub links: u64,
    /// Retired sessions that had nothing but the pool's nodes.
    pub sessions: u64,
}

/// Deletes the pool's links to sessions, and the retired sessions left without any node
/// by that (a session that also held another pool's nodes stays, with those). Runs after
/// `nodes::name_pool_leftovers` and before `nodes::delete_of_pool`, in one transaction.
pub async fn unlink_pool(tx: &mut Tx, pool: &str) -> Result<Unlinked, StoreError> {
    const COUNT: &str = concat!(
        "SELECT COUNT(*) FROM sessions_nodes sn WHERE ",
        link_of_pool!()
    );
    // Their links go with them (ON DELETE CASCADE).
    const SESSIONS: &str = concat!(
        "DELETE FROM sessions WHERE retired_at IS NOT NULL AND id IN (\
            SELECT sn.session_id FROM sessions_nodes sn WHERE ",
        link_of_pool!(),
        ") AND NOT EXISTS (SELECT 1 FROM sessions_nodes sn \
            WHERE sn.session_id = sessions.id AND NOT ",
        link_of_pool!(),
        ")"
    );
    const LINKS: &str = "DELETE FROM sessions_nodes WHERE pool = $1 \
        OR node_id IN (SELECT id FROM nodes WHERE pool = $1)";
    let links: i64 = on_tx!(tx, c => sqlx::query_scalar(COUNT).bind(pool).fetch_one(c).await)?;
    let sessions = on_tx!(tx, c => sqlx::query(SESSIONS).bind(pool).execute(c).await.map(|r| r.rows_affected()))?;
    on_tx!(tx, c => sqlx::query(LINKS).bind(pool).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(Unlinked {
        links: u64::try_from(links).unwrap_or_default(),
        sessions,
    })
}

/// A node held by an active session, with who holds it and since when.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HeldNode {
    /// The session holding the node.
    pub session_id: i64,
    /// When that session was granted: the node is held since then.
    pub held_since: NaiveDateTime,
    /// When the session expires, if ever.
    pub session_expires_at: Option<NaiveDateTime>,
    /// The tenant holding it.
    pub tenant_id: i64,
    /// The tenant's name.
    pub tenant_name: String,
    /// The node as it is now.
    #[sqlx(flatten)]
    pub node: Node,
}

/// Nodes of active sessions granted before `before`, longest held first (v2 `/Overtime`).
pub async fn held_since_before(
    db: &Db,
    before: NaiveDateTime,
) -> Result<Vec<HeldNode>, StoreError> {
    const SQL: &str = "SELECT sn.session_id, s.created_at AS held_since, \
            s.expires_at AS session_expires_at, s.tenant_id, t.name AS tenant_name, n.* \
        FROM sessions s \
        CROSS JOIN sessions_nodes sn \
        JOIN tenants t ON t.id = s.tenant_id \
        JOIN nodes n ON n.id = sn.node_id \
        WHERE sn.session_id = s.id AND s.retired_at IS NULL AND s.created_at < $1 \
        ORDER BY s.created_at, s.id, n.id";
    Ok(on_reader!(db, c => sqlx::query_as(SQL).bind(before).fetch_all(c).await)?)
}

/// Active sessions per tenant, every tenant listed (0 for none), by name (metrics).
pub async fn active_by_tenant(db: &Db) -> Result<Vec<(String, i64)>, StoreError> {
    const SQL: &str = "SELECT t.name, COUNT(s.id) FROM tenants t \
        LEFT JOIN sessions s ON s.tenant_id = t.id AND s.retired_at IS NULL \
        GROUP BY t.name ORDER BY t.name";
    Ok(on_reader!(db, c => sqlx::query_as(SQL).fetch_all(c).await)?)
}
