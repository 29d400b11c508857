//! wrk, when it is installed, as an independent check of the load generator: the same
//! server, the same connections and threads, and what wrk reports (`--latency`).
//! wrk is not a dependency of the project: without it the comparison is left out.

use std::collections::BTreeMap;
use std::time::Duration;

use super::load::Summary;

/// Whether `wrk` is on PATH.
pub fn on_path() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("wrk").is_file()))
}

/// Runs `wrk -t THREADS -c CONNECTIONS -d DURATION --latency URL` and reads its report.
/// The error says why there are no figures.
pub async fn run(
    url: &str,
    threads: usize,
    connections: usize,
    duration: Duration,
) -> Result<Summary, String> {
    let threads = threads.max(1);
    // wrk takes whole seconds and needs a connection per thread at least.
    let seconds = duration.as_secs_f64().ceil().max(1.0) as u64;
    let out = tokio::process::Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{}", connections.max(threads)))
        .arg(format!("-d{seconds}s"))
        .arg("--latency")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("could not run wrk: {e}"))?;
    let report = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "wrk failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse(&report).ok_or_else(|| format!("unreadable wrk report: {report}"))
}

/// A wrk duration: `251.00us`, `1.38ms`, `2.00s`, `1.00m`.
fn duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().ok()?;
    let secs = match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    // Rounded to whole nanoseconds: `251.00us` is 251 µs, not a float's 250.999….
    Some(Duration::from_nanos((secs * 1e9).round() as u64))
}

/// The figures of a wrk `--latency` report.
pub fn parse(report: &str) -> Option<Summary> {
    let mut requests = None;
    let mut elapsed = None;
    let mut max = None;
    let mut percentiles = BTreeMap::new();
    let mut errors = BTreeMap::new();
    for line in report.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["Latency", _avg, _stdev, m, _] => max = duration(m),
            [p, d] if p.ends_with('%') => {
                if let (Ok(p), Some(d)) = (p.trim_end_matches('%').parse::<u32>(), duration(d)) {
                    percentiles.insert(p, d);
                }
            }
            [n, "requests", "in", t, ..] => {
                requests = n.parse::<u64>().ok();
                elapsed = duration(t.trim_end_matches(','));
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => {
                errors.insert("HTTP status not 2xx or 3xx".to_owned(), n.parse().ok()?);
            }
            _ if line.starts_with("Socket errors:") => {
                // `Socket errors: connect 0, read 0, write 0, timeout 0`
                for part in line["Socket errors:".len()..].split(',') {
                    let mut kv = part.split_whitespace();
                    if let (Some(kind), Some(n)) = (kv.next(), kv.next()) {
                        let n: u64 = n.parse().ok()?;
                        if n > 0 {
                            errors.insert(format!("transport: {kind}"), n);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let requests = requests?;
    let elapsed = elapsed?;
    let failed: u64 = errors.values().sum();
    let ok = requests.saturating_sub(failed);
    Some(Summary {
        ok,
        rate: ok as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
        p50: *percentiles.get(&50)?,
        p90: *percentiles.get(&90)?,
        p99: *percentiles.get(&99)?,
        max: max?,
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 1s test @ http://127.0.0.1:8080/api/v1/pools
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   311.82us  252.04us   6.54ms   93.72%
    Req/Sec    52.60k     3.01k   57.86k    70.00%
  Latency Distribution
     50%  251.00us
     75%  329.00us
     90%  461.00us
     99%    1.38ms
  104669 requests in 2.00s, 14.57MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:  52334.50
Transfer/sec:     7.28MB
";

    #[test]
    fn reports_are_read() {
        let s = parse(REPORT).unwrap();
        assert_eq!(s.ok, 104_669 - 8);
        assert_eq!(s.rate, (104_669 - 8) as f64 / 2.0);
        assert_eq!(s.p50, Duration::from_micros(251));
        assert_eq!(s.p90, Duration::from_micros(461));
        assert_eq!(s.p99, Duration::from_micros(1380));
        assert_eq!(s.max, Duration::from_micros(6540));
        assert_eq!(s.errors["transport: read"], 2);
        assert_eq!(s.errors["transport: timeout"], 1);
        assert_eq!(s.errors["HTTP status not 2xx or 3xx"], 5);
        assert!(!s.errors.contains_key("transport: connect"));
        assert!(parse("wrk: command not found").is_none());
    }
}
