//! The `tenants` table: who may ask for nodes, with which key, quota and lifetimes.

use chrono::NaiveDateTime;

use super::{Db, StoreError, Tx, on_reader, on_tx, on_tx_per_backend};

/// A tenant row as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Tenant {
    /// Primary key.
    pub id: i64,
    /// When the tenant was created.
    pub created_at: NaiveDateTime,
    /// Set when the tenant was retired; `None` means active.
    pub retired_at: Option<NaiveDateTime>,
    /// Unique name, the Basic-auth user name.
    pub name: String,
    /// Admins may act on every tenant and have no node quota.
    pub is_admin: bool,
    /// The SSH public key(s) pushed to the tenant's nodes, one per line.
    pub ssh_key: String,
    /// A hash of the API key (see `engine::auth`), never the key itself.
    pub api_key: String,
    /// Own node quota; `None` means the configured default.
    pub node_quota: Option<i64>,
    /// Own session lifetime in seconds; `None` means the default.
    pub session_lifetime: Option<f64>,
    /// Own maximum session lifetime in seconds; `None` means the default.
    pub session_lifetime_max: Option<f64>,
}

impl Tenant {
    /// Active tenants may authenticate; retired ones get 403.
    pub fn is_active(&self) -> bool {
        self.retired_at.is_none()
    }
}

/// What `insert` needs; the id and timestamps come from the database and the clock.
#[derive(Debug, Clone)]
pub struct NewTenant {
    /// Unique name.
    pub name: String,
    /// Admin powers.
    pub is_admin: bool,
    /// SSH public key(s).
    pub ssh_key: String,
    /// The API key's stored hash.
    pub api_key: String,
    /// Node quota, `None` for the default.
    pub node_quota: Option<i64>,
    /// Session lifetime in seconds, `None` for the default.
    pub session_lifetime: Option<f64>,
    /// Maximum session lifetime in seconds, `None` for the default.
    pub session_lifetime_max: Option<f64>,
}

/// Looks a tenant up by id, retired ones included.
pub async fn by_id(db: &Db, id: i64) -> Result<Option<Tenant>, StoreError> {
    const SQL: &str = "SELECT * FROM tenants WHERE id = $1";
    Ok(on_reader!(db, c => sqlx::query_as(SQL).bind(id).fetch_optional(c).await)?)
}

/// Looks a tenant up by id inside a write transaction.
pub async fn by_id_tx(tx: &mut Tx, id: i64) -> Result<Option<Tenant>, StoreError> {
    const SQL: &str = "SELECT * FROM tenants WHERE id = $1";
    Ok(on_tx!(tx, c => sqlx::query_as(SQL).bind(id).fetch_optional(c).await)?)
}

/// Looks a tenant up by id and locks it until the transaction ends, so that changes and
/// session requests of one tenant happen one after the other and a quota holds under
/// parallel requests. PostgreSQL locks the row; on SQLite every write transaction already
/// holds the database's single write lock.
pub async fn lock_by_id(tx: &mut Tx, id: i64) -> Result<Option<Tenant>, StoreError> {
    const SQLITE: &str = "SELECT * FROM tenants WHERE id = $1";
    const POSTGRES: &str = "SELECT * FROM tenants WHERE id = $1 FOR UPDATE";
    Ok(
        on_tx_per_backend!(tx, sqlite: SQLITE, postgres: POSTGRES, |c, sql| {
            sqlx::query_as(sql).bind(id).fetch_optional(c).await
        })?,
    )
}

/// Looks a tenant up by its unique name (Basic auth, `duffy admin`).
pub async fn by_name(db: &Db, name: &str) -> Result<Option<Tenant>, StoreError> {
    const SQL: &str = "SELECT * FROM tenants WHERE name = $1";
    Ok(on_reader!(db, c => sqlx::query_as(SQL).bind(name).fetch_optional(c).await)?)
}

/// Finds the tenant whose stored key hash is `hash` (Bearer auth, legacy keys).
pub async fn by_api_key_hash(db: &Db, hash: &str) -> Result<Option<Tenant>, StoreError> {
    const SQL: &str = "SELECT * FROM tenants WHERE api_key = $1 ORDER BY id LIMIT 1";
    Ok(on_reader!(db, c => sqlx::query_as(SQL).bind(hash).fetch_optional(c).await)?)
}

/// Every tenant, retired ones included, in id order.
pub async fn list(db: &Db) -> Result<Vec<Tenant>, StoreError> {
    const SQL: &str = "SELECT * FROM tenants ORDER BY id";
    Ok(on_reader!(db, c => sqlx::query_as(SQL).fetch_all(c).await)?)
}

/// How many tenants exist: the embedded default creates the first admin when there are none.
pub async fn count(db: &Db) -> Result<i64, StoreError> {
    const SQL: &str = "SELECT COUNT(*) FROM tenants";
    Ok(on_reader!(db, c => sqlx::query_scalar(SQL).fetch_one(c).await)?)
}

/// Creates a tenant; a taken name is `StoreError::Duplicate { field: "name" }`.
pub async fn insert(
    tx: &mut Tx,
    new: &NewTenant,
    now: NaiveDateTime,
) -> Result<Tenant, StoreError> {
    const SQL: &str = "INSERT INTO tenants \
        (created_at, name, is_admin, ssh_key, api_key, node_quota, session_lifetime, session_lifetime_max) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *";
    on_tx!(tx, c => sqlx::query_as(SQL)
        .bind(now)
        .bind(&new.name)
        .bind(new.is_admin)
        .bind(&new.ssh_key)
        .bind(&new.api_key)
        .bind(new.node_quota)
        .bind(new.session_lifetime)
        .bind(new.session_lifetime_max)
        .fetch_one(c)
        .await)
    .map_err(StoreError::from_write)
}

/// Writes back every mutable field of `tenant` (the engine changes a loaded row, then saves).
pub async fn save(tx: &mut Tx, tenant: &Tenant) -> Result<Tenant, StoreError> {
    const SQL: &str = "UPDATE tenants SET retired_at = $2, is_admin = $3, ssh_key = $4, \
        api_key = $5, node_quota = $6, session_lifetime = $7, session_lifetime_max = $8 \
        WHERE id = $1 RETURNING *";
    on_tx!(tx, c => sqlx::query_as(SQL)
        .bind(tenant.id)
        .bind(tenant.retired_at)
        .bind(tenant.is_admin)
        .bind(&tenant.ssh_key)
        .bind(&tenant.api_key)
        .bind(tenant.node_quota)
        .bind(tenant.session_lifetime)
        .bind(tenant.session_lifetime_max)
        .fetch_one(c)
        .await)
    .map_err(StoreError::from_write)
}
