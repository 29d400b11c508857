//! `GET /nodes`, `GET /nodes/{id}` and `POST /nodes` (admins register reusable machines);
//! ours: `PUT /nodes/{id}` (admins act on a node) and `GET /overtime` (nodes held too long).

use bytes::Bytes;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use serde_json::Value;

use crate::api::error::ApiError;
use crate::api::validate::{self, FieldError, Query};
use crate::api::wire::docs;
use crate::api::wire::{HeldNodeOut, NodeOut, envelope};
use crate::api::{State, auth, auth_header, reply, with_state};
use crate::engine::admin::{NodeAction, NodeCommand};
use crate::http::{body, json, raw_query};
use crate::store::JsonObject;
use crate::store::nodes::{NewNode, NodeState};

/// The node routes.
pub fn routes(state: State) -> BoxedFilter<(Response,)> {
    let list = warp::path!("nodes")
        .and(warp::get())
        .and(raw_query())
        .and(auth_header())
        .and(with_state(state.clone()))
        .then(list_nodes)
        .map(reply);
    let overtime = warp::path!("overtime")
        .and(warp::get())
        .and(raw_query())
        .and(auth_header())
        .and(with_state(state.clone()))
        .then(list_overtime)
        .map(reply);
    let update = warp::path!("nodes" / String)
        .and(warp::put())
        .and(auth_header())
        .and(body())
        .and(with_state(state.clone()))
        .then(update_node)
        .map(reply);
    let create = warp::path!("nodes")
        .and(warp::post())
        .and(auth_header())
        .and(body())
        .and(with_state(state.clone()))
        .then(create_node)
        .map(reply);
    let show = warp::path!("nodes" / String)
        .and(warp::get())
        .and(auth_header())
        .and(with_state(state))
        .then(show_node)
        .map(reply);
    list.or(create)
        .unify()
        .or(show)
        .unify()
        .or(update)
        .unify()
        .or(overtime)
        .unify()
        .boxed()
}

/// Lists every live node, failed ones too; ours: `?state=failed,downtime&pool=NAME`
/// narrow the list.
#[utoipa::path(get, path = "/api/v1/nodes", tag = "nodes", security((), ("basic" = []), ("bearer" = [])),
    params(
        ("state" = Option<String>, Query, description = "Only nodes in these states, comma-separated (e.g. `failed,downtime`)"),
        ("pool" = Option<String>, Query, description = "Only nodes of this pool"),
    ),
    responses(
        (status = 200, description = "Live nodes, failed ones too", body = docs::NodesAnswer),
        (status = 401, description = "Anonymous reads are off and no credentials came", body = docs::ErrorAnswer),
        (status = 422, description = "An unknown state", body = docs::ErrorAnswer),
    ))]
pub async fn list_nodes(
    query: String,
    auth: Option<String>,
    state: State,
) -> Result<Response, ApiError> {
    auth::reader(&state, auth.as_deref()).await?;
    let query = Query::parse(&query);
    let mut states = Vec::new();
    let mut errors = Vec::new();
    for name in query.list("state") {
        match name.parse::<NodeState>() {
            Ok(s) => states.push(s),
            Err(_) => errors.push(validate::query_error(
                "state",
                validate::not_one_of(&NodeState::ALL.map(NodeState::as_str)),
                name,
            )),
        }
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let nodes = state.engine.nodes_where(&states, query.get("pool")).await?;
    let out: Vec<NodeOut> = nodes.iter().map(NodeOut::new).collect();
    Ok(json(StatusCode::OK, &envelope("get", "nodes", out)))
}

/// Acts on a node (admins only): `{"action": "downtime"|"recover"|"retire"|"provision"|
/// "deprovision", "reason": str?, "pool": str?}`. A provision or deprovision run starts
/// in the background; the answer shows the node as the action left it.
#[utoipa::path(put, path = "/api/v1/nodes/{id}", tag = "admin", security(("basic" = []), ("bearer" = [])),
    params(("id" = i64, Path, description = "Node id")),
    request_body = NodeActionRequest,
    responses(
        (status = 200, description = "The node as the action left it", body = docs::NodeAnswer),
        docs::AdminOnly,
        (status = 404, description = "No such node", body = docs::ErrorAnswer),
        (status = 409, description = "The node's state does not allow the action (held by a session, retired, …)", body = docs::ErrorAnswer),
        (status = 422, description = "Invalid body, or no usable pool to run the mechanism of", body = docs::ErrorAnswer),
    ))]
pub async fn update_node(
    id: String,
    auth: Option<String>,
    body: Bytes,
    state: State,
) -> Result<Response, ApiError> {
    let admin = auth::require_admin(&state, auth.as_deref()).await?;
    let (id, command) = validate::both(validate::path_id(&id, "id"), parse_command(&body))?;
    let (node, run) = state.engine.node_action(&admin.name, id, &command).await?;
    if let Some(run) = run {
        state.engine.start_run(run);
    }
    Ok(json(
        StatusCode::OK,
        &envelope("put", "node", NodeOut::new(&node)),
    ))
}

fn parse_command(body: &[u8]) -> Result<NodeCommand, Vec<FieldError>> {
    let names: Vec<&str> = NodeAction::ALL.iter().map(|a| a.as_str()).collect();
    validate::body_object(body, |f| {
        let action = f.required("action", validate::one_of(&names));
        let reason = f.optional("reason", validate::string).unwrap_or_default();
        let pool = f.optional("pool", validate::non_empty_string);
        Some(NodeCommand {
            action: NodeAction::parse(&action?)?,
            reason,
            pool,
        })
    })
}

/// The default `minutes` of `GET /overtime`, as v2's `/Overtime`.
pub const OVERTIME_MINUTES: i64 = 60;

/// Nodes held by active sessions for longer than `?minutes=` (default 60), longest held
/// first, with their session and tenant (admins only).
#[utoipa::path(get, path = "/api/v1/overtime", tag = "admin", security(("basic" = []), ("bearer" = [])),
    params(("minutes" = Option<i64>, Query, description = "Threshold in minutes (default 60)", minimum = 0)),
    responses(
        (status = 200, description = "Nodes held longer than the threshold, longest first", body = docs::OvertimeAnswer),
        docs::AdminOnly,
        (status = 422, description = "An invalid threshold", body = docs::ErrorAnswer),
    ))]
pub async fn list_overtime(
    query: String,
    auth: Option<String>,
    state: State,
) -> Result<Response, ApiError> {
    auth::require_admin(&state, auth.as_deref()).await?;
    let query = Query::parse(&query);
    let minutes = match query.get("minutes") {
        None => OVERTIME_MINUTES,
        Some(text) => validate::integer_in(0, MAX_MINUTES)(&Value::String(text.to_owned()))
            .map_err(|issue| vec![validate::query_error("minutes", issue, text)])?,
    };
    let held = state
        .engine
        .overtime(chrono::TimeDelta::minutes(minutes))
        .await?;
    let now = crate::store::now();
    let out: Vec<HeldNodeOut> = held.iter().map(|h| HeldNodeOut::new(h, now)).collect();
    Ok(json(StatusCode::OK, &envelope("get", "overtime", out)))
}

/// A century of minutes: far past any session, well inside chrono's range.
const MAX_MINUTES: i64 = 100 * 366 * 24 * 60;

/// Shows one node, retired ones included, to any tenant.
#[utoipa::path(get, path = "/api/v1/nodes/{id}", tag = "nodes", security(("basic" = []), ("bearer" = [])),
    params(("id" = i64, Path, description = "Node id")),
    responses(
        (status = 200, description = "The node, retired or not", body = docs::NodeAnswer),
        docs::AuthFailed,
        (status = 404, description = "No such node", body = docs::ErrorAnswer),
        (status = 422, description = "The id is not an integer", body = docs::ErrorAnswer),
    ))]
pub async fn show_node(
    id: String,
    auth: Option<String>,
    state: State,
) -> Result<Response, ApiError> {
    auth::require(&state, auth.as_deref()).await?;
    let id = validate::path_id(&id, "id")?;
    let node = state.engine.node(id).await?;
    Ok(json(
        StatusCode::OK,
        &envelope("get", "node", NodeOut::new(&node)),
    ))
}

/// Registers a machine (admins only); it starts `unused`.
#[utoipa::path(post, path = "/api/v1/nodes", tag = "nodes", security(("basic" = []), ("bearer" = [])),
    request_body = NodeRegistration,
    responses(
        (status = 201, description = "The registered node, `unused`", body = docs::NodeAnswer),
        docs::AdminOnly,
        (status = 409, description = "Another live node has this hostname or address", body = docs::ErrorAnswer),
        (status = 422, description = "Invalid body", body = docs::ErrorAnswer),
    ))]
pub async fn create_node(
    auth: Option<String>,
    body: Bytes,
    state: State,
) -> Result<Response, ApiError> {
    auth::require_admin(&state, auth.as_deref()).await?;
    let new = parse_new_node(&body)?;
    let node = state.engine.register_node(new).await?;
    Ok(json(
        StatusCode::CREATED,
        &envelope("post", "node", NodeOut::new(&node)),
    ))
}

fn parse_new_node(body: &[u8]) -> Result<NewNode, Vec<FieldError>> {
    validate::body_object(body, |f| {
        let hostname = f.required("hostname", validate::non_empty_string);
        let ipaddr = f.required("ipaddr", validate::ip_address);
        let comment = f.optional("comment", validate::string);
        let pool = f.optional("pool", validate::string);
        let reusable = f.optional("reusable", validate::boolean).unwrap_or(true);
        let data = f.optional("data", validate::object).unwrap_or_default();
        Some(NewNode {
            hostname: hostname?,
            ipaddr: ipaddr?,
            comment,
            pool,
            reusable,
            data: JsonObject(data),
        })
    })
}

/// The body of `POST /nodes`: an existing machine for `reuse-nodes` pools.
#[derive(utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "documentation shape: the OpenAPI document reads it, the handler parses the body itself"
)]
pub struct NodeRegistration {
    /// Unique among live nodes.
    #[schema(example = "n12.example.org")]
    hostname: String,
    /// An IPv4 or IPv6 address, unique among live nodes.
    #[schema(example = "192.0.2.12")]
    ipaddr: String,
    /// Free text.
    comment: Option<String>,
    /// Normally absent, so that `reuse-nodes` pools can pick the node.
    pool: Option<String>,
    /// Back to `unused` after deprovisioning (default `true`).
    reusable: Option<bool>,
    /// Facts `reuse-nodes` matches on, e.g. `{"architecture": "x86_64"}`.
    #[schema(value_type = Option<Object>)]
    data: Option<serde_json::Value>,
}

/// What an admin does to a node.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum NodeActionName {
    /// Take it out of service (v2 `/NodeSetAdmin`).
    Downtime,
    /// Bring it back from downtime (v2 `/NodeRecover`).
    Recover,
    /// Forget a failed, unused or downtime node.
    Retire,
    /// Run its pool's provisioning again.
    Provision,
    /// Run its pool's deprovisioning.
    Deprovision,
}

/// The body of `PUT /nodes/{id}`.
#[derive(utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "documentation shape: the OpenAPI document reads it, the handler parses the body itself"
)]
pub struct NodeActionRequest {
    /// What to do.
    action: NodeActionName,
    /// Why; recorded in the node's `data.admin_log`.
    #[schema(example = "disk errors in dmesg")]
    reason: Option<String>,
    /// For provision and deprovision: the pool whose mechanism runs, when the node has none.
    pool: Option<String>,
}

/// The node routes in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_nodes, create_node, show_node, update_node, list_overtime))]
pub struct NodesApi;
