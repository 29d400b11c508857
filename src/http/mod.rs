//! The HTTP plumbing both servers share: serving routes on a listener, the cross-cutting
//! wrapper (request id, access log, HTTP metrics, the one [`recover`]), the raw request parts
//! filters extract ([`raw_query`], [`body`], [`path_segment`]), plain JSON replies and the
//! Prometheus text.
//!
//! The v3 API ([`crate::api`]) and the v2 layer ([`crate::legacy`]) are served through it,
//! alone or side by side in one process; it knows neither of them.

mod body;
mod rejected;
mod serve;

use std::sync::Arc;

use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response};

use crate::config::ConnectionLimits;
use crate::metrics::{Gauges, Metrics};
pub use body::{BODY_LIMIT, BodyTooLarge, BodyUnreadable, body};
pub use rejected::{Rejected, recover};
pub use serve::BodyTimedOut;

/// The Prometheus text format's content type.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Adds what every response of ours has to a set of routes: an `X-Request-Id`, the access
/// log (path only: v2 keys travel in query strings and are never logged), the HTTP
/// metrics, and the one [`recover`] for unknown paths and wrong methods.
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
        .and(routes.recover(recover).unify())
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
/// requests; connections are bounded by `limits` (see [`serve`](self::serve)).
pub async fn serve(
    listener: TcpListener,
    routes: BoxedFilter<(Response,)>,
    metrics: Arc<Metrics>,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    let routes = wrap(routes, metrics).map(Reply::into_response).boxed();
    serve::run(listener, routes, limits, shutdown).await;
}

/// The raw query string, empty when there is none (handlers decode it themselves).
pub fn raw_query() -> impl Filter<Extract = (String,), Error = std::convert::Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// A path segment as the client meant it: warp leaves percent-escapes in place.
pub fn path_segment(raw: &str) -> String {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned()
}

/// A JSON answer with its status.
pub fn json(status: StatusCode, value: &impl Serialize) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

/// Every metric of `metrics` in the Prometheus text format, with `gauges` read by the caller
/// (`Gauges::default()` for a process without a database: `serve-legacy`).
pub fn metrics_text(metrics: &Metrics, gauges: &Gauges) -> Response {
    metrics.upkeep();
    let mut response = metrics.render_with(gauges).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(METRICS_CONTENT_TYPE),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_decoded_leniently() {
        assert_eq!(path_segment("a%20b%2Fc"), "a b/c");
        assert_eq!(path_segment("plain"), "plain");
        assert_eq!(path_segment("%ff"), "\u{fffd}");
    }
}
