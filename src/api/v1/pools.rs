//! `GET /pools` and `GET /pools/{name}`: what clients may ask for, and how full it is;
//! ours: `PUT /pools/{name}` pauses and resumes a pool's allocations (admins only).

use bytes::Bytes;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::api::error::ApiError;
use crate::api::validate::{self, FieldError};
use crate::api::wire::docs;
use crate::api::wire::{PoolOut, envelope};
use crate::api::{State, auth, auth_header, body, json, reply, with_state};

/// The pool routes.
pub fn routes(state: State) -> BoxedFilter<(Response,)> {
    let list = warp::path!("pools")
        .and(warp::get())
        .and(auth_header())
        .and(with_state(state.clone()))
        .then(list_pools)
        .map(reply);
    let show = warp::path!("pools" / String)
        .and(warp::get())
        .and(auth_header())
        .and(with_state(state.clone()))
        .then(show_pool)
        .map(reply);
    let update = warp::path!("pools" / String)
        .and(warp::put())
        .and(auth_header())
        .and(body())
        .and(with_state(state))
        .then(update_pool)
        .map(reply);
    list.or(show).unify().or(update).unify().boxed()
}

/// Lists the concrete pools that have a fill level, in configuration order.
#[utoipa::path(get, path = "/api/v1/pools", tag = "pools", security((), ("basic" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Concrete pools with a fill level", body = docs::PoolsAnswer),
        (status = 401, description = "Anonymous reads are off and no credentials came", body = docs::ErrorAnswer),
    ))]
pub async fn list_pools(auth: Option<String>, state: State) -> Result<Response, ApiError> {
    auth::reader(&state, auth.as_deref()).await?;
    let pools: Vec<PoolOut> = state
        .engine
        .listed_pools()
        .map(|p| PoolOut::concise(&p.name, p.fill_level))
        .collect();
    Ok(json(StatusCode::OK, &envelope("get", "pools", pools)))
}

/// Shows one pool with its node counts per state.
#[utoipa::path(get, path = "/api/v1/pools/{name}", tag = "pools", security((), ("basic" = []), ("bearer" = [])),
    params(("name" = String, Path, description = "Pool name")),
    responses(
        (status = 200, description = "The pool, its levels, and its backoff or pause if any", body = docs::PoolAnswer),
        (status = 404, description = "No such pool", body = docs::ErrorAnswer),
        (status = 422, description = "The pool has no fill level (abstract or unfilled)", body = docs::ErrorAnswer),
    ))]
pub async fn show_pool(
    name: String,
    auth: Option<String>,
    state: State,
) -> Result<Response, ApiError> {
    auth::reader(&state, auth.as_deref()).await?;
    verbose_pool(&state, "get", &validate::path_segment(&name)).await
}

/// Pauses or resumes allocations from one pool (admins only): `{"paused": bool,
/// "reason": str?}`. While paused, session requests for the pool answer 503.
#[utoipa::path(put, path = "/api/v1/pools/{name}", tag = "admin", security(("basic" = []), ("bearer" = [])),
    params(("name" = String, Path, description = "Pool name")),
    request_body = PauseChange,
    responses(
        (status = 200, description = "The pool as it is now", body = docs::PoolAnswer),
        docs::AdminOnly,
        (status = 404, description = "No such pool", body = docs::ErrorAnswer),
        (status = 422, description = "Invalid body, or an abstract pool", body = docs::ErrorAnswer),
    ))]
pub async fn update_pool(
    name: String,
    auth: Option<String>,
    body: Bytes,
    state: State,
) -> Result<Response, ApiError> {
    let admin = auth::require_admin(&state, auth.as_deref()).await?;
    let name = validate::path_segment(&name);
    let (paused, reason) = parse_pause(&body)?;
    if paused {
        state
            .engine
            .pause(&admin.name, Some(&name), &reason)
            .await?;
    } else {
        state.engine.resume(&admin.name, Some(&name)).await?;
    }
    verbose_pool(&state, "put", &name).await
}

/// `{"paused": bool, "reason": str?}`, for a pool or the whole service.
pub fn parse_pause(body: &[u8]) -> Result<(bool, String), Vec<FieldError>> {
    validate::body_object(body, |f| {
        let paused = f.required("paused", validate::boolean);
        let reason = f.optional("reason", validate::string).unwrap_or_default();
        Some((paused?, reason))
    })
}

/// A pool's verbose form with its levels, backoff and pause.
async fn verbose_pool(state: &State, action: &str, name: &str) -> Result<Response, ApiError> {
    let (pool, levels) = state.engine.pool_levels(name).await?;
    let pauses = state.engine.pauses().await?;
    let pause = pauses.iter().find(|p| p.scope == pool.name);
    Ok(json(
        StatusCode::OK,
        &envelope(
            action,
            "pool",
            PoolOut::verbose(
                &pool.name,
                pool.fill_level,
                levels,
                state.engine.pool_backoff().state(&pool.name),
            )
            .with_pause(pause),
        ),
    ))
}

/// The body of `PUT /pools/{name}` and `PUT /service`.
#[derive(utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "documentation shape: the OpenAPI document reads it, the handler parses the body itself"
)]
pub struct PauseChange {
    /// `true` pauses allocations, `false` resumes them.
    paused: bool,
    /// Why; clients see it in the 503 they get while paused.
    reason: Option<String>,
}

/// The pool routes in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_pools, show_pool, update_pool))]
pub struct PoolsApi;
