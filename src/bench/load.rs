//! Driving load: `clients` tasks repeat an operation over keep-alive connections until the
//! time is up; every operation's latency and every error is counted. [`drive`] runs any
//! operation (reqwest requests, several per operation); [`drive_raw`] repeats one request
//! over the cheap client of [`http`], on threads of its own.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::http;

/// What one run of a scenario measured.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Operations that succeeded.
    pub ok: u64,
    /// Failed operations by kind (`HTTP 422: can't reserve nodes…`, `connection refused`…).
    pub errors: BTreeMap<String, u64>,
    /// Latency of every operation (successful or not), sorted.
    pub latencies: Vec<Duration>,
    /// How long the clients ran.
    pub elapsed: Duration,
}

/// What a row of the report shows, whichever load generator measured it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Operations that succeeded.
    pub ok: u64,
    /// Successful operations per second.
    pub rate: f64,
    /// Median latency.
    pub p50: Duration,
    /// 90th percentile latency.
    pub p90: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// The slowest operation.
    pub max: Duration,
    /// Failed operations by kind.
    pub errors: BTreeMap<String, u64>,
}

impl Summary {
    /// Failed operations.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

impl Outcome {
    /// The row of the report.
    pub fn summary(&self) -> Summary {
        Summary {
            ok: self.ok,
            rate: self.rate(),
            p50: self.percentile(50.0),
            p90: self.percentile(90.0),
            p99: self.percentile(99.0),
            max: self.max(),
            errors: self.errors.clone(),
        }
    }

    /// Adds another client's counts and latencies (unsorted) to these.
    pub fn merge(&mut self, other: Outcome) {
        self.ok += other.ok;
        self.latencies.extend(other.latencies);
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
    }

    /// Operations per second, failed ones excluded.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The `p`-th percentile latency (0 < p ≤ 100), nearest rank.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }

    /// The slowest operation.
    pub fn max(&self) -> Duration {
        self.latencies.last().copied().unwrap_or_default()
    }

    /// Failed operations.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Runs `op` from `clients` concurrent tasks for `duration`. `op` gets the client's number
/// and returns `Err(kind)` for a failed operation.
pub async fn drive<F, Fut>(clients: usize, duration: Duration, op: F) -> Outcome
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let op = Arc::new(op);
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut own = Outcome::default();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let result = op(client).await;
                    own.latencies.push(t.elapsed());
                    match result {
                        Ok(()) => own.ok += 1,
                        Err(kind) => *own.errors.entry(kind).or_default() += 1,
                    }
                }
                own
            })
        })
        .collect();
    let mut total = gather(tasks).await;
    total.elapsed = started.elapsed();
    total.latencies.sort_unstable();
    total
}

/// How [`drive_raw`] loads a server: one request, repeated on keep-alive connections.
#[derive(Debug, Clone)]
pub struct RawLoad {
    /// `host:port`.
    pub addr: String,
    /// The request, as bytes on the wire ([`http::request`]).
    pub request: Bytes,
    /// The status every answer must have.
    pub status: u16,
    /// Connections, each with one request in flight at a time (as clients do; pipelined
    /// requests meet the server's Nagle delay, docs/performance.md).
    pub connections: usize,
    /// Threads of the load generator, each running a single-threaded runtime of its own
    /// with its share of the connections; 0: the caller's runtime.
    pub threads: usize,
    /// How long.
    pub duration: Duration,
}

/// Runs a [`RawLoad`]: the cheap load generator (see [`http`]).
pub async fn drive_raw(load: RawLoad) -> Outcome {
    let load = Arc::new(load);
    let started = Instant::now();
    let deadline = started + load.duration;
    let connections = load.connections.max(1);
    let mut total = Outcome::default();
    if load.threads == 0 {
        let tasks: Vec<_> = (0..connections)
            .map(|_| tokio::spawn(raw_connection(load.clone(), deadline)))
            .collect();
        total.merge(gather(tasks).await);
    } else {
        let threads = load.threads.min(connections);
        let joined = tokio::task::spawn_blocking(move || {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let load = load.clone();
                    // Connections t, t + threads, t + 2 × threads…
                    let mine = (t..connections).step_by(threads).count();
                    std::thread::Builder::new()
                        .name(format!("bench-client-{t}"))
                        .spawn(move || raw_thread(load, mine, deadline))
                })
                .collect();
            let mut total = Outcome::default();
            for handle in handles {
                match handle.map_err(|e| e.to_string()).and_then(|h| {
                    h.join()
                        .map_err(|_| "a load generator thread panicked".to_owned())
                }) {
                    Ok(own) => total.merge(own),
                    Err(e) => {
                        *total
                            .errors
                            .entry(format!("client thread: {e}"))
                            .or_default() += 1
                    }
                }
            }
            total
        })
        .await;
        match joined {
            Ok(own) => total.merge(own),
            Err(e) => {
                *total
                    .errors
                    .entry(format!("client threads: {e}"))
                    .or_default() += 1
            }
        }
    }
    total.elapsed = started.elapsed();
    total.latencies.sort_unstable();
    total
}

/// One load generator thread: a single-threaded runtime driving `connections`.
fn raw_thread(load: Arc<RawLoad>, connections: usize, deadline: Instant) -> Outcome {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let mut o = Outcome::default();
            o.errors.insert(format!("client runtime: {e}"), 1);
            return o;
        }
    };
    runtime.block_on(async move {
        let tasks: Vec<_> = (0..connections)
            .map(|_| tokio::spawn(raw_connection(load.clone(), deadline)))
            .collect();
        gather(tasks).await
    })
}

/// The clients' outcomes added up; a client task that panicked counts as an error.
async fn gather(tasks: Vec<tokio::task::JoinHandle<Outcome>>) -> Outcome {
    let mut total = Outcome::default();
    for task in tasks {
        match task.await {
            Ok(own) => total.merge(own),
            Err(e) => *total.errors.entry(format!("client task: {e}")).or_default() += 1,
        }
    }
    total
}

/// One connection's loop: write the request, read its answer, until the time is up;
/// reconnects after an error or a `Connection: close`.
async fn raw_connection(load: Arc<RawLoad>, deadline: Instant) -> Outcome {
    let mut own = Outcome::default();
    let mut conn: Option<http::Conn> = None;
    while Instant::now() < deadline {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match http::Conn::connect(&load.addr).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    *own.errors.entry(e.to_string()).or_default() += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let t = Instant::now();
        let result = c.send(&load.request).await;
        own.latencies.push(t.elapsed());
        match result {
            Ok(answer) => {
                if answer.status == load.status {
                    own.ok += 1;
                } else {
                    let text: String = String::from_utf8_lossy(&answer.body)
                        .chars()
                        .take(60)
                        .collect();
                    *own.errors
                        .entry(format!("HTTP {}: {text}", answer.status))
                        .or_default() += 1;
                }
                if answer.close {
                    conn = None;
                }
            }
            Err(e) => {
                *own.errors.entry(e.to_string()).or_default() += 1;
                conn = None;
            }
        }
    }
    own
}

/// Sends a request and checks its status; the error names the status and the start of the
/// body, or the transport failure.
pub async fn expect(request: reqwest::RequestBuilder, status: u16) -> Result<bytes::Bytes, String> {
    let response = request.send().await.map_err(transport)?;
    let got = response.status().as_u16();
    let body = response.bytes().await.map_err(transport)?;
    if got != status {
        let text: String = String::from_utf8_lossy(&body).chars().take(60).collect();
        return Err(format!("HTTP {got}: {text}"));
    }
    Ok(body)
}

/// A transport error in a few words (the innermost cause).
fn transport(e: reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = &e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    if e.is_timeout() {
        "timeout".to_owned()
    } else {
        format!("transport: {cause}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let o = Outcome {
            ok: 100,
            latencies: (1..=100).map(Duration::from_millis).collect(),
            elapsed: Duration::from_secs(2),
            ..Outcome::default()
        };
        assert_eq!(o.percentile(50.0), Duration::from_millis(50));
        assert_eq!(o.percentile(99.0), Duration::from_millis(99));
        assert_eq!(o.max(), Duration::from_millis(100));
        assert_eq!(o.rate(), 50.0);
        assert_eq!(Outcome::default().percentile(99.0), Duration::ZERO);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_raw_load_generator_counts_answers_by_status() {
        use warp::Filter;
        let route = warp::path!("ok").map(|| "fine");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(warp::serve(route).incoming(listener).run());
        for (path, threads) in [("/ok", 2), ("/ok", 0), ("/missing", 1)] {
            let o = drive_raw(RawLoad {
                request: http::request("GET", &addr, path, &[], b""),
                addr: addr.clone(),
                status: 200,
                connections: 3,
                threads,
                duration: Duration::from_millis(50),
            })
            .await;
            assert_eq!(o.latencies.len() as u64, o.ok + o.error_count(), "{path}");
            if path == "/ok" {
                assert!(o.ok > 0 && o.errors.is_empty(), "{threads}: {o:?}");
            } else {
                assert_eq!(o.ok, 0);
                assert!(o.errors.keys().all(|k| k.starts_with("HTTP 404")), "{o:?}");
            }
        }
    }

    #[tokio::test]
    async fn drive_counts_successes_and_errors() {
        let o = drive(3, Duration::from_millis(50), |client| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if client == 0 {
                Err("boom".to_owned())
            } else {
                Ok(())
            }
        })
        .await;
        assert!(o.ok > 0);
        assert!(o.errors["boom"] > 0);
        assert_eq!(o.latencies.len() as u64, o.ok + o.error_count());
    }
}
