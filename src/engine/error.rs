//! What can go wrong in the session engine, in the words the API sends back.

use crate::store::StoreError;

/// Engine errors. Their `Display` is the exact `detail` the v3 API sends; the API maps each
/// variant to one HTTP status in `api::error`.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The resource does not exist (or the requester may not learn that it does).
    #[error("Not Found")]
    NotFound,
    /// The requester is authenticated but not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    /// The tenant would hold more nodes than its quota allows.
    #[error(
        "quota exceeded: requested nodes ({requested}) + current allocation ({current}) = {} > {quota}",
        requested + current
    )]
    QuotaExceeded {
        /// Nodes asked for by this request.
        requested: i64,
        /// Nodes the tenant's active sessions already hold.
        current: i64,
        /// The tenant's effective quota.
        quota: i64,
    },
    /// A pool has fewer ready nodes than a spec asks for (or no such pool exists).
    #[error("can't reserve nodes: quantity={quantity} pool='{pool}'")]
    CantReserve {
        /// The spec's quantity.
        quantity: i64,
        /// The spec's pool.
        pool: String,
    },
    /// The session was retired; it can no longer be changed.
    #[error("session {0} is retired")]
    SessionRetired(i64),
    /// The tenant was retired; only `{"active": true}` may change it.
    #[error("tenant {name} (id={id}) is retired")]
    TenantRetired {
        /// Tenant name.
        name: String,
        /// Tenant id.
        id: i64,
    },
    /// A request that cannot be carried out as asked (422 with a text detail).
    #[error("{0}")]
    Unprocessable(String),
    /// A unique name or address is already taken.
    #[error("{0}")]
    Conflict(String),
    /// The nodes could not be handed over right now; the client should retry.
    #[error("{0}")]
    Unavailable(String),
    /// An admin paused allocations (for the service or a pool of the request); the client
    /// should retry later.
    #[error("{0}")]
    Paused(String),
    /// A fault of the database; logged, never shown.
    #[error(transparent)]
    Store(#[from] StoreError),
}
