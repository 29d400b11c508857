//! `/tenants`: admins create, change and retire tenants; a tenant may read itself.

use bytes::Bytes;
use serde_json::Value;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::api::error::ApiError;
use crate::api::validate::{self, FieldError, Fields, Issue, Loc};
use crate::api::wire::docs;
use crate::api::wire::{MASK, TenantOut, envelope};
use crate::api::{State, auth, auth_header, reply, with_state};
use crate::engine::tenants::{ApiKeyChange, ShownKey, TenantChange, TenantRequest, TenantUpdate};
use crate::http::{body, json};

/// The tenant routes.
pub fn routes(state: State) -> BoxedFilter<(Response,)> {
    let list = warp::path!("tenants")
        .and(warp::get())
        .and(auth_header())
        .and(with_state(state.clone()))
        .then(list_tenants)
        .map(reply);
    let create = warp::path!("tenants")
        .and(warp::post())
        .and(auth_header())
        .and(body())
        .and(with_state(state.clone()))
        .then(create_tenant)
        .map(reply);
    let show = warp::path!("tenants" / String)
        .and(warp::get())
        .and(auth_header())
        .and(with_state(state.clone()))
        .then(show_tenant)
        .map(reply);
    let update = warp::path!("tenants" / String)
        .and(warp::put())
        .and(auth_header())
        .and(body())
        .and(with_state(state))
        .then(update_tenant)
        .map(reply);
    list.or(create)
        .unify()
        .or(show)
        .unify()
        .or(update)
        .unify()
        .boxed()
}

/// Lists all tenants for admins, retired ones included; a tenant sees only itself.
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", security(("basic" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "All tenants for admins; only itself for a tenant", body = docs::TenantsAnswer),
        docs::AuthFailed,
    ))]
pub async fn list_tenants(auth: Option<String>, state: State) -> Result<Response, ApiError> {
    let requester = auth::require(&state, auth.as_deref()).await?;
    let tenants = if requester.is_admin {
        state.engine.tenants().await?
    } else {
        vec![requester]
    };
    let out: Vec<TenantOut> = tenants
        .iter()
        .map(|t| TenantOut::new(t, state.engine.effective(t)))
        .collect();
    Ok(json(StatusCode::OK, &envelope("get", "tenants", out)))
}

/// Shows a tenant to itself or an admin. Another tenant's id is 403 whether it exists or
/// not, so ids cannot be probed.
#[utoipa::path(get, path = "/api/v1/tenants/{id}", tag = "tenants", security(("basic" = []), ("bearer" = [])),
    params(("id" = i64, Path, description = "Tenant id")),
    responses(
        (status = 200, description = "The tenant", body = docs::TenantAnswer),
        docs::AuthFailed,
        (status = 403, description = "Another tenant (whether it exists or not)", body = docs::ErrorAnswer),
        (status = 404, description = "No such tenant (admins)", body = docs::ErrorAnswer),
    ))]
pub async fn show_tenant(
    id: String,
    auth: Option<String>,
    state: State,
) -> Result<Response, ApiError> {
    let requester = auth::require(&state, auth.as_deref()).await?;
    let id = validate::path_id(&id, "id")?;
    if !requester.is_admin && requester.id != id {
        return Err(ApiError::Forbidden);
    }
    let tenant = state.engine.tenant(id).await?;
    let out = TenantOut::new(&tenant, state.engine.effective(&tenant));
    Ok(json(StatusCode::OK, &envelope("get", "tenant", out)))
}

/// Creates a tenant (admins only); the answer shows its SSH key and its new API key once.
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", security(("basic" = []), ("bearer" = [])),
    request_body = TenantCreation,
    responses(
        (status = 201, description = "The tenant with its plain SSH key and its new API key (shown once)", body = docs::TenantAnswer),
        docs::AdminOnly,
        (status = 409, description = "A tenant of that name exists", body = docs::ErrorAnswer),
        (status = 422, description = "Invalid body", body = docs::ErrorAnswer),
    ))]
pub async fn create_tenant(
    auth: Option<String>,
    body: Bytes,
    state: State,
) -> Result<Response, ApiError> {
    auth::require_admin(&state, auth.as_deref()).await?;
    let request = parse_create(&body)?;
    let (tenant, key) = state.engine.create_tenant(request).await?;
    let out = TenantOut::new(&tenant, state.engine.effective(&tenant))
        .with_plain_ssh_key(&tenant)
        .with_api_key(Some(key));
    Ok(json(StatusCode::CREATED, &envelope("post", "tenant", out)))
}

/// Changes, retires or unretires a tenant (admins only; checked before anything else).
#[utoipa::path(put, path = "/api/v1/tenants/{id}", tag = "tenants", security(("basic" = []), ("bearer" = [])),
    params(("id" = i64, Path, description = "Tenant id")),
    request_body = TenantChangeRequest,
    responses(
        (status = 200, description = "The tenant as it is now, with `api_key`", body = docs::TenantAnswer),
        docs::AdminOnly,
        (status = 404, description = "No such tenant", body = docs::ErrorAnswer),
        (status = 409, description = "Another tenant has this API key", body = docs::ErrorAnswer),
        (status = 422, description = "Invalid body, or a retired tenant", body = docs::ErrorAnswer),
    ))]
pub async fn update_tenant(
    id: String,
    auth: Option<String>,
    body: Bytes,
    state: State,
) -> Result<Response, ApiError> {
    auth::require_admin(&state, auth.as_deref()).await?;
    let (id, change) = validate::both(validate::path_id(&id, "id"), parse_change(&body))?;
    let (tenant, shown) = state.engine.change_tenant(id, change).await?;
    let key = match shown {
        ShownKey::New(key) => Some(key),
        ShownKey::Masked => Some(MASK.to_owned()),
        ShownKey::Hidden => None,
    };
    let out = TenantOut::new(&tenant, state.engine.effective(&tenant)).with_api_key(key);
    Ok(json(StatusCode::OK, &envelope("put", "tenant", out)))
}

fn parse_create(body: &[u8]) -> Result<TenantRequest, Vec<FieldError>> {
    validate::body_object(body, |f| {
        let name = f.required("name", validate::non_empty_string);
        let ssh_key = f.required("ssh_key", validate::string);
        let is_admin = f.optional("is_admin", validate::boolean).unwrap_or(false);
        let node_quota = f.optional("node_quota", validate::positive_int32);
        let session_lifetime = f.optional("session_lifetime", validate::config_duration);
        let session_lifetime_max = f.optional("session_lifetime_max", validate::config_duration);
        Some(TenantRequest {
            name: name?,
            ssh_key: ssh_key?,
            is_admin,
            node_quota,
            session_lifetime,
            session_lifetime_max,
        })
    })
}

/// Either `{"active": bool}` (retire/unretire) or an update with at least one field. When
/// neither fits, the errors of both alternatives are listed, as pydantic does for a union.
fn parse_change(body: &[u8]) -> Result<TenantChange, Vec<FieldError>> {
    let value = validate::parse_json(body)?;
    if !value.is_object() {
        let mut errors = Vec::new();
        Fields::of(&value, vec!["body".into()], &mut errors);
        return Err(errors);
    }
    let mut retire_errors = Vec::new();
    if let Some(mut f) = Fields::of(
        &value,
        vec!["body".into(), "TenantRetireModel".into()],
        &mut retire_errors,
    ) && let Some(active) = f.required("active", validate::boolean)
    {
        return Ok(TenantChange::SetActive(active));
    }
    let mut update_errors = Vec::new();
    let loc: Vec<Loc> = vec!["body".into(), "TenantUpdateModel".into()];
    if let Some(mut f) = Fields::of(&value, loc.clone(), &mut update_errors) {
        let update = TenantUpdate {
            ssh_key: f.optional("ssh_key", validate::string),
            api_key: f.optional("api_key", api_key_change),
            node_quota: f.nullable("node_quota", validate::positive_int32),
            session_lifetime: f.nullable("session_lifetime", validate::config_duration),
            session_lifetime_max: f.nullable("session_lifetime_max", validate::config_duration),
        };
        if f.errors().is_empty() {
            if !update.is_empty() {
                return Ok(TenantChange::Update(update));
            }
            f.errors().push(
                Issue::value_error(
                    "one of ssh_key, api_key, node_quota, session_lifetime or \
                     session_lifetime_max must be set",
                )
                .at(loc, value.clone()),
            );
        }
    }
    retire_errors.extend(update_errors);
    Err(retire_errors)
}

/// A new API key: a UUID, or `"reset"` for a random one.
fn api_key_change(v: &Value) -> Result<ApiKeyChange, Issue> {
    if v.as_str().is_some_and(|s| s.trim() == "reset") {
        return Ok(ApiKeyChange::Reset);
    }
    validate::uuid(v).map(ApiKeyChange::Set)
}

/// The body of `POST /tenants`.
#[derive(utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "documentation shape: the OpenAPI document reads it, the handler parses the body itself"
)]
pub struct TenantCreation {
    /// Unique.
    name: String,
    /// The public key(s) pushed to the tenant's nodes, one per line.
    ssh_key: String,
    /// Admin powers (default `false`).
    is_admin: Option<bool>,
    /// Nodes the tenant's active sessions may hold; `null` uses the default.
    #[schema(minimum = 1)]
    node_quota: Option<i64>,
    /// Seconds (`21600`) or a duration (`"6h"`); `null` uses the default.
    #[schema(value_type = Option<String>, example = "6h")]
    session_lifetime: Option<serde_json::Value>,
    /// Seconds or a duration; `null` uses the default.
    #[schema(value_type = Option<String>, example = "12h")]
    session_lifetime_max: Option<serde_json::Value>,
}

/// The body of `PUT /tenants/{id}`: either `{"active": bool}` alone (retire or unretire),
/// or an update with at least one of the other fields.
#[derive(utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "documentation shape: the OpenAPI document reads it, the handler parses the body itself"
)]
pub struct TenantChangeRequest {
    /// `false` retires the tenant (its sessions expire at once), `true` brings it back.
    active: Option<bool>,
    /// New public key(s).
    ssh_key: Option<String>,
    /// A UUID, or `"reset"` for a random one (shown once in the answer).
    #[schema(example = "reset")]
    api_key: Option<String>,
    /// `null` goes back to the default.
    #[schema(minimum = 1)]
    node_quota: Option<i64>,
    /// Seconds or a duration; `null` goes back to the default.
    #[schema(value_type = Option<String>)]
    session_lifetime: Option<serde_json::Value>,
    /// Seconds or a duration; `null` goes back to the default.
    #[schema(value_type = Option<String>)]
    session_lifetime_max: Option<serde_json::Value>,
}

/// The tenant routes in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_tenants, create_tenant, show_tenant, update_tenant))]
pub struct TenantsApi;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_a_retire_or_an_update() {
        assert!(matches!(
            parse_change(br#"{"active": false}"#),
            Ok(TenantChange::SetActive(false))
        ));
        assert!(matches!(
            parse_change(br#"{"api_key": "reset"}"#),
            Ok(TenantChange::Update(TenantUpdate {
                api_key: Some(ApiKeyChange::Reset),
                ..
            }))
        ));
        assert!(matches!(
            parse_change(br#"{"node_quota": null}"#),
            Ok(TenantChange::Update(TenantUpdate {
                node_quota: Some(None),
                ..
            }))
        ));
        let errors = parse_change(b"{}").unwrap_err();
        let kinds: Vec<_> = errors.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["missing", "value_error"]);
        let errors = parse_change(br#"{"api_key": "nope"}"#).unwrap_err();
        assert!(errors.iter().any(|e| e.kind == "uuid_parsing"));
        let errors = parse_change(br#"{"node_quota": 0}"#).unwrap_err();
        assert!(errors.iter().any(|e| e.kind == "greater_than"));
    }
}
