//! The API's own description: the OpenAPI 3 document generated from the handlers
//! (`#[utoipa::path]` beside each one, one `OpenApi` per resource module, merged here) at
//! `/api/v1/openapi.json` and `/openapi.json`, and Swagger UI at `/docs/`, served from
//! the binary (no CDN), where a user authorizes with Basic or Bearer and tries every call.

use std::sync::{Arc, OnceLock};

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::Config;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode, Uri, header};
use warp::reply::{Reply, Response};

use crate::api::error::ApiError;
use crate::api::v1;
use crate::http::Rejected;

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Duffy",
        description = "Duffy hands CI jobs freshly installed test machines. A tenant asks for a \
            session of nodes from one or more pools and gets them at once; background jobs keep \
            every pool provisioned to its fill level.\n\nAuthenticate with HTTP Basic (tenant \
            name and API key) or with `Authorization: Bearer <API key>`. The `admin` calls need \
            an admin tenant.",
        license(name = "MIT")
    ),
    modifiers(&Security),
    tags(
        (name = "sessions", description = "Ask for nodes, look at them, extend or give them back"),
        (name = "pools", description = "What can be asked for, and how full it is"),
        (name = "nodes", description = "The machines"),
        (name = "tenants", description = "Who may ask (admins manage them)"),
        (name = "admin", description = "Operating the service: node downtime and re-runs, pauses, overtime"),
    )
)]
struct ApiDoc;

/// Declares the two ways to authenticate, so Swagger UI can offer both.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The whole document: every resource module's paths, merged.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(v1::sessions::SessionsApi::openapi());
    doc.merge(v1::pools::PoolsApi::openapi());
    doc.merge(v1::nodes::NodesApi::openapi());
    doc.merge(v1::tenants::TenantsApi::openapi());
    doc.merge(v1::service::ServiceApi::openapi());
    doc
}

/// The document as JSON, built once.
fn openapi_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        openapi()
            .to_pretty_json()
            .unwrap_or_else(|e| format!(r#"{{"error": "cannot render the document: {e}"}}"#))
    })
}

/// `/api/v1/openapi.json`, `/openapi.json`, `/docs` and everything below `/docs/`.
pub fn routes() -> BoxedFilter<(Response,)> {
    let document = warp::path!("api" / "v1" / "openapi.json")
        .or(warp::path!("openapi.json"))
        .unify()
        .and(warp::get())
        .map(|| {
            let mut response = openapi_json().into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        });
    let config = Arc::new(
        Config::new([OPENAPI_PATH])
            // The default validator badge asks validator.swagger.io: nothing leaves the site.
            .validator_url("none")
            .try_it_out_enabled(true)
            .persist_authorization(true)
            .display_request_duration(true),
    );
    let ui = warp::path("docs")
        .and(warp::get())
        .and(warp::path::full())
        .and(warp::path::tail())
        .map(move |full: warp::path::FullPath, tail: warp::path::Tail| {
            if full.as_str() == "/docs" {
                // Swagger UI's files are relative: it must be served below `/docs/`.
                return warp::redirect::permanent(Uri::from_static("/docs/")).into_response();
            }
            crate::api::reply(swagger_file(tail.as_str(), config.clone()))
        });
    document.or(ui).unify().boxed()
}

/// One file of Swagger UI, its initializer pointed at our document.
fn swagger_file(path: &str, config: Arc<Config<'static>>) -> Result<Response, ApiError> {
    match utoipa_swagger_ui::serve(path, config) {
        Ok(Some(file)) => {
            let mut response =
                warp::reply::with_status(file.bytes.into_owned(), StatusCode::OK).into_response();
            if let Ok(value) = HeaderValue::from_str(&file.content_type) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            Ok(response)
        }
        Ok(None) => Err(Rejected::NotFound.into()),
        Err(e) => Err(ApiError::Internal(format!(
            "serving Swagger UI failed: {e}"
        ))),
    }
}
