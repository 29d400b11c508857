//! The `instances` table: the processes working on this database, and their heartbeats.
//!
//! Each `duffy serve` (and each `duffy admin` command) registers a row at start, renews
//! `heartbeat_at` while it runs and sets `stopped_at` when it stops. A row whose heartbeat
//! is older than the lease, or whose process is seen to be gone, is declared dead by a live
//! instance (`stopped_at` set), and the nodes it owned are taken over (see `nodes.owner`).

use std::fmt;

use chrono::NaiveDateTime;

use super::{Db, StoreError, Tx, on_reader, on_tx, on_writer};

/// An instance's id: what `nodes.owner` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(pub i64);

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An instance as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Instance {
    /// Primary key.
    pub id: i64,
    /// `serve` or `admin`.
    pub role: String,
    /// The host name it runs on.
    pub host: String,
    /// Its process id there.
    pub pid: i64,
    /// The machine's boot id and the pid namespace: equal values see the same processes.
    pub process_space: String,
    /// The version of duffy it runs.
    pub version: String,
    /// When it registered.
    pub started_at: NaiveDateTime,
    /// When it last said it was alive.
    pub heartbeat_at: NaiveDateTime,
    /// When it stopped, or was found dead.
    pub stopped_at: Option<NaiveDateTime>,
}

/// What an instance says of itself when it registers.
#[derive(Debug, Clone)]
pub struct NewInstance {
    /// `serve` or `admin`.
    pub role: &'static str,
    /// The host name.
    pub host: String,
    /// The process id.
    pub pid: i64,
    /// See [`Instance::process_space`].
    pub process_space: String,
    /// The version of duffy.
    pub version: &'static str,
}

/// Registers an instance started at `now`; returns its id.
pub async fn register(
    db: &Db,
    new: &NewInstance,
    now: NaiveDateTime,
) -> Result<InstanceId, StoreError> {
    const SQL: &str = "INSERT INTO instances \
        (role, host, pid, process_space, version, started_at, heartbeat_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id";
    let id: i64 = on_writer!(db, c => sqlx::query_scalar(SQL)
        .bind(new.role)
        .bind(&new.host)
        .bind(new.pid)
        .bind(&new.process_space)
        .bind(new.version)
        .bind(now)
        .fetch_one(c)
        .await)?;
    Ok(InstanceId(id))
}

/// Renews an instance's heartbeat. Returns `false` when another instance had declared it
/// dead; it is then alive again (its nodes were taken over meanwhile, and the results of
/// its runs on them are ignored, since they no longer match the nodes).
pub async fn heartbeat(db: &Db, id: InstanceId, now: NaiveDateTime) -> Result<bool, StoreError> {
    const RENEW: &str =
        "UPDATE instances SET heartbeat_at = $2 WHERE id = $1 AND stopped_at IS NULL";
    const REVIVE: &str = "UPDATE instances SET heartbeat_at = $2, stopped_at = NULL WHERE id = $1";
    let renewed = on_writer!(db, c => sqlx::query(RENEW)
        .bind(id.0)
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    if renewed == 1 {
        return Ok(true);
    }
    on_writer!(db, c => sqlx::query(REVIVE).bind(id.0).bind(now).execute(c).await.map(|_| ()))?;
    Ok(false)
}

/// Records that an instance stopped (at shutdown).
pub async fn stop(db: &Db, id: InstanceId, now: NaiveDateTime) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE instances SET stopped_at = $2 WHERE id = $1 AND stopped_at IS NULL";
    on_writer!(db, c => sqlx::query(SQL).bind(id.0).bind(now).execute(c).await.map(|_| ()))?;
    Ok(())
}

/// [`live`] and [`live_in`]'s statement.
const LIVE: &str = "SELECT * FROM instances WHERE stopped_at IS NULL ORDER BY id";

/// Every instance not stopped, oldest first.
pub async fn live(db: &Db) -> Result<Vec<Instance>, StoreError> {
    Ok(on_reader!(db, c => sqlx::query_as(LIVE).fetch_all(c).await)?)
}

/// Every instance not stopped, in a write transaction (the take-over reads them there).
pub async fn live_in(tx: &mut Tx) -> Result<Vec<Instance>, StoreError> {
    Ok(on_tx!(tx, c => sqlx::query_as(LIVE).fetch_all(c).await)?)
}

/// Declares an instance dead at `now`, if it is not stopped already; returns whether it was
/// this call that did.
pub async fn declare_dead(
    tx: &mut Tx,
    id: InstanceId,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    const SQL: &str = "UPDATE instances SET stopped_at = $2 WHERE id = $1 AND stopped_at IS NULL";
    let done = on_tx!(tx, c => sqlx::query(SQL)
        .bind(id.0)
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// How many live nodes each instance owns, per state: `(owner, state, count)`.
pub async fn owned(db: &Db) -> Result<Vec<(i64, String, i64)>, StoreError> {
    const SQL: &str = "SELECT owner, state, COUNT(*) FROM nodes \
        WHERE owner IS NOT NULL AND retired_at IS NULL GROUP BY owner, state ORDER BY owner, state";
    Ok(on_reader!(db, c => sqlx::query_as(SQL).fetch_all(c).await)?)
}

/// Forgets instances stopped before `before` that own no node any more.
pub async fn prune(db: &Db, before: NaiveDateTime) -> Result<u64, StoreError> {
    const SQL: &str = "DELETE FROM instances WHERE stopped_at IS NOT NULL AND stopped_at < $1 \
        AND NOT EXISTS (SELECT 1 FROM nodes WHERE owner = instances.id)";
    Ok(on_writer!(db, c => sqlx::query(SQL)
        .bind(before)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?)
}

/// Whether instance `id` is live (registered and not stopped), in a write transaction.
pub async fn is_live(tx: &mut Tx, id: i64) -> Result<bool, StoreError> {
    const SQL: &str = "SELECT COUNT(*) FROM instances WHERE id = $1 AND stopped_at IS NULL";
    let n: i64 = on_tx!(tx, c => sqlx::query_scalar(SQL).bind(id).fetch_one(c).await)?;
    Ok(n > 0)
}
