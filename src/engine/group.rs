//! Requests that queue while a transaction runs, and are decided together in the next.
//!
//! Under load the cost of a write is not its work but the round trips and the commit,
//! during which SQLite's single writer (or a PostgreSQL row lock) waits for everybody else.
//! A [`Grouped`] queue lets the requests that arrive meanwhile share one transaction.

use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::oneshot;

use super::EngineError;
use crate::store::StoreError;

/// What one group's transaction answers: one result per request, in order; an `Err` for
/// the whole group is a database failure, and nothing of the group was done.
pub(crate) type GroupOutcome<A> = Result<Vec<Result<A, EngineError>>, EngineError>;

type Run<R, A> = dyn Fn(Vec<R>) -> BoxFuture<'static, GroupOutcome<A>> + Send + Sync;

struct Pending<R, A> {
    request: R,
    reply: oneshot::Sender<Result<A, EngineError>>,
}

struct Queue<R, A> {
    pending: Vec<Pending<R, A>>,
    /// A task is running groups until the queue is empty.
    draining: bool,
}

struct Shared<R, A> {
    what: &'static str,
    max: usize,
    queue: Mutex<Queue<R, A>>,
    run: Box<Run<R, A>>,
}

/// A queue of requests decided in groups of at most `max` by `run`.
pub(crate) struct Grouped<R, A> {
    shared: Arc<Shared<R, A>>,
}

impl<R: Send + 'static, A: Send + 'static> Grouped<R, A> {
    /// A queue whose groups `run` decides; `what` names them in logs and errors.
    pub(crate) fn new(
        what: &'static str,
        max: usize,
        run: impl Fn(Vec<R>) -> BoxFuture<'static, GroupOutcome<A>> + Send + Sync + 'static,
    ) -> Grouped<R, A> {
        Grouped {
            shared: Arc::new(Shared {
                what,
                max,
                queue: Mutex::new(Queue {
                    pending: Vec::new(),
                    draining: false,
                }),
                run: Box::new(run),
            }),
        }
    }

    /// Queues a request and waits for the transaction that decides it.
    pub(crate) async fn request(&self, request: R) -> Result<A, EngineError> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut queue = self.shared.queue.lock().map_err(|_| {
                EngineError::Unavailable(format!("the {} queue is unusable", self.shared.what))
            })?;
            queue.pending.push(Pending { request, reply });
            !std::mem::replace(&mut queue.draining, true)
        };
        if start {
            // A task of its own: a request whose client goes away must not take the
            // transaction of the others with it.
            tokio::spawn(Arc::clone(&self.shared).drain());
        }
        answer.await.unwrap_or_else(|_| {
            Err(EngineError::Unavailable(format!(
                "the {} transaction was interrupted",
                self.shared.what
            )))
        })
    }
}

impl<R, A> Shared<R, A> {
    /// Runs groups until no request is waiting.
    async fn drain(self: Arc<Self>) {
        loop {
            let group = {
                let Ok(mut queue) = self.queue.lock() else {
                    return;
                };
                if queue.pending.is_empty() {
                    queue.draining = false;
                    return;
                }
                let take = queue.pending.len().min(self.max);
                queue.pending.drain(..take).collect::<Vec<_>>()
            };
            // Whoever gave up waiting does not need an answer any more.
            let (requests, replies): (Vec<R>, Vec<_>) = group
                .into_iter()
                .filter(|p| !p.reply.is_closed())
                .map(|p| (p.request, p.reply))
                .unzip();
            if requests.is_empty() {
                continue;
            }
            // A panic fails this group (its senders are dropped), not the queue.
            let outcome = std::panic::AssertUnwindSafe((self.run)(requests))
                .catch_unwind()
                .await;
            match outcome {
                Ok(Ok(results)) => {
                    for (reply, result) in replies.into_iter().zip(results) {
                        // A requester that went away meanwhile leaves its result behind.
                        let _ = reply.send(result);
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, requests = replies.len(), "a {} transaction failed: {e}", self.what);
                    let text = e.to_string();
                    for reply in replies {
                        let _ = reply.send(Err(StoreError::Shared(text.clone()).into()));
                    }
                }
                Err(_) => {
                    tracing::error!(
                        requests = replies.len(),
                        "a {} transaction panicked; its requests failed",
                        self.what
                    );
                }
            }
        }
    }
}
