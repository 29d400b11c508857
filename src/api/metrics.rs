//! `GET /metrics`: the Prometheus text format, for scrapers.
//!
//! The gauges that describe the database are read when the scraper asks (see
//! [`crate::metrics`]); reading follows `app.anonymous-read` like the pools and nodes.

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::api::error::ApiError;
use crate::api::{State, auth, auth_header, reply, with_state};
use crate::engine::EngineError;
use crate::http::metrics_text;
use crate::metrics::Gauges;
use crate::store::{nodes::NodeState, pauses};

/// The metrics route of the v3 server.
pub fn routes(state: State) -> BoxedFilter<(Response,)> {
    warp::path!("metrics")
        .and(warp::get())
        .and(auth_header())
        .and(with_state(state))
        .then(show_metrics)
        .map(reply)
        .boxed()
}

/// Renders every metric, with the gauges read from the database now.
pub async fn show_metrics(auth: Option<String>, state: State) -> Result<Response, ApiError> {
    auth::reader(&state, auth.as_deref()).await?;
    let gauges = read_gauges(&state).await?;
    Ok(metrics_text(state.engine.metrics(), &gauges))
}

/// Reads the node, session and pause gauges from the database. Every configured pool gets
/// every state (0 when empty), so a count that drops to zero is reported as zero; a pool
/// no longer configured is shown while it has live nodes (until it is retired).
async fn read_gauges(state: &State) -> Result<Gauges, EngineError> {
    let engine = &state.engine;
    let mut gauges = Gauges::default();
    let counts = engine.node_counts().await?;
    let mut pools: Vec<String> = engine
        .config()
        .nodepools
        .concrete()
        .map(|p| p.name.clone())
        .collect();
    for (pool, _, _) in &counts {
        let name = pool.clone().unwrap_or_default();
        if !pools.contains(&name) {
            pools.push(name);
        }
    }
    for pool in &pools {
        for node_state in NodeState::ALL.into_iter().filter(|s| *s != NodeState::Done) {
            let n = counts
                .iter()
                .find(|(p, s, _)| p.as_deref().unwrap_or_default() == pool && *s == node_state)
                .map_or(0, |(_, _, n)| *n);
            gauges.set(
                "duffy_nodes",
                &[("pool", pool.clone()), ("state", node_state.to_string())],
                n as f64,
            );
        }
    }
    for (tenant, n) in engine.active_sessions_by_tenant().await? {
        gauges.set("duffy_sessions_active", &[("tenant", tenant)], n as f64);
    }
    let paused = engine.pauses().await?;
    let scopes = std::iter::once(pauses::SERVICE.to_owned())
        .chain(engine.config().nodepools.concrete().map(|p| p.name.clone()));
    for scope in scopes {
        let on = paused.iter().any(|p| p.scope == scope);
        gauges.set(
            "duffy_allocations_paused",
            &[("scope", scope)],
            if on { 1.0 } else { 0.0 },
        );
    }
    Ok(gauges)
}
