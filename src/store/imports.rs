//! `duffy import` on our side: rows written with the ids they had in the source, the
//! record of what came from where (`import_rows`), and id sequences moved past them.
//!
//! Everything here runs inside the one transaction of an import. Many rows go to the
//! database as one JSON array per statement (as the hand-out writes do), a batch at a time.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use serde_json::{Value, json};

use super::nodes::Node;
use super::sessions::Session;
use super::tenants::Tenant;
use super::{StoreError, Tx, db_time, on_tx, on_tx_per_backend};

/// Rows per statement: large enough to keep round trips few, small enough that a statement
/// stays a few hundred kilobytes.
const BATCH: usize = 1000;

/// A `sessions_nodes` row: which node served which session, with the node's data as handed out.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    /// The session.
    pub session_id: i64,
    /// The node.
    pub node_id: i64,
    /// The pool the node was asked from.
    pub pool: String,
    /// The node's data at hand-out (a JSON object's text).
    pub data: String,
}

/// What `import_rows` holds of one source row.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The row it became here; `None` for links.
    pub target_id: Option<i64>,
    /// What never changes in the life of the source row.
    pub identity: String,
    /// A hash of the row as last imported.
    pub digest: String,
}

/// One line of `import_rows` to write.
#[derive(Debug, Clone)]
pub struct Record {
    /// The source table.
    pub source_table: &'static str,
    /// The row's key in the source.
    pub source_key: String,
    /// What it is now, and which row it became here.
    pub imported: Imported,
}

/// Everything an origin's earlier imports recorded, by source table and key.
pub async fn recorded(
    tx: &mut Tx,
    origin: &str,
) -> Result<HashMap<(String, String), Imported>, StoreError> {
    const SQL: &str = "SELECT source_table, source_key, target_id, identity, digest \
        FROM import_rows WHERE origin = $1";
    let rows: Vec<(String, String, Option<i64>, String, String)> =
        on_tx!(tx, c => sqlx::query_as(SQL).bind(origin).fetch_all(c).await)?;
    Ok(rows
        .into_iter()
        .map(|(table, key, target_id, identity, digest)| {
            (
                (table, key),
                Imported {
                    target_id,
                    identity,
                    digest,
                },
            )
        })
        .collect())
}

/// Writes (or overwrites) the records of rows just imported.
pub async fn record(
    tx: &mut Tx,
    origin: &str,
    now: NaiveDateTime,
    records: &[Record],
) -> Result<(), StoreError> {
    const SQLITE: &str = "INSERT INTO import_rows \
        (origin, source_table, source_key, target_id, identity, digest, imported_at) \
        SELECT $1, json_extract(value, '$[0]'), json_extract(value, '$[1]'), \
            json_extract(value, '$[2]'), json_extract(value, '$[3]'), \
            json_extract(value, '$[4]'), $2 FROM json_each($3) WHERE true \
        ON CONFLICT (origin, source_table, source_key) DO UPDATE SET \
            target_id = excluded.target_id, identity = excluded.identity, \
            digest = excluded.digest, imported_at = excluded.imported_at";
    const POSTGRES: &str = "INSERT INTO import_rows \
        (origin, source_table, source_key, target_id, identity, digest, imported_at) \
        SELECT $1, w.e->>0, w.e->>1, (w.e->>2)::bigint, w.e->>3, w.e->>4, $2 \
        FROM jsonb_array_elements($3::jsonb) AS w(e) \
        ON CONFLICT (origin, source_table, source_key) DO UPDATE SET \
            target_id = excluded.target_id, identity = excluded.identity, \
            digest = excluded.digest, imported_at = excluded.imported_at";
    for chunk in records.chunks(BATCH) {
        let rows = array(chunk.iter().map(|r| {
            json!([
                r.source_table,
                r.source_key,
                r.imported.target_id,
                r.imported.identity,
                r.imported.digest
            ])
        }));
        on_tx_per_backend!(tx, sqlite: SQLITE, postgres: POSTGRES, |c, sql| {
            sqlx::query(sql).bind(origin).bind(now).bind(&rows).execute(c).await.map(|r| r.rows_affected())
        })?;
    }
    Ok(())
}

/// Notes a run that wrote something, with its counts (a JSON object's text).
pub async fn log_run(
    tx: &mut Tx,
    origin: &str,
    source: &str,
    now: NaiveDateTime,
    summary: &str,
) -> Result<(), StoreError> {
    const SQL: &str =
        "INSERT INTO imports (origin, source, imported_at, summary) VALUES ($1, $2, $3, $4)";
    on_tx!(tx, c => sqlx::query(SQL).bind(origin).bind(source).bind(now).bind(summary).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Keeps anybody else from writing the tables an import writes until it commits; reads go
/// on. On SQLite the import's transaction already holds the only write lock.
pub async fn lock_tables(tx: &mut Tx) -> Result<(), StoreError> {
    const POSTGRES: &str =
        "LOCK TABLE tenants, sessions, nodes, sessions_nodes, import_rows IN EXCLUSIVE MODE";
    if let Tx::Postgres(t) = tx {
        sqlx::query(POSTGRES).execute(&mut **t).await?;
    }
    Ok(())
}

/// Which of `ids` name an existing row of `table` (`tenants`, `nodes` or `sessions`).
pub async fn existing_ids(
    tx: &mut Tx,
    table: IdTable,
    ids: &[i64],
) -> Result<Vec<i64>, StoreError> {
    let mut found = Vec::new();
    for chunk in ids.chunks(BATCH * 10) {
        let list = array(chunk.iter().map(|id| json!(id)));
        let (sqlite, postgres) = table.existing_sql();
        let some: Vec<i64> = on_tx_per_backend!(tx, sqlite: sqlite, postgres: postgres, |c, sql| {
            sqlx::query_scalar(sql).bind(&list).fetch_all(c).await
        })?;
        found.extend(some);
    }
    Ok(found)
}

/// A table whose rows an import may write with the source's ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdTable {
    /// `tenants`.
    Tenants,
    /// `nodes`.
    Nodes,
    /// `sessions`.
    Sessions,
}

impl IdTable {
    /// The table's name.
    pub fn as_str(self) -> &'static str {
        match self {
            IdTable::Tenants => "tenants",
            IdTable::Nodes => "nodes",
            IdTable::Sessions => "sessions",
        }
    }

    /// [`existing_ids`]'s statements for this table.
    fn existing_sql(self) -> (&'static str, &'static str) {
        match self {
            IdTable::Tenants => (
                "SELECT id FROM tenants WHERE id IN (SELECT value FROM json_each($1))",
                "SELECT id FROM tenants WHERE id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)::bigint))",
            ),
            IdTable::Nodes => (
                "SELECT id FROM nodes WHERE id IN (SELECT value FROM json_each($1))",
                "SELECT id FROM nodes WHERE id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)::bigint))",
            ),
            IdTable::Sessions => (
                "SELECT id FROM sessions WHERE id IN (SELECT value FROM json_each($1))",
                "SELECT id FROM sessions WHERE id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)::bigint))",
            ),
        }
    }
}

/// Every tenant, retired ones included: names and keys must stay unique.
pub async fn all_tenants(tx: &mut Tx) -> Result<Vec<Tenant>, StoreError> {
    const SQL: &str = "SELECT * FROM tenants ORDER BY id";
    Ok(on_tx!(tx, c => sqlx::query_as(SQL).fetch_all(c).await)?)
}

/// Which tables of ours the database has: none on a database nobody migrated yet, all
/// but the import records on one of an older version.
pub async fn schema(tx: &mut Tx) -> Result<Schema, StoreError> {
    const SQLITE: &str = "SELECT name FROM sqlite_master WHERE type = 'table' \
        AND name IN ('tenants', 'import_rows')";
    const POSTGRES: &str = "SELECT table_name::text FROM information_schema.tables \
        WHERE table_schema = current_schema() AND table_name IN ('tenants', 'import_rows')";
    let names: Vec<String> = on_tx_per_backend!(tx, sqlite: SQLITE, postgres: POSTGRES, |c, sql| {
        sqlx::query_scalar(sql).fetch_all(c).await
    })?;
    Ok(Schema {
        tables: names.iter().any(|n| n == "tenants"),
        records: names.iter().any(|n| n == "import_rows"),
    })
}

/// What [`schema`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema {
    /// The service's tables exist.
    pub tables: bool,
    /// The import records exist.
    pub records: bool,
}

/// A live node's id, hostname, address and state, as far as uniqueness goes.
pub type LiveNode = (i64, Option<String>, Option<String>, String);

/// The nodes whose hostname and address must be unique (live and neither `provisioning`
/// nor `failed`, as the unique indexes say), and the states of `ids`.
pub async fn live_nodes(tx: &mut Tx) -> Result<Vec<LiveNode>, StoreError> {
    const SQL: &str = "SELECT id, hostname, ipaddr, state FROM nodes WHERE retired_at IS NULL \
        AND state <> 'provisioning' AND state <> 'failed' ORDER BY id";
    Ok(on_tx!(tx, c => sqlx::query_as(SQL).fetch_all(c).await)?)
}

/// The states of the nodes `ids`, retired ones included.
pub async fn node_states(tx: &mut Tx, ids: &[i64]) -> Result<HashMap<i64, String>, StoreError> {
    const SQLITE: &str =
        "SELECT id, state FROM nodes WHERE id IN (SELECT value FROM json_each($1))";
    const POSTGRES: &str = "SELECT id, state FROM nodes \
        WHERE id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)::bigint))";
    let mut states = HashMap::new();
    for chunk in ids.chunks(BATCH * 10) {
        let list = array(chunk.iter().map(|id| json!(id)));
        let some: Vec<(i64, String)> = on_tx_per_backend!(tx, sqlite: SQLITE, postgres: POSTGRES, |c, sql| {
            sqlx::query_as(sql).bind(&list).fetch_all(c).await
        })?;
        states.extend(some);
    }
    Ok(states)
}

/// Takes `n` fresh ids of `table` for rows that bring none (a v2 database's users and
/// hosts): on PostgreSQL from the table's sequence, on SQLite above the highest id the
/// table ever had (this transaction holds the only write lock).
pub async fn fresh_ids(tx: &mut Tx, table: IdTable, n: usize) -> Result<Vec<i64>, StoreError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let count = i64::try_from(n).unwrap_or(i64::MAX);
    match tx {
        Tx::Postgres(t) => {
            let sql = match table {
                IdTable::Tenants => {
                    "SELECT nextval(pg_get_serial_sequence('tenants', 'id')) FROM generate_series(1, $1)"
                }
                IdTable::Nodes => {
                    "SELECT nextval(pg_get_serial_sequence('nodes', 'id')) FROM generate_series(1, $1)"
                }
                IdTable::Sessions => {
                    "SELECT nextval(pg_get_serial_sequence('sessions', 'id')) FROM generate_series(1, $1)"
                }
            };
            Ok(sqlx::query_scalar(sql)
                .bind(count)
                .fetch_all(&mut **t)
                .await?)
        }
        Tx::Sqlite(t) => {
            let sql = match table {
                IdTable::Tenants => {
                    "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'tenants'), 0), \
                     COALESCE((SELECT MAX(id) FROM tenants), 0))"
                }
                IdTable::Nodes => {
                    "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'nodes'), 0), \
                     COALESCE((SELECT MAX(id) FROM nodes), 0))"
                }
                IdTable::Sessions => {
                    "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'sessions'), 0), \
                     COALESCE((SELECT MAX(id) FROM sessions), 0))"
                }
            };
            let high: i64 = sqlx::query_scalar(sql).fetch_one(&mut **t).await?;
            Ok((1..=count).map(|i| high + i).collect())
        }
    }
}

/// Moves the id sequences past the highest id each table holds, so that the next session,
/// node or tenant never takes an id the source gave (a job may still hold it). Sequences
/// never go back. SQLite's AUTOINCREMENT does this by itself on every insert with an id.
pub async fn continue_ids(tx: &mut Tx) -> Result<(), StoreError> {
    const POSTGRES: [&str; 3] = [
        "SELECT setval(s, m) FROM (SELECT pg_get_serial_sequence('tenants', 'id') AS s, \
            (SELECT MAX(id) FROM tenants) AS m) AS x \
            WHERE m IS NOT NULL AND m > COALESCE(pg_sequence_last_value(s::regclass), 0)",
        "SELECT setval(s, m) FROM (SELECT pg_get_serial_sequence('nodes', 'id') AS s, \
            (SELECT MAX(id) FROM nodes) AS m) AS x \
            WHERE m IS NOT NULL AND m > COALESCE(pg_sequence_last_value(s::regclass), 0)",
        "SELECT setval(s, m) FROM (SELECT pg_get_serial_sequence('sessions', 'id') AS s, \
            (SELECT MAX(id) FROM sessions) AS m) AS x \
            WHERE m IS NOT NULL AND m > COALESCE(pg_sequence_last_value(s::regclass), 0)",
    ];
    if let Tx::Postgres(t) = tx {
        for sql in POSTGRES {
            sqlx::query(sql).execute(&mut **t).await?;
        }
    }
    Ok(())
}

/// Inserts tenants with their ids.
pub async fn insert_tenants(tx: &mut Tx, tenants: &[&Tenant]) -> Result<(), StoreError> {
    const SQLITE: &str = "INSERT INTO tenants (id, created_at, retired_at, name, is_admin, \
            ssh_key, api_key, node_quota, session_lifetime, session_lifetime_max) \
        SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), \
            json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[4]'), \
            json_extract(value, '$[5]'), json_extract(value, '$[6]'), json_extract(value, '$[7]'), \
            json_extract(value, '$[8]'), json_extract(value, '$[9]') FROM json_each($1)";
    const POSTGRES: &str = "INSERT INTO tenants (id, created_at, retired_at, name, is_admin, \
            ssh_key, api_key, node_quota, session_lifetime, session_lifetime_max) \
        SELECT (w.e->>0)::bigint, (w.e->>1)::timestamp, (w.e->>2)::timestamp, w.e->>3, \
            (w.e->>4)::boolean, w.e->>5, w.e->>6, (w.e->>7)::bigint, \
            (w.e->>8)::double precision, (w.e->>9)::double precision \
        FROM jsonb_array_elements($1::jsonb) AS w(e)";
    for chunk in tenants.chunks(BATCH) {
        let rows = array(chunk.iter().map(|t| tenant_row(t)));
        on_tx_per_backend!(tx, sqlite: SQLITE, postgres: POSTGRES, |c, sql| {
            sqlx::query(sql).bind(&rows).execute(c).await.map(|r| r.rows_affected())
        })
        .map_err(StoreError::from_write)?;
    }
    Ok(())
}

/// Overwrites a tenant (by id) with the row given.
pub async fn update_tenant(tx: &mut Tx, tenant: &Tenant) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE tenants SET created_at = $2, retired_at = $3, name = $4, \
        is_admin = $5, ssh_key = $6, api_key = $7, node_quota = $8, session_lifetime = $9, \
        session_lifetime_max = $10 WHERE id = $1";
    on_tx!(tx, c => sqlx::query(SQL)
        .bind(tenant.id)
        .bind(tenant.created_at)
        .bind(tenant.retired_at)
        .bind(&tenant.name)
        .bind(tenant.is_admin)
        .bind(&tenant.ssh_key)
        .bind(&tenant.api_key)
        .bind(tenant.node_quota)
        .bind(tenant.session_lifetime)
        .bind(tenant.session_lifetime_max)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
    .map_err(StoreError::from_write)?;
    Ok(())
}

fn tenant_row(t: &Tenant) -> Value {
    json!([
        t.id,
        db_time(t.created_at),
        t.retired_at.map(db_time),
        t.name,
        t.is_admin,
        t.ssh_key,
        t.api_key,
        t.node_quota,
        t.session_lifetime,
        t.session_lifetime_max
    ])
}

/// Inserts nodes with their ids.
pub async fn insert_nodes(tx: &mut Tx, nodes: &[&Node]) -> Result<(), StoreError> {
    const SQLITE: &str = "INSERT INTO nodes (id, created_at, retired_at, hostname, ipaddr, \
            state, comment, pool, reusable, data, used_count, state_changed_at) \
        SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), \
            json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[4]'), \
            json_extract(value, '$[5]'), json_extract(value, '$[6]'), json_extract(value, '$[7]'), \
            json_extract(value, '$[8]'), json_extract(value, '$[9]'), \
            json_extract(value, '$[10]'), json_extract(value, '$[11]') FROM json_each($1)";
    const POSTGRES: &str = "INSERT INTO nodes (id, created_at, retired_at, hostname, ipaddr, \
            state, comment, pool, reusable, data, used_count, state_changed_at) \
        SELECT (w.e->>0)::bigint, (w.e->>1)::timestamp, (w.e->>2)::timestamp, w.e->>3, \
            w.e->>4, w.e->>5, w.e->>6, w.e->>7, (w.e->>8)::boolean, w.e->>9, \
            (w.e->>10)::bigint, (w.e->>11)::timestamp \
        FROM jsonb_array_elements($1::jsonb) AS w(e)";
    for chunk in nodes.chunks(BATCH) {
        let rows = array(chunk.iter().map(|n| node_row(n)));
        on_tx_per_backend!(tx, sqlite: SQLITE, postgres: POSTGRES, |c, sql| {
            sqlx::query(sql).bind(&rows).execute(c).await.map(|r| r.rows_affected())
        })
        .map_err(StoreError::from_write)?;
    }
    Ok(())
}

/// Overwrites a node (by id) with the row given.
pub async fn update_node(tx: &mut Tx, node: &Node) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE nodes SET created_at = $2, retired_at = $3, hostname = $4, \
        ipaddr = $5, state = $6, comment = $7, pool = $8, reusable = $9, data = $10, \
        used_count = $11, state_changed_at = $12 WHERE id = $1";
    on_tx!(tx, c => sqlx::query(SQL)
        .bind(node.id)
        .bind(node.created_at)
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
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
    .map_err(StoreError::from_write)?;
    Ok(())
}

fn node_row(n: &Node) -> Value {
    json!([
        n.id,
        db_time(n.created_at),
        n.retired_at.map(db_time),
        n.hostname,
        n.ipaddr,
        n.state.as_str(),
        n.comment,
        n.pool,
        n.reusable,
        n.data.to_text(),
        n.used_count,
        db_time(n.state_changed_at)
    ])
}

/// Inserts sessions with their ids.
pub async fn insert_sessions(tx: &mut Tx, sessions: &[&Session]) -> Result<(), StoreError> {
    const SQLITE: &str = "INSERT INTO sessions (id, created_at, retired_at, tenant_id, expires_at, data) \
        SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), \
            json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[4]'), \
            json_extract(value, '$[5]') FROM json_each($1)";
    const POSTGRES: &str = "INSERT INTO sessions (id, created_at, retired_at, tenant_id, expires_at, data) \
        SELECT (w.e->>0)::bigint, (w.e->>1)::timestamp, (w.e->>2)::timestamp, \
            (w.e->>3)::bigint, (w.e->>4)::timestamp, w.e->>5 \
        FROM jsonb_array_elements($1::jsonb) AS w(e)";
    for chunk in sessions.chunks(BATCH) {
        let rows = array(chunk.iter().map(|s| session_row(s)));
        on_tx_per_backend!(tx, sqlite: SQLITE, postgres: POSTGRES, |c, sql| {
            sqlx::query(sql).bind(&rows).execute(c).await.map(|r| r.rows_affected())
        })
        .map_err(StoreError::from_write)?;
    }
    Ok(())
}

/// Overwrites a session (by id) with the row given.
pub async fn update_session(tx: &mut Tx, session: &Session) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE sessions SET created_at = $2, retired_at = $3, tenant_id = $4, \
        expires_at = $5, data = $6 WHERE id = $1";
    on_tx!(tx, c => sqlx::query(SQL)
        .bind(session.id)
        .bind(session.created_at)
        .bind(session.retired_at)
        .bind(session.tenant_id)
        .bind(session.expires_at)
        .bind(session.data.to_text())
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

fn session_row(s: &Session) -> Value {
    json!([
        s.id,
        db_time(s.created_at),
        s.retired_at.map(db_time),
        s.tenant_id,
        s.expires_at.map(db_time),
        s.data.to_text()
    ])
}

/// Inserts links between sessions and nodes; one that exists already is overwritten.
pub async fn upsert_links(tx: &mut Tx, links: &[&Link]) -> Result<(), StoreError> {
    const SQLITE: &str = "INSERT INTO sessions_nodes (session_id, node_id, pool, data) \
        SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), \
            json_extract(value, '$[2]'), json_extract(value, '$[3]') FROM json_each($1) WHERE true \
        ON CONFLICT (session_id, node_id) DO UPDATE SET pool = excluded.pool, data = excluded.data";
    const POSTGRES: &str = "INSERT INTO sessions_nodes (session_id, node_id, pool, data) \
        SELECT (w.e->>0)::bigint, (w.e->>1)::bigint, w.e->>2, w.e->>3 \
        FROM jsonb_array_elements($1::jsonb) AS w(e) \
        ON CONFLICT (session_id, node_id) DO UPDATE SET pool = excluded.pool, data = excluded.data";
    for chunk in links.chunks(BATCH) {
        let rows = array(
            chunk
                .iter()
                .map(|l| json!([l.session_id, l.node_id, l.pool, l.data])),
        );
        on_tx_per_backend!(tx, sqlite: SQLITE, postgres: POSTGRES, |c, sql| {
            sqlx::query(sql).bind(&rows).execute(c).await.map(|r| r.rows_affected())
        })?;
    }
    Ok(())
}

/// A JSON array's text.
fn array(items: impl Iterator<Item = Value>) -> String {
    Value::Array(items.collect()).to_string()
}
