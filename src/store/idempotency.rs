//! The `idempotency_keys` table: the `Idempotency-Key`s tenants sent with session requests.
//!
//! A request claims its key first, in a transaction of its own ([`claim`]); the session
//! it creates is bound to the key in the very transaction that creates it ([`bind`]), so
//! a crash after that commit still leaves the answer behind for a retry. A request that
//! ends without a session lets its key go ([`release`]), so a retry tries again.

use chrono::NaiveDateTime;

use super::instances::InstanceId;
use super::{Db, StoreError, Tx, on_tx, on_tx_per_backend, on_writer};

/// A key as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KeyRow {
    /// The tenant that sent it.
    pub tenant_id: i64,
    /// The key.
    pub key: String,
    /// What request it came with.
    pub fingerprint: String,
    /// When it was first claimed (the window counts from there).
    pub created_at: NaiveDateTime,
    /// The instance answering it.
    pub claimed_by: i64,
    /// The session it created, once committed.
    pub session_id: Option<i64>,
}

/// Claims a key for a request, unless a row for it exists.
const INSERT: &str = "INSERT INTO idempotency_keys \
    (tenant_id, key, fingerprint, created_at, claimed_by, session_id) \
    VALUES ($1, $2, $3, $4, $5, NULL) ON CONFLICT (tenant_id, key) DO NOTHING";

/// Claims `key` for a request, as a statement of its own; returns whether it was free
/// (no row yet).
pub async fn insert_now(db: &Db, row: &KeyRow) -> Result<bool, StoreError> {
    let done = on_writer!(db, c => sqlx::query(INSERT)
        .bind(row.tenant_id)
        .bind(&row.key)
        .bind(&row.fingerprint)
        .bind(row.created_at)
        .bind(row.claimed_by)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// The row of a key, locked for the transaction on PostgreSQL.
pub async fn lock(tx: &mut Tx, tenant_id: i64, key: &str) -> Result<Option<KeyRow>, StoreError> {
    const SQLITE: &str = "SELECT * FROM idempotency_keys WHERE tenant_id = $1 AND key = $2";
    const POSTGRES: &str =
        "SELECT * FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 FOR UPDATE";
    Ok(
        on_tx_per_backend!(tx, sqlite: SQLITE, postgres: POSTGRES, |c, sql| {
            sqlx::query_as(sql).bind(tenant_id).bind(key).fetch_optional(c).await
        })?,
    )
}

/// Claims a key again for a new request: its old use is past the window, or the instance
/// that answered it died before it created a session.
pub async fn reclaim(tx: &mut Tx, row: &KeyRow) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE idempotency_keys SET fingerprint = $3, created_at = $4, \
        claimed_by = $5, session_id = NULL WHERE tenant_id = $1 AND key = $2";
    on_tx!(tx, c => sqlx::query(SQL)
        .bind(row.tenant_id)
        .bind(&row.key)
        .bind(&row.fingerprint)
        .bind(row.created_at)
        .bind(row.claimed_by)
        .execute(c)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Whether the request that claimed `key` as `by` at `claimed_at` still holds it, with no
/// session yet; the row is locked for the transaction on PostgreSQL (SQLite's single
/// writer serializes), so that the hand-out that asks can bind it.
pub async fn still_held(
    tx: &mut Tx,
    tenant_id: i64,
    key: &str,
    by: InstanceId,
    claimed_at: NaiveDateTime,
) -> Result<bool, StoreError> {
    const SQLITE: &str = "SELECT 1 FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 \
        AND claimed_by = $3 AND created_at = $4 AND session_id IS NULL";
    const POSTGRES: &str = "SELECT 1 FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 \
        AND claimed_by = $3 AND created_at = $4 AND session_id IS NULL FOR UPDATE";
    let found: Option<i32> = on_tx_per_backend!(tx, sqlite: SQLITE, postgres: POSTGRES, |c, sql| {
        sqlx::query_scalar(sql)
            .bind(tenant_id)
            .bind(key)
            .bind(by.0)
            .bind(claimed_at)
            .fetch_optional(c)
            .await
    })?;
    Ok(found.is_some())
}

/// Binds the session a request created to its key, in the transaction that created it
/// (after [`still_held`] said the key is the request's).
pub async fn bind(
    tx: &mut Tx,
    tenant_id: i64,
    key: &str,
    session_id: i64,
) -> Result<(), StoreError> {
    const SQL: &str =
        "UPDATE idempotency_keys SET session_id = $3 WHERE tenant_id = $1 AND key = $2";
    on_tx!(tx, c => sqlx::query(SQL)
        .bind(tenant_id)
        .bind(key)
        .bind(session_id)
        .execute(c)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Lets a key go when its request ended without a session (or with one undone, when
/// contextualization failed), if that request (`by`, at `claimed_at`) still holds it.
pub async fn release(
    db: &Db,
    tenant_id: i64,
    key: &str,
    by: InstanceId,
    claimed_at: NaiveDateTime,
) -> Result<(), StoreError> {
    const SQL: &str = "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 \
        AND claimed_by = $3 AND created_at = $4";
    on_writer!(db, c => sqlx::query(SQL)
        .bind(tenant_id)
        .bind(key)
        .bind(by.0)
        .bind(claimed_at)
        .execute(c)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Forgets the keys claimed before `before` (past the window).
pub async fn prune(db: &Db, before: NaiveDateTime) -> Result<u64, StoreError> {
    const SQL: &str = "DELETE FROM idempotency_keys WHERE created_at < $1";
    Ok(on_writer!(db, c => sqlx::query(SQL)
        .bind(before)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?)
}
