//! The session engine: tenants, sessions, pools and the node life cycle.
//!
//! The API and `duffy admin` call it; it calls the store, the mechanisms and the
//! contextualizer. Everything that changes state goes through here, so the rules (quota,
//! clamping, which node goes first, what a retire sets in motion) live in one place.
//! Background work lives in [`jobs`]; the engine wakes it with [`Wakers`] so that a refill
//! starts right after an allocation and an expiry fires at `expires_at`.

pub mod admin;
pub mod auth;
pub mod backoff;
pub mod error;
mod group;
mod handouts;
pub mod idempotency;
pub mod instances;
pub mod jobs;
pub mod lifecycle;
pub mod nodes;
pub mod pools;
pub mod recent;
mod results;
pub mod retire_pool;
pub mod sessions;
pub mod states;
pub mod tenants;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{NaiveDateTime, TimeDelta};
use tokio::sync::Notify;
use tokio_util::task::TaskTracker;

use crate::config::{Config, Defaults};
use crate::contextualize::Contextualizer;
use crate::mechanisms::Mechanisms;
use crate::metrics::Metrics;
use crate::store::Db;
use crate::store::instances::InstanceId;
use crate::store::tenants::Tenant;

pub use auth::{AuthError, Authenticator, Credentials};
pub use error::EngineError;
pub use instances::LiveInstance;

/// Everything the engine works with; shared behind an `Arc` by the API and the jobs.
pub struct Engine {
    db: Db,
    /// This process in the `instances` table: the owner of the nodes its runs move on.
    instance: InstanceId,
    config: Arc<Config>,
    defaults: Defaults,
    mechanisms: Mechanisms,
    contextualizer: Arc<dyn Contextualizer>,
    auth: Authenticator,
    wakers: Wakers,
    backoff: backoff::PoolBackoff,
    runs: TaskTracker,
    metrics: Arc<Metrics>,
    recent_errors: recent::RecentErrors,
    /// Hand-outs and retirements: their queues.
    sessions: sessions::SessionQueues,
    /// Provisioning and deprovisioning: the queue of run results, pools with assigned nodes.
    lifecycle: lifecycle::LifecycleState,
}

/// The engine cannot start with this configuration.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Effective tenant values need the `defaults` section.
    #[error(
        "the `defaults` section is missing: the API needs defaults.session-lifetime, \
         defaults.session-lifetime-max and defaults.node-quota"
    )]
    MissingDefaults,
}

/// Wake-up calls for the background jobs. A `Notify` keeps one pending wake-up, so a burst
/// of calls while a job is busy costs one more round, not one per call.
#[derive(Default)]
pub struct Wakers {
    /// Some pools may be below their fill level.
    pub fill: Notify,
    /// Which pools the fill job was asked to look at since it last did.
    fill_scope: Mutex<FillScope>,
    /// Some nodes may be due for deprovisioning.
    pub deprovision: Notify,
    /// The earliest expiry may have changed.
    pub expiry: Notify,
    /// When the expiry job looks next, so that a new session, which nearly always expires
    /// hours after that, does not wake it: under load every hand-out did, and each wake
    /// cost a write statement on SQLite's single writer that found nothing to expire.
    expiry_plan: ExpiryPlan,
}

/// The expiry job's next look, in milliseconds since the epoch; `i64::MAX` while it is
/// awake or has not planned yet (then every expiry counts as earlier).
struct ExpiryPlan(AtomicI64);

impl Default for ExpiryPlan {
    fn default() -> Self {
        ExpiryPlan(AtomicI64::new(i64::MAX))
    }
}

/// Which pools a fill round looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum FillScope {
    /// Nobody asked: only the periodic round (which looks at every pool) runs.
    #[default]
    Nothing,
    /// These pools lost ready nodes.
    Pools(BTreeSet<String>),
    /// Every pool (a reusable node came back, or the periodic round).
    All,
}

impl FillScope {
    fn add(&mut self, pools: Option<&[String]>) {
        match (pools, &mut *self) {
            (_, FillScope::All) => {}
            (None, _) => *self = FillScope::All,
            (Some(names), FillScope::Pools(set)) => set.extend(names.iter().cloned()),
            (Some(names), FillScope::Nothing) => {
                if !names.is_empty() {
                    *self = FillScope::Pools(names.iter().cloned().collect());
                }
            }
        }
    }
}

impl Wakers {
    /// Asks the fill job to look at `pools` (all pools when `None`).
    pub fn fill(&self, pools: Option<&[String]>) {
        if let Ok(mut scope) = self.fill_scope.lock() {
            scope.add(pools);
        }
        self.fill.notify_one();
    }

    /// A session that expires at `at` was committed: the expiry job is woken only when it
    /// would otherwise look later than that (or is awake, and may have read the earliest
    /// expiry before the commit).
    pub fn expiry_at(&self, at: NaiveDateTime) {
        if millis(at) < self.expiry_plan.0.load(Ordering::SeqCst) {
            self.expiry.notify_one();
        }
    }

    /// The expiry job is awake: until it plans again, every new expiry wakes it. Called
    /// before it reads the earliest expiry, so that a session committed after that read
    /// is never missed.
    pub fn expiry_job_awake(&self) {
        self.expiry_plan.0.store(i64::MAX, Ordering::SeqCst);
    }

    /// The expiry job will look again at `at` (unless woken).
    pub fn expiry_job_sleeps_until(&self, at: NaiveDateTime) {
        self.expiry_plan.0.store(millis(at), Ordering::SeqCst);
    }

    /// Takes what was asked for since the last call.
    pub fn take_fill_scope(&self) -> FillScope {
        self.fill_scope
            .lock()
            .map(|mut scope| std::mem::take(&mut *scope))
            .unwrap_or(FillScope::All)
    }
}

fn millis(at: NaiveDateTime) -> i64 {
    at.and_utc().timestamp_millis()
}

/// A tenant's values after applying the configured defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Effective {
    /// How many nodes the tenant's active sessions may hold.
    pub node_quota: i64,
    /// How long a new session lasts.
    pub session_lifetime: TimeDelta,
    /// How far a session may be extended, counted from its creation.
    pub session_lifetime_max: TimeDelta,
}

impl Effective {
    /// A tenant's values: its own where set, else the `defaults` section's.
    pub(crate) fn of(defaults: &Defaults, tenant: &Tenant) -> Effective {
        Effective {
            node_quota: tenant.node_quota.unwrap_or(i64::from(defaults.node_quota)),
            session_lifetime: tenant
                .session_lifetime
                .map_or(defaults.session_lifetime, seconds),
            session_lifetime_max: tenant
                .session_lifetime_max
                .map_or(defaults.session_lifetime_max, seconds),
        }
    }
}

/// Seconds as stored in the database, as a time delta.
pub fn seconds(secs: f64) -> TimeDelta {
    // Float seconds from the database; microseconds are the finest unit we keep.
    TimeDelta::microseconds((secs * 1_000_000.0).round() as i64)
}

/// A time delta as the seconds the database stores.
pub fn as_seconds(delta: TimeDelta) -> f64 {
    delta
        .num_microseconds()
        .map_or(f64::MAX, |us| us as f64 / 1_000_000.0)
}

impl Engine {
    /// Assembles an engine for the registered `instance`
    /// ([`instances::register`]); the configuration must have a `defaults` section.
    pub fn new(
        db: Db,
        config: Arc<Config>,
        mechanisms: Mechanisms,
        contextualizer: Arc<dyn Contextualizer>,
        instance: InstanceId,
    ) -> Result<Engine, SetupError> {
        let defaults = config.defaults.clone().ok_or(SetupError::MissingDefaults)?;
        let backoff =
            backoff::PoolBackoff::new(config.tasks.fill_backoff.min, config.tasks.fill_backoff.max);
        let sessions =
            sessions::SessionQueues::new(&db, Arc::clone(&config), defaults.clone(), instance);
        let lifecycle = lifecycle::LifecycleState::new(&db);
        Ok(Engine {
            db,
            instance,
            config,
            defaults,
            mechanisms,
            contextualizer,
            auth: Authenticator::new(),
            wakers: Wakers::default(),
            backoff,
            runs: TaskTracker::new(),
            metrics: Arc::new(Metrics::new()),
            recent_errors: recent::RecentErrors::default(),
            sessions,
            lifecycle,
        })
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// This process's instance: the owner of the nodes its runs move on.
    pub fn instance(&self) -> InstanceId {
        self.instance
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The `defaults` section.
    pub fn defaults(&self) -> &Defaults {
        &self.defaults
    }

    /// The wake-up calls of the background jobs.
    pub fn wakers(&self) -> &Wakers {
        &self.wakers
    }

    /// Where mechanism runs are spawned: the background jobs' and the admins'; shutdown
    /// waits for them in one place.
    pub fn runs(&self) -> &TaskTracker {
        &self.runs
    }

    /// The metrics of this process, shared with the API and the v2 layer.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The last mechanism errors, for the status page.
    pub fn recent_errors(&self) -> &recent::RecentErrors {
        &self.recent_errors
    }

    /// Which pools are left alone after failed provisioning.
    pub fn pool_backoff(&self) -> &backoff::PoolBackoff {
        &self.backoff
    }

    /// The mechanisms of the concrete pools.
    pub fn mechanisms(&self) -> &Mechanisms {
        &self.mechanisms
    }

    /// Checks credentials and returns the active tenant they belong to.
    pub async fn authenticate(&self, creds: &Credentials) -> Result<Tenant, AuthError> {
        self.auth.authenticate(&self.db, creds).await
    }

    /// A tenant's quota and lifetimes, its own or the defaults.
    pub fn effective(&self, tenant: &Tenant) -> Effective {
        Effective::of(&self.defaults, tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_requests_accumulate_until_taken() {
        let w = Wakers::default();
        assert_eq!(w.take_fill_scope(), FillScope::Nothing);
        w.fill(Some(&["a".to_string()]));
        w.fill(Some(&["b".to_string()]));
        assert_eq!(
            w.take_fill_scope(),
            FillScope::Pools(BTreeSet::from(["a".to_string(), "b".to_string()]))
        );
        w.fill(Some(&["a".to_string()]));
        w.fill(None);
        w.fill(Some(&["c".to_string()]));
        assert_eq!(w.take_fill_scope(), FillScope::All);
        assert_eq!(w.take_fill_scope(), FillScope::Nothing);
    }

    #[test]
    fn an_expiry_wakes_the_job_only_before_its_next_look() {
        use futures::FutureExt;
        let w = Wakers::default();
        let woken = |w: &Wakers| w.expiry.notified().now_or_never().is_some();
        let t0 = crate::store::now();
        // Before the job first plans, and while it is awake, any expiry wakes it.
        w.expiry_at(t0 + TimeDelta::hours(6));
        assert!(woken(&w));
        w.expiry_job_sleeps_until(t0 + TimeDelta::minutes(1));
        w.expiry_at(t0 + TimeDelta::hours(6));
        assert!(
            !woken(&w),
            "a session of 6 h does not wake a job looking in 1 min"
        );
        w.expiry_at(t0 + TimeDelta::seconds(30));
        assert!(woken(&w), "one due before the next look does");
        w.expiry_job_awake();
        w.expiry_at(t0 + TimeDelta::hours(6));
        assert!(
            woken(&w),
            "an awake job may have read the earliest expiry already"
        );
    }

    #[test]
    fn seconds_round_trip() {
        assert_eq!(seconds(21600.0), TimeDelta::hours(6));
        assert_eq!(as_seconds(TimeDelta::milliseconds(1500)), 1.5);
    }
}
