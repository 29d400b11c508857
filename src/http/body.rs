//! The raw request body, bounded, and the two rejections reading it can end in.

use bytes::Bytes;
use futures::StreamExt;
use warp::{Buf, Filter};

/// The largest request body accepted; Duffy's bodies are a few hundred bytes.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// The body is larger than [`BODY_LIMIT`] (a rejection only [`super::recover`] sees).
#[derive(Debug)]
pub struct BodyTooLarge;
impl warp::reject::Reject for BodyTooLarge {}

/// The body could not be read (a rejection only [`super::recover`] sees).
#[derive(Debug)]
pub struct BodyUnreadable;
impl warp::reject::Reject for BodyUnreadable {}

/// The raw request body, at most [`BODY_LIMIT`] bytes, with or without a `Content-Length`.
pub fn body() -> impl Filter<Extract = (Bytes,), Error = warp::Rejection> + Clone {
    warp::body::stream().and_then(collect_body)
}

async fn collect_body<S, B>(stream: S) -> Result<Bytes, warp::Rejection>
where
    S: futures::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut stream = Box::pin(stream);
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|e| match timed_out(&e) {
            Some(limit) => warp::reject::custom(super::BodyTimedOut(limit)),
            None => warp::reject::custom(BodyUnreadable),
        })?;
        if body.len() + chunk.remaining() > BODY_LIMIT {
            return Err(warp::reject::custom(BodyTooLarge));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            body.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(Bytes::from(body))
}

/// The limit, when reading failed because the body took too long ([`super::BodyTimedOut`]).
fn timed_out(error: &warp::Error) -> Option<std::time::Duration> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(super::BodyTimedOut(limit)) = e.downcast_ref() {
            return Some(*limit);
        }
        cause = e.source();
    }
    None
}
