//! Connections that cannot take the service down (`app.connections`): idle connections and
//! half-sent heads are closed, a slow body is a 408, a new connection over the cap takes the
//! place of the one waiting longest (or gets a quick 503 when all are being answered), and
//! normal clients are answered all along. Raw TCP on loopback, so the test controls
//! every byte. The limits live in the listener, not the database: SQLite is enough.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, DEFAULT_CONFIG, TestApp, spawn_app_config};

/// The limits of these tests: short, so that the tests are quick; the bound each loop waits
/// for is many times longer, so a loaded machine does not fail them.
const LIMITS: &str = "
app:
  connections:
    max: 4
    idle-timeout: 300ms
    header-timeout: 300ms
    body-timeout: 300ms
";

/// How long a test waits at most for the server to close a connection.
const PATIENCE: Duration = Duration::from_secs(20);

async fn app() -> TestApp {
    spawn_app_config(Backend::Sqlite, &format!("{DEFAULT_CONFIG}{LIMITS}")).await
}

async fn connect(app: &TestApp) -> TcpStream {
    let address = app.address.trim_start_matches("http://");
    TcpStream::connect(address).await.unwrap()
}

/// Reads until the server closes the connection (or [`PATIENCE`] runs out: a failure);
/// everything it sent.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let read = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut got)).await;
    assert!(
        read.is_ok(),
        "the server kept the connection open past {PATIENCE:?}; it sent {:?}",
        String::from_utf8_lossy(&got)
    );
    String::from_utf8_lossy(&got).into_owned()
}

/// A plain request on a connection of its own: its answer's head and body.
async fn get_pools(app: &TestApp) -> String {
    let mut stream = connect(app).await;
    stream
        .write_all(b"GET /api/v1/pools HTTP/1.1\r\nHost: duffy\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    read_to_close(&mut stream).await
}

/// A plain request is answered.
async fn still_answers(app: &TestApp) {
    let answer = get_pools(app).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_connection_is_closed() {
    let app = app().await;
    let mut idle = connect(&app).await;
    let started = Instant::now();
    let sent = read_to_close(&mut idle).await;
    assert_eq!(sent, "", "an idle connection is closed without an answer");
    assert!(started.elapsed() >= Duration::from_millis(300));
    still_answers(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kept_alive_connection_serves_again_then_closes_when_idle() {
    let app = app().await;
    let mut stream = connect(&app).await;
    let request = b"GET /api/v1/pools HTTP/1.1\r\nHost: duffy\r\n\r\n";
    for _ in 0..2 {
        stream.write_all(request).await.unwrap();
        let mut buf = vec![0; 65536];
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let head = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        // Less than the idle timeout between two requests: the connection is still there.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rest = read_to_close(&mut stream).await;
    assert!(!rest.contains("HTTP/1.1"), "no third answer: {rest}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_head_sent_a_byte_at_a_time_is_cut_off() {
    let app = app().await;
    let mut slow = connect(&app).await;
    let head = b"GET /api/v1/pools HTTP/1.1\r\nHost: duffy\r\nX-Slow: ";
    // Each byte comes well within the idle timeout, the whole head never.
    let started = Instant::now();
    let mut closed = false;
    for byte in head.iter().chain(std::iter::repeat(&b'a')).take(400) {
        if slow.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if started.elapsed() > PATIENCE {
            break;
        }
    }
    if !closed {
        let sent = read_to_close(&mut slow).await;
        assert!(!sent.contains("200"), "{sent}");
    }
    assert!(
        started.elapsed() < PATIENCE,
        "the slow head was never cut off"
    );
    still_answers(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_that_does_not_arrive_is_a_408() {
    let app = app().await;
    let mut stream = connect(&app).await;
    stream
        .write_all(
            b"POST /api/v1/sessions HTTP/1.1\r\nHost: duffy\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"nodes_specs\":",
        )
        .await
        .unwrap();
    let answer = read_to_close(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains(r#"{"detail":"Request Timeout"}"#),
        "{answer}"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 0);
    still_answers(&app).await;
    app.stop().await;
}

/// A configuration with room for three connections that nothing times out soon.
fn three_connections() -> String {
    format!(
        "{DEFAULT_CONFIG}
app:
  connections:
    max: 3
    idle-timeout: 60s
    header-timeout: 60s
    body-timeout: 60s
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_connection_takes_the_place_of_the_one_waiting_longest() {
    let app = spawn_app_config(Backend::Sqlite, &three_connections()).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(&app).await);
        // Opened one after the other: the first has waited longest.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Each has waited long enough to be asked to make room (a fresh one gets time to send
    // its head); a fourth is served, and the oldest idle one is closed to make room.
    tokio::time::sleep(Duration::from_millis(500)).await;
    still_answers(&app).await;
    let oldest = read_to_close(&mut held[0]).await;
    assert_eq!(
        oldest, "",
        "the longest-waiting connection is closed without an answer"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_over_the_cap_are_refused_when_all_are_being_answered() {
    let app = spawn_app_config(Backend::Sqlite, &three_connections()).await;
    // Three requests in progress: their heads are complete, their bodies still coming.
    let mut busy = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(&app).await;
        stream
            .write_all(
                b"POST /api/v1/sessions HTTP/1.1\r\nHost: duffy\r\nContent-Length: 100\r\n\r\n{",
            )
            .await
            .unwrap();
        busy.push(stream);
    }
    // Long enough for the server to have read the three heads.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut refused = String::new();
    for _ in 0..200 {
        refused = get_pools(&app).await;
        if refused.starts_with("HTTP/1.1 503") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("Too many open connections"), "{refused}");
    assert!(refused.contains("retry-after: 1"), "{refused}");
    // One request ends: a normal request is served again.
    busy.pop();
    let mut served = false;
    for _ in 0..200 {
        if get_pools(&app).await.starts_with("HTTP/1.1 200") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(served, "a freed slot serves requests again");
    drop(busy);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_idle_connections_do_not_stop_a_normal_client() {
    let app = app().await;
    // Twice the cap of idle sockets, opened while a normal client keeps asking.
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(connect(&app).await);
    }
    let mut answered = 0;
    let started = Instant::now();
    while answered < 5 && started.elapsed() < PATIENCE {
        if get_pools(&app).await.starts_with("HTTP/1.1 200") {
            answered += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        answered, 5,
        "the normal client is answered once idle ones time out"
    );
    drop(idle);
    app.stop().await;
}

#[test]
fn bad_connection_settings_are_refused() {
    for (yaml, key) in [
        ("app: {connections: {max: 0}}", "app.connections.max"),
        (
            "app: {connections: {idle-timeout: 0}}",
            "app.connections.idle-timeout",
        ),
        (
            "app: {connections: {header-timeout: -1s}}",
            "app.connections.header-timeout",
        ),
        (
            "app: {connections: {body-timeout: soon}}",
            "app.connections.body-timeout",
        ),
        ("app: {connections: {maximum: 3}}", "app.connections"),
    ] {
        let err = duffy::config::from_yaml_str(yaml, "test.yaml")
            .err()
            .unwrap_or_else(|| panic!("{yaml} accepted"))
            .to_string();
        assert!(err.contains(key), "{yaml}: {err}");
    }
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    duffy::bench::server::memory(pid).map_or(0, |(rss, _)| rss / 1024)
}

/// How long a flood connection is held by its client: long enough for the server to take
/// every one it will take from the kernel's backlog (a few thousand arrive at once) and to
/// close it after its idle or header timeout. Connections the kernel dropped from a full
/// backlog never reach the server: their client is not told, and holds them this long.
const FLOOD_HOLD: Duration = Duration::from_secs(30);

/// The open files of process `pid` (its sockets among them).
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// One connection of the flood: opened, given half a request head (or nothing), then held
/// for [`FLOOD_HOLD`]; whether the server closed it meanwhile (`None`: not connected).
async fn flood_connection(address: String, half_sent: bool) -> Option<bool> {
    let connect = TcpStream::connect(&address);
    let mut stream = tokio::time::timeout(Duration::from_secs(5), connect)
        .await
        .ok()?
        .ok()?;
    if half_sent {
        let _ = stream
            .write_all(b"GET /api/v1/pools HTTP/1.1\r\nHost: duffy\r\n")
            .await;
    }
    let mut sink = Vec::new();
    Some(
        tokio::time::timeout(FLOOD_HOLD, stream.read_to_end(&mut sink))
            .await
            .is_ok(),
    )
}

/// A real `duffy serve` limited to 1,024 open files, flooded with 2,000 idle and 2,000
/// half-sent connections while a normal client keeps asking: every normal request is
/// answered, the server never holds more files than its limit, and it lets every flood
/// connection go (evicted, or after its timeout) while their clients still hold them.
/// The figures are printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_against_1024_open_files_stops_no_normal_client() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("duffy.yaml");
    let db = dir.path().join("duffy.db");
    std::fs::write(
        &config,
        format!(
            "database: {{url: \"sqlite://{}\"}}\n{DEFAULT_CONFIG}\
             app: {{connections: {{idle-timeout: 2s, header-timeout: 2s}}}}\n",
            db.display()
        ),
    )
    .unwrap();
    let server = crate::cli::start_serve_with(&config, Some("warn"), &[], Some(1024))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let address = server.address.trim_start_matches("http://").to_owned();
    let pid = server.pid();
    let (rss_start, files_start) = (rss_kib(pid), open_files(pid));

    // The normal client: a request at a time, each on a connection of its own; told to
    // come back (the quick 503 of a full server, with `Retry-After: 1`), it does.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let normal = tokio::spawn({
        let (address, stop) = (address.clone(), stop.clone());
        async move {
            let mut latencies = Vec::new();
            let mut failures = Vec::new();
            let mut told_to_retry = 0;
            let mut started = Instant::now();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let answer = async {
                    let mut stream = TcpStream::connect(&address).await.ok()?;
                    let request =
                        b"GET /api/v1/pools HTTP/1.1\r\nHost: duffy\r\nConnection: close\r\n\r\n";
                    stream.write_all(request).await.ok()?;
                    let mut got = Vec::new();
                    stream.read_to_end(&mut got).await.ok()?;
                    Some(String::from_utf8_lossy(&got).into_owned())
                };
                match tokio::time::timeout(PATIENCE, answer).await {
                    Ok(Some(text)) if text.starts_with("HTTP/1.1 200") => {
                        latencies.push(started.elapsed())
                    }
                    Ok(Some(text))
                        if text.starts_with("HTTP/1.1 503") && text.contains("retry-after: 1") =>
                    {
                        told_to_retry += 1;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                    other => {
                        failures.push(format!("{other:?}").chars().take(120).collect::<String>())
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                started = Instant::now();
            }
            (latencies, failures, told_to_retry)
        }
    });

    let flood_started = Instant::now();
    let flood: Vec<_> = (0..4000)
        .map(|i| tokio::spawn(flood_connection(address.clone(), i % 2 == 1)))
        .collect();
    // While the flood's clients hold on: the server's files peak, then come back down.
    let (mut files_peak, mut rss_peak, mut let_go) = (0, 0, None);
    while flood_started.elapsed() < FLOOD_HOLD - Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let files = open_files(pid);
        files_peak = files_peak.max(files);
        rss_peak = rss_peak.max(rss_kib(pid));
        if flood_started.elapsed() > Duration::from_secs(3) && files <= files_start + 8 {
            let_go = Some(flood_started.elapsed());
            break;
        }
    }
    let mut outcomes = Vec::new();
    for f in flood {
        outcomes.push(f.await.unwrap());
    }
    let connected = outcomes.iter().filter(|o| o.is_some()).count();
    let closed = outcomes.iter().filter(|o| **o == Some(true)).count();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_end = rss_kib(pid);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut latencies, failures, told_to_retry) = normal.await.unwrap();
    latencies.sort();
    let log = server.stop();
    eprintln!(
        "flood against 1024 open files: {connected} of 4000 connections made, {closed} closed \
         by the server (the others never left the kernel's backlog); the server's open files \
         {files_start} at start, {files_peak} at most, back to start after {let_go:?}; normal \
         requests answered {} (failed {}, told to retry {told_to_retry} times), latency (a \
         retry's wait included) p50 {:?} max {:?}; RSS {rss_start} KiB at \
         start, {rss_peak} KiB at most, {rss_end} KiB after",
        latencies.len(),
        failures.len(),
        latencies.get(latencies.len() / 2),
        latencies.last(),
    );
    assert!(failures.is_empty(), "normal requests failed: {failures:?}");
    assert!(!latencies.is_empty(), "no normal request was made");
    // The kernel never lets it hold more than 1,024; holding all of them would mean it
    // ran out (accepting would fail) instead of capping its connections below.
    assert!(
        files_peak < 1024,
        "the server ran out of open files: {files_peak}"
    );
    assert!(
        let_go.is_some(),
        "the server still held the flood's connections while their clients did"
    );
    assert!(
        !log.contains(" ERROR "),
        "the flood was logged as our fault:\n{log}"
    );
}
