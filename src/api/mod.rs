//! The v3 REST API under `/api/v1`, served with warp.
//!
//! One module per resource in [`v1`], each exposing `routes(state)`; this module joins them,
//! adds the cross-cutting parts (request id, access log, the single [`error::recover`]) and
//! serves them on a listener the caller has bound. Filters only extract (path, auth header,
//! raw body); handlers decide, in plain `async fn`s returning `Result<Response, ApiError>`.

pub mod auth;
pub mod docs;
pub mod error;
pub mod metrics;
pub mod status;
pub mod v1;
pub mod validate;
pub mod wire;

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::{Reply, Response};
use warp::{Buf, Filter};

use crate::engine::Engine;
use crate::metrics::Metrics;
use error::ApiError;

/// The largest request body accepted; Duffy's bodies are a few hundred bytes.
pub const BODY_LIMIT: usize = 1024 * 1024;

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
    wrap(server_routes(state), metrics)
}

/// Everything the v3 server answers (the v2 layer aside): the API under `/api/v1`,
/// `/metrics`, the status page and the API docs; without the cross-cutting parts (see
/// [`wrap`]).
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

/// The routes under `/api/v1`, without the cross-cutting parts (see [`wrap`]).
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

/// Adds what every response of ours has to a set of routes: an `X-Request-Id`, the access
/// log (path only: v2 keys travel in query strings and are never logged), the HTTP
/// metrics, and the one [`error::recover`] for unknown paths and wrong methods. The v2
/// layer is served through it as well, alone or beside the v3 routes.
pub fn wrap(
    routes: BoxedFilter<(Response,)>,
    metrics: Arc<Metrics>,
) -> impl Filter<Extract = (impl Reply,), Error = std::convert::Infallible> + Clone + Send + Sync + 'static
{
    warp::any()
        .map(|| {
            let id = uuid::Uuid::new_v4();
            tracing::Span::current().record("request_id", tracing::field::display(id));
            id
        })
        .and(routes.recover(error::recover).unify())
        .map(|id: uuid::Uuid, mut response: Response| {
            if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
                response.headers_mut().insert("x-request-id", value);
            }
            response
        })
        .with(warp::log::custom(move |info| {
            metrics.http_request(
                info.method().as_str(),
                crate::metrics::route_label(info.path()),
                info.status().as_u16(),
                info.elapsed(),
            );
            tracing::info!(
                http.method = %info.method(),
                http.path = info.path(),
                http.status = info.status().as_u16(),
                http.elapsed_ms = info.elapsed().as_secs_f64() * 1000.0,
                "{} {} {}",
                info.method(),
                info.path(),
                info.status().as_u16()
            );
        }))
        .with(warp::trace(|info| {
            tracing::info_span!(
                "request",
                method = %info.method(),
                path = info.path(),
                request_id = tracing::field::Empty
            )
        }))
}

/// Serves `routes` (see [`wrap`]) on `listener` until `shutdown` fires, then finishes open
/// requests.
pub async fn serve(
    listener: TcpListener,
    routes: BoxedFilter<(Response,)>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    warp::serve(wrap(routes, metrics))
        .incoming(listener)
        .graceful(shutdown.cancelled_owned())
        .run()
        .await;
}

/// Hands the state to a handler.
pub fn with_state(
    state: State,
) -> impl Filter<Extract = (State,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// The raw query string, empty when there is none (handlers decode it, see
/// [`validate::Query`]).
pub fn raw_query() -> impl Filter<Extract = (String,), Error = std::convert::Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// The raw `Authorization` header, if any (decoded by the handler, see [`auth`]).
pub fn auth_header()
-> impl Filter<Extract = (Option<String>,), Error = std::convert::Infallible> + Clone {
    warp::header::value("authorization")
        .map(|v: HeaderValue| Some(String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .or(warp::any().map(|| None))
        .unify()
}

/// The body is larger than [`BODY_LIMIT`] (a rejection only `recover` sees).
#[derive(Debug)]
pub struct BodyTooLarge;
impl warp::reject::Reject for BodyTooLarge {}

/// The body could not be read (a rejection only `recover` sees).
#[derive(Debug)]
pub struct BodyUnreadable;
impl warp::reject::Reject for BodyUnreadable {}

/// The raw request body, at most [`BODY_LIMIT`] bytes, with or without a `Content-Length`.
pub fn body() -> impl Filter<Extract = (Bytes,), Error = warp::Rejection> + Clone {
    warp::body::stream().and_then(collect_body)
}

async fn collect_body<S, B>(stream: S) -> Result<Bytes, warp::Rejection>
where
    S: futures::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut stream = Box::pin(stream);
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|_| warp::reject::custom(BodyUnreadable))?;
        if body.len() + chunk.remaining() > BODY_LIMIT {
            return Err(warp::reject::custom(BodyTooLarge));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            body.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(Bytes::from(body))
}

/// Renders a handler's result: a JSON success with its status, or the error envelope.
pub fn reply(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(ApiError::into_response)
}

/// A JSON success body.
pub fn json(status: StatusCode, value: &impl Serialize) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}
