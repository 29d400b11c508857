//! This process among the instances working on one database: registering it, and telling
//! which of the others are dead.
//!
//! An instance is dead when it stopped, when its heartbeat is older than the lease
//! (`tasks.lease`), or, sooner, when it ran in the same process space as this one (same
//! machine boot, same pid namespace) and its process is gone. Whoever finds it dead takes
//! over the nodes it owned ([`super::jobs::takeover`]).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use chrono::{NaiveDateTime, TimeDelta};

use crate::store::instances::{self, Instance, InstanceId, NewInstance};
use crate::store::{Db, StoreError};

/// What an instance does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `duffy serve`: the API and the background jobs.
    Serve,
    /// A `duffy admin` command (its mechanism runs are owned like a server's).
    Admin,
}

impl Role {
    /// The name stored in `instances.role`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Serve => "serve",
            Role::Admin => "admin",
        }
    }
}

/// Registers this process as an instance in `role`.
pub async fn register(db: &Db, role: Role) -> Result<InstanceId, StoreError> {
    let new = NewInstance {
        role: role.as_str(),
        host: host_name(),
        pid: i64::from(std::process::id()),
        process_space: process_space().to_owned(),
        version: env!("CARGO_PKG_VERSION"),
    };
    instances::register(db, &new, crate::store::now()).await
}

/// A live instance and how many nodes it owns per transient state.
#[derive(Debug, Clone)]
pub struct LiveInstance {
    /// The instance.
    pub instance: Instance,
    /// State name → nodes its runs are moving on.
    pub owns: BTreeMap<String, i64>,
}

impl super::Engine {
    /// The instances not stopped, oldest first, with what each owns.
    pub async fn live_instances(&self) -> Result<Vec<LiveInstance>, super::EngineError> {
        let owned = instances::owned(self.db()).await?;
        Ok(instances::live(self.db())
            .await?
            .into_iter()
            .map(|instance| {
                let owns = owned
                    .iter()
                    .filter(|(owner, _, _)| *owner == instance.id)
                    .map(|(_, state, n)| (state.clone(), *n))
                    .collect();
                LiveInstance { instance, owns }
            })
            .collect())
    }

    /// Records that this instance stopped: another instance may take what it left over at
    /// once.
    pub async fn instance_stopped(&self) {
        if let Err(e) = instances::stop(self.db(), self.instance(), crate::store::now()).await {
            tracing::warn!(error = %e, "could not record that this instance stopped: {e}");
        }
    }
}

/// Runs `work` while renewing `engine`'s heartbeat, for a process without the background
/// jobs (a `duffy admin` command): its mechanism runs are not taken over while it lives.
pub async fn beating<F: std::future::Future>(engine: &super::Engine, work: F) -> F::Output {
    let period = heartbeat_period(engine.config().tasks.lease);
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tokio::time::sleep(period) => {
                if let Err(e) = instances::heartbeat(engine.db(), engine.instance(), crate::store::now()).await {
                    tracing::warn!(error = %e, "could not renew this instance's heartbeat: {e}");
                }
            }
        }
    }
}

/// How often an instance renews its heartbeat: a third of the lease, so that two late
/// rounds in a row still keep it alive.
pub fn heartbeat_period(lease: std::time::Duration) -> std::time::Duration {
    (lease / 3).max(std::time::Duration::from_millis(50))
}

/// This machine's host name.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The boot id of this machine and the inode of this process's pid namespace: processes
/// with the same value see each other's pids. Unknown parts make a value no other process
/// has, so that nobody concludes anything from it.
pub fn process_space() -> &'static str {
    static SPACE: OnceLock<String> = OnceLock::new();
    SPACE.get_or_init(|| {
        let boot =
            std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|b| b.trim().to_owned());
        let namespace =
            std::fs::read_link("/proc/self/ns/pid").map(|p| p.to_string_lossy().into_owned());
        match (boot, namespace) {
            (Ok(boot), Ok(namespace)) if !boot.is_empty() => format!("{boot}/{namespace}"),
            _ => format!("unknown/{}", uuid::Uuid::new_v4()),
        }
    })
}

/// Whether the process `pid` of this process space is gone.
fn process_gone(pid: i64) -> bool {
    #[cfg(target_os = "linux")]
    {
        let Some(pid) = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return false;
        };
        // ESRCH: no such process. EPERM means it exists (another user's).
        matches!(
            rustix::process::test_kill_process(pid),
            Err(rustix::io::Errno::SRCH)
        )
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        false
    }
}

/// Why `other`, a live row, is dead at `now` for instance `me`; `None` while it may be
/// alive. With `lease` (when `me` has renewed its own heartbeat for a whole lease), a
/// heartbeat older than that is death. `sole_server` says that no other server can be
/// running (an SQLite database whose serve lock this process holds).
pub fn why_dead(
    other: &Instance,
    me: InstanceId,
    now: NaiveDateTime,
    lease: Option<TimeDelta>,
    sole_server: bool,
) -> Option<String> {
    if other.id == me.0 {
        return None;
    }
    let silent = now - other.heartbeat_at;
    if let Some(lease) = lease
        && silent > lease
    {
        return Some(format!(
            "no heartbeat for {:.1} s (tasks.lease is {:.1} s)",
            silent.as_seconds_f64(),
            lease.as_seconds_f64()
        ));
    }
    if other.process_space == process_space() && process_gone(other.pid) {
        return Some(format!("its process {} on this machine is gone", other.pid));
    }
    if sole_server && other.role == Role::Serve.as_str() {
        return Some("this server holds the SQLite database's serve lock".to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, pid: i64, space: &str, heartbeat_at: NaiveDateTime) -> Instance {
        Instance {
            id,
            role: "serve".into(),
            host: "h".into(),
            pid,
            process_space: space.into(),
            version: "0".into(),
            started_at: heartbeat_at,
            heartbeat_at,
            stopped_at: None,
        }
    }

    #[test]
    fn an_instance_is_dead_by_lease_by_its_process_or_by_the_serve_lock() {
        let now = crate::store::now();
        let lease = Some(TimeDelta::seconds(30));
        let me = InstanceId(1);
        let mine = process_space();
        let alive_pid = i64::from(std::process::id());
        // A child that has exited and been reaped: its pid is free.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone_pid = i64::from(child.id());
        child.wait().unwrap();

        assert_eq!(why_dead(&row(1, 9, mine, now), me, now, lease, true), None);
        let fresh = row(2, alive_pid, mine, now - TimeDelta::seconds(29));
        assert_eq!(why_dead(&fresh, me, now, lease, false), None);
        let late = row(2, alive_pid, mine, now - TimeDelta::seconds(31));
        assert!(
            why_dead(&late, me, now, lease, false)
                .unwrap()
                .contains("heartbeat")
        );
        assert_eq!(
            why_dead(&late, me, now, None, false),
            None,
            "not judged by its heartbeat before this one's covers a lease"
        );
        let gone = row(3, gone_pid, mine, now);
        assert!(
            why_dead(&gone, me, now, lease, false)
                .unwrap()
                .contains("is gone")
        );
        let elsewhere = row(3, gone_pid, "another/machine", now);
        assert_eq!(why_dead(&elsewhere, me, now, lease, false), None);
        assert!(
            why_dead(&elsewhere, me, now, lease, true)
                .unwrap()
                .contains("lock")
        );
    }
}
