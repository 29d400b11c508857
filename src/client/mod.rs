//! The typed client of the v3 API, over HTTP.
//!
//! The legacy v2 layer speaks to the v3 API only through this module (also when it runs
//! inside `duffy serve --legacy`), so it never touches the engine or the database and
//! behaves the same in-process and standalone; the `duffy client` CLI sends its [`Call`]s
//! through it too, so this is the one place that knows the v3 paths, methods, bodies and
//! statuses. One [`Client`] holds one connection pool, every call is bounded by the timeout
//! given at construction, and redirects are never followed (the original client treats
//! them as errors). An error answer becomes [`ClientError::Api`] with the typed
//! [`ErrorKind`] the server named in its `Duffy-Error-Kind` header (or, without one, the
//! kind its status alone gives), so callers decide from the kind, never from the wording.

pub mod wire;

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::de::{DeserializeOwned, DeserializeSeed};

use crate::protocol::v3::{ERROR_KIND_HEADER, ErrorKind};
pub use wire::{
    HeldNode, Node, NodeCommand, NodesSpec, PauseRequest, Pool, Session, SessionNode,
    SessionUpdate, TenantRef,
};

/// How much of an unreadable answer is kept for the error message.
const EXCERPT: usize = 200;

/// Why a v3 call did not give the answer asked for.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The API URL cannot be used.
    #[error("invalid Duffy API URL '{url}': {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The credentials cannot be sent in an HTTP header (a control character in the key).
    #[error("the API key cannot be sent: it holds a control character")]
    Credentials,
    /// No answer within the client's timeout.
    #[error("the Duffy API did not answer within {0:?}")]
    Timeout(Duration),
    /// The connection failed, or the answer could not be read off the wire.
    #[error("cannot reach the Duffy API: {0}")]
    Unreachable(String),
    /// The API answered with an error status; `detail` is its `detail` text.
    #[error("the Duffy API answered {status}: {detail}")]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// What the answer means, from its `Duffy-Error-Kind` header, or from the status
        /// alone when the header is missing or does not fit ([`ErrorKind::of_answer`]);
        /// `None` for a status the v3 API never refuses with (a proxy's 429 or 502).
        /// Decide from this, never from `detail`.
        kind: Option<ErrorKind>,
        /// The `detail` of the error envelope (JSON text when it is not a string), for
        /// people and for passing on.
        detail: String,
    },
    /// The API answered with a success status but not with the expected JSON.
    #[error("unreadable answer from the Duffy API ({status}): {reason}")]
    Unreadable {
        /// The HTTP status.
        status: StatusCode,
        /// What did not fit.
        reason: String,
    },
}

impl ClientError {
    /// The kind of an error answer of the API; `None` for every other failure.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            ClientError::Api { kind, .. } => *kind,
            _ => None,
        }
    }
}

/// Who a call is made as.
#[derive(Clone)]
pub enum Auth {
    /// No credentials (anonymous reads).
    Anonymous,
    /// HTTP Basic with the tenant name and its API key, as the original clients send.
    Basic {
        /// Tenant name.
        name: String,
        /// API key.
        key: SecretString,
    },
    /// `Authorization: Bearer <key>`: the server finds the tenant by the key alone.
    Bearer(SecretString),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Anonymous => f.write_str("Anonymous"),
            Auth::Basic { name, .. } => write!(f, "Basic({name}, ***)"),
            Auth::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

impl Auth {
    /// The `Authorization` header; a key that cannot travel in a header (a control
    /// character) is an error, never a silent anonymous call.
    fn header(&self) -> Result<Option<HeaderValue>, ClientError> {
        use base64::Engine as _;
        let text = match self {
            Auth::Anonymous => return Ok(None),
            Auth::Basic { name, key } => {
                let pair = format!("{name}:{}", key.expose_secret());
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )
            }
            Auth::Bearer(key) => format!("Bearer {}", key.expose_secret()),
        };
        let mut value = HeaderValue::from_str(&text).map_err(|_| ClientError::Credentials)?;
        value.set_sensitive(true);
        Ok(Some(value))
    }
}

/// A v3 API client: one connection pool, a bounded time per call.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    api: Url,
    timeout: Duration,
    /// The pauses before each retry of a session request.
    retry_delays: Vec<Duration>,
    /// Whether an attempt with no answer within the timeout is retried too.
    retry_timeouts: bool,
}

/// How long a session request waits before each retry, after a connection failure, a
/// timeout (unless turned off) or a 5xx answer: every attempt carries the same
/// `Idempotency-Key`, so a retry can never make a second session.
pub const RETRY_DELAYS: [Duration; 4] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

/// The header that names a session request, so that retrying it is safe.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

impl Client {
    /// A client of the API rooted at `api_url` (e.g. `http://127.0.0.1:8080/api/v1`).
    pub fn new(api_url: &str, timeout: Duration) -> Result<Client, ClientError> {
        let bad = |reason: &str| ClientError::BadUrl {
            url: api_url.to_owned(),
            reason: reason.to_owned(),
        };
        let mut api = Url::parse(api_url).map_err(|e| bad(&e.to_string()))?;
        if !matches!(api.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https"));
        }
        if api.cannot_be_a_base() || api.host_str().is_none() {
            return Err(bad("no host"));
        }
        // Joining relative paths keeps the last segment only when the path ends in '/'.
        if !api.path().ends_with('/') {
            api.set_path(&format!("{}/", api.path()));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("duffy/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| bad(&e.to_string()))?;
        Ok(Client {
            http,
            api,
            timeout,
            retry_delays: RETRY_DELAYS.to_vec(),
            retry_timeouts: true,
        })
    }

    /// The same client, retrying a session request that timed out or not. A retry with the
    /// same key waits for the attempt still running and gets its session: what a person at
    /// a terminal wants; a caller with a deadline of its own (the v2 layer) does not.
    pub fn retrying_timeouts(mut self, retry: bool) -> Client {
        self.retry_timeouts = retry;
        self
    }

    /// The same client with other pauses before the retries of a session request (none:
    /// no retry).
    pub fn with_retry_delays(mut self, delays: &[Duration]) -> Client {
        self.retry_delays = delays.to_vec();
        self
    }

    /// The API root this client talks to (ends in `/`).
    pub fn api_url(&self) -> &Url {
        &self.api
    }

    /// `GET /pools/{name}`.
    pub async fn show_pool(&self, auth: &Auth, name: &str) -> Result<Pool, ClientError> {
        self.fetch(auth, &Call::ShowPool(name.to_owned()), "pool")
            .await
    }

    /// `GET /pools`.
    pub async fn list_pools(&self, auth: &Auth) -> Result<Vec<Pool>, ClientError> {
        self.fetch(auth, &Call::ListPools, "pools").await
    }

    /// `GET /sessions`: the tenant's active sessions (all of them for admins and anonymous
    /// readers).
    pub async fn list_sessions(&self, auth: &Auth) -> Result<Vec<Session>, ClientError> {
        self.fetch(auth, &Call::ListSessions, "sessions").await
    }

    /// `GET /sessions/{id}`.
    pub async fn show_session(&self, auth: &Auth, id: i64) -> Result<Session, ClientError> {
        self.fetch(auth, &Call::ShowSession(id), "session").await
    }

    /// `POST /sessions`: asks for nodes.
    /// Sends a fresh `Idempotency-Key` and retries on a connection failure, a timeout
    /// ([`Client::retrying_timeouts`]) or a 5xx answer ([`RETRY_DELAYS`]): at most one
    /// session comes of it.
    pub async fn request_session(
        &self,
        auth: &Auth,
        specs: &[NodesSpec],
    ) -> Result<Session, ClientError> {
        let key = uuid::Uuid::new_v4().to_string();
        let (answer, kind) = self
            .exchange_retrying(auth, &Call::Allocate(specs.to_vec()), &key)
            .await?;
        decode(answer, kind, "session")
    }

    /// `PUT /sessions/{id}`: retires, extends or marks a session's nodes failed.
    pub async fn update_session(
        &self,
        auth: &Auth,
        id: i64,
        update: &SessionUpdate,
    ) -> Result<Session, ClientError> {
        self.fetch(auth, &Call::UpdateSession(id, update.clone()), "session")
            .await
    }

    /// `GET /nodes`: every live node.
    pub async fn list_nodes(&self, auth: &Auth) -> Result<Vec<Node>, ClientError> {
        self.fetch(auth, &Call::ListNodes, "nodes").await
    }

    /// `PUT /nodes/{id}` (ours, admins): acts on a node.
    pub async fn update_node(
        &self,
        auth: &Auth,
        id: i64,
        command: &NodeCommand,
    ) -> Result<Node, ClientError> {
        self.fetch(auth, &Call::UpdateNode(id, command.clone()), "node")
            .await
    }

    /// `PUT /service` or, with a pool, `PUT /pools/{name}` (ours, admins): pauses or
    /// resumes allocations.
    pub async fn set_paused(
        &self,
        auth: &Auth,
        pool: Option<&str>,
        request: &PauseRequest,
    ) -> Result<(), ClientError> {
        match pool {
            Some(pool) => {
                let call = Call::PausePool(pool.to_owned(), request.clone());
                self.fetch::<serde_json::Value>(auth, &call, "pool").await?;
            }
            None => {
                let call = Call::PauseService(request.clone());
                self.fetch::<serde_json::Value>(auth, &call, "service")
                    .await?;
            }
        }
        Ok(())
    }

    /// `GET /overtime?minutes=N` (ours, admins): nodes held longer than that.
    pub async fn overtime(&self, auth: &Auth, minutes: i64) -> Result<Vec<HeldNode>, ClientError> {
        self.fetch(auth, &Call::Overtime(minutes), "overtime").await
    }

    /// Sends `call` and returns the server's answer whatever its status; only a failure to
    /// get an answer is an error. For callers that show the answer as it came (`duffy
    /// client`).
    pub async fn send(&self, auth: &Auth, call: &Call) -> Result<Answer, ClientError> {
        Ok(self.exchange(auth, call).await?.0)
    }

    /// [`Client::send`] with `key` as the call's `Idempotency-Key`, retried like
    /// [`Client::request_session`] (`duffy client request-session`).
    pub async fn send_retrying(
        &self,
        auth: &Auth,
        call: &Call,
        key: &str,
    ) -> Result<Answer, ClientError> {
        Ok(self.exchange_retrying(auth, call, key).await?.0)
    }

    /// Sends `call` with `key`, again after each of the retry delays while it cannot reach
    /// the server, times out or gets a 5xx answer; the last outcome.
    async fn exchange_retrying(
        &self,
        auth: &Auth,
        call: &Call,
        key: &str,
    ) -> Result<(Answer, Option<String>), ClientError> {
        let mut delays = self.retry_delays.iter();
        loop {
            let outcome = self.exchange_keyed(auth, call, Some(key)).await;
            let retry = match &outcome {
                Ok((answer, _)) => answer.status.is_server_error(),
                Err(ClientError::Unreachable(_)) => true,
                Err(ClientError::Timeout(_)) => self.retry_timeouts,
                Err(_) => false,
            };
            match delays.next() {
                Some(delay) if retry => {
                    tracing::debug!(delay = ?delay, "session request failed; retrying with the same Idempotency-Key");
                    tokio::time::sleep(*delay).await;
                }
                _ => return outcome,
            }
        }
    }

    /// Sends `call`: its answer, and the value of the answer's error-kind header, if any.
    async fn exchange(
        &self,
        auth: &Auth,
        call: &Call,
    ) -> Result<(Answer, Option<String>), ClientError> {
        self.exchange_keyed(auth, call, None).await
    }

    /// [`Client::exchange`] with an `Idempotency-Key`.
    async fn exchange_keyed(
        &self,
        auth: &Auth,
        call: &Call,
        key: Option<&str>,
    ) -> Result<(Answer, Option<String>), ClientError> {
        let (method, segments) = call.route();
        let mut url = self.url(&segments)?;
        url.set_query(call.query().as_deref());
        let mut request = self.http.request(method, url);
        if let Some(value) = auth.header()? {
            request = request.header(AUTHORIZATION, value);
        }
        if let Some(key) = key {
            request = request.header(IDEMPOTENCY_KEY, key);
        }
        if let Some(body) = call.body() {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        let kind = response
            .headers()
            .get(ERROR_KIND_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(|e| self.transport(e))?;
        let answer = Answer {
            status,
            expected: call.expected(),
            body,
        };
        Ok((answer, kind))
    }

    /// The URL of a resource below the API root; each segment is percent-encoded.
    fn url(&self, segments: &[impl AsRef<str>]) -> Result<Url, ClientError> {
        let mut url = self.api.clone();
        {
            let mut path = url.path_segments_mut().map_err(|()| ClientError::BadUrl {
                url: self.api.to_string(),
                reason: "no host".into(),
            })?;
            path.pop_if_empty();
            path.extend(segments.iter().map(AsRef::as_ref));
        }
        Ok(url)
    }

    /// Sends `call` and decodes `envelope[field]` from its success answer; any other status
    /// is an [`ClientError::Api`] with the answer's kind and `detail`.
    async fn fetch<T: DeserializeOwned>(
        &self,
        auth: &Auth,
        call: &Call,
        field: &str,
    ) -> Result<T, ClientError> {
        let (answer, kind) = self.exchange(auth, call).await?;
        decode(answer, kind, field)
    }

    fn transport(&self, e: reqwest::Error) -> ClientError {
        if e.is_timeout() {
            return ClientError::Timeout(self.timeout);
        }
        // reqwest's own words wrap the cause several times over; the innermost one says
        // what happened ("Connection refused").
        let cause = root_cause(&e);
        ClientError::Unreachable(match e.url() {
            Some(url) => format!("{url}: {cause}"),
            None => cause,
        })
    }
}

/// `envelope[field]` of a success answer; any other status is an [`ClientError::Api`]
/// with the answer's kind and `detail`.
fn decode<T: DeserializeOwned>(
    answer: Answer,
    kind: Option<String>,
    field: &str,
) -> Result<T, ClientError> {
    let Answer {
        status,
        expected,
        body,
    } = answer;
    if status != expected {
        let detail = detail_of(&body);
        return Err(ClientError::Api {
            status,
            kind: ErrorKind::of_answer(status.as_u16(), kind.as_deref(), &detail),
            detail,
        });
    }
    let unreadable = |reason: String| ClientError::Unreadable { status, reason };
    read_field::<T>(&body, field)
        .map_err(|e| unreadable(e.to_string()))?
        .ok_or_else(|| unreadable(format!("no '{field}' in the answer")))
}

/// The field `field` of a JSON object (an answer's envelope), `None` when absent; the
/// whole body must be that one object.
fn read_field<T: DeserializeOwned>(body: &[u8], field: &str) -> serde_json::Result<Option<T>> {
    let mut input = serde_json::Deserializer::from_slice(body);
    let found = FieldOf::<T>::new(field).deserialize(&mut input)?;
    input.end()?;
    Ok(found)
}

/// Reads one field of an answer's envelope straight into `T`, skipping the others
/// unparsed: a listing of thousands of nodes is never built as a `Value` first.
struct FieldOf<'f, T> {
    field: &'f str,
    wanted: std::marker::PhantomData<T>,
}

impl<'f, T> FieldOf<'f, T> {
    fn new(field: &'f str) -> Self {
        FieldOf {
            field,
            wanted: std::marker::PhantomData,
        }
    }
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for FieldOf<'_, T> {
    type Value = Option<T>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: DeserializeOwned> serde::de::Visitor<'de> for FieldOf<'_, T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == self.field && found.is_none() {
                found = Some(
                    map.next_value::<T>()
                        .map_err(|e| serde::de::Error::custom(format!("'{}': {e}", self.field)))?,
                );
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// One v3 request: its method, path, body and success status, described here only. The
/// CLI's calls carry the exact bodies the original client sends.
#[derive(Debug, Clone)]
pub enum Call {
    /// `GET /pools`.
    ListPools,
    /// `GET /pools/{name}`.
    ShowPool(String),
    /// `GET /sessions`.
    ListSessions,
    /// `GET /sessions/{id}`.
    ShowSession(i64),
    /// `POST /sessions` with `{"tenant_id": null, "nodes_specs": […]}`, as the original
    /// client sends it.
    RequestSession(Vec<NodesSpec>),
    /// `POST /sessions` with `{"nodes_specs": […]}` only (the v2 layer's allocation).
    Allocate(Vec<NodesSpec>),
    /// `PUT /sessions/{id}` with `{"active": false, "expires_at": null}`.
    RetireSession(i64),
    /// `PUT /sessions/{id}` with `{"expires_at": "<signed duration>"}` (ours).
    ExtendSession(i64, String),
    /// `PUT /sessions/{id}` with the given fields (the v2 layer's retire and fail).
    UpdateSession(i64, SessionUpdate),
    /// `GET /nodes`.
    ListNodes,
    /// `PUT /nodes/{id}` with an admin's command (ours).
    UpdateNode(i64, NodeCommand),
    /// `PUT /pools/{name}` with `{"paused", "reason"}` (ours).
    PausePool(String, PauseRequest),
    /// `PUT /service` with `{"paused", "reason"}` (ours).
    PauseService(PauseRequest),
    /// `GET /overtime?minutes=N` (ours).
    Overtime(i64),
}

impl Call {
    fn route(&self) -> (Method, Vec<String>) {
        let s = |parts: &[&str]| parts.iter().map(|p| (*p).to_owned()).collect();
        match self {
            Call::ListPools => (Method::GET, s(&["pools"])),
            Call::ShowPool(name) => (Method::GET, s(&["pools", name])),
            Call::ListSessions => (Method::GET, s(&["sessions"])),
            Call::ShowSession(id) => (Method::GET, s(&["sessions", &id.to_string()])),
            Call::RequestSession(_) | Call::Allocate(_) => (Method::POST, s(&["sessions"])),
            Call::RetireSession(id) | Call::ExtendSession(id, _) | Call::UpdateSession(id, _) => {
                (Method::PUT, s(&["sessions", &id.to_string()]))
            }
            Call::ListNodes => (Method::GET, s(&["nodes"])),
            Call::UpdateNode(id, _) => (Method::PUT, s(&["nodes", &id.to_string()])),
            Call::PausePool(name, _) => (Method::PUT, s(&["pools", name])),
            Call::PauseService(_) => (Method::PUT, s(&["service"])),
            Call::Overtime(_) => (Method::GET, s(&["overtime"])),
        }
    }

    fn query(&self) -> Option<String> {
        match self {
            Call::Overtime(minutes) => Some(format!("minutes={minutes}")),
            _ => None,
        }
    }

    fn body(&self) -> Option<serde_json::Value> {
        match self {
            Call::RequestSession(specs) => {
                Some(serde_json::json!({"tenant_id": null, "nodes_specs": specs}))
            }
            Call::Allocate(specs) => Some(serde_json::json!({ "nodes_specs": specs })),
            Call::RetireSession(_) => {
                Some(serde_json::json!({"active": false, "expires_at": null}))
            }
            Call::ExtendSession(_, delta) => Some(serde_json::json!({ "expires_at": delta })),
            Call::UpdateSession(_, update) => serde_json::to_value(update).ok(),
            Call::UpdateNode(_, command) => serde_json::to_value(command).ok(),
            Call::PausePool(_, request) | Call::PauseService(request) => {
                serde_json::to_value(request).ok()
            }
            _ => None,
        }
    }

    /// The status of a successful answer.
    pub fn expected(&self) -> StatusCode {
        match self {
            Call::RequestSession(_) | Call::Allocate(_) => StatusCode::CREATED,
            _ => StatusCode::OK,
        }
    }
}

/// A server's answer to a [`Call`], as it came.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// The status a success has for this call.
    pub expected: StatusCode,
    /// Its body.
    pub body: bytes::Bytes,
}

/// The `detail` of an error answer: the string itself, other JSON as text, or an excerpt of
/// a body that is not JSON (a proxy's error page).
fn detail_of(bytes: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(serde_json::Value::Object(mut map)) => match map.remove("detail") {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => serde_json::Value::Object(map).to_string(),
        },
        Ok(other) => other.to_string(),
        Err(_) => String::from_utf8_lossy(bytes)
            .chars()
            .take(EXCERPT)
            .collect(),
    }
}

/// The innermost cause of an error, which reqwest keeps out of its own `Display`.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut deepest = e;
    while let Some(cause) = deepest.source() {
        deepest = cause;
    }
    deepest.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_api_prefix_and_encode_segments() {
        let c = Client::new("http://127.0.0.1:1/api/v1", Duration::from_secs(1)).unwrap();
        assert_eq!(c.api_url().as_str(), "http://127.0.0.1:1/api/v1/");
        assert_eq!(
            c.url(&["pools", "a b/c"]).unwrap().as_str(),
            "http://127.0.0.1:1/api/v1/pools/a%20b%2Fc"
        );
        let c = Client::new("http://h:2/x/api/v1/", Duration::from_secs(1)).unwrap();
        assert_eq!(
            c.url(&["sessions", "4"]).unwrap().as_str(),
            "http://h:2/x/api/v1/sessions/4"
        );
    }

    #[test]
    fn unusable_urls_are_refused() {
        assert!(Client::new("https://duffy.example.org/api/v1", Duration::from_secs(1)).is_ok());
        for url in ["", "127.0.0.1:8080", "ftp://h/api/v1", "notaurl"] {
            assert!(
                matches!(
                    Client::new(url, Duration::from_secs(1)),
                    Err(ClientError::BadUrl { .. })
                ),
                "{url}"
            );
        }
    }

    #[test]
    fn details_come_from_the_envelope_or_the_raw_body() {
        assert_eq!(detail_of(br#"{"detail":"Not Found"}"#), "Not Found");
        assert_eq!(
            detail_of(br#"{"detail":[{"loc":["x"]}]}"#),
            r#"[{"loc":["x"]}]"#
        );
        assert_eq!(
            detail_of(b"<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
    }

    fn field<T: DeserializeOwned>(body: &str, name: &str) -> Result<Option<T>, String> {
        read_field(body.as_bytes(), name).map_err(|e| e.to_string())
    }

    #[test]
    fn one_envelope_field_is_read_and_the_rest_skipped() {
        let body = r#"{"action":"get","other":{"x":[1,{"y":null}]},"nodes":[{"id":3,"state":"ready","data":{"a":{"b":1}}}],"z\"q":1}"#;
        let nodes: Vec<Node> = field(body, "nodes").unwrap().unwrap();
        assert_eq!(
            (nodes.len(), nodes[0].id, nodes[0].state.as_str()),
            (1, 3, "ready")
        );
        assert!(field::<Vec<Node>>(body, "node").unwrap().is_none());
        let wrong = field::<Vec<Node>>(r#"{"nodes":[{"id":"x"}]}"#, "nodes").unwrap_err();
        assert!(wrong.starts_with("'nodes': "), "{wrong}");
        assert!(field::<i64>(r#"{"n":1} trailing"#, "n").is_err());
        assert!(field::<i64>("[1]", "n").is_err());
    }

    #[test]
    fn imported_v2_columns_are_read_leniently() {
        use wire::{Scalar, V2Columns};
        let body = r#"{"nodes":[
            {"id":1,"state":"ready","data":{"v2":{"chassis":"ch-1","distro":"centos","rel":"7.9.2009","console_port":7001,"comment":"ab12","ver":"7","extra":{"deep":[1,2]}},"error":null}},
            {"id":2,"state":"ready","data":{"v2":{"chassis":{"x":1},"distro":[1],"rel":true,"console_port":1.5}}},
            {"id":3,"state":"ready","data":{"v2":"text"}},
            {"id":4,"state":"ready","data":{"v2":null}},
            {"id":5,"state":"ready","data":{"v2":[{"chassis":"x"}]}},
            {"id":6,"state":"ready","data":{"v2":{"console_port":null,"rel":"8\u00e9"}}},
            {"id":7,"state":"ready"}
        ]}"#;
        let nodes: Vec<Node> = field(body, "nodes").unwrap().unwrap();
        let text = |t: &str| Some(Scalar::Text(t.into()));
        assert_eq!(
            nodes[0].data.v2,
            V2Columns {
                chassis: text("ch-1"),
                distro: text("centos"),
                rel: text("7.9.2009"),
                console_port: Some(Scalar::Number(7001.into())),
            }
        );
        assert_eq!(
            nodes[1].data.v2,
            V2Columns {
                console_port: serde_json::Number::from_f64(1.5).map(Scalar::Number),
                ..V2Columns::default()
            }
        );
        for node in &nodes[2..5] {
            assert_eq!(node.data.v2, V2Columns::default(), "node {}", node.id);
        }
        assert_eq!(nodes[5].data.v2.rel, text("8\u{e9}"));
        assert_eq!(nodes[6].data.v2, V2Columns::default());
        assert_eq!(
            serde_json::to_string(&[text("a"), Some(Scalar::Number(3.into())), None]).unwrap(),
            r#"["a",3,null]"#
        );
    }

    /// The error of `POST /sessions` when the server answers `template`.
    async fn refusal(template: wiremock::ResponseTemplate) -> ClientError {
        use wiremock::matchers::{method, path};
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(method("POST"))
            .and(path("/api/v1/sessions"))
            .respond_with(template)
            .mount(&server)
            .await;
        let client = Client::new(&format!("{}/api/v1", server.uri()), Duration::from_secs(5));
        let spec = NodesSpec {
            quantity: 1,
            pool: "p".into(),
        };
        client
            .unwrap()
            .with_retry_delays(&[])
            .request_session(&Auth::Anonymous, &[spec])
            .await
            .unwrap_err()
    }

    /// A session request that meets 5xx answers is sent again with the same key, and the
    /// session of the attempt that got through is the answer.
    #[tokio::test]
    async fn a_session_request_is_retried_with_the_same_key() {
        use wiremock::matchers::{method, path};
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(method("POST"))
            .and(path("/api/v1/sessions"))
            .respond_with(answer(503, Some("unavailable"), "try again"))
            .up_to_n_times(2)
            .mount(&server)
            .await;
        let session = serde_json::json!({"action": "post", "session": {
            "id": 7, "retired_at": null, "active": true, "created_at": "2026-01-01T00:00:00",
            "expires_at": null, "tenant": {"id": 1, "name": "t"}, "data": {"nodes_specs": []},
            "nodes": []}});
        wiremock::Mock::given(method("POST"))
            .and(path("/api/v1/sessions"))
            .respond_with(wiremock::ResponseTemplate::new(201).set_body_json(session))
            .mount(&server)
            .await;
        let client = Client::new(&format!("{}/api/v1", server.uri()), Duration::from_secs(5))
            .unwrap()
            .with_retry_delays(&[Duration::ZERO; 4]);
        let spec = NodesSpec {
            quantity: 1,
            pool: "p".into(),
        };
        let got = client.request_session(&Auth::Anonymous, &[spec]).await;
        assert_eq!(got.map(|s| s.id).ok(), Some(7));
        let received = server.received_requests().await.unwrap();
        let keys: Vec<_> = received
            .iter()
            .map(|r| r.headers.get(IDEMPOTENCY_KEY).cloned())
            .collect();
        assert_eq!(keys.len(), 3, "two retries");
        assert!(
            keys[0].is_some() && keys.iter().all(|k| *k == keys[0]),
            "{keys:?}"
        );
    }

    fn answer(status: u16, kind: Option<&str>, detail: &str) -> wiremock::ResponseTemplate {
        let template = wiremock::ResponseTemplate::new(status)
            .set_body_json(serde_json::json!({ "detail": detail }));
        match kind {
            Some(kind) => template.insert_header("Duffy-Error-Kind", kind),
            None => template,
        }
    }

    #[tokio::test]
    async fn the_kind_header_is_parsed_and_the_detail_kept_as_sent() {
        let cases = [
            (
                422,
                Some("no-nodes"),
                "nothing left in p",
                Some(ErrorKind::NoNodes),
            ),
            (
                403,
                Some("quota-exceeded"),
                "too many",
                Some(ErrorKind::QuotaExceeded),
            ),
            (
                503,
                Some("paused"),
                "allocations are paused",
                Some(ErrorKind::Paused),
            ),
            (
                422,
                Some("tenant-retired"),
                "t is retired",
                Some(ErrorKind::TenantRetired),
            ),
        ];
        for (status, header, detail, kind) in cases {
            let e = refusal(answer(status, header, detail)).await;
            assert!(
                matches!(&e, ClientError::Api { status: s, kind: k, detail: d }
                    if s.as_u16() == status && *k == kind && d == detail),
                "{e:?}"
            );
            assert_eq!(e.kind(), kind);
        }
    }

    #[tokio::test]
    async fn without_a_usable_header_the_status_decides() {
        let cases = [
            // A server that names no kinds (the original 3.4.0): its two frozen texts are
            // known, anything else counts by its status.
            (
                answer(422, None, "can't reserve nodes: quantity=1 pool='p'"),
                Some(ErrorKind::NoNodes),
            ),
            (
                answer(403, None, "quota exceeded: …"),
                Some(ErrorKind::QuotaExceeded),
            ),
            (
                answer(422, None, "tenant t is retired"),
                Some(ErrorKind::Unprocessable),
            ),
            (answer(403, None, "not yours"), Some(ErrorKind::Forbidden)),
            (answer(503, None, "later"), Some(ErrorKind::Unavailable)),
            (answer(404, None, "Not Found"), Some(ErrorKind::NotFound)),
            // A kind this client does not know (a newer server), or one of another status.
            (
                answer(422, Some("out-of-nodes"), "x"),
                Some(ErrorKind::Unprocessable),
            ),
            (
                answer(403, Some("no-nodes"), "x"),
                Some(ErrorKind::Forbidden),
            ),
            // A proxy's answer names no kind, even with a header it passed on.
            (
                wiremock::ResponseTemplate::new(502)
                    .insert_header("Duffy-Error-Kind", "no-nodes")
                    .set_body_string("<html>Bad Gateway</html>"),
                None,
            ),
            (wiremock::ResponseTemplate::new(429), None),
        ];
        for (template, kind) in cases {
            let e = refusal(template).await;
            assert!(matches!(e, ClientError::Api { .. }), "{e:?}");
            assert_eq!(e.kind(), kind, "{e:?}");
        }
        let timeout = ClientError::Timeout(Duration::from_secs(1));
        assert_eq!(timeout.kind(), None);
    }

    #[test]
    fn keys_stay_out_of_debug_output() {
        let auth = Auth::Basic {
            name: "t".into(),
            key: SecretString::from("secret-key"),
        };
        assert!(!format!("{auth:?}").contains("secret-key"));
        assert!(auth.header().unwrap().unwrap().is_sensitive());
        let bad = Auth::Bearer(SecretString::from("a\nb"));
        assert!(matches!(bad.header(), Err(ClientError::Credentials)));
    }
}
