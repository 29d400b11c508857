//! `Idempotency-Key` on session requests: a client that did not get its answer (a
//! timeout, a dropped connection, a server killed just after it committed) sends the same
//! request with the same key again, and gets the session the first one created, never a
//! second one.
//!
//! The key belongs to the tenant that sent it, for `app.idempotency-window` (24 h by
//! default). A request claims the key before anything else; the session it creates is
//! bound to the key in the transaction that creates it. A request that ends without a
//! session (refused, or failed) lets the key go, so that a retry tries again. A request
//! that finds its key claimed by a request still running waits for that one's answer;
//! one claimed by a dead instance, or claimed without a session for longer than a request
//! takes to reserve its nodes, takes the claim over.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::handouts::NodesSpec;
use super::{Engine, EngineError};
use crate::store::idempotency::{self, KeyRow};
use crate::store::tenants::Tenant;
use crate::store::{self, instances};

/// The longest key accepted.
pub const MAX_KEY_LENGTH: usize = 255;
/// How long a request waits for another one with the same key to finish.
pub(crate) const WAIT_FOR_FIRST: Duration = Duration::from_secs(60);
/// How often it looks meanwhile.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// A key as a client sent it: 1 to 255 visible ASCII characters (a UUID, typically).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key of a header's text, or why it cannot be one.
    pub fn parse(text: &str) -> Result<IdempotencyKey, String> {
        if text.is_empty() || text.len() > MAX_KEY_LENGTH {
            return Err(format!(
                "Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters long"
            ));
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "Idempotency-Key may only hold visible ASCII characters (no spaces)".to_owned(),
            );
        }
        Ok(IdempotencyKey(text.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A key this request holds: it binds its session to it, if it still holds it then.
#[derive(Debug, Clone)]
pub(crate) struct KeyClaim {
    /// The tenant that sent the key.
    pub tenant_id: i64,
    /// The key.
    pub key: String,
    /// When this request claimed it: with the instance, what tells its claim from a later
    /// one of a retry that took the key over.
    pub claimed_at: chrono::NaiveDateTime,
}

/// What claiming a key found.
pub(crate) enum Claimed {
    /// The key is this request's: go on and bind the session to it.
    Mine(KeyClaim),
    /// An earlier request with this key created this session: answer with it.
    Replay(i64),
}

/// What a request is, for telling a retry from another request with the same key: the
/// tenant it is for and its specs, in order.
pub(crate) fn fingerprint(tenant_id: Option<i64>, specs: &[NodesSpec]) -> String {
    let canonical = serde_json::json!({
        "tenant": tenant_id,
        "specs": specs.iter().map(|s| (&s.pool, s.quantity)).collect::<Vec<_>>(),
    });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

impl Engine {
    /// Claims `key` of `requester` for a request with `fingerprint`.
    pub(crate) async fn claim_key(
        &self,
        requester: &Tenant,
        key: &IdempotencyKey,
        fingerprint: &str,
    ) -> Result<Claimed, EngineError> {
        let window = chrono::TimeDelta::from_std(self.config().app.idempotency_window)
            .unwrap_or(chrono::TimeDelta::MAX);
        let started = std::time::Instant::now();
        loop {
            let now = store::now();
            let row = KeyRow {
                tenant_id: requester.id,
                key: key.as_str().to_owned(),
                fingerprint: fingerprint.to_owned(),
                created_at: now,
                claimed_by: self.instance().0,
                session_id: None,
            };
            let mine = Claimed::Mine(KeyClaim {
                tenant_id: requester.id,
                key: key.as_str().to_owned(),
                claimed_at: now,
            });
            // The common case, a fresh key: one statement of its own (on SQLite, one turn of
            // the writer instead of a transaction's three).
            if idempotency::insert_now(self.db(), &row).await? {
                return Ok(mine);
            }
            let mut tx = self.db().begin().await?;
            let Some(found) = idempotency::lock(&mut tx, requester.id, key.as_str()).await? else {
                // Let go between the two statements: claim it again.
                continue;
            };
            if now - found.created_at > window {
                idempotency::reclaim(&mut tx, &row).await?;
                tx.commit().await?;
                return Ok(mine);
            }
            if found.fingerprint != fingerprint {
                return Err(EngineError::Unprocessable(format!(
                    "Idempotency-Key {} was used with a different request",
                    key.as_str()
                )));
            }
            if let Some(session) = found.session_id {
                return Ok(Claimed::Replay(session));
            }
            // A claim without a session for longer than any request takes to reserve its
            // nodes was abandoned (its task failed), as is one of a dead instance.
            let abandoned = now - found.created_at
                > chrono::TimeDelta::from_std(WAIT_FOR_FIRST).unwrap_or(chrono::TimeDelta::MAX);
            if abandoned || !instances::is_live(&mut tx, found.claimed_by).await? {
                // Nobody will create its session: this request goes on. Should the first
                // one still reach its hand-out, it finds its claim gone and gives way.
                idempotency::reclaim(&mut tx, &row).await?;
                tx.commit().await?;
                return Ok(mine);
            }
            drop(tx);
            if started.elapsed() > WAIT_FOR_FIRST {
                return Err(EngineError::Conflict(format!(
                    "a request with Idempotency-Key {} is still being answered",
                    key.as_str()
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Lets a key go after its request ended without a session, if the request still
    /// holds it.
    pub(crate) async fn release_key(&self, claim: &KeyClaim) {
        let released = idempotency::release(
            self.db(),
            claim.tenant_id,
            &claim.key,
            self.instance(),
            claim.claimed_at,
        )
        .await;
        if let Err(e) = released {
            tracing::warn!(error = %e, tenant.id = claim.tenant_id, "could not release an Idempotency-Key: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_short_visible_ascii() {
        assert!(IdempotencyKey::parse("6f1c0f6e-2b9c-4c5e-9d43-0b8b5f2d3a10").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("with space").is_err());
        assert!(IdempotencyKey::parse("naïve").is_err());
    }

    #[test]
    fn a_fingerprint_tells_requests_apart() {
        let spec = |pool: &str, quantity| NodesSpec {
            pool: pool.into(),
            quantity,
        };
        let a = fingerprint(None, &[spec("p", 1)]);
        assert_eq!(a, fingerprint(None, &[spec("p", 1)]));
        assert_ne!(a, fingerprint(None, &[spec("p", 2)]));
        assert_ne!(a, fingerprint(Some(3), &[spec("p", 1)]));
    }
}
