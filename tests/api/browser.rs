//! The pages people look at (`/docs/` and `/`), in a real headless Chromium (Debian's
//! `chromium`, installed by the first test when it is missing; `DUFFY_SKIP_BROWSER=1` skips
//! these tests knowingly).
//!
//! Each page is loaded once: Chromium runs its scripts, dumps the resulting DOM, saves a
//! screenshot under `target/browser/` for review, and writes a NetLog of every request it
//! made. The requests the page itself made (those whose initiator is the page's origin)
//! must all stay on loopback; the browser's own housekeeping (update checks and the like,
//! initiator "not an origin") is not the page's doing and is left out.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{Auth, Backend, TestApp, spawn_app_config};
use crate::system;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Pools enough to make the status page worth a look.
const CONFIG: &str = r#"
defaults: {session-lifetime: 6h, session-lifetime-max: 12h, node-quota: 10}
nodepools:
  concrete:
    virt-centos-9s-x86_64: {mechanism: {type: noop}, fill-level: 6}
    virt-centos-8s-x86_64: {mechanism: {type: noop}, fill-level: 3}
    metal-broken: {mechanism: {type: noop, noop: {fail-rate: 1.0}}, fill-level: 2}
"#;

/// What one page load left behind.
struct Load {
    /// The DOM after the page's scripts ran.
    dom: String,
    /// Every URL the page requested.
    requests: Vec<String>,
    /// The screenshot.
    screenshot: PathBuf,
}

/// Where screenshots go for review: `target/browser/`.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Loads `url` in a fresh headless Chromium, letting its scripts run for `budget` of
/// virtual time (shorter than a page's own refresh); `name` names the screenshot.
async fn load(url: String, name: &str, height: u32, budget: Duration) -> Load {
    let work = tempfile::tempdir().unwrap();
    let netlog = work.path().join("netlog.json");
    let screenshot = screenshot_dir().join(format!("{name}.png"));
    let mut cmd = Command::new(CHROMIUM);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        // Whatever else the browser tries is refused: only loopback resolves.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--net-log-capture-mode=Default",
    ])
    .arg(format!("--virtual-time-budget={}", budget.as_millis()))
    .arg(format!("--window-size=1280,{height}"))
    .arg(format!(
        "--user-data-dir={}",
        work.path().join("profile").display()
    ))
    .arg(format!("--log-net-log={}", netlog.display()))
    .arg(format!("--screenshot={}", screenshot.display()))
    .arg("--dump-dom")
    .arg(&url);
    let out = tokio::task::spawn_blocking(move || {
        system::run_bounded(&mut cmd, Duration::from_secs(120))
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("chromium: {e}"));
    assert!(
        out.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log: Value = serde_json::from_slice(&std::fs::read(&netlog).unwrap()).unwrap();
    Load {
        dom: String::from_utf8_lossy(&out.stdout).into_owned(),
        requests: page_requests(&log, &url),
        screenshot,
    }
}

/// The URLs of the requests the page made: the page itself and every request whose
/// initiator is its origin.
fn page_requests(log: &Value, page: &str) -> Vec<String> {
    let origin = page.split('/').take(3).collect::<Vec<_>>().join("/");
    let start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
        .as_i64()
        .expect("a NetLog");
    let mut urls: Vec<String> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_i64() == Some(start_job))
        .filter_map(|e| {
            let p = &e["params"];
            let url = p["url"].as_str()?;
            let by_page = p["initiator"].as_str() == Some(origin.as_str())
                || p["request_type"].as_str() == Some("main frame");
            by_page.then(|| url.to_owned())
        })
        .collect();
    urls.dedup();
    urls
}

/// Every request stayed on this machine.
fn assert_local(load: &Load, origin: &str) {
    assert!(
        !load.requests.is_empty(),
        "no request seen: is the NetLog read right?"
    );
    for url in &load.requests {
        assert!(
            url.starts_with(&format!("{origin}/")),
            "the page requested {url}, off the machine"
        );
    }
}

/// Pixels of exactly `rgb` in a PNG.
fn pixels_of(png: &Path, rgb: [u8; 3]) -> usize {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(step)
        .filter(|px| px.len() >= 3 && px[..3] == rgb)
        .count()
}

fn skipped() -> bool {
    if system::skipped("DUFFY_SKIP_BROWSER", "browser test") {
        return true;
    }
    system::ensure_debian_package(CHROMIUM, "chromium", "DUFFY_SKIP_BROWSER");
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_lists_every_endpoint_from_the_binary_alone() {
    if skipped() {
        return;
    }
    let app = spawn_app_config(Backend::Sqlite, CONFIG).await;
    let page = load(
        format!("{}/docs/", app.address),
        "docs",
        2400,
        Duration::from_secs(15),
    )
    .await;
    assert_local(&page, &app.address);
    assert!(
        page.requests
            .iter()
            .any(|u| u.ends_with("/api/v1/openapi.json")),
        "{:?}",
        page.requests
    );
    // Swagger UI rendered one block per operation of the document.
    let doc = serde_json::to_value(duffy::api::docs::openapi()).unwrap();
    let mut expected: Vec<String> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            expected.push(format!("{method} {path}"));
        }
    }
    expected.sort();
    let mut rendered: Vec<String> = page
        .dom
        .split(r#"class="opblock opblock-"#)
        .skip(1)
        .filter_map(|block| {
            let method = block.split(['"', ' ']).next()?;
            let path = block.split(r#"data-path=""#).nth(1)?.split('"').next()?;
            Some(format!("{method} {path}"))
        })
        .collect();
    rendered.sort();
    assert_eq!(rendered, expected, "the endpoints Swagger UI shows");
    assert!(page.dom.contains("Authorize"), "the Authorize button");
    assert!(page.screenshot.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_draws_pool_bars_from_the_binary_alone() {
    if skipped() {
        return;
    }
    let app = spawn_app_config(Backend::Sqlite, CONFIG).await;
    stage(&app).await;
    let page = load(
        format!("{}/", app.address),
        "status",
        1300,
        // The page reloads itself every 10 s: look before it does.
        Duration::from_secs(3),
    )
    .await;
    assert_local(&page, &app.address);
    assert_eq!(
        page.requests.len(),
        1,
        "one HTML page, nothing else: {:?}",
        page.requests
    );
    for pool in [
        "virt-centos-9s-x86_64",
        "virt-centos-8s-x86_64",
        "metal-broken",
    ] {
        assert!(
            page.dom.contains(&format!(r#"data-pool="{pool}""#)),
            "{pool}"
        );
    }
    assert!(page.dom.contains("hypervisor maintenance"));
    assert!(page.dom.contains("fan failure"));
    // The bars are drawn: the screenshot holds the colours of the ready and deployed
    // segments (#2e9e5b and #3466a5), in proportion to what the pools hold.
    let ready = pixels_of(&page.screenshot, [0x2e, 0x9e, 0x5b]);
    let deployed = pixels_of(&page.screenshot, [0x34, 0x66, 0xa5]);
    assert!(ready > 2_000, "ready segments: {ready} pixels");
    assert!(deployed > 500, "deployed segments: {deployed} pixels");
    assert!(
        ready > deployed,
        "more ready than deployed nodes: {ready} vs {deployed}"
    );
}

/// Puts the service in a state with something in every section of the status page.
async fn stage(app: &TestApp) {
    let (_, key) = app.tenant("ci-job", None).await;
    let t = Auth::Basic("ci-job", &key);
    assert_eq!(
        app.request_session(t, "virt-centos-9s-x86_64", 2)
            .await
            .status,
        201
    );
    assert_eq!(
        app.request_session(t, "virt-centos-8s-x86_64", 1)
            .await
            .status,
        201
    );
    app.take_down_and_pause(
        "virt-centos-8s-x86_64",
        "fan failure",
        "hypervisor maintenance",
    )
    .await;
}
