//! Creating, changing and retiring tenants (the v3 API and `duffy admin` share this).

use chrono::TimeDelta;
use uuid::Uuid;

use super::{Engine, EngineError, as_seconds, auth};
use crate::store::tenants::{NewTenant, Tenant};
use crate::store::{self, StoreError};

/// The longest lifetime a tenant may be given: longer values would overflow timestamps
/// (and mean "never" anyway, which is what a null `expires_at` is for).
pub const MAX_LIFETIME_DAYS: i64 = 36_500;

/// Checks a tenant's lifetime against [`MAX_LIFETIME_DAYS`].
pub fn check_lifetime(d: TimeDelta) -> Result<TimeDelta, String> {
    if d > TimeDelta::days(MAX_LIFETIME_DAYS) {
        return Err(format!(
            "lifetimes longer than {MAX_LIFETIME_DAYS} days are not supported"
        ));
    }
    Ok(d)
}

/// A new tenant as requested.
#[derive(Debug, Clone)]
pub struct TenantRequest {
    /// Unique name.
    pub name: String,
    /// SSH public key(s), one per line.
    pub ssh_key: String,
    /// Admin powers.
    pub is_admin: bool,
    /// Own quota, or `None` for the default.
    pub node_quota: Option<i64>,
    /// Own session lifetime, or `None` for the default.
    pub session_lifetime: Option<TimeDelta>,
    /// Own maximum lifetime, or `None` for the default.
    pub session_lifetime_max: Option<TimeDelta>,
}

/// How to change a tenant's API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeyChange {
    /// Generate a new random key and show it once.
    Reset,
    /// Use this key (an admin migrating a tenant whose key must stay the same).
    Set(Uuid),
}

/// Field updates; `None` leaves a field alone, `Some(None)` goes back to the default.
#[derive(Debug, Clone, Default)]
pub struct TenantUpdate {
    /// New SSH key(s).
    pub ssh_key: Option<String>,
    /// New API key.
    pub api_key: Option<ApiKeyChange>,
    /// New quota.
    pub node_quota: Option<Option<i64>>,
    /// New session lifetime.
    pub session_lifetime: Option<Option<TimeDelta>>,
    /// New maximum session lifetime.
    pub session_lifetime_max: Option<Option<TimeDelta>>,
}

impl TenantUpdate {
    /// Whether the update changes anything at all.
    pub fn is_empty(&self) -> bool {
        self.ssh_key.is_none()
            && self.api_key.is_none()
            && self.node_quota.is_none()
            && self.session_lifetime.is_none()
            && self.session_lifetime_max.is_none()
    }
}

/// The two kinds of `PUT /tenants/{id}` bodies.
#[derive(Debug, Clone)]
pub enum TenantChange {
    /// Change fields.
    Update(TenantUpdate),
    /// Retire (`false`) or unretire (`true`).
    SetActive(bool),
}

/// What the update response shows as `api_key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShownKey {
    /// A freshly generated key, shown this once.
    New(String),
    /// The key exists but is not shown (`"**********"`).
    Masked,
    /// `null`: the change was a retire or unretire.
    Hidden,
}

impl Engine {
    /// Creates a tenant with a new random API key; returns it with the plain key, which is
    /// never stored and never shown again.
    pub async fn create_tenant(&self, req: TenantRequest) -> Result<(Tenant, String), EngineError> {
        let key = Uuid::new_v4().to_string();
        let new = NewTenant {
            name: req.name.clone(),
            is_admin: req.is_admin,
            ssh_key: req.ssh_key,
            api_key: auth::hash_key(&key),
            node_quota: req.node_quota,
            session_lifetime: req.session_lifetime.map(as_seconds),
            session_lifetime_max: req.session_lifetime_max.map(as_seconds),
        };
        let mut tx = self.db().begin().await?;
        let tenant = store::tenants::insert(&mut tx, &new, store::now())
            .await
            .map_err(|e| match e {
                StoreError::Duplicate { .. } => {
                    EngineError::Conflict(format!("tenant '{}' already exists", req.name))
                }
                other => other.into(),
            })?;
        tx.commit().await?;
        tracing::info!(tenant.name = %tenant.name, tenant.id = tenant.id, tenant.is_admin = tenant.is_admin, "created tenant {}", tenant.name);
        Ok((tenant, key))
    }

    /// Changes, retires or unretires a tenant. Retiring makes all its sessions expire now;
    /// a retired tenant accepts nothing but `SetActive(true)`.
    pub async fn change_tenant(
        &self,
        id: i64,
        change: TenantChange,
    ) -> Result<(Tenant, ShownKey), EngineError> {
        let now = store::now();
        let mut tx = self.db().begin().await?;
        let mut tenant = store::tenants::lock_by_id(&mut tx, id)
            .await?
            .ok_or(EngineError::NotFound)?;
        let retired_error = |t: &Tenant| EngineError::TenantRetired {
            name: t.name.clone(),
            id: t.id,
        };
        let mut shown = ShownKey::Hidden;
        let mut sessions_ended = false;
        match change {
            TenantChange::SetActive(true) => tenant.retired_at = None,
            TenantChange::SetActive(false) => {
                if !tenant.is_active() {
                    return Err(retired_error(&tenant));
                }
                tenant.retired_at = Some(now);
                sessions_ended =
                    store::sessions::expire_all_of_tenant(&mut tx, tenant.id, now).await? > 0;
            }
            TenantChange::Update(update) => {
                if !tenant.is_active() {
                    return Err(retired_error(&tenant));
                }
                shown = ShownKey::Masked;
                if let Some(ssh_key) = update.ssh_key {
                    tenant.ssh_key = ssh_key;
                }
                match update.api_key {
                    Some(ApiKeyChange::Reset) => {
                        let key = Uuid::new_v4().to_string();
                        tenant.api_key = auth::hash_key(&key);
                        shown = ShownKey::New(key);
                    }
                    Some(ApiKeyChange::Set(key)) => {
                        tenant.api_key = auth::hash_key(&key.to_string())
                    }
                    None => {}
                }
                if let Some(quota) = update.node_quota {
                    tenant.node_quota = quota;
                }
                if let Some(lifetime) = update.session_lifetime {
                    tenant.session_lifetime = lifetime.map(as_seconds);
                }
                if let Some(max) = update.session_lifetime_max {
                    tenant.session_lifetime_max = max.map(as_seconds);
                }
            }
        }
        let tenant = store::tenants::save(&mut tx, &tenant)
            .await
            .map_err(|e| match e {
                StoreError::Duplicate { field: "api_key" } => {
                    EngineError::Conflict("this API key is already in use".into())
                }
                other => other.into(),
            })?;
        tx.commit().await?;
        if sessions_ended {
            self.wakers().expiry.notify_one();
        }
        tracing::info!(tenant.name = %tenant.name, tenant.id = tenant.id, tenant.active = tenant.is_active(), "changed tenant {}", tenant.name);
        Ok((tenant, shown))
    }

    /// A tenant by id, retired ones included.
    pub async fn tenant(&self, id: i64) -> Result<Tenant, EngineError> {
        store::tenants::by_id(self.db(), id)
            .await?
            .ok_or(EngineError::NotFound)
    }

    /// A tenant by name, retired ones included.
    pub async fn tenant_by_name(&self, name: &str) -> Result<Tenant, EngineError> {
        store::tenants::by_name(self.db(), name)
            .await?
            .ok_or(EngineError::NotFound)
    }

    /// Every tenant, in id order.
    pub async fn tenants(&self) -> Result<Vec<Tenant>, EngineError> {
        Ok(store::tenants::list(self.db()).await?)
    }
}
