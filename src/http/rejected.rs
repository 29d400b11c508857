//! What the plumbing answers by itself, before any handler decides: an unknown path, a wrong
//! method, a body too large, unreadable or too slow. Both servers answer these alike, in the v3 error
//! envelope `{"detail": …}`, and without an error kind (the status says it all).

use std::convert::Infallible;

use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;

use super::BodyTimedOut;
use super::body::{BodyTooLarge, BodyUnreadable};

/// A request no route took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// No route matches the path.
    #[error("Not Found")]
    NotFound,
    /// A route matches the path but not the method.
    #[error("Method Not Allowed")]
    MethodNotAllowed,
    /// The body exceeds [`super::BODY_LIMIT`].
    #[error("Request Entity Too Large")]
    PayloadTooLarge,
    /// The body could not be read (the client broke off).
    #[error("There was an error parsing the body")]
    BodyUnreadable,
    /// The body did not arrive within `app.connections.body-timeout`.
    #[error("Request Timeout")]
    BodyTimedOut,
}

impl Rejected {
    /// What a warp rejection stands for. The most specific reason wins: a too-large body,
    /// then an unreadable one, then a wrong method, then an unknown route.
    pub fn of(rejection: &warp::Rejection) -> Rejected {
        if rejection.find::<BodyTooLarge>().is_some()
            || rejection.find::<warp::reject::PayloadTooLarge>().is_some()
        {
            Rejected::PayloadTooLarge
        } else if rejection.find::<BodyTimedOut>().is_some() {
            Rejected::BodyTimedOut
        } else if rejection.find::<BodyUnreadable>().is_some() {
            Rejected::BodyUnreadable
        } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
            Rejected::MethodNotAllowed
        } else {
            if !rejection.is_not_found() {
                tracing::debug!(rejection = ?rejection, "unexpected rejection answered as 404");
            }
            Rejected::NotFound
        }
    }

    /// Its HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Rejected::NotFound => StatusCode::NOT_FOUND,
            Rejected::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Rejected::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Rejected::BodyUnreadable => StatusCode::BAD_REQUEST,
            Rejected::BodyTimedOut => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// `{"detail": "<text>"}` with its status.
    pub fn into_response(self) -> Response {
        super::json(self.status(), &json!({"detail": self.to_string()}))
    }
}

/// Turns warp's rejections into answers (see [`Rejected::of`]); the one `recover` of every
/// set of routes served through [`super::wrap`].
pub async fn recover(rejection: warp::Rejection) -> Result<Response, Infallible> {
    Ok(Rejected::of(&rejection).into_response())
}
