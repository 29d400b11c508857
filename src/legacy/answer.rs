//! The v2 answers: bodies, content types and statuses of `docs/legacy-v2.md` §5, in one place.
//!
//! v2 clients mostly ignore the status and look at the body: a JSON object or array is
//! data, a JSON string is a hard failure, and a body that is not JSON at all makes `cico`
//! and the old scripts retry. Each [`V2Error`] is chosen for what it makes them do.

use serde_json::json;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response};

use crate::client::ClientError;
use crate::http::json;
use crate::protocol::v2::{ALLOCATION_FAILED, INSUFFICIENT, UNAVAILABLE};

/// Everything a v2 handler can answer instead of a success.
#[derive(Debug, thiserror::Error)]
pub enum V2Error {
    /// No key, an unknown key, a retired tenant, or another tenant's session.
    #[error("Invalid duffy key")]
    InvalidKey,
    /// No ssid, one that is not a v3 session id, or an unknown one.
    #[error("Invalid session ID")]
    InvalidSession,
    /// Not enough ready nodes right now: retry later.
    #[error("{INSUFFICIENT}")]
    Insufficient,
    /// The request cannot succeed as asked (quota, no pool, bad count): do not retry.
    #[error("{ALLOCATION_FAILED}: {0}")]
    AllocationFailed(String),
    /// `/Node/done` or `/Node/fail` on a session already retired.
    #[error("Session not in Prod")]
    NotInProd,
    /// The v3 API did not give a usable answer; logged, answered with [`UNAVAILABLE`].
    #[error("the Duffy API gave no usable answer: {0}")]
    Unavailable(#[source] ClientError),
    /// The query string cannot be read at all.
    #[error(transparent)]
    MalformedQuery(#[from] super::query::QueryError),
    /// An admin path called with a key that is not an admin's.
    #[error("Admin key required")]
    AdminRequired,
    /// An admin path naming a node that does not exist (or no node id at all).
    #[error("Invalid node ID")]
    InvalidNode,
    /// `/PauseService` or `/ResumeService` naming a pool that does not exist.
    #[error("Invalid pool")]
    InvalidPool,
    /// An admin call the v3 API turned down (a node in the wrong state, an abstract
    /// pool); the text says why.
    #[error("{0}")]
    Refused(String),
    /// A parameter of an admin path that cannot be used.
    #[error("{0}")]
    BadParameter(String),
}

impl V2Error {
    /// The HTTP status of each error: the legacy layer's only such mapping.
    pub fn status(&self) -> StatusCode {
        match self {
            V2Error::InvalidKey | V2Error::InvalidSession => StatusCode::FORBIDDEN,
            V2Error::Insufficient | V2Error::AllocationFailed(_) | V2Error::NotInProd => {
                StatusCode::OK
            }
            V2Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            V2Error::MalformedQuery(_) | V2Error::BadParameter(_) => StatusCode::BAD_REQUEST,
            V2Error::AdminRequired => StatusCode::FORBIDDEN,
            V2Error::InvalidNode | V2Error::InvalidPool => StatusCode::NOT_FOUND,
            V2Error::Refused(_) => StatusCode::CONFLICT,
        }
    }

    /// The `outcome` label of the v2 call metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            V2Error::InvalidKey => "invalid_key",
            V2Error::InvalidSession => "invalid_session",
            V2Error::Insufficient => "insufficient",
            V2Error::AllocationFailed(_) => "allocation_failed",
            V2Error::NotInProd => "not_in_prod",
            V2Error::Unavailable(_) => "unavailable",
            V2Error::MalformedQuery(_) => "malformed_query",
            V2Error::AdminRequired => "admin_required",
            V2Error::InvalidNode => "invalid_node",
            V2Error::InvalidPool => "invalid_pool",
            V2Error::Refused(_) => "refused",
            V2Error::BadParameter(_) => "bad_parameter",
        }
    }

    /// Renders the error in its v2 shape; an unavailable API is logged here, once.
    pub fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            V2Error::InvalidKey
            | V2Error::InvalidSession
            | V2Error::NotInProd
            | V2Error::MalformedQuery(_)
            | V2Error::AdminRequired
            | V2Error::InvalidNode
            | V2Error::InvalidPool
            | V2Error::Refused(_)
            | V2Error::BadParameter(_) => json(status, &json!({"msg": self.to_string()})),
            V2Error::AllocationFailed(_) => json(status, &self.to_string()),
            V2Error::Insufficient => text_reply(status, INSUFFICIENT),
            V2Error::Unavailable(cause) => {
                tracing::warn!(error = %cause, "v2 request failed: {cause}");
                let mut response = text_reply(status, UNAVAILABLE);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
                response
            }
        }
    }
}

impl From<ClientError> for V2Error {
    /// A v3 call that got no usable answer; a key that cannot even be sent is not a key.
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Credentials => V2Error::InvalidKey,
            other => V2Error::Unavailable(other),
        }
    }
}

/// The `detail` of a v3 refusal as the v3 API worded it, for answers that pass it on to v2
/// clients (never to decide anything by).
pub fn v3_detail(e: ClientError) -> String {
    match e {
        ClientError::Api { detail, .. } => detail,
        other => other.to_string(),
    }
}

/// A plain-text answer.
pub fn text_reply(status: StatusCode, text: &'static str) -> Response {
    let mut response = warp::reply::with_status(text.to_owned(), status).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Renders a handler's result.
pub fn reply(result: Result<Response, V2Error>) -> Response {
    result.unwrap_or_else(V2Error::into_response)
}
