//! The typed configuration, and its validation from the merged YAML.
//!
//! Deserialization goes through private `Raw*` mirrors of the file format (kebab-case keys,
//! `deny_unknown_fields`, validating newtypes) under `serde_path_to_error`, so every error
//! knows its key path. The public types hold parsed, defaulted values only.

use std::fmt;
use std::str::FromStr;
use std::time::Duration as StdDuration;

use chrono::TimeDelta;
use serde::Deserialize;
use serde::de::{Deserializer, Error as _};
use yaml_serde::{Mapping, Value};

use super::ConfigError;
use super::database::{self, DatabaseUrl};
use super::fields::{Dur, FieldError, PositiveInt, Template, TextLike, describe, text_like, typed};
use super::merge::{KeyPath, Provenance};
use super::pools::{self, NodePools};

// ---------------------------------------------------------------------------------------------
// Public model
// ---------------------------------------------------------------------------------------------

/// The validated configuration every subcommand runs on.
#[derive(Debug, Clone)]
pub struct Config {
    /// The v3 API server (`duffy serve`).
    pub app: AppConfig,
    /// What `duffy client` talks to; absent unless configured.
    pub client: Option<ClientConfig>,
    /// The legacy v2 translation layer (`duffy serve-legacy`, `serve --legacy`).
    pub metaclient: MetaclientConfig,
    /// Background task periods and node-state deadlines.
    pub tasks: TasksConfig,
    /// Where the data lives.
    pub database: DatabaseConfig,
    /// Tenant defaults; required only by commands that use the API or the database.
    pub defaults: Option<Defaults>,
    /// Every node pool, abstract and concrete, in definition order.
    pub nodepools: NodePools,
}

impl Config {
    /// The retry policy in force: `app.retries`, else `defaults.retries`, else the built-in one.
    pub fn effective_retries(&self) -> Retries {
        self.app
            .retries
            .clone()
            .or_else(|| self.defaults.as_ref().and_then(|d| d.retries.clone()))
            .unwrap_or_default()
    }
}

/// The log levels Duffy's configuration and `--loglevel` accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    /// Everything, including per-request internals.
    Trace,
    /// Diagnostic detail.
    Debug,
    /// Normal operation (the default).
    #[default]
    Info,
    /// Something unexpected that the service survived.
    Warning,
    /// A failed operation.
    Error,
    /// Python's highest level; tracing has none above `error`.
    Critical,
}

impl LogLevel {
    /// The configuration spelling (`info`, `warning`), as the banner prints it.
    pub fn as_str(&self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
        }
    }

    /// The `tracing` filter directive for this level (`warn` for Warning, `error` for Critical).
    pub fn tracing_directive(&self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warning => "warn",
            LogLevel::Error | LogLevel::Critical => "error",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A log level name that is not one of Duffy's six.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unknown log level '{0}': expected one of trace, debug, info, warning, error, critical")]
pub struct InvalidLogLevel(pub String);

impl FromStr for LogLevel {
    type Err = InvalidLogLevel;

    /// Case-insensitive, so `INFO` from an old config or `-l WARNING` both work.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "trace" => Ok(LogLevel::Trace),
            "debug" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warning" => Ok(LogLevel::Warning),
            "error" => Ok(LogLevel::Error),
            "critical" => Ok(LogLevel::Critical),
            _ => Err(InvalidLogLevel(s.to_owned())),
        }
    }
}

/// Settings of the v3 API listener.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// `app.loglevel`, default `info`.
    pub loglevel: LogLevel,
    /// `app.host`, default `127.0.0.1`.
    pub host: String,
    /// `app.port`, default `8080`.
    pub port: u16,
    /// `app.retries`; missing keys fall back to `defaults.retries`, then to the built-in values.
    pub retries: Option<Retries>,
    /// `app.anonymous-read` (extension, default true): anonymous GETs on sessions, nodes, pools.
    pub anonymous_read: bool,
    /// `app.ssh` (extension): how the SSH step of contextualization reaches the nodes.
    pub ssh: SshConfig,
    /// `app.connections` (extension): what a client connection may take of the server.
    pub connections: ConnectionLimits,
    /// `app.idempotency-window` (extension), default 24 h: how long a tenant's
    /// `Idempotency-Key` stands for the session its request created.
    pub idempotency_window: StdDuration,
}

/// The default of `app.idempotency-window`.
pub const IDEMPOTENCY_WINDOW: StdDuration = StdDuration::from_secs(24 * 3600);

/// `app.connections` (extension): bounds on client connections, for every listener of the
/// process (the v3 API, and the v2 layer's own port under `serve-legacy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// `max`: connections open at once per listener; one more is answered 503 and closed.
    pub max: u32,
    /// `idle-timeout`: a connection with no request in progress that receives nothing for
    /// this long is closed (a fresh connection, or a kept-alive one between requests).
    pub idle_timeout: StdDuration,
    /// `header-timeout`: once a request's first byte has arrived, its whole head must arrive
    /// within this; otherwise the connection is closed.
    pub header_timeout: StdDuration,
    /// `body-timeout`: a request's body must arrive within this once its head has; otherwise
    /// the answer is 408.
    pub body_timeout: StdDuration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max: 4096,
            idle_timeout: StdDuration::from_secs(60),
            header_timeout: StdDuration::from_secs(10),
            body_timeout: StdDuration::from_secs(30),
        }
    }
}

/// `app.ssh` (extension): the ssh client run to push tenant keys to nodes and remove them.
/// The defaults are the original Duffy's (`docs/v3-api.md` §12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshConfig {
    /// `command`, default `/usr/bin/ssh`.
    pub command: String,
    /// `user`, default `root`: the remote user whose `authorized_keys` is edited.
    pub user: String,
    /// `port`, default `22`.
    pub port: u16,
    /// `authorized-keys`, default `~<user>/.ssh/authorized_keys`: a remote shell word.
    pub authorized_keys: String,
    /// `timeout`, default `60s`: the bound on each ssh run.
    pub timeout: StdDuration,
    /// `options`, default none: extra `-o` options, given before the original's so that they
    /// win (ssh keeps the first value of an option), e.g. `IdentityFile=/etc/duffy/id`.
    pub options: Vec<String>,
}

impl Default for SshConfig {
    fn default() -> Self {
        SshConfig {
            command: "/usr/bin/ssh".to_owned(),
            user: "root".to_owned(),
            port: 22,
            authorized_keys: "~root/.ssh/authorized_keys".to_owned(),
            timeout: StdDuration::from_secs(60),
            options: Vec::new(),
        }
    }
}

/// A retry policy with exponential backoff, for operations against flaky providers.
#[derive(Debug, Clone, PartialEq)]
pub struct Retries {
    /// `no-attempts` (≥ 1).
    pub no_attempts: u32,
    /// `delay-min` in seconds (≥ 0): the first delay.
    pub delay_min: f64,
    /// `delay-max` in seconds (≥ 0): the cap on any delay.
    pub delay_max: f64,
    /// `delay-backoff-factor` (≥ 1): each delay is the previous one times this.
    pub delay_backoff_factor: f64,
    /// `delay-add-fuzz` in seconds (≥ 0): random jitter added to each delay.
    pub delay_add_fuzz: f64,
}

impl Default for Retries {
    /// The original's built-in policy: 5 attempts, 0.1 s growing ×2 up to 1.6 s, 0.3 s fuzz.
    fn default() -> Self {
        Retries {
            no_attempts: 5,
            delay_min: 0.1,
            delay_max: 1.6,
            delay_backoff_factor: 2.0,
            delay_add_fuzz: 0.3,
        }
    }
}

/// What `duffy client` reads from the configuration; command-line options override it.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `client.url`: the API base URL including `/api/v1`.
    pub url: Option<String>,
    /// `client.auth`: the tenant's credentials.
    pub auth: Option<ClientAuth>,
}

/// A tenant's credentials for `duffy client`.
#[derive(Debug, Clone)]
pub struct ClientAuth {
    /// `client.auth.name`: the tenant name.
    pub name: Option<String>,
    /// `client.auth.key`: the tenant's API key, which must be a UUID.
    pub key: Option<uuid::Uuid>,
}

/// Settings of the legacy v2 translation layer.
#[derive(Debug, Clone)]
pub struct MetaclientConfig {
    /// `metaclient.host`, default `127.0.0.1`.
    pub host: String,
    /// `metaclient.port`, default `9090`.
    pub port: u16,
    /// `metaclient.dest`: the v3 base URL; `None` lets the caller apply its default.
    pub dest: Option<String>,
    /// `metaclient.loglevel`, default `info`.
    pub loglevel: LogLevel,
    /// `metaclient.usermap`: legacy key → tenant name, in file order.
    pub usermap: Vec<(String, String)>,
    /// `metaclient.poolmap`: ver/arch/flavor → pool rules, first match wins.
    pub poolmap: Vec<PoolMapEntry>,
    /// `metaclient.mangle_hostname`: a template applied to inventory hostnames.
    pub mangle_hostname: Option<String>,
    /// `metaclient.fail-hold` (extension, default 12h): how far `/Node/fail` extends a session.
    pub fail_hold: TimeDelta,
    /// `metaclient.timeout` (extension, default 60s): the bound on each v3 call.
    pub timeout: TimeDelta,
}

/// One poolmap rule; `ver`/`arch`/`flavor` are exact strings or `^…$` regexes.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolMapEntry {
    /// A template rendered with the request's `ver`, `arch` and `flavor`.
    pub pool: String,
    /// The CentOS version to match (YAML numbers such as `7` are kept as text).
    pub ver: Option<String>,
    /// The architecture to match.
    pub arch: Option<String>,
    /// The flavor to match.
    pub flavor: Option<String>,
}

/// Periods of the in-process background tasks, and node-state deadlines.
#[derive(Debug, Clone)]
pub struct TasksConfig {
    /// `tasks.periodic.fill-pools.interval`, default 300 s.
    pub fill_pools_interval: StdDuration,
    /// `tasks.periodic.expire-sessions.interval`, default 300 s.
    pub expire_sessions_interval: StdDuration,
    /// `tasks.deadlines` (extension).
    pub deadlines: Deadlines,
    /// `tasks.fill-backoff` (extension): how long a pool whose provisioning failed is left
    /// alone; the delay starts at `min`, doubles with each failure in a row, up to `max`.
    pub fill_backoff: FillBackoff,
    /// `tasks.lease` (extension), default 30 s: an instance whose heartbeat is older is
    /// dead, and its work is taken over; each instance renews its heartbeat every third.
    pub lease: StdDuration,
}

/// `tasks.fill-backoff.{min,max}` (extension), default 10 s and 15 min.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillBackoff {
    /// The delay after the first failure.
    pub min: StdDuration,
    /// The longest delay.
    pub max: StdDuration,
}

impl Default for FillBackoff {
    fn default() -> Self {
        FillBackoff {
            min: StdDuration::from_secs(10),
            max: StdDuration::from_secs(15 * 60),
        }
    }
}

/// Extension keys tasks.deadlines.{provisioning,contextualizing,deprovisioning}: how long a node may stay in a transient state.
#[derive(Debug, Clone)]
pub struct Deadlines {
    /// Default 1h.
    pub provisioning: TimeDelta,
    /// Default 15m.
    pub contextualizing: TimeDelta,
    /// Default 1h.
    pub deprovisioning: TimeDelta,
}

/// Where the data lives.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `database.url`, else the translated `database.sqlalchemy.sync_url`; `None` = not configured.
    pub url: Option<DatabaseUrl>,
}

/// Tenant defaults, read whenever a tenant leaves a value unset.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// `defaults.session-lifetime`: how long a new session lives.
    pub session_lifetime: TimeDelta,
    /// `defaults.session-lifetime-max`: how far a session may be extended.
    pub session_lifetime_max: TimeDelta,
    /// `defaults.node-quota` (> 0): how many nodes a tenant may hold.
    pub node_quota: u32,
    /// `defaults.retries`: the fallback for `app.retries`.
    pub retries: Option<Retries>,
}

// ---------------------------------------------------------------------------------------------
// Validating newtypes of the top-level sections
// ---------------------------------------------------------------------------------------------

/// A TCP port in 1..=65535.
#[derive(Debug, Clone, Copy)]
struct Port(u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        let number = value.as_u64().or_else(|| value.as_i64().map(|_| 0));
        match number {
            Some(n) => match u16::try_from(n) {
                Ok(port) if port > 0 => Ok(Port(port)),
                _ => Err(D::Error::custom(format!(
                    "invalid value: {}, expected 1..=65535",
                    describe(&value)
                ))),
            },
            None => Err(D::Error::custom(format!(
                "invalid type: {}, expected a port number 1..=65535",
                describe(&value)
            ))),
        }
    }
}

/// A float with a lower bound, for the retry settings.
#[derive(Debug, Clone, Copy)]
struct AtLeast<const MIN: u8>(f64);

impl<'de, const MIN: u8> Deserialize<'de> for AtLeast<MIN> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        match value.as_f64() {
            Some(f) if f.is_finite() && f >= f64::from(MIN) => Ok(AtLeast(f)),
            Some(_) => Err(D::Error::custom(format!(
                "invalid value: {}, expected a number >= {MIN}",
                describe(&value)
            ))),
            None => Err(D::Error::custom(format!(
                "invalid type: {}, expected a number >= {MIN}",
                describe(&value)
            ))),
        }
    }
}

/// An `http://` or `https://` URL with a host.
#[derive(Debug, Clone)]
struct HttpUrl(String);

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        let text = match value {
            Value::String(s) => s,
            other => {
                return Err(D::Error::custom(format!(
                    "invalid type: {}, expected an http(s) URL",
                    describe(&other)
                )));
            }
        };
        let lower = text.trim().to_ascii_lowercase();
        let rest = lower
            .strip_prefix("http://")
            .or_else(|| lower.strip_prefix("https://"));
        let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default());
        let host_ok = host.is_some_and(|h| {
            let h = h.rsplit('@').next().unwrap_or_default();
            !h.is_empty() && !h.starts_with(':') && !h.chars().any(char::is_whitespace)
        });
        if host_ok {
            Ok(HttpUrl(text.trim().to_owned()))
        } else {
            Err(D::Error::custom(format!(
                "invalid value: {:?}, expected an http(s) URL such as http://127.0.0.1:8080",
                text
            )))
        }
    }
}

/// A tenant API key; the message matches the original's pydantic error.
#[derive(Debug, Clone, Copy)]
struct UuidKey(uuid::Uuid);

impl<'de> Deserialize<'de> for UuidKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => uuid::Uuid::parse_str(s.trim())
                .map(UuidKey)
                .map_err(|_| D::Error::custom("Input should be a valid UUID")),
            _ => Err(D::Error::custom("Input should be a valid UUID")),
        }
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => s.parse().map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "invalid type: {}, expected one of trace, debug, info, warning, error, critical",
                describe(&other)
            ))),
        }
    }
}

/// A Python logging dictConfig: accepted (it must say `version: 1`) and otherwise ignored.
#[derive(Debug, Clone)]
struct LoggingDictConfig;

impl<'de> Deserialize<'de> for LoggingDictConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        let version = value.as_mapping().map(|m| m.get("version"));
        match version {
            Some(Some(v)) if v.as_u64() == Some(1) => Ok(LoggingDictConfig),
            Some(_) => Err(D::Error::custom(
                "a Python logging dictConfig needs `version: 1`",
            )),
            None => Err(D::Error::custom(format!(
                "invalid type: {}, expected a Python logging dictConfig mapping",
                describe(&value)
            ))),
        }
    }
}

/// A mapping with free-form content (`tasks.celery`, `tasks.locking`, `database.sqlalchemy`).
#[derive(Debug, Clone)]
struct FreeMapping(Mapping);

impl<'de> Deserialize<'de> for FreeMapping {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Mapping(m) => Ok(FreeMapping(m)),
            other => Err(D::Error::custom(format!(
                "invalid type: {}, expected a mapping",
                describe(&other)
            ))),
        }
    }
}

/// `metaclient.usermap` in file order, keys and values as text.
#[derive(Debug, Clone, Default)]
struct UserMap(Vec<(String, String)>);

impl<'de> Deserialize<'de> for UserMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = match Value::deserialize(d)? {
            Value::Mapping(m) => m,
            Value::Null => return Ok(UserMap::default()),
            other => {
                return Err(D::Error::custom(format!(
                    "invalid type: {}, expected a mapping of legacy key to tenant name",
                    describe(&other)
                )));
            }
        };
        let mut pairs = Vec::with_capacity(map.len());
        for (key, value) in map {
            let key = text_like(key, "a legacy key").map_err(D::Error::custom)?;
            let value = text_like(value, "a tenant name")
                .map_err(|e| D::Error::custom(format!("entry {key:?}: {e}")))?;
            pairs.push((key, value));
        }
        Ok(UserMap(pairs))
    }
}

// ---------------------------------------------------------------------------------------------
// Raw file format
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of sections")]
struct RawConfig {
    app: Option<RawApp>,
    client: Option<RawClient>,
    metaclient: Option<RawMetaclient>,
    tasks: Option<RawTasks>,
    database: Option<RawDatabase>,
    defaults: Option<RawDefaults>,
    nodepools: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of app settings")]
struct RawApp {
    loglevel: Option<LogLevel>,
    host: Option<String>,
    port: Option<Port>,
    logging: Option<LoggingDictConfig>,
    retries: Option<RawRetries>,
    #[serde(rename = "anonymous-read")]
    anonymous_read: Option<bool>,
    ssh: Option<RawSsh>,
    connections: Option<RawConnections>,
    #[serde(rename = "idempotency-window")]
    idempotency_window: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of connection limits")]
struct RawConnections {
    max: Option<PositiveInt>,
    #[serde(rename = "idle-timeout")]
    idle_timeout: Option<Dur>,
    #[serde(rename = "header-timeout")]
    header_timeout: Option<Dur>,
    #[serde(rename = "body-timeout")]
    body_timeout: Option<Dur>,
}

impl RawConnections {
    /// Fills in the defaults; every timeout must be positive.
    fn resolve(self) -> Result<ConnectionLimits, FieldError> {
        let defaults = ConnectionLimits::default();
        let timeout = |value: Option<Dur>, default: StdDuration, key: &str| match value {
            None => Ok(default),
            Some(Dur(d)) => positive_std(d, &["app", "connections", key]),
        };
        Ok(ConnectionLimits {
            max: self.max.map_or(defaults.max, |m| m.0),
            idle_timeout: timeout(self.idle_timeout, defaults.idle_timeout, "idle-timeout")?,
            header_timeout: timeout(
                self.header_timeout,
                defaults.header_timeout,
                "header-timeout",
            )?,
            body_timeout: timeout(self.body_timeout, defaults.body_timeout, "body-timeout")?,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of ssh settings")]
struct RawSsh {
    command: Option<SshWord>,
    user: Option<SshWord>,
    port: Option<Port>,
    #[serde(rename = "authorized-keys")]
    authorized_keys: Option<SshWord>,
    timeout: Option<Dur>,
    options: Option<Vec<SshOption>>,
}

/// A non-empty string without whitespace or control characters, not starting with `-` (so
/// that ssh never reads it as a flag): an ssh command, a user, a remote path.
#[derive(Debug, Clone)]
struct SshWord(String);

impl<'de> Deserialize<'de> for SshWord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = text_like(Value::deserialize(d)?, "a string").map_err(D::Error::custom)?;
        if text.is_empty()
            || text.starts_with('-')
            || text.chars().any(|c| c.is_whitespace() || c.is_control())
            || text.contains(['\'', '"', ';', '&', '|', '`', '$'])
        {
            return Err(D::Error::custom(format!(
                "invalid value: {text:?}, expected a non-empty word without spaces, quotes or \
                 shell operators, not starting with '-'"
            )));
        }
        Ok(SshWord(text))
    }
}

/// An ssh `-o` option in the `Key=value` form.
#[derive(Debug, Clone)]
struct SshOption(String);

impl<'de> Deserialize<'de> for SshOption {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = text_like(Value::deserialize(d)?, "a string").map_err(D::Error::custom)?;
        let valid = text.split_once('=').is_some_and(|(key, value)| {
            !key.is_empty()
                && key.chars().all(|c| c.is_ascii_alphanumeric())
                && !value.is_empty()
                && !value.chars().any(char::is_control)
        });
        if !valid {
            return Err(D::Error::custom(format!(
                "invalid value: {text:?}, expected an ssh option like IdentityFile=/path"
            )));
        }
        Ok(SshOption(text))
    }
}

impl RawSsh {
    /// Fills in the defaults; the authorized_keys default follows the user.
    fn resolve(self) -> Result<SshConfig, FieldError> {
        let defaults = SshConfig::default();
        let user = self.user.map_or(defaults.user, |u| u.0);
        let timeout = match self.timeout {
            None => defaults.timeout,
            Some(Dur(d)) => positive_std(d, &["app", "ssh", "timeout"])?,
        };
        Ok(SshConfig {
            command: self.command.map_or(defaults.command, |c| c.0),
            port: self.port.map_or(defaults.port, |p| p.0),
            authorized_keys: self
                .authorized_keys
                .map_or_else(|| format!("~{user}/.ssh/authorized_keys"), |a| a.0),
            user,
            timeout,
            options: self
                .options
                .unwrap_or_default()
                .into_iter()
                .map(|o| o.0)
                .collect(),
        })
    }
}

#[derive(Deserialize, Clone, Default)]
#[serde(deny_unknown_fields, expecting = "a mapping of retry settings")]
struct RawRetries {
    #[serde(rename = "no-attempts")]
    no_attempts: Option<PositiveInt>,
    #[serde(rename = "delay-min")]
    delay_min: Option<AtLeast<0>>,
    #[serde(rename = "delay-max")]
    delay_max: Option<AtLeast<0>>,
    #[serde(rename = "delay-backoff-factor")]
    delay_backoff_factor: Option<AtLeast<1>>,
    #[serde(rename = "delay-add-fuzz")]
    delay_add_fuzz: Option<AtLeast<0>>,
}

impl RawRetries {
    /// Fills missing keys from `fallback`, then from the built-in policy.
    fn resolve(&self, fallback: &Retries) -> Retries {
        Retries {
            no_attempts: self.no_attempts.map_or(fallback.no_attempts, |n| n.0),
            delay_min: self.delay_min.map_or(fallback.delay_min, |v| v.0),
            delay_max: self.delay_max.map_or(fallback.delay_max, |v| v.0),
            delay_backoff_factor: self
                .delay_backoff_factor
                .map_or(fallback.delay_backoff_factor, |v| v.0),
            delay_add_fuzz: self.delay_add_fuzz.map_or(fallback.delay_add_fuzz, |v| v.0),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of client settings")]
struct RawClient {
    url: Option<HttpUrl>,
    auth: Option<RawClientAuth>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with name and key")]
struct RawClientAuth {
    name: Option<TextLike>,
    key: Option<UuidKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of metaclient settings")]
struct RawMetaclient {
    host: Option<String>,
    port: Option<Port>,
    dest: Option<HttpUrl>,
    loglevel: Option<LogLevel>,
    logging: Option<LoggingDictConfig>,
    usermap: Option<UserMap>,
    poolmap: Option<Vec<RawPoolMapEntry>>,
    mangle_hostname: Option<Template>,
    #[serde(rename = "fail-hold")]
    fail_hold: Option<Dur>,
    timeout: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with pool and optional ver, arch, flavor"
)]
struct RawPoolMapEntry {
    pool: Template,
    ver: Option<TextLike>,
    arch: Option<TextLike>,
    flavor: Option<TextLike>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of task settings")]
struct RawTasks {
    celery: Option<FreeMapping>,
    locking: Option<FreeMapping>,
    periodic: Option<RawPeriodic>,
    deadlines: Option<RawDeadlines>,
    #[serde(rename = "fill-backoff")]
    fill_backoff: Option<RawFillBackoff>,
    lease: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with min and max")]
struct RawFillBackoff {
    min: Option<Dur>,
    max: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with fill-pools and expire-sessions"
)]
struct RawPeriodic {
    #[serde(rename = "fill-pools")]
    fill_pools: Option<RawPeriodicTask>,
    #[serde(rename = "expire-sessions")]
    expire_sessions: Option<RawPeriodicTask>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with interval")]
struct RawPeriodicTask {
    interval: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of node-state deadlines")]
struct RawDeadlines {
    provisioning: Option<Dur>,
    contextualizing: Option<Dur>,
    deprovisioning: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of database settings")]
struct RawDatabase {
    url: Option<String>,
    sqlalchemy: Option<FreeMapping>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of tenant defaults")]
struct RawDefaults {
    #[serde(rename = "session-lifetime")]
    session_lifetime: Dur,
    #[serde(rename = "session-lifetime-max")]
    session_lifetime_max: Dur,
    #[serde(rename = "node-quota")]
    node_quota: PositiveInt,
    retries: Option<RawRetries>,
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

fn path(p: &[&str]) -> KeyPath {
    p.iter().map(|s| (*s).to_owned()).collect()
}

/// A positive std duration for a periodic task (tokio intervals must not be zero).
fn interval(value: Option<&RawPeriodicTask>, key: &[&str]) -> Result<StdDuration, FieldError> {
    let Some(Dur(delta)) = value.and_then(|t| t.interval) else {
        return Ok(StdDuration::from_secs(300));
    };
    positive_std(delta, key)
}

/// Converts a positive TimeDelta, rejecting zero.
fn positive_std(delta: TimeDelta, key: &[&str]) -> Result<StdDuration, FieldError> {
    match delta.to_std() {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(FieldError::new(
            path(key),
            "the duration must be greater than zero",
        )),
    }
}

/// A positive TimeDelta, or the default.
fn positive_delta(
    value: Option<Dur>,
    default: TimeDelta,
    key: &[&str],
) -> Result<TimeDelta, FieldError> {
    match value {
        None => Ok(default),
        Some(Dur(d)) => positive_std(d, key).map(|_| d),
    }
}

/// Validates the merged configuration; returns it with the warnings for the caller to log.
pub(crate) fn build(root: &Value, prov: &Provenance) -> Result<(Config, Vec<String>), ConfigError> {
    let mut warnings = Vec::new();
    let raw: RawConfig = match root {
        Value::Null => typed(&Value::Mapping(Mapping::new()), &[]),
        other => typed(other, &[]),
    }
    .map_err(|e| e.located(prov))?;

    let config = assemble(raw, prov, &mut warnings)?;
    Ok((config, warnings))
}

fn assemble(
    raw: RawConfig,
    prov: &Provenance,
    warnings: &mut Vec<String>,
) -> Result<Config, ConfigError> {
    let loc = |e: FieldError| e.located(prov);

    let default_retries = Retries::default();
    let defaults_retries = raw
        .defaults
        .as_ref()
        .and_then(|d| d.retries.as_ref())
        .map(|r| r.resolve(&default_retries));
    let app_fallback = defaults_retries.clone().unwrap_or_default();

    let raw_app = raw.app;
    if raw_app.as_ref().is_some_and(|a| a.logging.is_some()) {
        warnings.push(
            "app.logging is accepted but ignored: Duffy logs with tracing; set app.loglevel instead"
                .to_owned(),
        );
    }
    let app = match raw_app {
        Some(a) => AppConfig {
            loglevel: a.loglevel.unwrap_or_default(),
            host: a.host.unwrap_or_else(|| "127.0.0.1".to_owned()),
            port: a.port.map_or(8080, |p| p.0),
            retries: a.retries.map(|r| r.resolve(&app_fallback)),
            anonymous_read: a.anonymous_read.unwrap_or(true),
            ssh: match a.ssh {
                Some(ssh) => ssh.resolve().map_err(loc)?,
                None => SshConfig::default(),
            },
            connections: match a.connections {
                Some(c) => c.resolve().map_err(loc)?,
                None => ConnectionLimits::default(),
            },
            idempotency_window: match a.idempotency_window {
                Some(Dur(d)) => positive_std(d, &["app", "idempotency-window"]).map_err(loc)?,
                None => IDEMPOTENCY_WINDOW,
            },
        },
        None => AppConfig {
            loglevel: LogLevel::Info,
            host: "127.0.0.1".to_owned(),
            port: 8080,
            retries: None,
            anonymous_read: true,
            ssh: SshConfig::default(),
            connections: ConnectionLimits::default(),
            idempotency_window: IDEMPOTENCY_WINDOW,
        },
    };

    let client = raw.client.map(|c| ClientConfig {
        url: c.url.map(|u| u.0),
        auth: c.auth.map(|a| ClientAuth {
            name: a.name.map(|n| n.0),
            key: a.key.map(|k| k.0),
        }),
    });

    let metaclient = build_metaclient(raw.metaclient, warnings).map_err(loc)?;
    let tasks = build_tasks(raw.tasks, warnings).map_err(loc)?;
    let database = build_database(raw.database, warnings).map_err(loc)?;

    let defaults = raw.defaults.map(|d| Defaults {
        session_lifetime: d.session_lifetime.0,
        session_lifetime_max: d.session_lifetime_max.0,
        node_quota: d.node_quota.0,
        retries: defaults_retries,
    });

    let nodepools = pools::build_pools(raw.nodepools.as_ref(), prov)?;

    Ok(Config {
        app,
        client,
        metaclient,
        tasks,
        database,
        defaults,
        nodepools,
    })
}

fn build_metaclient(
    raw: Option<RawMetaclient>,
    warnings: &mut Vec<String>,
) -> Result<MetaclientConfig, FieldError> {
    let Some(m) = raw else {
        return Ok(MetaclientConfig {
            host: "127.0.0.1".to_owned(),
            port: 9090,
            dest: None,
            loglevel: LogLevel::Info,
            usermap: Vec::new(),
            poolmap: Vec::new(),
            mangle_hostname: None,
            fail_hold: TimeDelta::hours(12),
            timeout: TimeDelta::seconds(60),
        });
    };
    if m.logging.is_some() {
        warnings.push(
            "metaclient.logging is accepted but ignored: Duffy logs with tracing; set metaclient.loglevel instead"
                .to_owned(),
        );
    }
    let fail_hold = match m.fail_hold {
        Some(Dur(d)) => d,
        None => TimeDelta::hours(12),
    };
    Ok(MetaclientConfig {
        host: m.host.unwrap_or_else(|| "127.0.0.1".to_owned()),
        port: m.port.map_or(9090, |p| p.0),
        dest: m.dest.map(|d| d.0),
        loglevel: m.loglevel.unwrap_or_default(),
        usermap: m.usermap.unwrap_or_default().0,
        poolmap: m
            .poolmap
            .unwrap_or_default()
            .into_iter()
            .map(|e| PoolMapEntry {
                pool: e.pool.0,
                ver: e.ver.map(|v| v.0),
                arch: e.arch.map(|v| v.0),
                flavor: e.flavor.map(|v| v.0),
            })
            .collect(),
        mangle_hostname: m.mangle_hostname.map(|t| t.0),
        fail_hold,
        timeout: positive_delta(
            m.timeout,
            TimeDelta::seconds(60),
            &["metaclient", "timeout"],
        )?,
    })
}

fn build_tasks(
    raw: Option<RawTasks>,
    warnings: &mut Vec<String>,
) -> Result<TasksConfig, FieldError> {
    let (periodic, deadlines, backoff, lease) = match raw {
        Some(t) => {
            if t.celery.is_some() {
                warnings.push(
                    "tasks.celery is accepted but unused: background tasks run in-process (no Celery)"
                        .to_owned(),
                );
            }
            if t.locking.is_some() {
                warnings.push(
                    "tasks.locking is accepted but unused: background tasks run in-process (no Redis locking)"
                        .to_owned(),
                );
            }
            (t.periodic, t.deadlines, t.fill_backoff, t.lease)
        }
        None => (None, None, None, None),
    };
    let lease = match lease {
        None => StdDuration::from_secs(30),
        Some(Dur(d)) => positive_std(d, &["tasks", "lease"])?,
    };
    let defaults = FillBackoff::default();
    let backoff_at = |value: Option<Dur>, default: StdDuration, key: &str| match value {
        None => Ok(default),
        Some(Dur(d)) => positive_std(d, &["tasks", "fill-backoff", key]),
    };
    let fill_backoff = FillBackoff {
        min: backoff_at(backoff.as_ref().and_then(|b| b.min), defaults.min, "min")?,
        max: backoff_at(backoff.as_ref().and_then(|b| b.max), defaults.max, "max")?,
    };
    if fill_backoff.max < fill_backoff.min {
        return Err(FieldError::new(
            path(&["tasks", "fill-backoff", "max"]),
            "max must not be below min",
        ));
    }
    let fill_pools_interval = interval(
        periodic.as_ref().and_then(|p| p.fill_pools.as_ref()),
        &["tasks", "periodic", "fill-pools", "interval"],
    )?;
    let expire_sessions_interval = interval(
        periodic.as_ref().and_then(|p| p.expire_sessions.as_ref()),
        &["tasks", "periodic", "expire-sessions", "interval"],
    )?;
    let (prov_d, ctx_d, deprov_d) = match deadlines {
        Some(d) => (d.provisioning, d.contextualizing, d.deprovisioning),
        None => (None, None, None),
    };
    Ok(TasksConfig {
        fill_pools_interval,
        expire_sessions_interval,
        deadlines: Deadlines {
            provisioning: positive_delta(
                prov_d,
                TimeDelta::hours(1),
                &["tasks", "deadlines", "provisioning"],
            )?,
            contextualizing: positive_delta(
                ctx_d,
                TimeDelta::minutes(15),
                &["tasks", "deadlines", "contextualizing"],
            )?,
            deprovisioning: positive_delta(
                deprov_d,
                TimeDelta::hours(1),
                &["tasks", "deadlines", "deprovisioning"],
            )?,
        },
        fill_backoff,
        lease,
    })
}

fn build_database(
    raw: Option<RawDatabase>,
    warnings: &mut Vec<String>,
) -> Result<DatabaseConfig, FieldError> {
    let Some(db) = raw else {
        return Ok(DatabaseConfig { url: None });
    };

    let own = match &db.url {
        Some(text) => Some(
            database::parse_database_url(text)
                .map_err(|e| FieldError::new(path(&["database", "url"]), e.to_string()))?,
        ),
        None => None,
    };

    let mut translated = None;
    if let Some(FreeMapping(sqlalchemy)) = &db.sqlalchemy {
        let url_at = |key: &str| -> Result<Option<database::Translated>, FieldError> {
            let key_path = path(&["database", "sqlalchemy", key]);
            match sqlalchemy.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => database::translate(s)
                    .map(Some)
                    .map_err(|e| FieldError::new(key_path, e.to_string())),
                Some(other) => Err(FieldError::new(
                    key_path,
                    format!("invalid type: {}, expected a database URL", describe(other)),
                )),
            }
        };
        let sync = url_at("sync_url")?;
        let asyn = url_at("async_url")?;
        for key in sqlalchemy.keys() {
            let name = super::merge::key_to_string(key);
            if name != "sync_url" && name != "async_url" {
                warnings.push(format!(
                    "database.sqlalchemy.{name} is accepted but ignored: it is a SQLAlchemy engine option"
                ));
            }
        }
        for (key, t) in [("sync_url", &sync), ("async_url", &asyn)] {
            if t.as_ref().is_some_and(|t| t.dropped_query) {
                warnings.push(format!(
                    "database.sqlalchemy.{key}: the query string (driver options) is ignored for SQLite"
                ));
            }
        }
        if let (Some(s), Some(a)) = (&sync, &asyn)
            && s.target != a.target
        {
            warnings.push(
                "database.sqlalchemy.async_url names another database than sync_url; using sync_url"
                    .to_owned(),
            );
        }
        if own.is_some() {
            warnings.push("database.sqlalchemy is ignored because database.url is set".to_owned());
        } else if sync.is_none() && asyn.is_some() {
            warnings.push(
                "database.sqlalchemy.sync_url is missing; using the translated async_url"
                    .to_owned(),
            );
        }
        translated = sync.or(asyn).map(|t| t.url);
    }

    let url = own.or(translated);
    if let Some(DatabaseUrl::Sqlite { path }) = &url
        && path.as_os_str() == ":memory:"
    {
        warnings.push(
            "the database is an in-memory SQLite database: all data is lost when Duffy stops"
                .to_owned(),
        );
    }
    Ok(DatabaseConfig { url })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn build_str(text: &str) -> Result<(Config, Vec<String>), ConfigError> {
        let value: Value = yaml_serde::from_str(text).map_err(|e| ConfigError::Invalid {
            origin: "test".into(),
            key: String::new(),
            reason: e.to_string(),
        })?;
        let mut merger = super::super::merge::Merger::default();
        merger.merge_document(value, "test.yaml")?;
        let (map, prov) = merger.finish();
        build(&Value::Mapping(map), &prov)
    }

    fn err(text: &str) -> String {
        match build_str(text) {
            Ok(_) => panic!("expected an error for {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn fill_backoff_has_defaults_and_is_validated() {
        let (c, _) = build_str("{}").unwrap();
        assert_eq!(c.tasks.fill_backoff, FillBackoff::default());
        let (c, _) = build_str("tasks: {fill-backoff: {min: 0.5, max: 1m}}").unwrap();
        assert_eq!(c.tasks.fill_backoff.min, StdDuration::from_millis(500));
        assert_eq!(c.tasks.fill_backoff.max, StdDuration::from_secs(60));
        assert!(err("tasks: {fill-backoff: {min: 0}}").contains("tasks.fill-backoff.min"));
        assert_eq!(c.tasks.lease, StdDuration::from_secs(30));
        let (c, _) = build_str("tasks: {lease: 2s}").unwrap();
        assert_eq!(c.tasks.lease, StdDuration::from_secs(2));
        assert!(err("tasks: {lease: 0}").contains("tasks.lease"));
        assert!(
            err("tasks: {fill-backoff: {min: 1h, max: 1m}}").contains("tasks.fill-backoff.max")
        );
    }

    #[test]
    fn ssh_settings_have_the_originals_defaults_and_are_validated() {
        let (c, _) = build_str("{}").unwrap();
        assert_eq!(c.app.ssh, SshConfig::default());
        assert_eq!(c.app.ssh.authorized_keys, "~root/.ssh/authorized_keys");
        let (c, _) = build_str(
            "app: {ssh: {command: /opt/ssh, user: duffy, port: 2222, timeout: 5s, \
             options: [IdentityFile=/etc/duffy/id, ConnectionAttempts=1]}}",
        )
        .unwrap();
        assert_eq!(
            c.app.ssh,
            SshConfig {
                command: "/opt/ssh".into(),
                user: "duffy".into(),
                port: 2222,
                authorized_keys: "~duffy/.ssh/authorized_keys".into(),
                timeout: StdDuration::from_secs(5),
                options: vec![
                    "IdentityFile=/etc/duffy/id".into(),
                    "ConnectionAttempts=1".into()
                ],
            },
            "the authorized_keys default follows the user"
        );
        let (c, _) = build_str("app: {ssh: {authorized-keys: /tmp/keys}}").unwrap();
        assert_eq!(c.app.ssh.authorized_keys, "/tmp/keys");
        assert_eq!(c.app.ssh.user, "root");

        for (bad, key) in [
            ("app: {ssh: {port: 0}}", "app.ssh.port"),
            ("app: {ssh: {user: ''}}", "app.ssh.user"),
            ("app: {ssh: {user: -oProxyCommand=x}}", "app.ssh.user"),
            (
                "app: {ssh: {authorized-keys: 'a b'}}",
                "app.ssh.authorized-keys",
            ),
            (
                "app: {ssh: {authorized-keys: 'x; rm -rf /'}}",
                "app.ssh.authorized-keys",
            ),
            ("app: {ssh: {timeout: 0}}", "app.ssh.timeout"),
            ("app: {ssh: {options: [nonsense]}}", "app.ssh.options[0]"),
            ("app: {ssh: {colour: blue}}", "app.ssh"),
        ] {
            let e = err(bad);
            assert!(e.contains(key), "{bad}: {e}");
        }
    }

    #[test]
    fn empty_config_gets_defaults() {
        let (c, warnings) = build_str("{}").unwrap();
        assert!(warnings.is_empty());
        assert_eq!(c.app.host, "127.0.0.1");
        assert_eq!(c.app.port, 8080);
        assert_eq!(c.app.loglevel, LogLevel::Info);
        assert!(c.app.anonymous_read);
        assert_eq!(c.metaclient.port, 9090);
        assert_eq!(c.metaclient.fail_hold, TimeDelta::hours(12));
        assert_eq!(c.metaclient.timeout, TimeDelta::seconds(60));
        assert!(c.metaclient.dest.is_none());
        assert_eq!(c.tasks.fill_pools_interval, StdDuration::from_secs(300));
        assert_eq!(
            c.tasks.expire_sessions_interval,
            StdDuration::from_secs(300)
        );
        assert_eq!(c.tasks.deadlines.provisioning, TimeDelta::hours(1));
        assert_eq!(c.tasks.deadlines.contextualizing, TimeDelta::minutes(15));
        assert_eq!(c.tasks.deadlines.deprovisioning, TimeDelta::hours(1));
        assert!(c.database.url.is_none());
        assert!(c.defaults.is_none());
        assert!(c.client.is_none());
        assert!(c.nodepools.pools.is_empty());
        assert_eq!(c.effective_retries(), Retries::default());
    }

    #[test]
    fn app_section() {
        let (c, _) =
            build_str("app: {loglevel: WARNING, host: 0.0.0.0, port: 8443, anonymous-read: false}")
                .unwrap();
        assert_eq!(c.app.loglevel, LogLevel::Warning);
        assert_eq!(c.app.loglevel.tracing_directive(), "warn");
        assert_eq!(LogLevel::Critical.tracing_directive(), "error");
        assert_eq!(c.app.host, "0.0.0.0");
        assert_eq!(c.app.port, 8443);
        assert!(!c.app.anonymous_read);
    }

    #[test]
    fn port_range_is_checked() {
        assert_eq!(
            err("app: {port: 70000}"),
            "test.yaml: app.port: invalid value: integer 70000, expected 1..=65535"
        );
        assert_eq!(
            err("app: {port: 0}"),
            "test.yaml: app.port: invalid value: integer 0, expected 1..=65535"
        );
        assert!(err("app: {port: \"8080\"}").contains("expected a port number"));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let e = err("app: {prot: 80}");
        assert!(
            e.starts_with("test.yaml: app.prot: unknown field `prot`"),
            "{e}"
        );
        let e = err("bogus: {}");
        assert!(
            e.starts_with("test.yaml: bogus: unknown field `bogus`"),
            "{e}"
        );
        let e = err("tasks: {periodic: {refill: {interval: 5}}}");
        assert!(e.contains("tasks.periodic.refill: unknown field"), "{e}");
        let e = err("database: {uri: x}");
        assert!(e.contains("database.uri: unknown field"), "{e}");
    }

    #[test]
    fn loglevel_is_validated() {
        let e = err("app: {loglevel: loud}");
        assert!(
            e.starts_with("test.yaml: app.loglevel: unknown log level 'loud'"),
            "{e}"
        );
    }

    #[test]
    fn logging_needs_version_1() {
        let (_, warnings) = build_str(
            "app: {logging: {version: 1, handlers: {}}}\nmetaclient: {logging: {version: 1}}",
        )
        .unwrap();
        assert_eq!(warnings.len(), 2);
        assert!(warnings[0].starts_with("app.logging is accepted but ignored"));
        let e = err("app: {logging: {handlers: {}}}");
        assert!(
            e.contains("app.logging: a Python logging dictConfig needs `version: 1`"),
            "{e}"
        );
    }

    #[test]
    fn retries_fall_back_per_key() {
        let (c, _) = build_str(
            "app: {retries: {no-attempts: 3}}\n\
             defaults: {session-lifetime: 6h, session-lifetime-max: 12h, node-quota: 10,\n\
                        retries: {delay-min: 1, delay-max: 10}}",
        )
        .unwrap();
        let app = c.app.retries.clone().unwrap();
        assert_eq!(app.no_attempts, 3);
        assert_eq!(app.delay_min, 1.0);
        assert_eq!(app.delay_max, 10.0);
        assert_eq!(app.delay_backoff_factor, 2.0);
        let d = c.defaults.unwrap().retries.unwrap();
        assert_eq!(d.no_attempts, 5);
        let e = err("app: {retries: {delay-backoff-factor: 0.5}}");
        assert!(
            e.contains("app.retries.delay-backoff-factor: invalid value"),
            "{e}"
        );
        let e = err("app: {retries: {no-attempts: 0}}");
        assert!(
            e.contains("app.retries.no-attempts: invalid value: integer 0"),
            "{e}"
        );
    }

    #[test]
    fn client_section() {
        let (c, _) = build_str(
            "client: {url: 'https://duffy.example.org/api/v1', auth: {name: t, key: 00000000-0000-0000-0000-000000000000}}",
        )
        .unwrap();
        let client = c.client.unwrap();
        assert_eq!(
            client.url.as_deref(),
            Some("https://duffy.example.org/api/v1")
        );
        let auth = client.auth.unwrap();
        assert_eq!(auth.name.as_deref(), Some("t"));
        assert_eq!(auth.key, Some(uuid::Uuid::nil()));
        assert_eq!(
            err("client: {auth: {key: notauuid}}"),
            "test.yaml: client.auth.key: Input should be a valid UUID"
        );
        assert!(err("client: {url: 'ftp://x'}").contains("client.url: invalid value"));
        assert!(err("client: {url: 'http://'}").contains("client.url: invalid value"));
    }

    #[test]
    fn metaclient_section() {
        let (c, _) = build_str(
            "metaclient:\n  dest: http://127.0.0.1:8080\n  usermap: {k1: tenant1, 42: tenant2}\n  \
             poolmap:\n    - {ver: 7, arch: x86_64, pool: 'physical-centos{{ ver }}-{{ arch }}'}\n    \
             - {arch: '^(aarch64|ppc64le)$', pool: virt}\n  \
             mangle_hostname: \"{{ hostname | replace('.ci.centos.org', '') }}\"\n  fail-hold: 6h\n  timeout: 30",
        )
        .unwrap();
        let m = c.metaclient;
        assert_eq!(m.dest.as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(
            m.usermap,
            vec![
                ("k1".into(), "tenant1".into()),
                ("42".into(), "tenant2".into())
            ]
        );
        assert_eq!(m.poolmap.len(), 2);
        assert_eq!(m.poolmap[0].ver.as_deref(), Some("7"));
        assert_eq!(m.poolmap[1].ver, None);
        assert!(m.mangle_hostname.is_some());
        assert_eq!(m.fail_hold, TimeDelta::hours(6));
        assert_eq!(m.timeout, TimeDelta::seconds(30));

        let e = err("metaclient: {poolmap: [{pool: '{{ ver '}]}");
        assert!(
            e.starts_with("test.yaml: metaclient.poolmap[0].pool: syntax error"),
            "{e}"
        );
        let e = err("metaclient: {mangle_hostname: '{% if %}'}");
        assert!(
            e.contains("metaclient.mangle_hostname: syntax error"),
            "{e}"
        );
        let e = err("metaclient: {fail-hold: -1h}");
        assert!(
            e.contains("metaclient.fail-hold: negative durations are not allowed"),
            "{e}"
        );
        let e = err("metaclient: {timeout: 0}");
        assert!(
            e.contains("metaclient.timeout: the duration must be greater than zero"),
            "{e}"
        );
    }

    #[test]
    fn tasks_section() {
        let (c, warnings) = build_str(
            "tasks:\n  celery: {broker_url: 'redis://localhost:6379', result_backend: 'redis://localhost:6379'}\n  \
             locking: {url: 'redis://localhost:6379'}\n  \
             periodic: {fill-pools: {interval: 5m}, expire-sessions: {interval: 60.0}}\n  \
             deadlines: {provisioning: 2h, contextualizing: 5m, deprovisioning: '30m'}",
        )
        .unwrap();
        assert_eq!(c.tasks.fill_pools_interval, StdDuration::from_secs(300));
        assert_eq!(c.tasks.expire_sessions_interval, StdDuration::from_secs(60));
        assert_eq!(c.tasks.deadlines.provisioning, TimeDelta::hours(2));
        assert_eq!(c.tasks.deadlines.contextualizing, TimeDelta::minutes(5));
        assert_eq!(c.tasks.deadlines.deprovisioning, TimeDelta::minutes(30));
        assert_eq!(
            warnings,
            vec![
                "tasks.celery is accepted but unused: background tasks run in-process (no Celery)",
                "tasks.locking is accepted but unused: background tasks run in-process (no Redis locking)",
            ]
        );
        let e = err("tasks: {periodic: {fill-pools: {interval: 0s}}}");
        assert!(e.contains(
            "tasks.periodic.fill-pools.interval: the duration must be greater than zero"
        ));
        let e = err("tasks: {periodic: {fill-pools: {interval: 6x}}}");
        assert!(
            e.contains("tasks.periodic.fill-pools.interval: invalid duration '6x'"),
            "{e}"
        );
        let e = err("tasks: {celery: redis}");
        assert!(
            e.contains("tasks.celery: invalid type: string \"redis\", expected a mapping"),
            "{e}"
        );
    }

    #[test]
    fn defaults_section() {
        let (c, _) = build_str(
            "defaults: {session-lifetime: 6h, session-lifetime-max: 12h, node-quota: 10}",
        )
        .unwrap();
        let d = c.defaults.unwrap();
        assert_eq!(d.session_lifetime, TimeDelta::hours(6));
        assert_eq!(d.session_lifetime_max, TimeDelta::hours(12));
        assert_eq!(d.node_quota, 10);
        let e = err("defaults: {session-lifetime: 6h, session-lifetime-max: 12h}");
        assert!(e.contains("defaults: missing field `node-quota`"), "{e}");
        let e = err("defaults: {session-lifetime: 6h, session-lifetime-max: 12h, node-quota: 0}");
        assert!(
            e.contains("defaults.node-quota: invalid value: integer 0, expected an integer > 0")
        );
    }

    #[test]
    fn database_section() {
        let url = |text: &str| build_str(text).unwrap().0.database.url.unwrap();
        match url("database: {url: 'sqlite:///var/lib/duffy/duffy.db'}") {
            DatabaseUrl::Sqlite { path } => {
                assert_eq!(path, PathBuf::from("/var/lib/duffy/duffy.db"))
            }
            other => panic!("{other:?}"),
        }
        match url("database: {sqlalchemy: {sync_url: 'sqlite:///duffy.db'}}") {
            DatabaseUrl::Sqlite { path } => assert_eq!(path, PathBuf::from("duffy.db")),
            other => panic!("{other:?}"),
        }
        // database.url wins over sqlalchemy.
        let (c, warnings) = build_str(
            "database: {url: 'postgres://u@h/d', sqlalchemy: {sync_url: 'sqlite:///x.db', pool_size: 5}}",
        )
        .unwrap();
        assert!(matches!(c.database.url, Some(DatabaseUrl::Postgres { .. })));
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with("database.sqlalchemy.pool_size is accepted but ignored"))
        );
        assert!(
            warnings
                .iter()
                .any(|w| w == "database.sqlalchemy is ignored because database.url is set")
        );
        let (_, warnings) = build_str(
            "database: {sqlalchemy: {sync_url: 'postgresql://h/a', async_url: 'postgresql+asyncpg://h/b'}}",
        )
        .unwrap();
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("async_url names another database"))
        );
        let e = err("database: {url: 'mysql://h/d'}");
        assert!(
            e.contains("database.url: unsupported database URL scheme 'mysql'"),
            "{e}"
        );
        let (_, warnings) =
            build_str("database: {sqlalchemy: {sync_url: 'sqlite:///:memory:'}}").unwrap();
        assert!(warnings.iter().any(|w| w.contains("in-memory")));
    }
}
