//! Serving routes on a listener with bounded connections (`app.connections`): at most `max`
//! open at once, and never more than the open files limit allows (a new one beyond takes the
//! place of the one that has waited longest without a request in progress, or, when every
//! one is being answered, is answered 503 and closed at once), an idle connection closed
//! after `idle-timeout`, a request head that must arrive within `header-timeout` of its first
//! byte, a body within `body-timeout` of its head (else 408).
//!
//! warp's own server has none of these and logs every broken client connection at ERROR,
//! so we run the accept loop ourselves, with hyper under warp's service. A client's broken
//! or slow connection is logged at debug: it is not a fault of ours.

use std::convert::Infallible;
use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::config::ConnectionLimits;

/// The answer to a connection over `max`: short, complete, and closing.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 39\r\n\
\r\n\
{\"detail\": \"Too many open connections\"}";

/// How long a connection may wait for its first request before it can be asked to make room
/// for a new one: time for a fresh client to send its head.
const EVICTION_GRACE: Duration = Duration::from_millis(250);

/// How long a new connection waits for the room an evicted one makes.
const EVICTION_WAIT: Duration = Duration::from_secs(1);

/// Open files kept for everything but client connections: database connections, mechanism
/// runs, log files, the v2 layer's calls.
const FILES_KEPT: usize = 128;

/// How long writing the refusal may take before the connection is just closed.
const REFUSAL_LIMIT: Duration = Duration::from_secs(1);

/// How often a warning that connections are being refused is logged at most.
const REFUSAL_WARNING_EVERY: Duration = Duration::from_secs(60);

/// The request body took longer than `body-timeout` to arrive: the error the body yields,
/// and the rejection the body filter turns it into (answered 408 by [`super::recover`]).
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimedOut(pub Duration);

impl warp::reject::Reject for BodyTimedOut {}

/// Serves `service` (a wrapped set of routes) on `listener` until `shutdown` fires, then
/// stops accepting and lets open requests finish.
pub async fn run(
    listener: TcpListener,
    routes: BoxedFilter<(Response,)>,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    let service = warp::service(routes);
    let cap = connection_cap(limits.max);
    tracing::info!(
        connections.cap = cap,
        connections.max = limits.max,
        "at most {cap} client connections at once (app.connections.max {}, less what the open files limit keeps for the rest)",
        limits.max
    );
    let permits = Arc::new(Semaphore::new(cap));
    let open = Arc::new(Mutex::new(Open::default()));
    let graceful = GracefulShutdown::new();
    let mut warned_at: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                accept_failed(&e).await;
                continue;
            }
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            // Full: the connection that has waited longest without a request in progress
            // makes room (an idle one, or one dribbling a head); a request being answered
            // is never cut.
            Err(_) if make_room(&open) => {
                tokio::time::timeout(EVICTION_WAIT, permits.clone().acquire_owned())
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
            Err(_) => None,
        };
        let Some(permit) = permit else {
            if warned_at.is_none_or(|at| at.elapsed() >= REFUSAL_WARNING_EVERY) {
                warned_at = Some(Instant::now());
                tracing::warn!(
                    connections.cap = cap,
                    "{cap} connections are open and none can make room (each is being answered or opened less than {EVICTION_GRACE:?} ago): refusing new ones with 503"
                );
            }
            tokio::spawn(refuse(stream));
            continue;
        };
        let watch = Arc::new(Watch::new());
        let id = open.lock().map_or(0, |mut open| open.insert(watch.clone()));
        let watcher = graceful.watcher();
        let service = service.clone();
        let open = open.clone();
        tokio::spawn(async move {
            let io = TokioIo::new(Watched {
                inner: stream,
                watch: watch.clone(),
            });
            let tracked = Tracked {
                inner: service,
                watch: watch.clone(),
                body_timeout: limits.body_timeout,
            };
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = watcher.watch(builder.serve_connection_with_upgrades(io, tracked));
            tokio::select! {
                done = connection => {
                    if let Err(e) = done {
                        tracing::debug!(error = %e, "client connection ended with an error: {e}");
                    }
                }
                why = watch.expired(limits) => {
                    tracing::debug!("closing a client connection: {why}");
                }
                () = watch.evicted.notified() => {
                    tracing::debug!("closing a waiting client connection to make room for a new one");
                }
            }
            if let Ok(mut open) = open.lock() {
                open.watches.remove(&id);
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The connections open at once: `app.connections.max`, but never more than the open files
/// limit allows beside [`FILES_KEPT`] (a connection over it would fail to be accepted and
/// could not even be refused).
fn connection_cap(max: u32) -> usize {
    let max = max as usize;
    match open_files_limit() {
        Some(limit) => max.min(limit.saturating_sub(FILES_KEPT).max(1)),
        None => max,
    }
}

/// The soft limit of open files, when there is one.
#[cfg(target_os = "linux")]
fn open_files_limit() -> Option<usize> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .and_then(|n| usize::try_from(n).ok())
}

#[cfg(not(target_os = "linux"))]
fn open_files_limit() -> Option<usize> {
    None
}

/// The open connections, by a number of their own.
#[derive(Default)]
struct Open {
    next: u64,
    watches: std::collections::HashMap<u64, Arc<Watch>>,
}

impl Open {
    fn insert(&mut self, watch: Arc<Watch>) -> u64 {
        self.next += 1;
        self.watches.insert(self.next, watch);
        self.next
    }
}

/// Asks the connection that has waited longest with no request in progress to close;
/// `false` when every open connection is being answered.
fn make_room(open: &Mutex<Open>) -> bool {
    let Ok(open) = open.lock() else {
        return false;
    };
    let longest = open
        .watches
        .values()
        .filter(|w| {
            w.in_flight.load(Ordering::Acquire) == 0
                && !w.evicting.load(Ordering::Acquire)
                && w.waiting() >= EVICTION_GRACE
        })
        .max_by_key(|w| w.waiting());
    match longest {
        Some(watch) => {
            watch.evicting.store(true, Ordering::Release);
            watch.evicted.notify_one();
            true
        }
        None => false,
    }
}

/// An `accept` that failed: a connection the client broke off is nothing; running out of
/// file descriptors is worth a warning and a pause, so the loop does not spin.
async fn accept_failed(e: &io::Error) {
    let out_of_files = matches!(e.raw_os_error(), Some(code) if code == 23 || code == 24);
    if out_of_files {
        tracing::warn!(error = %e, "cannot accept a connection: {e}; the process is out of file descriptors");
        tokio::time::sleep(Duration::from_millis(100)).await;
    } else {
        tracing::debug!(error = %e, "accepting a connection failed: {e}");
    }
}

/// Answers a connection over the limit with [`REFUSAL`] and closes it.
async fn refuse(mut stream: TcpStream) {
    let written = tokio::time::timeout(REFUSAL_LIMIT, async {
        stream.write_all(REFUSAL).await?;
        stream.shutdown().await
    })
    .await;
    if !matches!(written, Ok(Ok(()))) {
        tracing::debug!("a refused connection did not take its 503");
    }
}

/// What a connection's watchdog knows: milliseconds since the connection opened, for the
/// start of its current wait and the first byte of a request head, and how many requests
/// are being answered.
struct Watch {
    opened: Instant,
    /// When the connection began to wait for a request: its opening, or the last answer.
    waiting_since: AtomicU64,
    /// When the first byte of the next request head arrived; [`NONE`] while none has.
    first_byte: AtomicU64,
    /// Requests handed to the routes and not answered yet.
    in_flight: AtomicUsize,
    /// Asked to close, to make room for a new connection.
    evicting: std::sync::atomic::AtomicBool,
    /// Wakes the connection's task to close it.
    evicted: tokio::sync::Notify,
}

/// No time recorded.
const NONE: u64 = u64::MAX;

impl Watch {
    fn new() -> Watch {
        Watch {
            opened: Instant::now(),
            waiting_since: AtomicU64::new(0),
            first_byte: AtomicU64::new(NONE),
            in_flight: AtomicUsize::new(0),
            evicting: std::sync::atomic::AtomicBool::new(false),
            evicted: tokio::sync::Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    /// How long the connection has waited for its next request.
    fn waiting(&self) -> Duration {
        let since = self.waiting_since.load(Ordering::Acquire);
        Duration::from_millis(self.now().saturating_sub(since))
    }

    /// Bytes arrived: the first of a request head starts its header clock.
    fn read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let now = self.now();
            let _ =
                self.first_byte
                    .compare_exchange(NONE, now, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// A request head is complete and handed to the routes.
    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.first_byte.store(NONE, Ordering::Release);
        InFlight(self.clone())
    }

    /// Resolves when the connection has waited too long: idle, or in the middle of a head.
    async fn expired(&self, limits: ConnectionLimits) -> &'static str {
        let step = (limits.idle_timeout.min(limits.header_timeout) / 4)
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        let idle = u64::try_from(limits.idle_timeout.as_millis()).unwrap_or(NONE - 1);
        let header = u64::try_from(limits.header_timeout.as_millis()).unwrap_or(NONE - 1);
        loop {
            tokio::time::sleep(step).await;
            if self.in_flight.load(Ordering::Acquire) > 0 {
                continue;
            }
            let now = self.now();
            match self.first_byte.load(Ordering::Acquire) {
                NONE => {
                    let since = self.waiting_since.load(Ordering::Acquire);
                    if now.saturating_sub(since) >= idle {
                        return "idle for app.connections.idle-timeout";
                    }
                }
                first if now.saturating_sub(first) >= header => {
                    return "request head not complete within app.connections.header-timeout";
                }
                _ => {}
            }
        }
    }
}

/// A request being answered; dropping it (the answer is ready) restarts the idle clock.
struct InFlight(Arc<Watch>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let watch = &self.0;
        watch.waiting_since.store(watch.now(), Ordering::Release);
        watch.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The client's socket, telling its [`Watch`] when bytes arrive.
struct Watched {
    inner: TcpStream,
    watch: Arc<Watch>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.watch.read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// warp's service for one connection, counting its requests in flight and bounding the time
/// their bodies take.
#[derive(Clone)]
struct Tracked<S> {
    inner: S,
    watch: Arc<Watch>,
    body_timeout: Duration,
}

impl<S> hyper::service::Service<hyper::Request<Incoming>> for Tracked<S>
where
    S: tower_service::Service<hyper::Request<TimedBody>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let in_flight = self.watch.begin();
        let limit = self.body_timeout;
        let request = request.map(|body| TimedBody {
            inner: body,
            deadline: Mutex::new(Box::pin(tokio::time::sleep(limit))),
            limit,
        });
        let mut inner = self.inner.clone();
        let answer = tower_service::Service::call(&mut inner, request);
        Box::pin(async move {
            let answer = answer.await;
            drop(in_flight);
            answer
        })
    }
}

/// A request body that fails with [`BodyTimedOut`] when it has not fully arrived in time.
struct TimedBody {
    inner: Incoming,
    /// In a mutex only so that the body is `Sync`, as warp asks; never contended.
    deadline: Mutex<Pin<Box<Sleep>>>,
    limit: Duration,
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                let limit = self.limit;
                let expired = self
                    .deadline
                    .get_mut()
                    .map(|deadline| deadline.as_mut().poll(cx).is_ready())
                    .unwrap_or(true);
                if expired {
                    Poll::Ready(Some(Err(Box::new(BodyTimedOut(limit)))))
                } else {
                    Poll::Pending
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_complete_http_answer() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(body.len(), length);
        assert!(head.starts_with("HTTP/1.1 503 "));
        let detail: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(detail["detail"], "Too many open connections");
    }
}
