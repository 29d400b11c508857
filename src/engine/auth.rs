//! API keys: how they are stored, checked and (for bcrypt) cached.
//!
//! Keys we issue are random UUIDs stored as `sha256:<hex>`: a key has 122 random bits, so a
//! fast hash is as safe as a slow one and lets a key alone find its tenant (Bearer auth).
//! Keys imported from the original Duffy are bcrypt hashes (`$2b$12$…`); checking one costs
//! a few hundred milliseconds of CPU, so it runs on a blocking thread and a success is cached.

use std::time::Duration;

use moka::future::Cache;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::{self, Db, StoreError, tenants::Tenant};

/// How long a verified bcrypt key stays trusted without being checked again.
const CACHE_TTL: Duration = Duration::from_secs(300);
/// Upper bound on cached verifications (one per tenant and key in practice).
const CACHE_CAPACITY: u64 = 10_000;
/// Prefix of the hashes of keys we issued.
const SHA256_PREFIX: &str = "sha256:";

/// Credentials as presented; the API layer decodes them from the `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// HTTP Basic: tenant name and API key.
    Basic {
        /// Tenant name.
        name: String,
        /// API key as sent.
        key: String,
    },
    /// `Authorization: Bearer <api key>`: the key alone names the tenant.
    Bearer {
        /// API key as sent.
        key: String,
    },
}

impl std::fmt::Debug for Credentials {
    // Never print a key, not even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { name, .. } => write!(f, "Basic({name}, ***)"),
            Credentials::Bearer { .. } => f.write_str("Bearer(***)"),
        }
    }
}

/// Why authentication failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown tenant or wrong key.
    #[error("Unauthorized")]
    Unauthorized,
    /// The tenant was retired.
    #[error("Forbidden")]
    Retired,
    /// The database could not be asked.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The stored form of a new API key.
pub fn hash_key(key: &str) -> String {
    format!(
        "{SHA256_PREFIX}{}",
        hex::encode(Sha256::digest(key.as_bytes()))
    )
}

/// Checks keys against stored hashes, remembering bcrypt successes.
#[derive(Clone)]
pub struct Authenticator {
    /// Keyed by (SHA-256 of the presented key, the stored hash): an entry can only vouch for
    /// the exact stored hash it was checked against, so a changed key can never be served
    /// from the cache, and the plain key is never kept in memory.
    verified: Cache<([u8; 32], String), ()>,
}

impl Default for Authenticator {
    fn default() -> Self {
        Self::new()
    }
}

impl Authenticator {
    /// An empty cache.
    pub fn new() -> Self {
        Authenticator {
            verified: Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(CACHE_TTL)
                .build(),
        }
    }

    /// Finds the active tenant the credentials belong to. The tenant row is read on every
    /// call, so a retired tenant or a changed key takes effect at once.
    pub async fn authenticate(&self, db: &Db, creds: &Credentials) -> Result<Tenant, AuthError> {
        let tenant = match creds {
            Credentials::Basic { name, key } => {
                let tenant = store::tenants::by_name(db, name)
                    .await?
                    .ok_or(AuthError::Unauthorized)?;
                if !self.verify(key, &tenant.api_key).await {
                    return Err(AuthError::Unauthorized);
                }
                tenant
            }
            Credentials::Bearer { key } => store::tenants::by_api_key_hash(db, &hash_key(key))
                .await?
                .ok_or(AuthError::Unauthorized)?,
        };
        if !tenant.is_active() {
            return Err(AuthError::Retired);
        }
        Ok(tenant)
    }

    /// Whether `key` matches the stored hash.
    pub async fn verify(&self, key: &str, stored: &str) -> bool {
        if let Some(hex_digest) = stored.strip_prefix(SHA256_PREFIX) {
            let presented = hex::encode(Sha256::digest(key.as_bytes()));
            return bool::from(presented.as_bytes().ct_eq(hex_digest.as_bytes()));
        }
        if !stored.starts_with("$2") {
            return false;
        }
        let cache_key: ([u8; 32], String) = (Sha256::digest(key.as_bytes()).into(), stored.into());
        if self.verified.contains_key(&cache_key) {
            return true;
        }
        let (key, hash) = (key.to_owned(), stored.to_owned());
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(key, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        if ok {
            self.verified.insert(cache_key, ()).await;
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sha256_keys_verify_exactly() {
        let auth = Authenticator::new();
        let stored = hash_key("a8b9899d-b128-59a1-aa86-754920b7f5ed");
        assert!(stored.starts_with("sha256:"));
        assert!(
            auth.verify("a8b9899d-b128-59a1-aa86-754920b7f5ed", &stored)
                .await
        );
        assert!(
            !auth
                .verify("a8b9899d-b128-59a1-aa86-754920b7f5ee", &stored)
                .await
        );
        assert!(!auth.verify("", &stored).await);
    }

    #[tokio::test]
    async fn bcrypt_keys_from_the_original_verify_and_are_cached() {
        let auth = Authenticator::new();
        // cost 4 keeps the test fast; the original uses 12, the code path is the same
        let stored = bcrypt::hash("ae6c10d0-0b13-554c-b976-a05d8a18f0cc", 4).unwrap();
        assert!(!auth.verify("wrong", &stored).await);
        assert_eq!(auth.verified.entry_count(), 0);
        assert!(
            auth.verify("ae6c10d0-0b13-554c-b976-a05d8a18f0cc", &stored)
                .await
        );
        auth.verified.run_pending_tasks().await;
        assert_eq!(auth.verified.entry_count(), 1);
        // a different stored hash (the key was changed) is not served from the cache
        let other = bcrypt::hash("something-else", 4).unwrap();
        assert!(
            !auth
                .verify("ae6c10d0-0b13-554c-b976-a05d8a18f0cc", &other)
                .await
        );
    }

    #[tokio::test]
    async fn unknown_hash_formats_never_verify() {
        let auth = Authenticator::new();
        assert!(!auth.verify("x", "plain-text-key").await);
        assert!(!auth.verify("plain-text-key", "plain-text-key").await);
    }

    #[test]
    fn debug_output_hides_keys() {
        let c = Credentials::Basic {
            name: "t".into(),
            key: "secret".into(),
        };
        assert!(!format!("{c:?}").contains("secret"));
        let c = Credentials::Bearer {
            key: "secret".into(),
        };
        assert!(!format!("{c:?}").contains("secret"));
    }
}
