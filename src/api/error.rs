//! The one error envelope of the v3 API and the one place that decides what an error means.
//!
//! Handlers return `Result<_, ApiError>`. [`ApiError::kind`] is the single mapping from an
//! error to its [`ErrorKind`], and so to its status ([`ErrorKind::status`]); the answer is
//! `{"detail": …}` with the kind's name in the `Duffy-Error-Kind` header
//! ([`ERROR_KIND_HEADER`]), so clients decide from the kind while the detail keeps the words
//! the original's clients read. Warp's own rejections (unknown route, wrong method, a body
//! too large) are answered by the HTTP plumbing's `recover` ([`Rejected`]) in the same
//! envelope, without a kind. Internal faults are logged once here and answered without their
//! cause.

use serde_json::{Value, json};
use warp::http::{HeaderName, HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response};

use super::validate::FieldError;
use crate::engine::{AuthError, EngineError};
use crate::http::Rejected;
use crate::protocol::v3::{ERROR_KIND_HEADER, ErrorKind};

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
    /// What the plumbing answers for a request no route takes (a missing Swagger UI file
    /// is answered like an unknown path).
    #[error(transparent)]
    Rejected(#[from] Rejected),
    /// A fault outside the engine (a task that panicked); logged, never shown.
    #[error("{0}")]
    Internal(String),
}

impl From<Vec<FieldError>> for ApiError {
    fn from(errors: Vec<FieldError>) -> Self {
        ApiError::Validation(errors)
    }
}

impl ApiError {
    /// What each error means: the only such mapping of the v3 API. `None` for the
    /// plumbing's rejections, which carry no kind.
    pub fn kind(&self) -> Option<ErrorKind> {
        Some(match self {
            ApiError::NotAuthenticated
            | ApiError::InvalidCredentials
            | ApiError::Auth(AuthError::Unauthorized) => ErrorKind::Unauthenticated,
            ApiError::Auth(AuthError::Retired) | ApiError::Forbidden => ErrorKind::Forbidden,
            ApiError::Auth(AuthError::Store(_)) | ApiError::Internal(_) => ErrorKind::Internal,
            ApiError::Validation(_) => ErrorKind::Invalid,
            ApiError::Rejected(_) => return None,
            ApiError::Engine(e) => match e {
                EngineError::NotFound => ErrorKind::NotFound,
                EngineError::Forbidden(_) => ErrorKind::Forbidden,
                EngineError::QuotaExceeded { .. } => ErrorKind::QuotaExceeded,
                EngineError::CantReserve { .. } => ErrorKind::NoNodes,
                EngineError::SessionRetired(_) => ErrorKind::SessionRetired,
                EngineError::TenantRetired { .. } => ErrorKind::TenantRetired,
                EngineError::Unprocessable(_) => ErrorKind::Unprocessable,
                EngineError::Conflict(_) => ErrorKind::Conflict,
                EngineError::Unavailable(_) => ErrorKind::Unavailable,
                EngineError::Paused(_) => ErrorKind::Paused,
                EngineError::Store(_) => ErrorKind::Internal,
            },
        })
    }

    /// The HTTP status of each error: its kind's ([`ErrorKind::status`]), or the
    /// rejection's.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Rejected(rejected) => rejected.status(),
            _ => self
                .kind()
                .map_or(StatusCode::INTERNAL_SERVER_ERROR, status_of),
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
        if let Some(kind) = self.kind() {
            headers.insert(
                HeaderName::from_static(ERROR_KIND_HEADER),
                HeaderValue::from_static(kind.name()),
            );
        }
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

/// The status of a kind as warp spells it.
fn status_of(kind: ErrorKind) -> StatusCode {
    // Every kind's status is a valid code; the fallback is never taken.
    StatusCode::from_u16(kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use warp::Filter;

    use super::*;

    /// Status, kind header and body of an error as a client receives it.
    async fn answer(error: ApiError) -> (u16, Option<String>, Value) {
        let once = Arc::new(Mutex::new(Some(error)));
        let filter = warp::any().map(move || {
            let error = once.lock().unwrap().take().unwrap();
            ApiError::into_response(error)
        });
        let response = warp::test::request().reply(&filter).await;
        let kind = response
            .headers()
            .get(ERROR_KIND_HEADER)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = serde_json::from_slice(response.body()).unwrap();
        (response.status().as_u16(), kind, body)
    }

    #[tokio::test]
    async fn every_error_keeps_its_status_and_detail_and_names_its_kind() {
        let quota = EngineError::QuotaExceeded {
            requested: 2,
            current: 9,
            quota: 10,
        };
        let cant = EngineError::CantReserve {
            quantity: 2,
            pool: "p".into(),
        };
        let tenant = EngineError::TenantRetired {
            name: "t".into(),
            id: 1,
        };
        let cases: Vec<(ApiError, u16, Option<&str>, &str)> = vec![
            (
                ApiError::NotAuthenticated,
                401,
                Some("unauthenticated"),
                "Not authenticated",
            ),
            (
                ApiError::InvalidCredentials,
                401,
                Some("unauthenticated"),
                "Invalid authentication credentials",
            ),
            (
                AuthError::Unauthorized.into(),
                401,
                Some("unauthenticated"),
                "Unauthorized",
            ),
            (ApiError::Forbidden, 403, Some("forbidden"), "Forbidden"),
            (
                AuthError::Retired.into(),
                403,
                Some("forbidden"),
                "Forbidden",
            ),
            (
                quota.into(),
                403,
                Some("quota-exceeded"),
                "quota exceeded: requested nodes (2) + current allocation (9) = 11 > 10",
            ),
            (
                EngineError::NotFound.into(),
                404,
                Some("not-found"),
                "Not Found",
            ),
            (
                cant.into(),
                422,
                Some("no-nodes"),
                "can't reserve nodes: quantity=2 pool='p'",
            ),
            (
                EngineError::SessionRetired(7).into(),
                422,
                Some("session-retired"),
                "session 7 is retired",
            ),
            (
                tenant.into(),
                422,
                Some("tenant-retired"),
                "tenant t (id=1) is retired",
            ),
            (
                EngineError::Unprocessable("no".into()).into(),
                422,
                Some("unprocessable"),
                "no",
            ),
            (
                EngineError::Conflict("taken".into()).into(),
                409,
                Some("conflict"),
                "taken",
            ),
            (
                EngineError::Unavailable("later".into()).into(),
                503,
                Some("unavailable"),
                "later",
            ),
            (
                EngineError::Paused("paused".into()).into(),
                503,
                Some("paused"),
                "paused",
            ),
            (
                ApiError::Internal("boom".into()),
                500,
                Some("internal"),
                "Internal Server Error",
            ),
            (Rejected::NotFound.into(), 404, None, "Not Found"),
            (
                Rejected::MethodNotAllowed.into(),
                405,
                None,
                "Method Not Allowed",
            ),
            (
                Rejected::PayloadTooLarge.into(),
                413,
                None,
                "Request Entity Too Large",
            ),
            (
                Rejected::BodyUnreadable.into(),
                400,
                None,
                "There was an error parsing the body",
            ),
        ];
        for (error, status, kind, detail) in cases {
            let shown = format!("{error:?}");
            if let Some(k) = error.kind() {
                assert_eq!(k.status(), status, "{shown}");
            }
            let got = answer(error).await;
            assert_eq!(
                got,
                (status, kind.map(str::to_owned), json!({ "detail": detail })),
                "{shown}"
            );
        }
    }

    #[tokio::test]
    async fn a_validation_list_is_invalid() {
        let (status, kind, body) = answer(ApiError::Validation(Vec::new())).await;
        assert_eq!((status, kind.as_deref()), (422, Some("invalid")));
        assert_eq!(body, json!({"detail": []}));
    }
}
