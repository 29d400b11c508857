//! The v3 REST API under `/api/v1`, served with warp.
//!
//! One module per resource in [`v1`], each exposing `routes(state)`; this module joins them.
//! The cross-cutting parts (request id, access log, the single `recover`) and serving on a
//! listener are the HTTP plumbing it shares with the v2 layer ([`crate::http`]). Filters only
//! extract (path, auth header, raw body); handlers decide, in plain `async fn`s returning
//! `Result<Response, ApiError>`, and [`error`] turns refusals into statuses and error kinds.

pub mod auth;
pub mod docs;
pub mod error;
pub mod metrics;
pub mod status;
pub mod v1;
pub mod validate;
pub mod wire;

use std::sync::Arc;

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::HeaderValue;
use warp::reply::{Reply, Response};

use crate::engine::Engine;
use error::ApiError;

/// What every handler gets.
#[derive(Clone)]
pub struct State {
    /// The session engine.
    pub engine: Arc<Engine>,
}

/// The whole HTTP application: the v3 API plus the request id on every response.
pub fn routes(
    state: State,
) -> impl Filter<Extract = (impl Reply,), Error = std::convert::Infallible> + Clone + Send + Sync + 'static
{
    let metrics = state.engine.metrics().clone();
    crate::http::wrap(server_routes(state), metrics)
}

/// Everything the v3 server answers (the v2 layer aside): the API under `/api/v1`,
/// `/metrics`, the status page and the API docs; without the cross-cutting parts (see
/// [`crate::http::wrap`]).
pub fn server_routes(state: State) -> BoxedFilter<(Response,)> {
    v1_routes(state.clone())
        .or(metrics::routes(state.clone()))
        .unify()
        .or(status::routes(state))
        .unify()
        .or(docs::routes())
        .unify()
        .boxed()
}

/// The routes under `/api/v1`, without the cross-cutting parts (see [`crate::http::wrap`]).
pub fn v1_routes(state: State) -> BoxedFilter<(Response,)> {
    warp::path("api")
        .and(warp::path("v1"))
        .and(
            v1::sessions::routes(state.clone())
                .or(v1::pools::routes(state.clone()))
                .unify()
                .or(v1::nodes::routes(state.clone()))
                .unify()
                .or(v1::tenants::routes(state.clone()))
                .unify()
                .or(v1::service::routes(state))
                .unify(),
        )
        .boxed()
}

/// Hands the state to a handler.
pub fn with_state(
    state: State,
) -> impl Filter<Extract = (State,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// The raw `Authorization` header, if any (decoded by the handler, see [`auth`]).
pub fn auth_header()
-> impl Filter<Extract = (Option<String>,), Error = std::convert::Infallible> + Clone {
    warp::header::value("authorization")
        .map(|v: HeaderValue| Some(String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .or(warp::any().map(|| None))
        .unify()
}

/// Renders a handler's result: a JSON success with its status, or the error envelope.
pub fn reply(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(ApiError::into_response)
}
