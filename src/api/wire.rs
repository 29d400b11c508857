//! The v3 JSON shapes. Key order is part of the contract (`duffy client --format json`
//! prints keys as the server sends them), so every shape is a struct whose fields are
//! declared in the original's order (`docs/v3-api.md` §4).

use chrono::NaiveDateTime;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};

use crate::config::seconds_json;
use crate::engine::backoff::Failing;
use crate::engine::pools::Levels;
use crate::engine::retire_pool::PoolRetirement;
use crate::engine::sessions::SessionView;
use crate::engine::{Effective, Engine, seconds};
use crate::store::nodes::Node;
use crate::store::pauses::Pause;
use crate::store::sessions::HeldNode;
use crate::store::tenants::Tenant;

/// What `ssh_key` and a kept `api_key` show instead of the secret.
pub const MASK: &str = "**********";

/// A timestamp as the original writes it: `2026-11-22T08:36:26.300890Z`, microseconds only
/// when non-zero.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ts(pub NaiveDateTime);

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_ts(self.0))
    }
}

impl utoipa::PartialSchema for Ts {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .examples([serde_json::json!("2026-11-22T08:36:26.300890Z")])
            .into()
    }
}

impl ToSchema for Ts {}

/// Formats a timestamp the way the API shows it.
pub fn format_ts(t: NaiveDateTime) -> String {
    use chrono::{Datelike, Timelike};
    // Written field by field: chrono's `format` parses its pattern on every call, which
    // shows in listings of thousands of nodes.
    let micros = t.and_utc().timestamp_subsec_micros();
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if micros != 0 {
        out.push_str(&format!(".{micros:06}"));
    }
    out.push('Z');
    out
}

/// `{"action": …, "<key>": …}`: every success body, serialized in one pass (no
/// intermediate `Value`) with `action` first.
pub struct Envelope<'a, T> {
    action: &'a str,
    key: &'a str,
    value: T,
}

/// Wraps a resource in the envelope of its action.
pub fn envelope<'a, T: Serialize>(action: &'a str, key: &'a str, value: T) -> Envelope<'a, T> {
    Envelope { action, key, value }
}

impl<T: Serialize> Serialize for Envelope<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("action", self.action)?;
        map.serialize_entry(self.key, &self.value)?;
        map.end()
    }
}

/// A tenant: who may ask for sessions, with its quota and lifetimes (`effective_*` apply
/// the configured defaults). The SSH key is masked except when the tenant is created.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Tenant)]
pub struct TenantOut<'a> {
    retired_at: Option<Ts>,
    active: bool,
    created_at: Ts,
    name: &'a str,
    is_admin: bool,
    ssh_key: &'a str,
    node_quota: Option<i64>,
    /// Seconds, as set; `null` uses the configured default.
    #[schema(value_type = Option<f64>)]
    session_lifetime: Option<Value>,
    /// Seconds, as set; `null` uses the configured default.
    #[schema(value_type = Option<f64>)]
    session_lifetime_max: Option<Value>,
    id: i64,
    effective_node_quota: i64,
    effective_session_lifetime: f64,
    effective_session_lifetime_max: f64,
    /// Absent normally; a string or null in create and update responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    api_key: Option<Option<String>>,
}

impl<'a> TenantOut<'a> {
    /// A tenant with its secrets masked.
    pub fn new(tenant: &'a Tenant, effective: Effective) -> Self {
        TenantOut {
            retired_at: tenant.retired_at.map(Ts),
            active: tenant.is_active(),
            created_at: Ts(tenant.created_at),
            name: &tenant.name,
            is_admin: tenant.is_admin,
            ssh_key: MASK,
            node_quota: tenant.node_quota,
            session_lifetime: tenant.session_lifetime.map(|s| seconds_json(seconds(s))),
            session_lifetime_max: tenant
                .session_lifetime_max
                .map(|s| seconds_json(seconds(s))),
            id: tenant.id,
            effective_node_quota: effective.node_quota,
            effective_session_lifetime: seconds_f64(effective.session_lifetime),
            effective_session_lifetime_max: seconds_f64(effective.session_lifetime_max),
            api_key: None,
        }
    }

    /// Shows the plain SSH key (create response only).
    pub fn with_plain_ssh_key(mut self, tenant: &'a Tenant) -> Self {
        self.ssh_key = &tenant.ssh_key;
        self
    }

    /// Adds `api_key` (create and update responses).
    pub fn with_api_key(mut self, key: Option<String>) -> Self {
        self.api_key = Some(key);
        self
    }
}

fn seconds_f64(d: chrono::TimeDelta) -> f64 {
    crate::engine::as_seconds(d)
}

/// A session's tenant as anonymous readers see it: id and name only.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TenantBrief)]
pub struct TenantBrief<'a> {
    id: i64,
    name: &'a str,
}

/// A session's tenant: full for tenants, brief for anonymous readers.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SessionTenant)]
#[serde(untagged)]
#[expect(
    clippy::large_enum_variant,
    reason = "built once per session in a response"
)]
enum SessionTenant<'a> {
    Full(TenantOut<'a>),
    Brief(TenantBrief<'a>),
}

/// A session: nodes held by a tenant until it is retired or expires.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Session)]
pub struct SessionOut<'a> {
    retired_at: Option<Ts>,
    active: bool,
    created_at: Ts,
    id: i64,
    expires_at: Option<Ts>,
    tenant: SessionTenant<'a>,
    #[schema(value_type = Object)]
    data: &'a Map<String, Value>,
    nodes: Vec<SessionNodeOut<'a>>,
}

impl<'a> SessionOut<'a> {
    /// A session as an authenticated tenant sees it.
    pub fn new(view: &'a SessionView, engine: &Engine) -> Self {
        Self::build(
            view,
            SessionTenant::Full(TenantOut::new(&view.tenant, engine.effective(&view.tenant))),
        )
    }

    /// A session as an anonymous reader sees it: the tenant is only id and name.
    pub fn anonymous(view: &'a SessionView) -> Self {
        Self::build(
            view,
            SessionTenant::Brief(TenantBrief {
                id: view.tenant.id,
                name: &view.tenant.name,
            }),
        )
    }

    fn build(view: &'a SessionView, tenant: SessionTenant<'a>) -> Self {
        let active = view.session.is_active();
        SessionOut {
            retired_at: view.session.retired_at.map(Ts),
            active,
            created_at: Ts(view.session.created_at),
            id: view.session.id,
            expires_at: view.session.expires_at.map(Ts),
            tenant,
            data: &view.session.data.0,
            nodes: view
                .nodes
                .iter()
                .map(|n| SessionNodeOut::new(n, active))
                .collect(),
        }
    }
}

/// A node inside a session: built from the node as it is now, `state` null once the
/// session is retired, `comment` always null.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SessionNode)]
pub struct SessionNodeOut<'a> {
    hostname: Option<&'a str>,
    ipaddr: Option<&'a str>,
    comment: Option<&'a str>,
    pool: Option<&'a str>,
    reusable: bool,
    #[schema(value_type = Object)]
    data: &'a Map<String, Value>,
    id: i64,
    state: Option<&'static str>,
}

impl<'a> SessionNodeOut<'a> {
    fn new(node: &'a Node, session_active: bool) -> Self {
        SessionNodeOut {
            hostname: node.hostname.as_deref(),
            ipaddr: node.ipaddr.as_deref(),
            comment: None,
            pool: node.pool.as_deref(),
            reusable: node.reusable,
            data: &node.data.0,
            id: node.id,
            state: session_active.then(|| node.state.as_str()),
        }
    }
}

/// A machine, with `used_count` (how often it was handed out) at the end.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Node)]
pub struct NodeOut<'a> {
    retired_at: Option<Ts>,
    active: bool,
    created_at: Ts,
    hostname: Option<&'a str>,
    ipaddr: Option<&'a str>,
    comment: Option<&'a str>,
    pool: Option<&'a str>,
    reusable: bool,
    #[schema(value_type = Object)]
    data: &'a Map<String, Value>,
    id: i64,
    state: &'static str,
    used_count: i64,
}

impl<'a> NodeOut<'a> {
    /// A node as the API shows it.
    pub fn new(node: &'a Node) -> Self {
        NodeOut {
            retired_at: node.retired_at.map(Ts),
            active: node.retired_at.is_none(),
            created_at: Ts(node.created_at),
            hostname: node.hostname.as_deref(),
            ipaddr: node.ipaddr.as_deref(),
            comment: node.comment.as_deref(),
            pool: node.pool.as_deref(),
            reusable: node.reusable,
            data: &node.data.0,
            id: node.id,
            state: node.state.as_str(),
            used_count: node.used_count,
        }
    }
}

/// A pool in a list: `{"name", "fill-level"}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Pool)]
pub struct PoolOut<'a> {
    name: &'a str,
    #[serde(rename = "fill-level")]
    fill_level: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    levels: Option<LevelsOut>,
    /// Ours: present only while the pool's provisioning keeps failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    backoff: Option<BackoffOut>,
    /// Ours: present only while an admin has paused allocations from the pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    paused: Option<PauseOut>,
}

/// Why a pool is not being filled: `{"failures", "delay", "until", "error"}` (extension).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PoolBackoff)]
pub struct BackoffOut {
    failures: u32,
    /// Seconds.
    delay: f64,
    until: Ts,
    error: String,
}

impl From<Failing> for BackoffOut {
    fn from(f: Failing) -> Self {
        BackoffOut {
            failures: f.failures,
            delay: f.delay.as_secs_f64(),
            until: Ts(f.until),
            error: f.error,
        }
    }
}

impl<'a> PoolOut<'a> {
    /// The concise form of `GET /pools`.
    pub fn concise(name: &'a str, fill_level: Option<u32>) -> Self {
        PoolOut {
            name,
            fill_level,
            levels: None,
            backoff: None,
            paused: None,
        }
    }

    /// The verbose form of `GET /pools/{name}`, with the pool's backoff when it has one.
    pub fn verbose(
        name: &'a str,
        fill_level: Option<u32>,
        levels: Levels,
        backoff: Option<Failing>,
    ) -> Self {
        PoolOut {
            name,
            fill_level,
            levels: Some(levels.into()),
            backoff: backoff.map(BackoffOut::from),
            paused: None,
        }
    }

    /// Adds the pool's pause, if it has one.
    pub fn with_pause(mut self, pause: Option<&Pause>) -> Self {
        self.paused = pause.map(PauseOut::from);
        self
    }
}

/// What retiring a pool did (extension): how many live nodes it retired, what the purge
/// deleted (`null` without `purge`), and whether the pool's pause was lifted.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RetiredPool)]
pub struct RetiredPoolOut<'a> {
    name: &'a str,
    retired: RetiredNodesOut,
    purged: Option<PurgedOut>,
    pause_lifted: bool,
}

/// The live nodes a pool's retirement retired.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PoolRetiredNodes)]
pub struct RetiredNodesOut {
    /// Nodes that were live and are now `done`.
    nodes: u64,
}

/// The rows a pool's purge deleted.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PoolPurge)]
pub struct PurgedOut {
    /// Node rows of the pool, retired ones included.
    nodes: u64,
    /// Links between sessions and the pool's nodes.
    sessions_nodes: u64,
    /// Sessions that held nothing but the pool's nodes.
    sessions: u64,
}

impl<'a> RetiredPoolOut<'a> {
    /// What a retirement did, as the API shows it.
    pub fn new(done: &'a PoolRetirement) -> Self {
        RetiredPoolOut {
            name: &done.pool,
            retired: RetiredNodesOut {
                nodes: done.retired_nodes,
            },
            purged: done.purged.map(|p| PurgedOut {
                nodes: p.nodes,
                sessions_nodes: p.sessions_nodes,
                sessions: p.sessions,
            }),
            pause_lifted: done.pause_lifted,
        }
    }
}

/// Who paused allocations, when and why (extension).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Pause)]
pub struct PauseOut {
    since: Ts,
    by: String,
    reason: String,
}

impl From<&Pause> for PauseOut {
    fn from(p: &Pause) -> Self {
        PauseOut {
            since: Ts(p.paused_at),
            by: p.paused_by.clone(),
            reason: p.reason.clone(),
        }
    }
}

/// A pool's pause in the service's list: the pool's name, then the pause.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PoolPause)]
pub struct PoolPauseOut {
    pool: String,
    #[serde(flatten)]
    pause: PauseOut,
}

/// The service as a whole (extension): its version, what is paused, the live instances.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Service)]
pub struct ServiceOut {
    version: &'static str,
    /// Set while every allocation is paused.
    paused: Option<PauseOut>,
    /// Pools whose allocations are paused, by name.
    paused_pools: Vec<PoolPauseOut>,
    /// The instances working on the database, oldest first.
    instances: Vec<InstanceOut>,
}

/// A live instance (a `duffy serve`, or a `duffy admin` command) and what it owns.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Instance)]
pub struct InstanceOut {
    id: i64,
    /// `serve` or `admin`.
    role: String,
    host: String,
    pid: i64,
    version: String,
    started_at: Ts,
    heartbeat_at: Ts,
    /// Whether it is the instance that answered.
    this: bool,
    /// How many nodes its runs are moving on, per transient state.
    #[schema(value_type = std::collections::BTreeMap<String, i64>)]
    owns: std::collections::BTreeMap<String, i64>,
}

impl InstanceOut {
    /// An instance as the engine lists it.
    pub fn new(live: crate::engine::LiveInstance, this: bool) -> Self {
        let i = live.instance;
        InstanceOut {
            id: i.id,
            role: i.role,
            host: i.host,
            pid: i.pid,
            version: i.version,
            started_at: Ts(i.started_at),
            heartbeat_at: Ts(i.heartbeat_at),
            this,
            owns: live.owns,
        }
    }
}

impl ServiceOut {
    /// The service, given the pauses in force and the live instances.
    pub fn new(pauses: &[Pause], instances: Vec<InstanceOut>) -> Self {
        ServiceOut {
            instances,
            version: env!("CARGO_PKG_VERSION"),
            paused: pauses
                .iter()
                .find(|p| p.scope == crate::store::pauses::SERVICE)
                .map(PauseOut::from),
            paused_pools: pauses
                .iter()
                .filter(|p| p.scope != crate::store::pauses::SERVICE)
                .map(|p| PoolPauseOut {
                    pool: p.scope.clone(),
                    pause: PauseOut::from(p),
                })
                .collect(),
        }
    }
}

/// A node held past the overtime threshold, with who holds it (extension; v2 `/Overtime`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = HeldNode)]
pub struct HeldNodeOut<'a> {
    id: i64,
    hostname: Option<&'a str>,
    ipaddr: Option<&'a str>,
    pool: Option<&'a str>,
    state: &'static str,
    session_id: i64,
    tenant: TenantBrief<'a>,
    held_since: Ts,
    /// Whole minutes since the session was granted.
    held_minutes: i64,
    expires_at: Option<Ts>,
}

impl<'a> HeldNodeOut<'a> {
    /// A held node as of `now`.
    pub fn new(held: &'a HeldNode, now: NaiveDateTime) -> Self {
        HeldNodeOut {
            id: held.node.id,
            hostname: held.node.hostname.as_deref(),
            ipaddr: held.node.ipaddr.as_deref(),
            pool: held.node.pool.as_deref(),
            state: held.node.state.as_str(),
            session_id: held.session_id,
            tenant: TenantBrief {
                id: held.tenant_id,
                name: &held.tenant_name,
            },
            held_since: Ts(held.held_since),
            held_minutes: (now - held.held_since).num_minutes(),
            expires_at: held.session_expires_at.map(Ts),
        }
    }
}

/// A pool's node counts, in the original's key order.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PoolLevels)]
pub struct LevelsOut {
    provisioning: i64,
    ready: i64,
    contextualizing: i64,
    deployed: i64,
    deprovisioning: i64,
}

impl From<Levels> for LevelsOut {
    fn from(l: Levels) -> Self {
        LevelsOut {
            provisioning: l.provisioning,
            ready: l.ready,
            contextualizing: l.contextualizing,
            deployed: l.deployed,
            deprovisioning: l.deprovisioning,
        }
    }
}

/// The answers as OpenAPI describes them. The real bodies are written by [`envelope`] and
/// the error envelope; these shapes only tell the document what they look like, and the
/// snapshot test of the document keeps them from drifting unnoticed.
#[expect(
    dead_code,
    reason = "documentation shapes: the OpenAPI document reads them, nothing builds them"
)]
pub mod docs {
    use utoipa::ToSchema;

    use super::{HeldNodeOut, NodeOut, PoolOut, RetiredPoolOut, ServiceOut, SessionOut, TenantOut};
    use crate::api::validate::FieldError;

    macro_rules! answer {
        ($name:ident, $action:literal, $key:ident: $ty:ty, $doc:literal) => {
            #[doc = $doc]
            #[derive(ToSchema)]
            pub struct $name {
                /// What was done: `get`, `post` or `put`.
                #[schema(example = $action)]
                action: String,
                $key: $ty,
            }
        };
    }

    answer!(SessionAnswer, "get", session: SessionOut<'static>, "One session.");
    answer!(SessionsAnswer, "get", sessions: Vec<SessionOut<'static>>, "Active sessions.");
    answer!(PoolAnswer, "get", pool: PoolOut<'static>, "One pool with its levels.");
    answer!(PoolsAnswer, "get", pools: Vec<PoolOut<'static>>, "The pools clients may ask for.");
    answer!(RetiredPoolAnswer, "put", pool: RetiredPoolOut<'static>, "What retiring a pool did.");
    answer!(NodeAnswer, "get", node: NodeOut<'static>, "One node.");
    answer!(NodesAnswer, "get", nodes: Vec<NodeOut<'static>>, "Live nodes.");
    answer!(TenantAnswer, "get", tenant: TenantOut<'static>, "One tenant.");
    answer!(TenantsAnswer, "get", tenants: Vec<TenantOut<'static>>, "Tenants.");
    answer!(ServiceAnswer, "get", service: ServiceOut, "The service and its pauses.");
    answer!(OvertimeAnswer, "get", overtime: Vec<HeldNodeOut<'static>>, "Nodes held past the threshold.");

    /// What `PUT /pools/{name}` answers: the pool, after a pause change; what was done,
    /// after an action.
    #[derive(ToSchema)]
    #[serde(untagged)]
    pub enum PoolUpdateAnswer {
        /// After `{"paused": …}`: the pool with its levels and pause.
        Pool(PoolAnswer),
        /// After `{"action": "retire"}`: what was retired and purged.
        Retired(RetiredPoolAnswer),
    }

    /// What an error's `detail` holds: a text, or the list of invalid fields (422).
    #[derive(serde::Serialize, ToSchema)]
    #[serde(untagged)]
    #[schema(as = ErrorDetail)]
    pub enum Detail {
        /// A sentence, or the HTTP reason phrase.
        Text(String),
        /// Every invalid field of the request.
        Fields(Vec<FieldError>),
    }

    /// The 401 of a call that needs credentials.
    #[derive(utoipa::IntoResponses)]
    pub enum AuthFailed {
        /// No `Authorization` header, or a wrong name or key.
        #[response(status = 401, description = "No or wrong credentials")]
        Unauthorized(ErrorAnswer),
    }

    /// The 401 and 403 of an admin's call.
    #[derive(utoipa::IntoResponses)]
    pub enum AdminOnly {
        /// No `Authorization` header, or a wrong name or key.
        #[response(status = 401, description = "No or wrong credentials")]
        Unauthorized(ErrorAnswer),
        /// A tenant that is not an admin (checked before the request's content).
        #[response(status = 403, description = "Not an admin")]
        Forbidden(ErrorAnswer),
    }

    /// Every error answer: `{"detail": …}`.
    #[derive(ToSchema)]
    #[schema(as = Error)]
    pub struct ErrorAnswer {
        #[schema(inline)]
        detail: Detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn timestamps_show_microseconds_only_when_set() {
        let t = NaiveDate::from_ymd_opt(2026, 11, 22)
            .unwrap()
            .and_hms_opt(2, 36, 26)
            .unwrap();
        assert_eq!(format_ts(t), "2026-11-22T02:36:26Z");
        let t = t + chrono::TimeDelta::microseconds(300_890);
        assert_eq!(format_ts(t), "2026-11-22T02:36:26.300890Z");
    }

    #[test]
    fn retired_pools_show_their_counts() {
        let mut done = PoolRetirement {
            pool: "gone".into(),
            retired_nodes: 3,
            purged: None,
            pause_lifted: true,
        };
        assert_eq!(
            serde_json::to_string(&envelope("put", "pool", RetiredPoolOut::new(&done))).unwrap(),
            r#"{"action":"put","pool":{"name":"gone","retired":{"nodes":3},"purged":null,"pause_lifted":true}}"#
        );
        done.purged = Some(crate::engine::retire_pool::Purged {
            nodes: 5,
            sessions_nodes: 7,
            sessions: 2,
        });
        assert_eq!(
            serde_json::to_value(RetiredPoolOut::new(&done)).unwrap()["purged"],
            serde_json::json!({"nodes": 5, "sessions_nodes": 7, "sessions": 2})
        );
    }

    #[test]
    fn envelopes_put_action_first() {
        let v = envelope("get", "pools", vec![PoolOut::concise("p", Some(3))]);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"action":"get","pools":[{"name":"p","fill-level":3}]}"#
        );
    }
}
