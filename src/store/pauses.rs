//! The `pauses` table: allocations an admin has paused, for the whole service or one pool.
//!
//! Kept in the database (not in memory) so that a pause survives a restart and one made
//! by `duffy admin` on the database is seen by a running server at its next request.

use chrono::NaiveDateTime;

use super::{Db, StoreError, Tx, on_reader, on_tx};

/// The scope that stands for the whole service.
pub const SERVICE: &str = "*";

/// A paused scope, as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Pause {
    /// [`SERVICE`] or a pool name.
    pub scope: String,
    /// When the pause began.
    pub paused_at: NaiveDateTime,
    /// Who paused (a tenant name, or `duffy admin` with the system user).
    pub paused_by: String,
    /// Why, as the admin wrote it.
    pub reason: String,
}

/// Every pause, the service-wide one first, then by pool name.
pub async fn list(db: &Db) -> Result<Vec<Pause>, StoreError> {
    const SQL: &str = "SELECT * FROM pauses ORDER BY scope";
    Ok(on_reader!(db, c => sqlx::query_as(SQL).fetch_all(c).await)?)
}

/// The pauses that stop a request for these pools: the service-wide one, then the pools'.
pub async fn blocking(db: &Db, pools: &[&str]) -> Result<Vec<Pause>, StoreError> {
    // One small table, read whole: cheaper than binding a list on two backends.
    let all = list(db).await?;
    Ok(all
        .into_iter()
        .filter(|p| p.scope == SERVICE || pools.contains(&p.scope.as_str()))
        .collect())
}

/// Pauses a scope; pausing what is already paused keeps the first pause (who, when, why).
pub async fn insert(tx: &mut Tx, pause: &Pause) -> Result<Pause, StoreError> {
    const INSERT: &str = "INSERT INTO pauses (scope, paused_at, paused_by, reason) \
        VALUES ($1, $2, $3, $4) ON CONFLICT (scope) DO NOTHING";
    const SELECT: &str = "SELECT * FROM pauses WHERE scope = $1";
    on_tx!(tx, c => sqlx::query(INSERT)
        .bind(&pause.scope)
        .bind(pause.paused_at)
        .bind(&pause.paused_by)
        .bind(&pause.reason)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(on_tx!(tx, c => sqlx::query_as(SELECT).bind(&pause.scope).fetch_one(c).await)?)
}

/// Lifts the pause of a scope; returns it when there was one.
pub async fn delete(tx: &mut Tx, scope: &str) -> Result<Option<Pause>, StoreError> {
    const SQL: &str = "DELETE FROM pauses WHERE scope = $1 RETURNING *";
    Ok(on_tx!(tx, c => sqlx::query_as(SQL).bind(scope).fetch_optional(c).await)?)
}
