//! The one error envelope of the v3 API and the one place that picks status codes.
//!
//! Handlers return `Result<_, ApiError>`; warp rejections (unknown route, wrong method, a
//! body too large) go through [`recover`] and come out in the same `{"detail": …}` shape.
//! Internal faults are logged once here and answered without their cause.

use std::convert::Infallible;

use serde_json::{Value, json};
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response};

use super::validate::FieldError;
use crate::engine::{AuthError, EngineError};

/// `Retry-After` (seconds) of a request refused because allocations are paused: an admin
/// is at work, so clients should not hammer the service meanwhile.
pub const PAUSED_RETRY_AFTER: &str = "60";

/// Everything a v3 handler can answer instead of a success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No `Authorization` header, or an unknown scheme, where auth is required.
    #[error("Not authenticated")]
    NotAuthenticated,
    /// A Basic header that does not decode to `name:key`.
    #[error("Invalid authentication credentials")]
    InvalidCredentials,
    /// Authentication failed or was refused.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The requester may not do this.
    #[error("Forbidden")]
    Forbidden,
    /// Fields of the request are invalid (pydantic-style list).
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// The engine refused or failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// No route matches the path.
    #[error("Not Found")]
    RouteNotFound,
    /// A route matches the path but not the method.
    #[error("Method Not Allowed")]
    MethodNotAllowed,
    /// The body exceeds the limit.
    #[error("Request Entity Too Large")]
    PayloadTooLarge,
    /// A fault outside the engine (a task that panicked); logged, never shown.
    #[error("{0}")]
    Internal(String),
    /// The body could not be read (the client broke off).
    #[error("There was an error parsing the body")]
    BodyUnreadable,
}

impl From<Vec<FieldError>> for ApiError {
    fn from(errors: Vec<FieldError>) -> Self {
        ApiError::Validation(errors)
    }
}

impl ApiError {
    /// The HTTP status of each error: the only such mapping in the crate.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotAuthenticated | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::Auth(AuthError::Unauthorized) => StatusCode::UNAUTHORIZED,
            ApiError::Auth(AuthError::Retired) | ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::Auth(AuthError::Store(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyUnreadable => StatusCode::BAD_REQUEST,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Engine(e) => match e {
                EngineError::NotFound => StatusCode::NOT_FOUND,
                EngineError::Forbidden(_) | EngineError::QuotaExceeded { .. } => {
                    StatusCode::FORBIDDEN
                }
                EngineError::CantReserve { .. }
                | EngineError::SessionRetired(_)
                | EngineError::TenantRetired { .. }
                | EngineError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
                EngineError::Conflict(_) => StatusCode::CONFLICT,
                EngineError::Unavailable(_) | EngineError::Paused(_) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                EngineError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// The `detail` member of the body.
    fn detail(&self) -> Value {
        match self {
            ApiError::Validation(errors) => json!(errors),
            e if e.status() == StatusCode::INTERNAL_SERVER_ERROR => json!("Internal Server Error"),
            e => json!(e.to_string()),
        }
    }

    /// Renders the error; 5xx causes are logged here, once.
    pub fn into_response(self) -> Response {
        let status = self.status();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, error.debug = ?self, "internal error: {self}");
        }
        let mut response =
            warp::reply::with_status(warp::reply::json(&json!({"detail": self.detail()})), status)
                .into_response();
        let headers = response.headers_mut();
        if matches!(
            self,
            ApiError::NotAuthenticated | ApiError::InvalidCredentials
        ) {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"duffy\""),
            );
        }
        if matches!(self, ApiError::Engine(EngineError::Paused(_))) {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(PAUSED_RETRY_AFTER),
            );
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("0"));
        }
        response
    }
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        ApiError::into_response(self)
    }
}

/// Turns warp's rejections into the API's error shape. The most specific reason wins:
/// a too-large body, then a wrong method, then an unknown route.
pub async fn recover(rejection: warp::Rejection) -> Result<Response, Infallible> {
    let error = if rejection.find::<super::BodyTooLarge>().is_some()
        || rejection.find::<warp::reject::PayloadTooLarge>().is_some()
    {
        ApiError::PayloadTooLarge
    } else if rejection.find::<super::BodyUnreadable>().is_some() {
        ApiError::BodyUnreadable
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed
    } else {
        if !rejection.is_not_found() {
            tracing::debug!(rejection = ?rejection, "unexpected rejection answered as 404");
        }
        ApiError::RouteNotFound
    };
    Ok(error.into_response())
}
