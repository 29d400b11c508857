//! Prometheus metrics: what operators graph and alert on (`GET /metrics`).
//!
//! Every process (and every test app) has its own recorder, so nothing here is global:
//! events are recorded through [`Metrics`], which the engine, the API and the v2 layer
//! share. Counters and histograms are kept as events happen; the gauges that describe
//! the database (nodes per pool and state, active sessions per tenant, pauses) are read
//! from it when `/metrics` is scraped and rendered from that reading alone ([`Gauges`]),
//! so they are never stale: a pool retired since the last scrape is gone, not frozen at
//! its last counts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use metrics::{Recorder, with_local_recorder};
use metrics_exporter_prometheus::formatting::{
    sanitize_label_key, sanitize_label_value, write_help_line, write_type_line,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Histogram buckets (seconds): from a fast HTTP answer to a slow Ansible run.
const BUCKETS: [f64; 18] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0, 1800.0,
];

/// How a `POST /sessions` ended, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionOutcome {
    /// The nodes were handed out.
    Granted,
    /// Not enough ready nodes (422 `can't reserve nodes`).
    CantReserve,
    /// The tenant's quota would be exceeded (403).
    Quota,
    /// Allocations are paused (503).
    Paused,
    /// Contextualization failed and no replacement was left (503).
    Unavailable,
    /// Refused for another reason (a retired tenant, another tenant's id).
    Refused,
    /// An internal fault.
    Error,
}

impl SessionOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionOutcome::Granted => "granted",
            SessionOutcome::CantReserve => "cant_reserve",
            SessionOutcome::Quota => "quota",
            SessionOutcome::Paused => "paused",
            SessionOutcome::Unavailable => "unavailable",
            SessionOutcome::Refused => "refused",
            SessionOutcome::Error => "error",
        }
    }
}

/// One process's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A fresh set of metrics, histograms rendered as Prometheus histograms.
    pub fn new() -> Metrics {
        let builder = PrometheusBuilder::new();
        // The buckets are constants and valid: an error here is a programming error
        // that the unit tests catch; fall back to summaries rather than panic.
        let builder = match builder.set_buckets(&BUCKETS) {
            Ok(b) => b,
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let metrics = Metrics { recorder, handle };
        metrics.describe();
        metrics
    }

    fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        with_local_recorder(&self.recorder, f)
    }

    fn describe(&self) {
        let r: &dyn Recorder = &self.recorder;
        let help = |name: &'static str, text: &'static str, kind: char| {
            let key = metrics::KeyName::from_const_str(name);
            let text = metrics::SharedString::const_str(text);
            match kind {
                'c' => r.describe_counter(key, None, text),
                'g' => r.describe_gauge(key, None, text),
                _ => r.describe_histogram(key, Some(metrics::Unit::Seconds), text),
            }
        };
        help(
            "duffy_session_requests_total",
            "Session requests by outcome (granted, cant_reserve, quota, paused, …).",
            'c',
        );
        help(
            "duffy_handout_seconds",
            "Time to hand out the nodes of a granted session request.",
            'h',
        );
        help(
            "duffy_mechanism_runs_total",
            "Provisioning and deprovisioning runs by pool, phase and outcome.",
            'c',
        );
        help(
            "duffy_mechanism_run_seconds",
            "Duration of provisioning and deprovisioning runs by pool and phase.",
            'h',
        );
        help(
            "duffy_http_requests_total",
            "HTTP requests by method, route and status.",
            'c',
        );
        help(
            "duffy_http_request_seconds",
            "HTTP request latency by method and route.",
            'h',
        );
        help(
            "duffy_v2_calls_total",
            "Calls of the v2 API by endpoint and outcome.",
            'c',
        );
    }

    /// A `POST /sessions` ended; `handout` is how long a granted one took.
    pub fn session_request(&self, outcome: SessionOutcome, handout: Option<Duration>) {
        self.with(|| {
            metrics::counter!("duffy_session_requests_total", "outcome" => outcome.as_str())
                .increment(1);
            if let Some(d) = handout {
                metrics::histogram!("duffy_handout_seconds").record(d.as_secs_f64());
            }
        });
    }

    /// A mechanism run ended: `phase` is `provision` or `deprovision`, `outcome` `ok`,
    /// `partial` or `failed`.
    pub fn mechanism_run(
        &self,
        pool: &str,
        phase: &'static str,
        outcome: &'static str,
        took: Duration,
    ) {
        let pool = pool.to_owned();
        self.with(|| {
            metrics::counter!("duffy_mechanism_runs_total", "pool" => pool.clone(), "phase" => phase, "outcome" => outcome)
                .increment(1);
            metrics::histogram!("duffy_mechanism_run_seconds", "pool" => pool, "phase" => phase)
                .record(took.as_secs_f64());
        });
    }

    /// An HTTP request was answered; `route` is a route template, never a raw path.
    pub fn http_request(&self, method: &str, route: &'static str, status: u16, took: Duration) {
        let method = method.to_owned();
        self.with(|| {
            metrics::counter!("duffy_http_requests_total", "method" => method.clone(), "route" => route, "status" => status.to_string())
                .increment(1);
            metrics::histogram!("duffy_http_request_seconds", "method" => method, "route" => route)
                .record(took.as_secs_f64());
        });
    }

    /// A v2 call was answered.
    pub fn v2_call(&self, endpoint: &'static str, outcome: &'static str) {
        self.with(|| {
            metrics::counter!("duffy_v2_calls_total", "endpoint" => endpoint, "outcome" => outcome)
                .increment(1);
        });
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// The metrics in Prometheus' text format, with the gauges of a database reading.
    pub fn render_with(&self, gauges: &Gauges) -> String {
        let mut text = self.handle.render();
        gauges.render_into(&mut text);
        text
    }

    /// Folds recorded histogram samples into their buckets; run it periodically so that
    /// samples do not pile up between scrapes.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}

/// The gauges `/metrics` reads from the database, with their help texts.
const GAUGE_HELP: [(&str, &str); 3] = [
    ("duffy_nodes", "Live nodes by pool and state."),
    ("duffy_sessions_active", "Active sessions by tenant."),
    (
        "duffy_allocations_paused",
        "1 while allocations of the scope (a pool, or * for the service) are paused.",
    ),
];

/// One reading of the gauges that describe the database. They are not kept in the
/// recorder, which can only add label sets: rendered from the reading of each scrape,
/// a label set the database no longer has (a retired pool's nodes) is no longer shown.
#[derive(Debug, Default)]
pub struct Gauges {
    /// Rendered label sets and values, by gauge name.
    families: BTreeMap<&'static str, BTreeMap<String, f64>>,
}

impl Gauges {
    /// Sets one gauge of the reading; setting the same labels again replaces the value.
    pub fn set(&mut self, name: &'static str, labels: &[(&'static str, String)], value: f64) {
        let labels = labels
            .iter()
            .map(|(k, v)| format!("{}=\"{}\"", sanitize_label_key(k), sanitize_label_value(v)))
            .collect::<Vec<_>>()
            .join(",");
        self.families.entry(name).or_default().insert(labels, value);
    }

    /// Appends the reading in Prometheus' text format, written with the exporter's own
    /// helpers as the recorder writes its families: help, type, one line per label set,
    /// a blank line.
    fn render_into(&self, out: &mut String) {
        for (name, samples) in &self.families {
            if let Some((_, help)) = GAUGE_HELP.iter().find(|(n, _)| n == name) {
                write_help_line(out, name, None, None, help);
            }
            write_type_line(out, name, None, None, "gauge");
            for (labels, value) in samples {
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {value}");
                } else {
                    let _ = writeln!(out, "{name}{{{labels}}} {value}");
                }
            }
            out.push('\n');
        }
    }
}

/// How often recorded samples are folded into their histograms.
pub const UPKEEP_PERIOD: Duration = Duration::from_secs(5);

/// Runs [`Metrics::upkeep`] every [`UPKEEP_PERIOD`] until `token` is cancelled.
pub async fn upkeep_loop(
    metrics: std::sync::Arc<Metrics>,
    token: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tokio::time::sleep(UPKEEP_PERIOD) => metrics.upkeep(),
        }
    }
}

/// The route template of a request path, for the `route` label: ids and names are
/// replaced by `:id`/`:name` (no braces: naive parsers of the text format choke on them),
/// so that the label set stays small.
pub fn route_label(path: &str) -> &'static str {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        [""] => "/",
        ["api", "v1", "sessions"] => "/api/v1/sessions",
        ["api", "v1", "sessions", _] => "/api/v1/sessions/:id",
        ["api", "v1", "pools"] => "/api/v1/pools",
        ["api", "v1", "pools", _] => "/api/v1/pools/:name",
        ["api", "v1", "nodes"] => "/api/v1/nodes",
        ["api", "v1", "nodes", _] => "/api/v1/nodes/:id",
        ["api", "v1", "tenants"] => "/api/v1/tenants",
        ["api", "v1", "tenants", _] => "/api/v1/tenants/:id",
        ["api", "v1", "service"] => "/api/v1/service",
        ["api", "v1", "overtime"] => "/api/v1/overtime",
        ["api", "v1", "openapi.json"] => "/api/v1/openapi.json",
        ["openapi.json"] => "/openapi.json",
        ["docs", ..] => "/docs",
        ["metrics"] => "/metrics",
        ["Node", "get"] => "/Node/get",
        ["Node", "done"] => "/Node/done",
        ["Node", "fail"] => "/Node/fail",
        ["Inventory"] => "/Inventory",
        ["NodeSetAdmin", _] => "/NodeSetAdmin/:id",
        ["NodeRecover", _] => "/NodeRecover/:id",
        ["PauseService"] => "/PauseService",
        ["ResumeService"] => "/ResumeService",
        ["Overtime"] => "/Overtime",
        ["Help"] => "/Help",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_templates() {
        assert_eq!(route_label("/api/v1/sessions/42"), "/api/v1/sessions/:id");
        assert_eq!(route_label("/api/v1/pools/a%20b"), "/api/v1/pools/:name");
        assert_eq!(route_label("/"), "/");
        assert_eq!(route_label("/docs/index.html"), "/docs");
        assert_eq!(route_label("/Node/get"), "/Node/get");
        assert_eq!(route_label("/NodeSetAdmin/3"), "/NodeSetAdmin/:id");
        assert_eq!(route_label("/some/random/path"), "other");
    }

    #[test]
    fn events_show_up_in_the_rendering() {
        let m = Metrics::new();
        m.session_request(SessionOutcome::Granted, Some(Duration::from_millis(3)));
        m.session_request(SessionOutcome::Quota, None);
        m.http_request("GET", "/api/v1/pools", 200, Duration::from_millis(1));
        let mut gauges = Gauges::default();
        gauges.set(
            "duffy_nodes",
            &[("pool", "p".into()), ("state", "ready".into())],
            3.0,
        );
        m.upkeep();
        let text = m.render_with(&gauges);
        assert!(
            text.contains(r#"duffy_session_requests_total{outcome="granted"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"duffy_session_requests_total{outcome="quota"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("duffy_handout_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(r#"duffy_nodes{pool="p",state="ready"} 3"#),
            "{text}"
        );
        assert!(
            text.contains("# TYPE duffy_handout_seconds histogram"),
            "{text}"
        );
        // Two sets of metrics know nothing of each other.
        assert!(!Metrics::new().render().contains("granted"));
    }

    #[test]
    fn gauges_show_only_the_last_reading() {
        let m = Metrics::new();
        let mut first = Gauges::default();
        first.set("duffy_nodes", &[("pool", "gone".into())], 2.0);
        first.set("duffy_nodes", &[("pool", "kept".into())], 1.0);
        first.set("duffy_nodes", &[("pool", "kept".into())], 4.0);
        let text = m.render_with(&first);
        assert!(
            text.contains(
                "# HELP duffy_nodes Live nodes by pool and state.\n\
                 # TYPE duffy_nodes gauge\n\
                 duffy_nodes{pool=\"gone\"} 2\n\
                 duffy_nodes{pool=\"kept\"} 4\n\n"
            ),
            "{text}"
        );
        let mut second = Gauges::default();
        second.set("duffy_nodes", &[("pool", "kept".into())], 4.0);
        let text = m.render_with(&second);
        assert!(!text.contains("gone"), "{text}");
        assert!(text.contains("duffy_nodes{pool=\"kept\"} 4\n"), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut gauges = Gauges::default();
        gauges.set(
            "duffy_sessions_active",
            &[("tenant", "a\"b\nc".into())],
            1.0,
        );
        let text = Metrics::new().render_with(&gauges);
        assert!(
            text.contains(r#"duffy_sessions_active{tenant="a\"b\nc"} 1"#),
            "{text}"
        );
    }
}
