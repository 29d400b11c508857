//! `GET /service` and `PUT /service` (ours): the service as a whole, and pausing or
//! resuming every allocation at once (admins only), as v2's `/PauseService` did.

use bytes::Bytes;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::api::error::ApiError;
use crate::api::v1::pools::parse_pause;
use crate::api::wire::docs;
use crate::api::wire::{InstanceOut, ServiceOut, envelope};
use crate::api::{State, auth, auth_header, reply, with_state};
use crate::http::{body, json};

/// The service routes.
pub fn routes(state: State) -> BoxedFilter<(Response,)> {
    let show = warp::path!("service")
        .and(warp::get())
        .and(auth_header())
        .and(with_state(state.clone()))
        .then(show_service)
        .map(reply);
    let update = warp::path!("service")
        .and(warp::put())
        .and(auth_header())
        .and(body())
        .and(with_state(state))
        .then(update_service)
        .map(reply);
    show.or(update).unify().boxed()
}

/// Shows the version, what is paused and the live instances: readable like the pools.
#[utoipa::path(get, path = "/api/v1/service", tag = "admin", security((), ("basic" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Version, pauses and live instances", body = docs::ServiceAnswer),
        (status = 401, description = "Anonymous reads are off and no credentials came", body = docs::ErrorAnswer),
    ))]
pub async fn show_service(auth: Option<String>, state: State) -> Result<Response, ApiError> {
    auth::reader(&state, auth.as_deref()).await?;
    service_answer(&state, "get").await
}

/// Pauses or resumes every allocation (admins only): `{"paused": bool, "reason": str?}`.
/// Sessions already granted keep running and can be retired meanwhile.
#[utoipa::path(put, path = "/api/v1/service", tag = "admin", security(("basic" = []), ("bearer" = [])),
    request_body = crate::api::v1::pools::PauseChange,
    responses(
        (status = 200, description = "The service as it is now", body = docs::ServiceAnswer),
        docs::AdminOnly,
        (status = 422, description = "Invalid body", body = docs::ErrorAnswer),
    ))]
pub async fn update_service(
    auth: Option<String>,
    body: Bytes,
    state: State,
) -> Result<Response, ApiError> {
    let admin = auth::require_admin(&state, auth.as_deref()).await?;
    let (paused, reason) = parse_pause(&body)?;
    if paused {
        state.engine.pause(&admin.name, None, &reason).await?;
    } else {
        state.engine.resume(&admin.name, None).await?;
    }
    service_answer(&state, "put").await
}

/// The service as it is now, answering `action`.
async fn service_answer(state: &State, action: &'static str) -> Result<Response, ApiError> {
    let pauses = state.engine.pauses().await?;
    let me = state.engine.instance().0;
    let instances = state
        .engine
        .live_instances()
        .await?
        .into_iter()
        .map(|live| {
            let this = live.instance.id == me;
            InstanceOut::new(live, this)
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &envelope(action, "service", ServiceOut::new(&pauses, instances)),
    ))
}

/// The service routes in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(show_service, update_service))]
pub struct ServiceApi;
