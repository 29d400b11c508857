//! `GET /nodes`, `GET /nodes/{id}` and `POST /nodes` (admins register reusable machines).

use bytes::Bytes;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::api::error::ApiError;
use crate::api::validate::{self, FieldError};
use crate::api::wire::{NodeOut, envelope};
use crate::api::{State, auth, auth_header, body, json, reply, with_state};
use crate::store::JsonObject;
use crate::store::nodes::NewNode;

/// The node routes.
pub fn routes(state: State) -> BoxedFilter<(Response,)> {
    let list = warp::path!("nodes")
        .and(warp::get())
        .and(auth_header())
        .and(with_state(state.clone()))
        .then(list_nodes)
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
    list.or(create).unify().or(show).unify().boxed()
}

/// Lists every live node, failed ones too.
pub async fn list_nodes(auth: Option<String>, state: State) -> Result<Response, ApiError> {
    auth::reader(&state, auth.as_deref()).await?;
    let nodes = state.engine.nodes().await?;
    let out: Vec<NodeOut> = nodes.iter().map(NodeOut::new).collect();
    Ok(json(StatusCode::OK, &envelope("get", "nodes", out)))
}

/// Shows one node, retired ones included, to any tenant.
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
