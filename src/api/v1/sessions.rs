//! `/sessions`: ask for nodes, look at what you hold, extend or give it back.

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde_json::Value;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::api::error::ApiError;
use crate::api::validate::{self, FieldError, Fields, Issue};
use crate::api::wire::docs;
use crate::api::wire::{SessionOut, envelope};
use crate::api::{State, auth, auth_header, reply, with_state};
use crate::engine::idempotency::IdempotencyKey;
use crate::engine::sessions::{ExpiresAt, NodesSpec, SessionUpdate};
use crate::http::{body, json};
use crate::protocol::v3::MAX_QUANTITY;

/// The session routes.
pub fn routes(state: State) -> BoxedFilter<(Response,)> {
    let list = warp::path!("sessions")
        .and(warp::get())
        .and(auth_header())
        .and(with_state(state.clone()))
        .then(list_sessions)
        .map(reply);
    let create = warp::path!("sessions")
        .and(warp::post())
        .and(auth_header())
        .and(idempotency_key())
        .and(body())
        .and(with_state(state.clone()))
        .then(create_session)
        .map(reply);
    let show = warp::path!("sessions" / String)
        .and(warp::get())
        .and(auth_header())
        .and(with_state(state.clone()))
        .then(show_session)
        .map(reply);
    let update = warp::path!("sessions" / String)
        .and(warp::put())
        .and(auth_header())
        .and(body())
        .and(with_state(state))
        .then(update_session)
        .map(reply);
    list.or(create)
        .unify()
        .or(show)
        .unify()
        .or(update)
        .unify()
        .boxed()
}

/// Lists active sessions: a tenant's own, or all of them for admins and anonymous readers.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions", security((), ("basic" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Active sessions (anonymous readers see each tenant as id and name only)", body = docs::SessionsAnswer),
        (status = 401, description = "Wrong credentials, or anonymous reads are off", body = docs::ErrorAnswer),
        (status = 403, description = "The tenant is retired", body = docs::ErrorAnswer),
    ))]
pub async fn list_sessions(auth: Option<String>, state: State) -> Result<Response, ApiError> {
    let requester = auth::optional(&state, auth.as_deref()).await?;
    if requester.is_none() && !state.engine.config().app.anonymous_read {
        return Err(ApiError::NotAuthenticated);
    }
    let views = state.engine.active_sessions(requester.as_ref()).await?;
    let sessions: Vec<SessionOut> = views
        .iter()
        .map(|v| match requester {
            Some(_) => SessionOut::new(v, &state.engine),
            None => SessionOut::anonymous(v),
        })
        .collect();
    Ok(json(StatusCode::OK, &envelope("get", "sessions", sessions)))
}

/// Shows one session to its tenant or an admin.
#[utoipa::path(get, path = "/api/v1/sessions/{id}", tag = "sessions", security(("basic" = []), ("bearer" = [])),
    params(("id" = i64, Path, description = "Session id (the v2 ssid)")),
    responses(
        (status = 200, description = "The session, retired or not", body = docs::SessionAnswer),
        docs::AuthFailed,
        (status = 403, description = "Another tenant's session", body = docs::ErrorAnswer),
        (status = 404, description = "No such session", body = docs::ErrorAnswer),
        (status = 422, description = "The id is not an integer", body = docs::ErrorAnswer),
    ))]
pub async fn show_session(
    id: String,
    auth: Option<String>,
    state: State,
) -> Result<Response, ApiError> {
    let requester = auth::require(&state, auth.as_deref()).await?;
    let id = validate::path_id(&id, "id")?;
    let view = state.engine.session(&requester, id).await?;
    Ok(json(
        StatusCode::OK,
        &envelope("get", "session", SessionOut::new(&view, &state.engine)),
    ))
}

/// The `Idempotency-Key` header's bytes, if the request has one.
fn idempotency_key()
-> impl Filter<Extract = (Option<Bytes>,), Error = std::convert::Infallible> + Clone {
    warp::header::value(IDEMPOTENCY_KEY)
        .map(|v: warp::http::HeaderValue| Some(Bytes::copy_from_slice(v.as_bytes())))
        .or(warp::any().map(|| None))
        .unify()
}

/// The header a client names a session request with, so that it can retry it safely.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Reads an `Idempotency-Key` header: 1 to 255 visible ASCII characters, else a 422.
fn parse_key(raw: &[u8]) -> Result<IdempotencyKey, ApiError> {
    let text = std::str::from_utf8(raw).unwrap_or("\u{fffd}");
    IdempotencyKey::parse(text).map_err(|reason| {
        ApiError::Validation(vec![Issue::value_error(reason).at(
            vec!["header".into(), "Idempotency-Key".into()],
            serde_json::Value::String(String::from_utf8_lossy(raw).into_owned()),
        )])
    })
}

/// Grants a session: all the nodes asked for, or none. With an `Idempotency-Key`, a retry
/// gets the session the first request created (answered with `Idempotency-Replayed: true`).
#[utoipa::path(post, path = "/api/v1/sessions", tag = "sessions", security(("basic" = []), ("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters naming this request: a retry with the same key and request gets the same session, never a second one")),
    request_body = SessionRequest,
    responses(
        (status = 201, description = "The session with its nodes (also a retry with the same `Idempotency-Key`, marked `Idempotency-Replayed: true`)", body = docs::SessionAnswer,
            headers(("Idempotency-Replayed" = String, description = "`true` when an earlier request with the same key created the session"))),
        docs::AuthFailed,
        (status = 403, description = "Quota exceeded, a retired tenant, or a session for another tenant", body = docs::ErrorAnswer),
        (status = 409, description = "A request with the same `Idempotency-Key` is still being answered after 60 s", body = docs::ErrorAnswer),
        (status = 422, description = "Invalid body or `Idempotency-Key`, the key used with another request, or not enough ready nodes (`can't reserve nodes`)", body = docs::ErrorAnswer),
        (status = 503, description = "Allocations are paused (`Retry-After: 60`), or contextualization failed (`Retry-After: 0`)", body = docs::ErrorAnswer),
    ))]
pub async fn create_session(
    auth: Option<String>,
    key: Option<Bytes>,
    body: Bytes,
    state: State,
) -> Result<Response, ApiError> {
    let requester = auth::require(&state, auth.as_deref()).await?;
    let key = key.as_deref().map(parse_key).transpose()?;
    let (tenant_id, specs) = parse_request(&body)?;
    // Hyper drops a handler's future when its client goes away. An allocation commits in
    // steps (claim the key, reserve, contextualize, hand over), so it runs on a task of
    // its own and always finishes or undoes itself.
    let engine = state.engine.clone();
    let grant = tokio::spawn(async move {
        engine
            .request_session_keyed(&requester, tenant_id, specs, key)
            .await
    })
    .await
    .map_err(|e| ApiError::Internal(format!("session request task failed: {e}")))??;
    let mut answer = json(
        StatusCode::CREATED,
        &envelope(
            "post",
            "session",
            SessionOut::new(&grant.view, &state.engine),
        ),
    );
    if grant.replayed {
        answer.headers_mut().insert(
            "idempotency-replayed",
            warp::http::HeaderValue::from_static("true"),
        );
    }
    Ok(answer)
}

/// Retires, extends or marks a session.
#[utoipa::path(put, path = "/api/v1/sessions/{id}", tag = "sessions", security(("basic" = []), ("bearer" = [])),
    params(("id" = i64, Path, description = "Session id")),
    request_body = SessionChange,
    responses(
        (status = 200, description = "The session as it is now", body = docs::SessionAnswer),
        docs::AuthFailed,
        (status = 403, description = "Another tenant's session", body = docs::ErrorAnswer),
        (status = 404, description = "No such session", body = docs::ErrorAnswer),
        (status = 422, description = "Invalid body, or the session is retired", body = docs::ErrorAnswer),
    ))]
pub async fn update_session(
    id: String,
    auth: Option<String>,
    body: Bytes,
    state: State,
) -> Result<Response, ApiError> {
    let requester = auth::require(&state, auth.as_deref()).await?;
    let (id, update) = validate::both(validate::path_id(&id, "id"), parse_update(&body))?;
    let view = state.engine.update_session(&requester, id, update).await?;
    Ok(json(
        StatusCode::OK,
        &envelope("put", "session", SessionOut::new(&view, &state.engine)),
    ))
}

/// `{"tenant_id": int|null?, "nodes_specs": [{"pool": str, "quantity": int>=1}, …]}`.
fn parse_request(body: &[u8]) -> Result<(Option<i64>, Vec<NodesSpec>), Vec<FieldError>> {
    validate::body_object(body, |f| {
        let tenant_id = f.optional("tenant_id", validate::integer);
        let items = f
            .required("nodes_specs", validate::array)
            .unwrap_or_default();
        let mut specs = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let mut loc = f.loc("nodes_specs");
            loc.push(i.into());
            if let Some(mut spec) = Fields::of(item, loc, f.errors()) {
                let pool = spec.required("pool", validate::string);
                let quantity = spec.required("quantity", validate::integer_in(1, MAX_QUANTITY));
                if let (Some(pool), Some(quantity)) = (pool, quantity) {
                    specs.push(NodesSpec { pool, quantity });
                }
            }
        }
        Some((tenant_id, specs))
    })
}

/// `{"active": bool?, "expires_at": datetime | "+1h" | null?, "fail_nodes": bool?}`.
fn parse_update(body: &[u8]) -> Result<SessionUpdate, Vec<FieldError>> {
    validate::body_object(body, |f| {
        Some(SessionUpdate {
            active: f.optional("active", validate::boolean),
            expires_at: f.optional("expires_at", expires_at),
            fail_nodes: f.optional("fail_nodes", validate::boolean),
        })
    })
}

/// A new expiry: a signed duration (`+3h30m`, `-2d`) or a datetime; a datetime with an
/// offset is converted to UTC (`docs/deviations.md` D#5), a naive one is UTC. Numbers are rejected (D#4).
fn expires_at(v: &Value) -> Result<ExpiresAt, Issue> {
    let invalid = || {
        Issue::value_error(
            "expected a datetime such as 2026-11-22T10:00:00Z or a signed duration such as +1h or -30m",
        )
    };
    let text = v.as_str().ok_or_else(invalid)?.trim();
    if text.starts_with(['+', '-']) {
        return crate::config::parse_api_duration(text)
            .map(ExpiresAt::Delta)
            .map_err(Issue::value_error);
    }
    parse_datetime(text).map(ExpiresAt::At).ok_or_else(invalid)
}

/// ISO-8601 as pydantic reads it: `T` or space, optional fraction, optional `Z` or offset;
/// a bare date means midnight.
fn parse_datetime(text: &str) -> Option<NaiveDateTime> {
    const WITH_OFFSET: [&str; 4] = [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
    ];
    const NAIVE: [&str; 4] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ];
    let text = text
        .strip_suffix(['Z', 'z'])
        .map_or_else(|| text.to_owned(), |t| format!("{t}+00:00"));
    WITH_OFFSET
        .iter()
        .find_map(|f| DateTime::parse_from_str(&text, f).ok())
        .map(|t| t.naive_utc())
        .or_else(|| {
            NAIVE
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(&text, f).ok())
        })
        .or_else(|| {
            NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .map(crate::store::truncate)
}

/// The body of `POST /sessions`.
#[derive(utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "documentation shape: the OpenAPI document reads it, the handler parses the body itself"
)]
pub struct SessionRequest {
    /// Admins only: the tenant to create the session for (the requester by default).
    tenant_id: Option<i64>,
    /// What to hand out; several specs may name several pools (or the same one twice).
    nodes_specs: Vec<NodesSpecRequest>,
}

/// One line of a session request.
#[derive(utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "documentation shape: the OpenAPI document reads it, the handler parses the body itself"
)]
pub struct NodesSpecRequest {
    /// The pool to take nodes from.
    #[schema(example = "virt-ec2-t2-centos-9s-x86_64")]
    pool: String,
    /// How many nodes.
    // utoipa takes only a literal here: `the_documented_maximum_is_the_quantity_cap` holds
    // it to `MAX_QUANTITY`.
    #[schema(minimum = 1, maximum = 2147483647, example = 2)]
    quantity: i64,
}

/// The body of `PUT /sessions/{id}`; `{}` changes nothing.
#[derive(utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "documentation shape: the OpenAPI document reads it, the handler parses the body itself"
)]
pub struct SessionChange {
    /// `false` retires the session and gives its nodes back.
    active: Option<bool>,
    /// A datetime (`2026-11-22T10:00:00Z`) or a signed duration from the current expiry
    /// (`+1h`, `-30m`); clamped to the tenant's maximum lifetime unless an admin asks.
    #[schema(example = "+2h")]
    expires_at: Option<String>,
    /// Ours (v2 `/Node/fail`): the nodes are broken; they are never handed out again.
    fail_nodes: Option<bool>,
}

/// The session routes in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_sessions, create_session, show_session, update_session))]
pub struct SessionsApi;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_documented_maximum_is_the_quantity_cap() {
        let doc = serde_json::to_value(crate::api::docs::openapi()).unwrap();
        let quantity = &doc["components"]["schemas"]["NodesSpecRequest"]["properties"]["quantity"];
        assert_eq!(quantity["maximum"], json!(MAX_QUANTITY), "{quantity}");
    }

    #[test]
    fn datetimes_with_offsets_are_converted_to_utc() {
        let t = parse_datetime("2026-11-22T10:00:00+02:00").unwrap();
        assert_eq!(t.to_string(), "2026-11-22 08:00:00");
        for text in [
            "2026-11-22T08:00:00Z",
            "2026-11-22T08:00:00",
            "2026-11-22 08:00:00",
            "2026-11-22T08:00",
        ] {
            assert_eq!(
                parse_datetime(text).unwrap().to_string(),
                "2026-11-22 08:00:00",
                "{text}"
            );
        }
        assert_eq!(
            parse_datetime("2026-11-22T08:00:00.5Z")
                .unwrap()
                .to_string(),
            "2026-11-22 08:00:00.500"
        );
        assert_eq!(
            parse_datetime("2026-11-22").unwrap().to_string(),
            "2026-11-22 00:00:00"
        );
        assert!(parse_datetime("1h").is_none());
        assert!(parse_datetime("2026-13-01").is_none());
    }

    #[test]
    fn expiry_needs_a_sign_or_a_date() {
        assert!(matches!(expires_at(&json!("+1h")), Ok(ExpiresAt::Delta(_))));
        assert!(matches!(expires_at(&json!("-2d")), Ok(ExpiresAt::Delta(_))));
        assert!(expires_at(&json!("1h")).is_err());
        assert!(expires_at(&json!(3600)).is_err());
        assert!(matches!(
            expires_at(&json!("2026-11-22T10:00:00Z")),
            Ok(ExpiresAt::At(_))
        ));
    }

    #[test]
    fn requests_report_every_bad_spec() {
        let body = br#"{"nodes_specs": [{"pool": "a", "quantity": 0}, {"quantity": "x"}, 5]}"#;
        let errors = parse_request(body).unwrap_err();
        let kinds: Vec<_> = errors.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                "greater_than_equal",
                "missing",
                "int_parsing",
                "model_attributes_type"
            ]
        );
        let (tenant, specs) = parse_request(br#"{"tenant_id": null, "nodes_specs": []}"#).unwrap();
        assert_eq!((tenant, specs.len()), (None, 0));
    }
}
