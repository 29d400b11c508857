//! The node state machine: the one place where a node changes state.
//!
//! Every change is a [`Change`] applied with [`apply`]. It is refused unless the table
//! [`Action::targets`] allows the action from the node's state, and it sets everything that
//! goes with the new state: `state_changed_at` always, and per action the pool, `used_count`,
//! `retired_at` and the `data` keys (`error`, `nodes_spec`, `provision`, `downtime`). The
//! callers decide *when* (a job, a hand-out, an admin); this module decides *what* a
//! transition is. The transitions, and who makes them:
//!
//! | from | action | to | made by |
//! |---|---|---|---|
//! | unused, ready, failed, downtime, provisioning, deprovisioning | provision | provisioning | fill (unused), admin `provision` |
//! | provisioning | deliver | ready | provisioning run |
//! | provisioning | give back | unused | provisioning run (a reusable node not delivered) |
//! | ready | hand out | contextualizing | session request (pool pushes SSH keys) |
//! | ready, contextualizing | deploy | deployed | session request |
//! | contextualizing | withdraw | ready | session request undone |
//! | deployed, ready, contextualizing, unused, failed, downtime, provisioning, deprovisioning | deprovision | deprovisioning | deprovision job, `max-ready-age`, deadline, take-over, admin `deprovision` |
//! | deprovisioning | deprovisioned | unused (reusable) or done | deprovisioning run |
//! | provisioning, contextualizing, deprovisioning, deployed, downtime | fail | failed | runs, deadlines, a pool gone |
//! | deployed | report failed | deployed | v2 `/Node/fail` (marked, never reused) |
//! | unused, ready, deployed, failed | take down | downtime | admin `downtime` |
//! | downtime | recover | ready, deployed, unused or failed | admin `recover` |
//! | failed, unused, downtime | retire | done | admin `retire` |
//! | every live state | retire with pool | done | `retire-pool` |
//!
//! New nodes are born `provisioning` (a fill) or `unused` (registered, imported), and
//! `done` is final. Sessions have two states, active and retired (`retired_at`); their
//! rows change in the store's statements, which only ever set `retired_at` once.

use std::fmt;

use chrono::NaiveDateTime;
use serde_json::{Map, Value, json};

use super::EngineError;
use crate::store::instances::InstanceId;
use crate::store::nodes::{Node, NodeState};

/// What happens to a node, without its particulars: the table's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Claimed for a provisioning run.
    Provision,
    /// The run delivered it.
    Deliver,
    /// The run did not deliver a reusable node: back to the stock.
    GiveBack,
    /// Handed out, its SSH keys about to be pushed.
    HandOut,
    /// Handed out and in the session.
    Deploy,
    /// A hand-out undone: ready again.
    Withdraw,
    /// Claimed for a deprovisioning run.
    Deprovision,
    /// The run took it back.
    Deprovisioned,
    /// Something went wrong; kept for an operator.
    Fail,
    /// Its tenant said it is broken: it stays in the session, never to be reused.
    ReportFailed,
    /// Taken out of service by an admin.
    TakeDown,
    /// Back from downtime.
    Recover,
    /// Forgotten by an admin.
    Retire,
    /// Its pool was retired.
    RetireWithPool,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 14] = [
        Action::Provision,
        Action::Deliver,
        Action::GiveBack,
        Action::HandOut,
        Action::Deploy,
        Action::Withdraw,
        Action::Deprovision,
        Action::Deprovisioned,
        Action::Fail,
        Action::ReportFailed,
        Action::TakeDown,
        Action::Recover,
        Action::Retire,
        Action::RetireWithPool,
    ];

    /// The table: the states the action may lead to from `from`; empty when it is not
    /// allowed from there.
    pub fn targets(self, from: NodeState) -> &'static [NodeState] {
        use NodeState::*;
        match (self, from) {
            (
                Action::Provision,
                Unused | Ready | Failed | Downtime | Provisioning | Deprovisioning,
            ) => &[Provisioning],
            (Action::Deliver, Provisioning) => &[Ready],
            (Action::GiveBack, Provisioning) => &[Unused],
            (Action::HandOut, Ready) => &[Contextualizing],
            (Action::Deploy, Ready | Contextualizing) => &[Deployed],
            (Action::Withdraw, Contextualizing) => &[Ready],
            (
                Action::Deprovision,
                Deployed | Ready | Contextualizing | Unused | Failed | Downtime | Provisioning
                | Deprovisioning,
            ) => &[Deprovisioning],
            (Action::Deprovisioned, Deprovisioning) => &[Unused, Done],
            (
                Action::Fail,
                Provisioning | Contextualizing | Deprovisioning | Deployed | Downtime,
            ) => &[Failed],
            (Action::ReportFailed, Deployed) => &[Deployed],
            (Action::TakeDown, Unused | Ready | Deployed | Failed) => &[Downtime],
            (Action::Recover, Downtime) => &[Ready, Deployed, Unused, Failed],
            (Action::Retire, Failed | Unused | Downtime) => &[Done],
            (Action::RetireWithPool, from) if from != Done => &[Done],
            _ => &[],
        }
    }

    /// The action's name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Provision => "provision",
            Action::Deliver => "deliver",
            Action::GiveBack => "give back",
            Action::HandOut => "hand out",
            Action::Deploy => "deploy",
            Action::Withdraw => "withdraw",
            Action::Deprovision => "deprovision",
            Action::Deprovisioned => "finish deprovisioning",
            Action::Fail => "fail",
            Action::ReportFailed => "report failed",
            Action::TakeDown => "take down",
            Action::Recover => "recover",
            Action::Retire => "retire",
            Action::RetireWithPool => "retire with its pool",
        }
    }
}

/// A transition with what it needs to know.
#[derive(Debug, Clone)]
pub enum Change<'a> {
    /// Into a provisioning run of `pool`.
    Provision {
        /// The pool whose mechanism runs.
        pool: &'a str,
        /// The instance whose run it is.
        by: InstanceId,
    },
    /// Ready, with what the mechanism returned for it.
    Deliver {
        /// Its host name.
        hostname: String,
        /// Its address.
        ipaddr: String,
        /// The mechanism's entry, kept as `data.provision`.
        entry: Map<String, Value>,
    },
    /// Delivered, but with a host name or address a live node already has: failed, with
    /// what the mechanism returned kept for an operator.
    DeliverFailed {
        /// Its host name.
        hostname: String,
        /// Its address.
        ipaddr: String,
        /// The mechanism's entry, kept as `data.provision`.
        entry: Map<String, Value>,
        /// `data.error.detail`.
        detail: &'a str,
    },
    /// Back to the stock of reusable nodes, outside any pool.
    GiveBack,
    /// Handed out for `spec`, to be contextualized.
    HandOut {
        /// The spec it was handed out for (`data.nodes_spec`).
        spec: Value,
        /// The instance contextualizing it.
        by: InstanceId,
    },
    /// Deployed in a session; `spec` when handed out straight from ready.
    Deploy {
        /// The spec it was handed out for, unless recorded at [`Change::HandOut`].
        spec: Option<Value>,
    },
    /// A hand-out undone.
    Withdraw,
    /// Into a deprovisioning run of `pool`: it leaves its pool at once (the run knows the
    /// pool; so does `run_pool`).
    Deprovision {
        /// The pool whose mechanism runs (normally the node's own).
        pool: &'a str,
        /// The instance whose run it is.
        by: InstanceId,
    },
    /// Taken back by its run: a reusable node returns to the stock, any other is done.
    Deprovisioned,
    /// Failed, with why.
    Fail {
        /// `data.error.detail`.
        detail: &'a str,
    },
    /// Failed because its tenant reported it broken: `data.error` already says so.
    FailAsReported,
    /// Failed because its pool is not configured (any more): it leaves the pool.
    PoolGone,
    /// Reported broken by its tenant; `detail` is what the v2 layer reads back.
    ReportFailed {
        /// `data.error.detail`.
        detail: &'a str,
    },
    /// Out of service; `record` is `data.downtime` (who, when, why, from where).
    TakeDown {
        /// What `data.downtime` keeps.
        record: Value,
    },
    /// Back from downtime, into `to`.
    Recover {
        /// The state it returns to.
        to: NodeState,
    },
    /// Back from downtime, but it cannot return where it was: failed, with why.
    RecoverFailed {
        /// `data.error.detail`.
        detail: &'a str,
    },
    /// Forgotten.
    Retire,
    /// Retired with its pool.
    RetireWithPool,
}

impl Change<'_> {
    /// The table row of this change.
    pub fn action(&self) -> Action {
        match self {
            Change::Provision { .. } => Action::Provision,
            Change::Deliver { .. } => Action::Deliver,
            Change::GiveBack => Action::GiveBack,
            Change::HandOut { .. } => Action::HandOut,
            Change::Deploy { .. } => Action::Deploy,
            Change::Withdraw => Action::Withdraw,
            Change::Deprovision { .. } => Action::Deprovision,
            Change::Deprovisioned => Action::Deprovisioned,
            Change::Fail { .. }
            | Change::FailAsReported
            | Change::PoolGone
            | Change::DeliverFailed { .. } => Action::Fail,
            Change::ReportFailed { .. } => Action::ReportFailed,
            Change::TakeDown { .. } => Action::TakeDown,
            Change::Recover { .. } | Change::RecoverFailed { .. } => Action::Recover,
            Change::Retire => Action::Retire,
            Change::RetireWithPool => Action::RetireWithPool,
        }
    }
}

/// A transition the table does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Illegal {
    /// The node.
    pub node: i64,
    /// Its state.
    pub from: NodeState,
    /// What was asked.
    pub action: Action,
    /// Where it would have led.
    pub to: Option<NodeState>,
}

impl fmt::Display for Illegal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node {}: cannot {} a node in state {}",
            self.node,
            self.action.as_str(),
            self.from
        )?;
        if let Some(to) = self.to {
            write!(f, " into {to}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Illegal {}

impl From<Illegal> for EngineError {
    fn from(illegal: Illegal) -> Self {
        EngineError::Conflict(illegal.to_string())
    }
}

/// A node's `data.error`, as the original writes it.
pub fn error_entry(detail: &str, now: NaiveDateTime) -> Value {
    json!({"failed_at": python_isoformat(now), "detail": detail})
}

/// ISO-8601 with `+00:00`, as Python's `datetime.isoformat()` writes UTC times in `data`.
pub fn python_isoformat(t: NaiveDateTime) -> String {
    if t.and_utc().timestamp_subsec_micros() == 0 {
        t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
    }
}

/// Applies `change` to `node` at `now`, or refuses it (and leaves the node as it was).
pub fn apply(node: &mut Node, change: Change<'_>, now: NaiveDateTime) -> Result<(), Illegal> {
    let action = change.action();
    let from = node.state;
    let to = match &change {
        Change::Deprovisioned if node.reusable => NodeState::Unused,
        Change::Deprovisioned => NodeState::Done,
        Change::Recover { to } => *to,
        Change::RecoverFailed { .. } => NodeState::Failed,
        _ => match action.targets(from).first() {
            Some(to) => *to,
            None => {
                return Err(Illegal {
                    node: node.id,
                    from,
                    action,
                    to: None,
                });
            }
        },
    };
    if !action.targets(from).contains(&to) {
        return Err(Illegal {
            node: node.id,
            from,
            action,
            to: Some(to),
        });
    }
    // Who tends the node, and with which pool's mechanism: only while a run moves it on.
    let (owner, run_pool) = match &change {
        Change::Provision { pool, by } | Change::Deprovision { pool, by } => {
            (Some(by.0), Some((*pool).to_owned()))
        }
        Change::HandOut { by, .. } => (Some(by.0), node.pool.clone()),
        _ => (None, None),
    };
    let data = &mut node.data.0;
    match change {
        Change::Provision { pool, .. } => node.pool = Some(pool.to_owned()),
        Change::Deliver {
            hostname,
            ipaddr,
            entry,
        } => {
            node.hostname = Some(hostname);
            node.ipaddr = Some(ipaddr);
            data.insert("provision".into(), Value::Object(entry));
        }
        Change::DeliverFailed {
            hostname,
            ipaddr,
            entry,
            detail,
        } => {
            node.hostname = Some(hostname);
            node.ipaddr = Some(ipaddr);
            data.insert("provision".into(), Value::Object(entry));
            data.insert("error".into(), error_entry(detail, now));
        }
        Change::GiveBack => {
            node.pool = None;
            data.shift_remove("provision");
        }
        Change::HandOut { spec, .. } => {
            data.insert("nodes_spec".into(), spec);
        }
        Change::Deploy { spec } => {
            if let Some(spec) = spec {
                data.insert("nodes_spec".into(), spec);
            }
            node.used_count += 1;
        }
        Change::Withdraw => {
            data.shift_remove("nodes_spec");
        }
        Change::Deprovision { .. } => node.pool = None,
        Change::Deprovisioned => {
            if to == NodeState::Done {
                node.retired_at = Some(now);
            } else {
                for key in ["error", "nodes_spec", "provision", "taken_over"] {
                    data.shift_remove(key);
                }
            }
        }
        Change::Fail { detail } | Change::ReportFailed { detail } => {
            data.insert("error".into(), error_entry(detail, now));
            if from == NodeState::Deprovisioning {
                // It left its pool when its deprovisioning began (a row imported in this
                // state may still name it).
                node.pool = None;
            }
        }
        Change::FailAsReported => {}
        Change::PoolGone => {
            let pool = node.pool.take().unwrap_or_default();
            let detail = format!("deprovisioning node failed, pool '{pool}' not found");
            data.insert("error".into(), error_entry(&detail, now));
        }
        Change::TakeDown { record } => {
            data.insert("downtime".into(), record);
        }
        Change::Recover { .. } => {
            data.shift_remove("downtime");
        }
        Change::RecoverFailed { detail } => {
            data.shift_remove("downtime");
            data.insert("error".into(), error_entry(detail, now));
        }
        Change::Retire | Change::RetireWithPool => node.retired_at = Some(now),
    }
    node.state = to;
    node.owner = owner;
    node.run_pool = run_pool;
    if action != Action::ReportFailed {
        // A node reported broken stays where it is: it did not change state.
        node.state_changed_at = now;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::JsonObject;

    fn node(state: NodeState, reusable: bool) -> Node {
        let t = crate::store::now();
        Node {
            id: 7,
            created_at: t,
            retired_at: None,
            hostname: Some("n.example.test".into()),
            ipaddr: Some("192.0.2.7".into()),
            state,
            comment: None,
            pool: Some("p".into()),
            reusable,
            data: JsonObject::default(),
            used_count: 3,
            state_changed_at: t,
            owner: None,
            run_pool: None,
        }
    }

    /// A change of every action, with sample particulars.
    fn sample(action: Action, to: NodeState) -> Change<'static> {
        match action {
            Action::Provision => Change::Provision {
                pool: "q",
                by: InstanceId(1),
            },
            Action::Deliver => Change::Deliver {
                hostname: "h.example.test".into(),
                ipaddr: "192.0.2.9".into(),
                entry: Map::new(),
            },
            Action::GiveBack => Change::GiveBack,
            Action::HandOut => Change::HandOut {
                spec: json!({"pool": "p"}),
                by: InstanceId(1),
            },
            Action::Deploy => Change::Deploy { spec: None },
            Action::Withdraw => Change::Withdraw,
            Action::Deprovision => Change::Deprovision {
                pool: "p",
                by: InstanceId(1),
            },
            Action::Deprovisioned => Change::Deprovisioned,
            Action::Fail => Change::Fail { detail: "broken" },
            Action::ReportFailed => Change::ReportFailed { detail: "reported" },
            Action::TakeDown => Change::TakeDown {
                record: json!({"from": "ready"}),
            },
            Action::Recover => Change::Recover { to },
            Action::Retire => Change::Retire,
            Action::RetireWithPool => Change::RetireWithPool,
        }
    }

    /// Every (state, action) pair: allowed exactly where the table says, into a state the
    /// table names, and a refused one changes nothing.
    #[test]
    fn every_state_and_action_follows_the_table() {
        let later = crate::store::now() + chrono::TimeDelta::seconds(5);
        let mut allowed = 0;
        for from in NodeState::ALL {
            for action in Action::ALL {
                let targets = action.targets(from);
                for reusable in [false, true] {
                    // Recover is tried into every state, the table decides.
                    let tries: Vec<NodeState> = if action == Action::Recover {
                        NodeState::ALL.to_vec()
                    } else {
                        vec![NodeState::Unused]
                    };
                    for to in tries {
                        let mut n = node(from, reusable);
                        let before = n.clone();
                        let result = apply(&mut n, sample(action, to), later);
                        let legal = match action {
                            Action::Recover => targets.contains(&to),
                            Action::Deprovisioned => {
                                let to = if reusable {
                                    NodeState::Unused
                                } else {
                                    NodeState::Done
                                };
                                targets.contains(&to)
                            }
                            _ => !targets.is_empty(),
                        };
                        assert_eq!(
                            result.is_ok(),
                            legal,
                            "{from} --{}--> ({to}, reusable {reusable}): {result:?}",
                            action.as_str()
                        );
                        if legal {
                            allowed += 1;
                            assert!(targets.contains(&n.state), "{from} -> {}", n.state);
                            assert_eq!(n.state_changed_at == later, action != Action::ReportFailed);
                            assert_eq!(n.retired_at.is_some(), n.state == NodeState::Done);
                        } else {
                            assert_eq!(n, before, "a refused change changed the node");
                        }
                    }
                }
            }
        }
        assert!(allowed > 40, "{allowed}");
    }

    #[test]
    fn isoformat_is_pythons() {
        let t = chrono::NaiveDate::from_ymd_opt(2026, 11, 22)
            .unwrap()
            .and_hms_opt(8, 36, 26)
            .unwrap();
        assert_eq!(python_isoformat(t), "2026-11-22T08:36:26+00:00");
        let t = t + chrono::TimeDelta::microseconds(300_890);
        assert_eq!(python_isoformat(t), "2026-11-22T08:36:26.300890+00:00");
    }

    #[test]
    fn what_goes_with_each_state() {
        let now = crate::store::now();
        let mut n = node(NodeState::Ready, false);
        apply(
            &mut n,
            Change::HandOut {
                spec: json!({"pool": "p", "quantity": 1}),
                by: InstanceId(4),
            },
            now,
        )
        .unwrap();
        assert_eq!(n.used_count, 3, "counted when deployed");
        assert_eq!((n.owner, n.run_pool.as_deref()), (Some(4), Some("p")));
        apply(&mut n, Change::Deploy { spec: None }, now).unwrap();
        assert_eq!((n.state, n.used_count), (NodeState::Deployed, 4));
        assert_eq!((n.owner, n.run_pool.as_deref()), (None, None), "settled");
        let deprovision = Change::Deprovision {
            pool: "p",
            by: InstanceId(5),
        };
        apply(&mut n, deprovision, now).unwrap();
        assert_eq!(n.pool, None);
        assert_eq!(
            (n.owner, n.run_pool.as_deref()),
            (Some(5), Some("p")),
            "the run's pool is kept while the node has left it"
        );
        apply(&mut n, Change::Deprovisioned, now).unwrap();
        assert_eq!((n.state, n.retired_at), (NodeState::Done, Some(now)));
        assert_eq!((n.owner, n.run_pool), (None, None));

        let mut n = node(NodeState::Deprovisioning, true);
        n.data.0.insert("error".into(), json!({}));
        n.data.0.insert("provision".into(), json!({}));
        apply(&mut n, Change::Deprovisioned, now).unwrap();
        assert_eq!(n.state, NodeState::Unused);
        assert!(n.data.0.is_empty(), "{:?}", n.data);

        let mut n = node(NodeState::Provisioning, false);
        apply(&mut n, Change::Fail { detail: "no" }, now).unwrap();
        assert_eq!(n.data.0["error"]["detail"], "no");
        assert_eq!(n.data.0["error"]["failed_at"], python_isoformat(now));

        let mut n = node(NodeState::Done, false);
        let e = apply(&mut n, Change::RetireWithPool, now).unwrap_err();
        assert_eq!(
            e.to_string(),
            "node 7: cannot retire with its pool a node in state done"
        );
    }
}
