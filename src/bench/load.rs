//! Driving load: `clients` tasks repeat an operation over keep-alive connections until the
//! time is up; every operation's latency and every error is counted.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

impl Outcome {
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
    let mut total = Outcome::default();
    for task in tasks {
        match task.await {
            Ok(own) => {
                total.ok += own.ok;
                total.latencies.extend(own.latencies);
                for (kind, n) in own.errors {
                    *total.errors.entry(kind).or_default() += n;
                }
            }
            Err(e) => *total.errors.entry(format!("client task: {e}")).or_default() += 1,
        }
    }
    total.elapsed = started.elapsed();
    total.latencies.sort_unstable();
    total
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
