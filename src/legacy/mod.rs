//! The Duffy v2 API for old CI jobs: `/Node/get`, `/Node/done`, `/Node/fail`, `/Inventory`.
//!
//! A translation layer: it parses the v2 query, maps `ver`/`arch`/`flavor` onto a v3 pool
//! ([`poolmap`]), calls the v3 API over HTTP with the typed [`crate::client`], and renders
//! the answer the way v2 clients parse it ([`answer`]). It never touches the engine, the v3
//! server's code or the database, so it runs the same inside `duffy serve --legacy` (pointed
//! at the server itself) and standalone in `duffy serve-legacy`. It keeps no state a restart
//! could lose: every answer is derived from v3 answers.
//!
//! What it uses of the crate: [`crate::client`] (the v3 calls), [`crate::config`] (its
//! settings), [`crate::http`] (serving), [`crate::metrics`] (counting its calls),
//! [`crate::protocol`] (the v2 endpoints and texts; the v3 error kinds it decides by) and
//! [`crate::templates`] (`mangle_hostname`). A v3 refusal is read by its
//! [`ErrorKind`], never by its wording. The contract is `docs/legacy-v2.md` §5.

pub mod admin;
pub mod answer;
pub mod inventory;
pub mod node;
pub mod poolmap;
pub mod query;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use minijinja::Environment;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::client::{Auth, Client, ClientError};
use crate::config::{ConnectionLimits, MetaclientConfig};
use crate::http;
use crate::metrics::{Gauges, Metrics};
use crate::protocol::v2::Endpoint;
use crate::protocol::v3::ErrorKind;
use answer::{V2Error, reply};
use poolmap::{PoolMap, PoolMapError};

/// How long a pool's fill level is remembered. Pools change only when the v3 server is
/// reconfigured and restarted, and the fill level is public (anonymous `GET /pools`), so a
/// stale entry can at worst delay a new pool or limit by this long; it never decides who
/// may do what.
pub const POOL_CACHE_TTL: Duration = Duration::from_secs(30);

/// The v2 layer cannot be set up from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The v3 URL is unusable.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A poolmap entry is broken.
    #[error(transparent)]
    PoolMap(#[from] PoolMapError),
    /// `mangle_hostname` is not a valid template.
    #[error("metaclient.mangle_hostname: invalid template: {0}")]
    Mangle(String),
    /// `fail-hold` or `timeout` is out of range.
    #[error("metaclient.{0}: must be between 1 second and 100 years")]
    Duration(&'static str),
}

/// The translation layer: what every v2 request needs.
pub struct Legacy {
    client: Client,
    usermap: HashMap<String, String>,
    poolmap: PoolMap,
    mangle: Option<Environment<'static>>,
    fail_hold: TimeDelta,
    /// Pool name → fill level (`None` inside: the pool is not filled), for
    /// [`POOL_CACHE_TTL`]; unknown pools are remembered as absent just as long.
    pools: moka::future::Cache<String, Option<Option<i64>>>,
    /// Where v2 calls are counted (the server's own under `duffy serve --legacy`).
    metrics: Arc<Metrics>,
    /// The unkeyed `/Inventory`, shared by requests that arrive together.
    inventory: inventory::FullInventory,
}

const MANGLE: &str = "mangle_hostname";

impl Legacy {
    /// Builds the layer from `metaclient.*`, talking to the v3 API at `api_url`
    /// (e.g. `http://127.0.0.1:8080/api/v1`).
    pub fn new(config: &MetaclientConfig, api_url: &str) -> Result<Legacy, SetupError> {
        let timeout = positive(config.timeout, "timeout")?;
        positive(config.fail_hold, "fail-hold")?;
        let mangle = match &config.mangle_hostname {
            None => None,
            Some(template) => {
                let mut env = crate::templates::environment();
                env.add_template_owned(MANGLE, template.clone())
                    .map_err(|e| SetupError::Mangle(e.to_string()))?;
                Some(env)
            }
        };
        Ok(Legacy {
            // A v2 client waits for one answer: an attempt that timed out is not sent again
            // (a retry would wait for it, and the answer come later still).
            client: Client::new(api_url, timeout)?.retrying_timeouts(false),
            usermap: config.usermap.iter().cloned().collect(),
            poolmap: PoolMap::new(&config.poolmap)?,
            mangle,
            fail_hold: config.fail_hold,
            pools: moka::future::Cache::builder()
                .max_capacity(1_000)
                .time_to_live(POOL_CACHE_TTL)
                .build(),
            metrics: Arc::new(Metrics::new()),
            inventory: inventory::FullInventory::default(),
        })
    }

    /// Counts v2 calls in `metrics` (the v3 server's, when both run in one process).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Legacy {
        self.metrics = metrics;
        self
    }

    /// The metrics v2 calls are counted in.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The v3 API this layer forwards to.
    pub fn api_url(&self) -> &str {
        self.client.api_url().as_str()
    }

    /// Credentials for a v2 key: Basic with the `usermap` name when listed (the original's
    /// way, needed for tenants whose keys are bcrypt hashes), else Bearer, which the v3 API
    /// resolves by the key alone.
    fn auth(&self, key: &str) -> Auth {
        let secret = SecretString::from(key.to_owned());
        match self.usermap.get(key) {
            Some(name) => Auth::Basic {
                name: name.clone(),
                key: secret,
            },
            None => Auth::Bearer(secret),
        }
    }

    /// The pool's fill level: `None` when the pool is unknown or abstract, `Some(None)` when
    /// it exists but is not filled.
    ///
    /// Each caller looks up with its own credentials and only answers are cached: coalescing
    /// concurrent lookups would hand one caller's refusal (a bad key) to the others.
    async fn fill_level(&self, auth: &Auth, pool: &str) -> Result<Option<Option<i64>>, V2Error> {
        if let Some(known) = self.pools.get(pool).await {
            return Ok(known);
        }
        let known = match self.client.show_pool(auth, pool).await {
            Ok(p) => Some(p.fill_level),
            Err(e) => match e.kind() {
                // Unknown, or not a pool v3 fills (abstract, or without a fill level: 422).
                Some(
                    ErrorKind::NotFound
                    | ErrorKind::Invalid
                    | ErrorKind::NoNodes
                    | ErrorKind::SessionRetired
                    | ErrorKind::TenantRetired
                    | ErrorKind::Unprocessable,
                ) => None,
                Some(
                    ErrorKind::Unauthenticated | ErrorKind::Forbidden | ErrorKind::QuotaExceeded,
                ) => return Err(V2Error::InvalidKey),
                Some(
                    ErrorKind::Conflict
                    | ErrorKind::Internal
                    | ErrorKind::Paused
                    | ErrorKind::Unavailable,
                )
                | None => return Err(e.into()),
            },
        };
        self.pools.insert(pool.to_owned(), known).await;
        Ok(known)
    }

    /// An inventory hostname through `mangle_hostname` (`docs/legacy-v2.md` §5 k).
    fn mangle(&self, hostname: &str) -> String {
        let Some(env) = &self.mangle else {
            return hostname.to_owned();
        };
        match env
            .get_template(MANGLE)
            .and_then(|t| t.render(minijinja::context! { hostname }))
        {
            Ok(mangled) => mangled,
            Err(e) => {
                tracing::warn!(error = %e, "metaclient.mangle_hostname failed; hostname kept: {e}");
                hostname.to_owned()
            }
        }
    }
}

fn positive(value: TimeDelta, key: &'static str) -> Result<Duration, SetupError> {
    value
        .to_std()
        .ok()
        .filter(|d| *d >= Duration::from_secs(1) && *d <= Duration::from_secs(100 * 366 * 86_400))
        .ok_or(SetupError::Duration(key))
}

/// A century of minutes: the largest `/Overtime` threshold.
const MAX_MINUTES: i64 = 100 * 366 * 24 * 60;

/// The v2 routes; anything else is rejected for the caller's `recover` (404/405).
pub fn routes(legacy: Arc<Legacy>) -> BoxedFilter<(Response,)> {
    let route = |path: BoxedFilter<()>, endpoint: Endpoint| {
        let legacy = legacy.clone();
        path.and(warp::get())
            .and(http::raw_query())
            .then(move |query: String| handle(legacy.clone(), endpoint, query, String::new()))
    };
    let with_id = |name: &'static str, endpoint: Endpoint| {
        let legacy = legacy.clone();
        warp::path(name)
            .and(warp::path::param::<String>())
            .and(warp::path::end())
            .and(warp::get())
            .and(http::raw_query())
            .then(move |id: String, query: String| handle(legacy.clone(), endpoint, query, id))
    };
    route(warp::path!("Node" / "get").boxed(), Endpoint::NodeGet)
        .or(route(
            warp::path!("Node" / "done").boxed(),
            Endpoint::NodeDone,
        ))
        .unify()
        .or(route(
            warp::path!("Node" / "fail").boxed(),
            Endpoint::NodeFail,
        ))
        .unify()
        .or(route(warp::path!("Inventory").boxed(), Endpoint::Inventory))
        .unify()
        .or(with_id("NodeSetAdmin", Endpoint::NodeSetAdmin))
        .unify()
        .or(with_id("NodeRecover", Endpoint::NodeRecover))
        .unify()
        .or(route(
            warp::path!("PauseService").boxed(),
            Endpoint::PauseService,
        ))
        .unify()
        .or(route(
            warp::path!("ResumeService").boxed(),
            Endpoint::ResumeService,
        ))
        .unify()
        .or(route(warp::path!("Overtime").boxed(), Endpoint::Overtime))
        .unify()
        .or(route(warp::path!("Help").boxed(), Endpoint::Help))
        .unify()
        .boxed()
}

async fn handle(legacy: Arc<Legacy>, endpoint: Endpoint, query: String, id: String) -> Response {
    let id = http::path_segment(&id);
    let result = match query::parse(&query) {
        Err(e) => Err(e.into()),
        Ok(params) => match endpoint {
            Endpoint::NodeGet => node::get(&legacy, params).await,
            Endpoint::NodeDone => node::done(&legacy, params).await,
            Endpoint::NodeFail => node::fail(&legacy, params).await,
            Endpoint::Inventory => inventory::inventory(&legacy, params).await,
            Endpoint::NodeSetAdmin => admin::node_action(&legacy, params, &id, "downtime").await,
            Endpoint::NodeRecover => admin::node_action(&legacy, params, &id, "recover").await,
            Endpoint::PauseService => admin::pause(&legacy, params, true).await,
            Endpoint::ResumeService => admin::pause(&legacy, params, false).await,
            Endpoint::Overtime => admin::overtime(&legacy, params).await,
            Endpoint::Help => Ok(admin::help()),
        },
    };
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.outcome(),
    };
    legacy.metrics.v2_call(endpoint.path(), outcome);
    reply(result)
}

/// Serves the v2 routes alone on `listener` until `shutdown` fires (`duffy serve-legacy`),
/// with their own `/metrics`.
pub async fn serve(
    listener: TcpListener,
    legacy: Arc<Legacy>,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    let metrics = legacy.metrics.clone();
    let upkeep = tokio::spawn(crate::metrics::upkeep_loop(
        metrics.clone(),
        shutdown.clone(),
    ));
    let scrape = {
        let metrics = metrics.clone();
        warp::path!("metrics")
            .and(warp::get())
            .map(move || http::metrics_text(&metrics, &Gauges::default()))
    };
    let all = routes(legacy).or(scrape).unify().boxed();
    http::serve(listener, all, metrics, limits, shutdown).await;
    upkeep.abort();
}

#[cfg(test)]
mod tests;
