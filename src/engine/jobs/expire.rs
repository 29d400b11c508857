//! Retires sessions when their `expires_at` comes, not on the next periodic round.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use tokio_util::sync::CancellationToken;

use super::ERROR_PAUSE;
use crate::engine::{Engine, EngineError};
use crate::store;

/// The shortest sleep between two rounds, so a session due now never makes the loop spin.
const MIN_PAUSE: Duration = Duration::from_millis(5);

/// The expiry job.
pub struct ExpireSessions {
    engine: Arc<Engine>,
}

impl ExpireSessions {
    /// An expiry job for the engine's sessions.
    pub fn new(engine: Arc<Engine>) -> Self {
        ExpireSessions { engine }
    }

    /// Retires every active session whose `expires_at` has come; returns their ids. Their
    /// nodes are left to the deprovisioning job, which is woken.
    pub async fn tick(&self) -> Result<Vec<i64>, EngineError> {
        let expired = store::sessions::retire_expired(self.engine.db(), store::now()).await?;
        if !expired.is_empty() {
            tracing::info!(sessions.count = expired.len(), sessions.ids = ?expired, "expired {} session(s)", expired.len());
            self.engine.wakers().deprovision.notify_one();
        }
        Ok(expired)
    }

    /// Runs until cancelled, sleeping until the earliest `expires_at` (or the configured
    /// interval, whichever comes first); a new or changed session wakes it to look again.
    pub async fn run(self, token: CancellationToken) {
        let interval = self.engine.config().tasks.expire_sessions_interval;
        let wakers = self.engine.wakers();
        loop {
            wakers.expiry_job_awake();
            let pause = match self.tick().await {
                Ok(_) => self.until_next_expiry(interval).await,
                Err(e) => {
                    tracing::error!(error = %e, "expiring sessions failed: {e}");
                    ERROR_PAUSE
                }
            };
            // An expiry committed after this point and before `pause` is over wakes the
            // job (`Wakers::expiry_at`); one committed earlier was in `next_expiry`.
            // A pause too long to plan leaves the job marked awake: every expiry wakes it.
            if let Ok(pause) = TimeDelta::from_std(pause) {
                wakers.expiry_job_sleeps_until(store::now() + pause);
            }
            tokio::select! {
                biased;
                _ = token.cancelled() => break,
                _ = wakers.expiry.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    async fn until_next_expiry(&self, interval: Duration) -> Duration {
        match store::sessions::next_expiry(self.engine.db()).await {
            Ok(Some(at)) => (at - store::now())
                .to_std()
                // Already due: look again almost at once (never spin).
                .unwrap_or(Duration::ZERO)
                .clamp(MIN_PAUSE, interval.max(MIN_PAUSE)),
            Ok(None) => interval,
            Err(e) => {
                tracing::error!(error = %e, "reading the next expiry failed: {e}");
                ERROR_PAUSE
            }
        }
    }
}
