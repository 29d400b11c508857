//! `GET /`: the status page an operator keeps open. Server-rendered HTML with no external
//! assets (it works on an air-gapped admin network) that refreshes itself: every pool's
//! nodes by state as a bar against its fill level, active sessions, pauses, nodes that
//! need a look (downtime, failed) and the last mechanism errors.
//!
//! The page follows `app.anonymous-read`: when that is off, the browser asks for a tenant
//! name and key (Basic auth).

use std::sync::OnceLock;

use minijinja::Environment;
use serde::Serialize;
use serde_json::Value;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, header};
use warp::reply::{Reply, Response};

use crate::api::error::ApiError;
use crate::api::wire::format_ts;
use crate::api::{State, auth, auth_header, reply, with_state};
use crate::engine::EngineError;
use crate::store::nodes::{Node, NodeState};
use crate::store::{self, pauses};

/// How often the page reloads itself, in seconds.
pub const REFRESH_SECS: u32 = 10;

/// The states a pool's bar shows, in life-cycle order (the five `levels` of the API).
const BAR_STATES: [NodeState; 5] = [
    NodeState::Provisioning,
    NodeState::Ready,
    NodeState::Contextualizing,
    NodeState::Deployed,
    NodeState::Deprovisioning,
];

const TEMPLATE: &str = include_str!("status.html");

/// The status page route.
pub fn routes(state: State) -> BoxedFilter<(Response,)> {
    warp::path::end()
        .and(warp::get())
        .and(auth_header())
        .and(with_state(state))
        .then(show_status)
        .map(reply)
        .boxed()
}

#[derive(Serialize)]
struct Page {
    version: &'static str,
    now: String,
    refresh: u32,
    states: Vec<&'static str>,
    service_pause: Option<PauseRow>,
    pools: Vec<PoolRow>,
    sessions: Vec<SessionRow>,
    pauses: Vec<PauseRow>,
    attention: Vec<NodeRow>,
    errors: Vec<ErrorRow>,
}

#[derive(Serialize)]
struct PoolRow {
    name: String,
    fill_level: u32,
    segments: Vec<Segment>,
    /// Where the fill-level marker sits on the bar, in percent.
    fill_percent: f64,
    paused: Option<String>,
    backoff: Option<String>,
}

#[derive(Serialize)]
struct Segment {
    state: &'static str,
    count: i64,
    percent: f64,
}

#[derive(Serialize)]
struct SessionRow {
    tenant: String,
    count: i64,
}

#[derive(Serialize)]
struct PauseRow {
    scope: String,
    since: String,
    by: String,
    reason: String,
}

#[derive(Serialize)]
struct NodeRow {
    id: i64,
    hostname: String,
    pool: String,
    state: &'static str,
    since: String,
    why: String,
}

#[derive(Serialize)]
struct ErrorRow {
    at: String,
    pool: String,
    phase: &'static str,
    error: String,
}

/// Renders the status page.
pub async fn show_status(auth: Option<String>, state: State) -> Result<Response, ApiError> {
    auth::reader(&state, auth.as_deref()).await?;
    let page = gather(&state).await?;
    templates()
        .and_then(|env| {
            env.get_template("status.html")
                .and_then(|t| t.render(minijinja::value::Serde(&page)))
                .map_err(|e| e.to_string())
        })
        .map(|html| {
            let mut response = html.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        })
        .map_err(|e| ApiError::Internal(format!("rendering the status page failed: {e}")))
}

/// The page's template, parsed once. Its name ends in `.html`, so minijinja escapes every
/// value for HTML.
fn templates() -> Result<&'static Environment<'static>, String> {
    static ENV: OnceLock<Result<Environment<'static>, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.add_template("status.html", TEMPLATE)
            .map_err(|e| e.to_string())?;
        Ok(env)
    })
    .as_ref()
    .map_err(Clone::clone)
}

async fn gather(state: &State) -> Result<Page, EngineError> {
    let engine = &state.engine;
    let counts = engine.node_counts().await?;
    let all_pauses = engine.pauses().await?;
    let pause_row = |p: &pauses::Pause| PauseRow {
        scope: if p.scope == pauses::SERVICE {
            "all pools".to_owned()
        } else {
            p.scope.clone()
        },
        since: format_ts(p.paused_at),
        by: p.paused_by.clone(),
        reason: p.reason.clone(),
    };
    let pools = engine
        .listed_pools()
        .map(|pool| {
            let fill_level = pool.fill_level.unwrap_or(0);
            let count = |s: NodeState| {
                counts
                    .iter()
                    .find(|(p, st, _)| p.as_deref() == Some(pool.name.as_str()) && *st == s)
                    .map_or(0, |(_, _, n)| *n)
            };
            let total: i64 = BAR_STATES.iter().map(|s| count(*s)).sum();
            let scale = total.max(i64::from(fill_level)).max(1) as f64;
            let percent = |n: i64| (n as f64 * 1000.0 / scale).round() / 10.0;
            PoolRow {
                name: pool.name.clone(),
                fill_level,
                segments: BAR_STATES
                    .iter()
                    .map(|s| Segment {
                        state: s.as_str(),
                        count: count(*s),
                        percent: percent(count(*s)),
                    })
                    .collect(),
                fill_percent: percent(i64::from(fill_level)).min(99.5),
                paused: all_pauses
                    .iter()
                    .find(|p| p.scope == pool.name)
                    .map(|p| format!("paused by {}: {}", p.paused_by, p.reason)),
                backoff: engine
                    .pool_backoff()
                    .state(&pool.name)
                    .map(|f| format!("{} failed round(s): {}", f.failures, f.error)),
            }
        })
        .collect();
    let sessions = engine
        .active_sessions_by_tenant()
        .await?
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(tenant, count)| SessionRow { tenant, count })
        .collect();
    let attention = engine
        .nodes_where(&[NodeState::Downtime, NodeState::Failed], None)
        .await?
        .iter()
        .map(attention_row)
        .collect();
    let errors = engine
        .recent_errors()
        .list()
        .into_iter()
        .map(|e| ErrorRow {
            at: format_ts(e.at),
            pool: e.pool,
            phase: e.phase,
            error: e.error,
        })
        .collect();
    Ok(Page {
        version: env!("CARGO_PKG_VERSION"),
        now: store::now().format("%Y-%m-%d %H:%M:%S").to_string(),
        refresh: REFRESH_SECS,
        states: BAR_STATES.iter().map(|s| s.as_str()).collect(),
        service_pause: all_pauses
            .iter()
            .find(|p| p.scope == pauses::SERVICE)
            .map(pause_row),
        pauses: all_pauses.iter().map(pause_row).collect(),
        pools,
        sessions,
        attention,
        errors,
    })
}

/// A node in downtime says who took it down and why; a failed one, its error.
fn attention_row(node: &Node) -> NodeRow {
    let text = |v: Option<&Value>, key: &str| {
        v.and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (since, why) = match node.state {
        NodeState::Downtime => {
            let d = node.data.0.get("downtime");
            (
                text(d, "since"),
                format!("taken down by {}: {}", text(d, "by"), text(d, "reason")),
            )
        }
        _ => {
            let e = node.data.0.get("error");
            (text(e, "failed_at"), text(e, "detail"))
        }
    };
    NodeRow {
        id: node.id,
        hostname: node.hostname.clone().unwrap_or_default(),
        pool: node.pool.clone().unwrap_or_default(),
        state: node.state.as_str(),
        since,
        why,
    }
}
