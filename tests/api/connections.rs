//! Connections that cannot take the service down (`app.connections`): idle connections and
//! half-sent heads are closed, a slow body is a 408, connections over the cap get a quick
//! 503, and normal clients are answered all along. Raw TCP on loopback, so the test controls
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_over_the_cap_are_refused_at_once() {
    let config = format!(
        "{DEFAULT_CONFIG}
app:
  connections:
    max: 3
    idle-timeout: 60s
"
    );
    let app = spawn_app_config(Backend::Sqlite, &config).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(&app).await);
    }
    // The three are accepted in turn; give the server a moment to take them all.
    let mut refused = String::new();
    for _ in 0..200 {
        let mut extra = connect(&app).await;
        refused = read_to_close(&mut extra).await;
        if refused.starts_with("HTTP/1.1 503") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("Too many open connections"), "{refused}");
    assert!(refused.contains("retry-after: 1"), "{refused}");
    // One held connection goes: a normal request is served again.
    held.pop();
    let mut served = false;
    for _ in 0..200 {
        if get_pools(&app).await.starts_with("HTTP/1.1 200") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(served, "a freed slot serves requests again");
    drop(held);
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
