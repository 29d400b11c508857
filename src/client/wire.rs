//! The v3 shapes as a client reads and writes them.
//!
//! Reading is lenient: unknown fields are ignored and optional ones default, so a newer
//! server (or the original) does not break the client. Only what callers use is typed.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One entry of `nodes_specs` in `POST /sessions`.
#[derive(Debug, Clone, Serialize)]
pub struct NodesSpec {
    /// How many (first, as the original client sends it).
    pub quantity: i64,
    /// The pool to take nodes from.
    pub pool: String,
}

/// The body of `PUT /sessions/{id}`; unset fields are left out.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SessionUpdate {
    /// `false` retires the session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// An absolute time or a signed delta such as `+6h`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Ours: the nodes were reported failed and must never be reused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_nodes: Option<bool>,
}

/// A pool as `GET /pools` and `GET /pools/{name}` show it.
#[derive(Debug, Clone, Deserialize)]
pub struct Pool {
    /// Pool name.
    pub name: String,
    /// How many ready nodes the pool keeps; `None` for pools that are not filled.
    #[serde(rename = "fill-level", default)]
    pub fill_level: Option<i64>,
}

/// The tenant a session belongs to (anonymous readers see only these two fields).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantRef {
    /// Tenant id.
    pub id: i64,
    /// Tenant name.
    pub name: String,
}

/// A session.
#[derive(Debug, Clone, Deserialize)]
pub struct Session {
    /// Session id: the v2 `ssid` in decimal.
    pub id: i64,
    /// `false` once retired.
    #[serde(default)]
    pub active: bool,
    /// When it expires, as the server renders it.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Its tenant.
    pub tenant: TenantRef,
    /// Its nodes.
    #[serde(default)]
    pub nodes: Vec<SessionNode>,
}

/// A node as part of a session.
#[derive(Debug, Clone, Deserialize)]
pub struct SessionNode {
    /// Node id.
    pub id: i64,
    /// Full hostname, once known.
    #[serde(default)]
    pub hostname: Option<String>,
    /// IP address, once known.
    #[serde(default)]
    pub ipaddr: Option<String>,
    /// Its pool.
    #[serde(default)]
    pub pool: Option<String>,
    /// Its state; `None` once the session is retired.
    #[serde(default)]
    pub state: Option<String>,
}

/// A node as `GET /nodes` shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct Node {
    /// Node id.
    pub id: i64,
    /// Full hostname, once known.
    #[serde(default)]
    pub hostname: Option<String>,
    /// IP address, once known.
    #[serde(default)]
    pub ipaddr: Option<String>,
    /// Its pool, `None` once it left it.
    #[serde(default)]
    pub pool: Option<String>,
    /// Its state (`ready`, `deployed`, …).
    pub state: String,
    /// How often it was handed out (ours; 0 from servers that do not send it).
    #[serde(default)]
    pub used_count: i64,
    /// What the v2 layer reads of the node's data (the rest is skipped unparsed: an
    /// inventory reads thousands of nodes).
    #[serde(default)]
    pub data: NodeData,
}

/// The part of a node's `data` a client needs.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NodeData {
    /// Set once the node failed or was reported failed: `{"failed_at", "detail"}`.
    #[serde(default)]
    pub error: Option<Value>,
}

/// The body of an admin's `PUT /nodes/{id}` (ours).
#[derive(Debug, Clone, Serialize)]
pub struct NodeCommand {
    /// `downtime`, `recover`, `retire`, `provision` or `deprovision`.
    pub action: String,
    /// Why, recorded with the action.
    pub reason: String,
    /// The pool whose mechanism runs, when the node has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
}

/// The body of an admin's `PUT /service` or `PUT /pools/{name}` (ours).
#[derive(Debug, Clone, Serialize)]
pub struct PauseRequest {
    /// `true` pauses allocations, `false` resumes them.
    pub paused: bool,
    /// Why, recorded with the pause.
    pub reason: String,
}

/// A node held past the overtime threshold, as `GET /overtime` shows it (ours).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldNode {
    /// Node id.
    pub id: i64,
    /// Its hostname.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Its address.
    #[serde(default)]
    pub ipaddr: Option<String>,
    /// Its pool.
    #[serde(default)]
    pub pool: Option<String>,
    /// The session holding it.
    pub session_id: i64,
    /// The tenant holding it.
    pub tenant: TenantRef,
    /// When the session was granted.
    pub held_since: String,
    /// Whole minutes since then.
    pub held_minutes: i64,
}
