//! `GET /pools` and `GET /pools/{name}`: what clients may ask for, and how full it is.

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::api::error::ApiError;
use crate::api::wire::{PoolOut, envelope};
use crate::api::{State, auth, auth_header, json, reply, with_state};

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
        .and(with_state(state))
        .then(show_pool)
        .map(reply);
    list.or(show).unify().boxed()
}

/// Lists the concrete pools that have a fill level, in configuration order.
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
pub async fn show_pool(
    name: String,
    auth: Option<String>,
    state: State,
) -> Result<Response, ApiError> {
    auth::reader(&state, auth.as_deref()).await?;
    let (pool, levels) = state
        .engine
        .pool_levels(&crate::api::validate::path_segment(&name))
        .await?;
    Ok(json(
        StatusCode::OK,
        &envelope(
            "get",
            "pool",
            PoolOut::verbose(
                &pool.name,
                pool.fill_level,
                levels,
                state.engine.pool_backoff().state(&pool.name),
            ),
        ),
    ))
}
