//! `GET /pools` and `GET /pools/{name}`: what clients may ask for, and how full it is;
//! ours: `PUT /pools/{name}` pauses and resumes a pool's allocations, or retires a pool
//! removed from the configuration (admins only).

use bytes::Bytes;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::api::error::ApiError;
use crate::api::validate::{self, FieldError, Fields, Issue};
use crate::api::wire::docs;
use crate::api::wire::{PoolOut, RetiredPoolOut, envelope};
use crate::api::{State, auth, auth_header, reply, with_state};
use crate::engine::retire_pool::RetirePool;
use crate::http::{body, json, path_segment};

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
    verbose_pool(&state, "get", &path_segment(&name)).await
}

/// Pauses or resumes allocations from one pool, or retires a pool that is no longer
/// configured (admins only).
///
/// * `{"paused": bool, "reason": str?}`: while paused, session requests for the pool
///   answer 503. Answers the pool as it is now.
/// * `{"action": "retire", "purge": bool?, "reason": str?}`: retires every live node of a
///   pool removed from the configuration (`done`, no mechanism runs; their machines, if
///   any, are left as they are) and lifts its pause, keeping its history; with
///   `"purge": true` also deletes the history: the pool's nodes, their links to sessions
///   and the sessions left without any node. All or nothing. Answers what was done:
///   `{"action": "put", "pool": {"name", "retired": {"nodes"}, "purged": {"nodes",
///   "sessions_nodes", "sessions"} | null, "pause_lifted"}}`.
#[utoipa::path(put, path = "/api/v1/pools/{name}", tag = "admin", security(("basic" = []), ("bearer" = [])),
    params(("name" = String, Path, description = "Pool name")),
    request_body = PoolChange,
    responses(
        (status = 200, description = "Paused or resumed: the pool as it is now; retired: what was retired and purged", body = docs::PoolUpdateAnswer),
        docs::AdminOnly,
        (status = 404, description = "Pausing: no such pool in the configuration; retiring: no node and no session's node names the pool", body = docs::ErrorAnswer),
        (status = 409, description = "Retiring: the pool is still configured, or active sessions hold its nodes (named in the detail)", body = docs::ErrorAnswer),
        (status = 422, description = "Invalid body (an unknown action, `action` with `paused`), or pausing an abstract pool", body = docs::ErrorAnswer),
    ))]
pub async fn update_pool(
    name: String,
    auth: Option<String>,
    body: Bytes,
    state: State,
) -> Result<Response, ApiError> {
    let admin = auth::require_admin(&state, auth.as_deref()).await?;
    let name = path_segment(&name);
    match parse_change(&body)? {
        Change::Pause { paused, reason } => {
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
        Change::Retire(request) => {
            let done = state
                .engine
                .retire_pool(&admin.name, &name, &request)
                .await?;
            Ok(json(
                StatusCode::OK,
                &envelope("put", "pool", RetiredPoolOut::new(&done)),
            ))
        }
    }
}

/// What a `PUT /pools/{name}` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    /// `{"paused": bool, "reason": str?}`
    Pause { paused: bool, reason: String },
    /// `{"action": "retire", "purge": bool?, "reason": str?}`
    Retire(RetirePool),
}

/// The actions `PUT /pools/{name}` knows.
const ACTIONS: [&str; 1] = ["retire"];

/// A pause (no `action`, as before actions existed) or an action; both at once is a 422.
fn parse_change(body: &[u8]) -> Result<Change, Vec<FieldError>> {
    validate::body_object(body, |f| {
        if !f.has("action") {
            let (paused, reason) = read_pause(f)?;
            return Some(Change::Pause { paused, reason });
        }
        let action = f.required("action", validate::one_of(&ACTIONS));
        if f.has("paused") {
            f.reject(
                "paused",
                Issue::value_error(
                    "'paused' and 'action' cannot be combined: pause with {\"paused\": …}, \
                     retire with {\"action\": \"retire\"}",
                ),
            );
        }
        let purge = f.optional("purge", validate::boolean).unwrap_or(false);
        let reason = f.optional("reason", validate::string).unwrap_or_default();
        action?;
        Some(Change::Retire(RetirePool { purge, reason }))
    })
}

/// `{"paused": bool, "reason": str?}`, for a pool or the whole service.
pub fn parse_pause(body: &[u8]) -> Result<(bool, String), Vec<FieldError>> {
    validate::body_object(body, read_pause)
}

fn read_pause(f: &mut Fields<'_>) -> Option<(bool, String)> {
    let paused = f.required("paused", validate::boolean);
    let reason = f.optional("reason", validate::string).unwrap_or_default();
    Some((paused?, reason))
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

/// What an admin does to a whole pool.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum PoolActionName {
    /// Retire a pool removed from the configuration: its live nodes end `done`.
    Retire,
}

/// Retiring a pool that is no longer configured.
#[derive(utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "documentation shape: the OpenAPI document reads it, the handler parses the body itself"
)]
pub struct PoolRetireRequest {
    /// What to do; cannot be combined with `paused`.
    action: PoolActionName,
    /// Also delete the pool's history: its nodes, their links to sessions, and the
    /// sessions left without any node (default `false`).
    purge: Option<bool>,
    /// Why; recorded in each retired node's `data.admin_log`.
    #[schema(example = "pool replaced by virt-ec2-t3-centos-9s-x86_64")]
    reason: Option<String>,
}

/// The body of `PUT /pools/{name}`: a pause change, or an action.
#[derive(utoipa::ToSchema)]
#[serde(untagged)]
pub enum PoolChange {
    /// Pause or resume the pool's allocations.
    Pause(PauseChange),
    /// Retire the pool.
    Retire(PoolRetireRequest),
}

/// The pool routes in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_pools, show_pool, update_pool))]
pub struct PoolsApi;

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(body: &str) -> Vec<(&'static str, String)> {
        match parse_change(body.as_bytes()) {
            Ok(change) => panic!("{body} parsed as {change:?}"),
            Err(errors) => errors
                .into_iter()
                .map(|e| (e.kind, serde_json::to_string(&e.loc).unwrap_or_default()))
                .collect(),
        }
    }

    #[test]
    fn bodies_are_a_pause_or_an_action() {
        assert_eq!(
            parse_change(br#"{"paused": true, "reason": "r"}"#),
            Ok(Change::Pause {
                paused: true,
                reason: "r".into()
            })
        );
        assert_eq!(
            parse_change(br#"{"action": "retire"}"#),
            Ok(Change::Retire(RetirePool::default()))
        );
        assert_eq!(
            parse_change(br#"{"action": "retire", "purge": true, "reason": "gone"}"#),
            Ok(Change::Retire(RetirePool {
                purge: true,
                reason: "gone".into()
            }))
        );
        assert_eq!(
            kinds(r#"{"action": "retire", "paused": false}"#),
            [("value_error", r#"["body","paused"]"#.to_owned())]
        );
        assert_eq!(
            kinds(r#"{"action": "explode"}"#),
            [("enum", r#"["body","action"]"#.to_owned())]
        );
        assert_eq!(
            kinds(r#"{"action": "retire", "purge": "maybe"}"#),
            [("bool_parsing", r#"["body","purge"]"#.to_owned())]
        );
        assert_eq!(
            kinds("{}"),
            [("missing", r#"["body","paused"]"#.to_owned())]
        );
    }
}
