//! The migration harness: replays recorded v2 traffic against a running server.
//!
//! Two kinds of recordings are read (`fixtures/v2/README.md` documents both):
//! * JSON-lines files (`*.jsonl`, see [`record`]): each line a request and the answer our v2
//!   contract expects, with placeholders for what legitimately differs (ssids, hostnames);
//! * web-server access logs (any other file, see [`accesslog`]): `GET /Node/…` and
//!   `/Inventory` lines, judged by status and by the v2 answer shapes.
//!
//! Each request gets one verdict (compatible, different with the differences, or error) and
//! the run a [`Summary`]; a migration passes only when everything replayed is compatible.
//!
//! It speaks HTTP only and uses nothing of the v2 server (`src/legacy/`), just the v2
//! vocabulary both share ([`crate::protocol::v2`]); `duffy replay` is its command.

pub mod accesslog;
pub mod matcher;
pub mod query;
pub mod record;
pub mod report;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::protocol::v2::Endpoint;
use accesslog::{LogLine, LogRequest, SsidMap};
use matcher::{Bindings, compare, show};
use record::{ExpectedBody, Line, Record, essence};
pub use report::{Reporter, Summary, Verdict};

/// The largest recording read (a bigger one is refused before anything is replayed).
pub const MAX_FILE: u64 = 256 << 20;
/// The largest answer body read.
pub const MAX_BODY: usize = 16 << 20;

/// The run cannot start: a usage error.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// `--against` is not an http URL.
    #[error("--against {url}: {reason}")]
    Against {
        /// The URL as given.
        url: String,
        /// Why it is refused.
        reason: String,
    },
    /// A `--var` is not `NAME=VALUE` (the value is never echoed: it may be a key).
    #[error("--var: {0}")]
    Var(String),
    /// A recording cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A recording is larger than [`MAX_FILE`].
    #[error("{path}: larger than {MAX_FILE} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The HTTP client cannot be built.
    #[error("cannot set up the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// A request that could not be replayed or judged.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(
        "placeholder {{{{{0}}}}} has no value (give it with --var {0}=…, or see why the record that binds it failed)"
    )]
    Unbound(String),
    #[error("placeholder {{{{key}}}} has no value (give --key)")]
    NoKey,
    #[error("request failed: {0}")]
    Transport(String),
    #[error("request failed: no answer within {0} s")]
    Timeout(u64),
    #[error("answer larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("cannot build the request URL: {0}")]
    Url(String),
    #[error(
        "ssid {0:?}: no replayed /Node/get with the same key has a session left to stand for it"
    )]
    NoSession(String),
}

/// What the command line asks for.
#[derive(Debug, Clone)]
pub struct Options {
    /// The v2 base URL (`http://host:port/` with an optional path prefix).
    pub against: String,
    /// Fills `{{key}}` and replaces the keys of access-log requests.
    pub key: Option<String>,
    /// More placeholder values, `NAME=VALUE` as given.
    pub vars: Vec<String>,
    /// The bound on each request, answer included.
    pub timeout: Duration,
}

/// What kind of recording a file is: `*.jsonl` is JSON lines, anything else an access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Records of request and expected answer.
    JsonLines,
    /// A web-server access log.
    AccessLog,
}

impl Format {
    /// The format a file is read in, from its extension.
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("jsonl") => Format::JsonLines,
            _ => Format::AccessLog,
        }
    }
}

/// One answer as received.
struct Answer {
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
}

/// A replay session: one HTTP client, the base URL and the given placeholder values.
pub struct Replayer {
    client: reqwest::Client,
    base: String,
    key: Option<String>,
    vars: Vec<(String, String)>,
    timeout: Duration,
}

impl Replayer {
    /// Checks the options and builds the shared client (no redirects, bounded requests).
    pub fn new(options: &Options) -> Result<Replayer, ReplayError> {
        let base = base_url(&options.against)?;
        let mut vars = Vec::with_capacity(options.vars.len());
        for var in &options.vars {
            let (name, value) = var.split_once('=').ok_or_else(|| {
                ReplayError::Var("expected NAME=VALUE, got an argument without `=`".to_owned())
            })?;
            if !matcher::is_name(name) {
                return Err(ReplayError::Var(format!(
                    "{name:?} is not a placeholder name (letters, digits and _)"
                )));
            }
            if name == "key" {
                return Err(ReplayError::Var("give the key with --key".to_owned()));
            }
            vars.push((name.to_owned(), value.to_owned()));
        }
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("duffy-replay/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ReplayError::Client)?;
        Ok(Replayer {
            client,
            base,
            key: options.key.clone(),
            vars,
            timeout: options.timeout,
        })
    }

    /// The values never to print: the key and every `--var key…`.
    pub fn secrets(&self) -> Vec<String> {
        self.key
            .iter()
            .cloned()
            .chain(
                self.vars
                    .iter()
                    .filter(|(n, _)| n.starts_with("key"))
                    .map(|(_, v)| v.clone()),
            )
            .collect()
    }

    /// Replays `files` in order, printing a line per request and the summary to `out`.
    /// Every file is checked to be readable before the first request goes out.
    pub async fn run<W: Write>(&self, files: &[PathBuf], out: W) -> Result<Summary, ReplayError> {
        for path in files {
            let meta = std::fs::metadata(path).map_err(|source| ReplayError::Read {
                path: path.clone(),
                source,
            })?;
            if !meta.is_file() {
                return Err(ReplayError::Read {
                    path: path.clone(),
                    source: std::io::Error::other("not a file"),
                });
            }
            if meta.len() > MAX_FILE {
                return Err(ReplayError::TooLarge { path: path.clone() });
            }
        }
        let mut reporter = Reporter::new(out, self.secrets());
        let mut ssids = SsidMap::default();
        for path in files {
            let text = read(path).await?;
            let name = path.display().to_string();
            match Format::of(path) {
                Format::JsonLines => self.replay_records(&name, &text, &mut reporter).await,
                Format::AccessLog => {
                    self.replay_log(&name, &text, &mut ssids, &mut reporter)
                        .await;
                }
            }
        }
        Ok(reporter.finish(files.len()))
    }

    /// The placeholder values a JSON-lines file starts with.
    fn initial_bindings(&self) -> Bindings {
        let mut bindings = Bindings::default();
        if let Some(key) = &self.key {
            bindings.bind("key", Value::String(key.clone()));
        }
        for (name, value) in &self.vars {
            bindings.bind(name, Value::String(value.clone()));
        }
        bindings
    }

    async fn replay_records<W: Write>(&self, file: &str, text: &str, reporter: &mut Reporter<W>) {
        // Bindings live for one file: each file is a scenario of its own.
        let mut bindings = self.initial_bindings();
        for (i, line) in text.lines().enumerate() {
            let at = format!("{file}:{}", i + 1);
            match record::parse_line(line) {
                Ok(Line::Nothing) => {}
                Ok(Line::Record(r)) => {
                    let at = match &r.name {
                        Some(name) => format!("{at} {name}"),
                        None => at,
                    };
                    self.replay_record(&r, &mut bindings, &at, reporter).await;
                }
                Err(e) => reporter.request(&Verdict::Error(e.to_string()), "", None, &at),
            }
        }
    }

    async fn replay_record<W: Write>(
        &self,
        r: &Record,
        bindings: &mut Bindings,
        at: &str,
        reporter: &mut Reporter<W>,
    ) {
        let rendered = r.request.path.render(bindings).and_then(|path| {
            let query = match &r.request.query {
                Some(q) => q.render(bindings)?,
                None => String::new(),
            };
            Ok((path, query))
        });
        let (path, query) = match rendered {
            Ok(parts) => parts,
            Err(name) => {
                let query = r
                    .request
                    .query
                    .as_ref()
                    .map(record::Template::source)
                    .unwrap_or_default();
                let shown = show_request(&r.request.method, &r.request.path.source(), &query);
                let error = if name == "key" {
                    StepError::NoKey
                } else {
                    StepError::Unbound(name)
                };
                reporter.request(&Verdict::Error(error.to_string()), &shown, None, at);
                return;
            }
        };
        let shown = show_request(&r.request.method, &path, &query);
        let answer = match self.fetch(&r.request.method, &path, &query).await {
            Ok(answer) => answer,
            Err(e) => {
                reporter.request(&Verdict::Error(e.to_string()), &shown, None, at);
                return;
            }
        };
        let diffs = judge(r, &answer, bindings);
        let verdict = if diffs.is_empty() {
            Verdict::Compatible
        } else {
            Verdict::Different(diffs)
        };
        reporter.request(&verdict, &shown, Some(answer.status), at);
    }

    async fn replay_log<W: Write>(
        &self,
        file: &str,
        text: &str,
        ssids: &mut SsidMap,
        reporter: &mut Reporter<W>,
    ) {
        for (i, line) in text.lines().enumerate() {
            let at = format!("{file}:{}", i + 1);
            match accesslog::parse_line(line) {
                Ok(LogLine::Nothing) => {}
                Ok(LogLine::Skipped) => reporter.skipped(),
                Ok(LogLine::Request(req)) => self.replay_logged(&req, ssids, &at, reporter).await,
                Err(e) => reporter.request(&Verdict::Error(e.to_string()), "", None, &at),
            }
        }
    }

    async fn replay_logged<W: Write>(
        &self,
        req: &LogRequest,
        ssids: &mut SsidMap,
        at: &str,
        reporter: &mut Reporter<W>,
    ) {
        let path = req.endpoint.path();
        let logged_key = query::first(&req.query, "key").unwrap_or_default();
        let mut q = req.query.clone();
        if matches!(req.endpoint, Endpoint::NodeDone | Endpoint::NodeFail)
            && let Some(old) = query::first(&q, "ssid").filter(|s| !s.is_empty())
        {
            // A logged success names a session the recording had: ours must stand in for
            // it. A logged refusal is replayed with its ssid, unless that one was mapped.
            let new = if req.status == 200 {
                match ssids.resolve(&logged_key, &old) {
                    Some(new) => Some(new),
                    None => {
                        let shown = show_request("GET", path, &q);
                        let e = StepError::NoSession(old);
                        reporter.request(&Verdict::Error(e.to_string()), &shown, None, at);
                        return;
                    }
                }
            } else {
                ssids.get(&old).map(str::to_owned)
            };
            if let Some(new) = new {
                q = query::rewrite(&q, "ssid", |_| query::encode(&new));
            }
        }
        if let Some(key) = &self.key {
            // An empty logged key stays empty: it recorded a request without a key.
            q = query::rewrite(&q, "key", |v| {
                if v.is_empty() {
                    String::new()
                } else {
                    query::encode(key)
                }
            });
        }
        let shown = show_request("GET", path, &q);
        let answer = match self.fetch("GET", path, &q).await {
            Ok(answer) => answer,
            Err(e) => {
                reporter.request(&Verdict::Error(e.to_string()), &shown, None, at);
                return;
            }
        };
        let mut diffs = Vec::new();
        if answer.status != req.status {
            diffs.push(format!(
                "status: expected {} (as logged), got {}",
                req.status, answer.status
            ));
        }
        let keyed = query::first(&q, "key").is_some_and(|k| !k.is_empty());
        if let Err(d) = accesslog::check_answer(req.endpoint, keyed, &answer.body) {
            diffs.push(d);
        }
        if req.endpoint == Endpoint::NodeGet
            && let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&answer.body)
            && let Some(Value::String(ssid)) = body.get("ssid")
        {
            ssids.obtained(&logged_key, ssid.clone());
        }
        let verdict = if diffs.is_empty() {
            Verdict::Compatible
        } else {
            Verdict::Different(diffs)
        };
        reporter.request(&verdict, &shown, Some(answer.status), at);
    }

    async fn fetch(&self, method: &str, path: &str, query: &str) -> Result<Answer, StepError> {
        let mut url = format!("{}{path}", self.base);
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        let url = reqwest::Url::parse(&url).map_err(|e| StepError::Url(e.to_string()))?;
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| StepError::Url(e.to_string()))?;
        let mut response = self
            .client
            .request(method, url)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(e))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(StepError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            content_type,
            body,
        })
    }

    /// A transport error without its URL (which holds the key), with its causes.
    fn transport(&self, e: reqwest::Error) -> StepError {
        if e.is_timeout() {
            return StepError::Timeout(self.timeout.as_secs());
        }
        let e = e.without_url();
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        StepError::Transport(text)
    }
}

/// The request as shown in the report, keys masked.
fn show_request(method: &str, path: &str, query: &str) -> String {
    if query.is_empty() {
        format!("{method} {path}")
    } else {
        format!("{method} {path}?{}", query::mask_keys(query))
    }
}

/// Compares an answer with a record's expectation; binds the record's placeholders.
fn judge(r: &Record, answer: &Answer, bindings: &mut Bindings) -> Vec<String> {
    let mut diffs = Vec::new();
    if answer.status != r.expect.status {
        diffs.push(format!(
            "status: expected {}, got {}",
            r.expect.status, answer.status
        ));
    }
    if let Some(expected) = &r.expect.content_type {
        let got = answer.content_type.as_deref().map(essence);
        if got.as_deref() != Some(expected.as_str()) {
            diffs.push(format!(
                "content type: expected {expected}, got {}",
                got.as_deref().unwrap_or("none")
            ));
        }
    }
    match &r.expect.body {
        ExpectedBody::Any => {}
        ExpectedBody::Text(expected) => {
            let got = String::from_utf8_lossy(&answer.body);
            if got != expected.as_str() {
                diffs.push(format!(
                    "body: expected text {}, got {}",
                    show(&Value::String(expected.clone())),
                    show(&Value::String(got.into_owned()))
                ));
            }
        }
        ExpectedBody::Json(pattern) => match serde_json::from_slice::<Value>(&answer.body) {
            Ok(value) => diffs.extend(
                compare(pattern, &value, bindings)
                    .iter()
                    .map(ToString::to_string),
            ),
            Err(_) => diffs.push(format!(
                "body: expected JSON, got text {}",
                show(&Value::String(
                    String::from_utf8_lossy(&answer.body).into_owned()
                ))
            )),
        },
    }
    diffs
}

/// The base URL requests are appended to: `http://host:port` plus any path prefix, without
/// the trailing slash.
fn base_url(against: &str) -> Result<String, ReplayError> {
    let refuse = |reason: &str| ReplayError::Against {
        url: against.to_owned(),
        reason: reason.to_owned(),
    };
    let url = reqwest::Url::parse(against).map_err(|e| refuse(&e.to_string()))?;
    if url.scheme() != "http" {
        return Err(refuse(
            "only http:// URLs are supported (this build has no TLS)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(refuse("a base URL takes no query or fragment"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(refuse("no host"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Reads a recording; invalid UTF-8 (in a log's user agents, say) is replaced, not fatal.
async fn read(path: &Path) -> Result<String, ReplayError> {
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|source| ReplayError::Read {
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(ReplayError::TooLarge {
            path: path.to_owned(),
        });
    }
    Ok(match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_keep_their_prefix_without_the_slash() {
        assert_eq!(
            base_url("http://127.0.0.1:9090/").unwrap(),
            "http://127.0.0.1:9090"
        );
        assert_eq!(
            base_url("http://127.0.0.1:9090").unwrap(),
            "http://127.0.0.1:9090"
        );
        assert_eq!(base_url("http://h/legacy/").unwrap(), "http://h/legacy");
        assert_eq!(base_url("http://h/legacy").unwrap(), "http://h/legacy");
        for bad in [
            "https://h/",
            "h:9090",
            "http://h/?a=1",
            "http://h/#x",
            "",
            "file:///x",
        ] {
            assert!(base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_follow_the_extension() {
        assert_eq!(Format::of(Path::new("a/b.jsonl")), Format::JsonLines);
        assert_eq!(Format::of(Path::new("B.JSONL")), Format::JsonLines);
        assert_eq!(Format::of(Path::new("access.log")), Format::AccessLog);
        assert_eq!(Format::of(Path::new("access.log.1")), Format::AccessLog);
        assert_eq!(Format::of(Path::new("jsonl")), Format::AccessLog);
    }

    fn options(vars: &[&str]) -> Options {
        Options {
            against: "http://127.0.0.1:1/".into(),
            key: Some("k-secret".into()),
            vars: vars.iter().map(|v| v.to_string()).collect(),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn vars_are_checked_without_echoing_values() {
        let err = |vars: &[&str]| Replayer::new(&options(vars)).err().map(|e| e.to_string());
        assert_eq!(err(&["key2=a=b", "x_1="]), None);
        let e = err(&["secretvalue"]).unwrap();
        assert!(
            !e.contains("secretvalue") && e.contains("NAME=VALUE"),
            "{e}"
        );
        assert!(err(&["a-b=1"]).unwrap().contains("not a placeholder name"));
        assert!(err(&["key=1"]).unwrap().contains("--key"));
        let r = Replayer::new(&options(&["key2=other", "ssid=3"])).unwrap();
        assert_eq!(r.secrets(), ["k-secret", "other"]);
        let b = r.initial_bindings();
        assert_eq!(b.text("key").as_deref(), Some("k-secret"));
        assert_eq!(b.text("key2").as_deref(), Some("other"));
    }

    fn answer(status: u16, content_type: &str, body: &str) -> Answer {
        Answer {
            status,
            content_type: Some(content_type.into()),
            body: body.as_bytes().to_vec(),
        }
    }

    fn rec(line: &str) -> Record {
        match record::parse_line(line).unwrap() {
            Line::Record(r) => *r,
            Line::Nothing => panic!("no record"),
        }
    }

    #[test]
    fn judging_reports_status_type_and_body() {
        let r = rec(
            r#"{"request":{"path":"/Node/get"},"expect":{"status":200,"type":"text/plain","text":"Insufficient Nodes in READY State"}}"#,
        );
        let mut b = Bindings::default();
        assert!(
            judge(
                &r,
                &answer(
                    200,
                    "text/plain; charset=utf-8",
                    "Insufficient Nodes in READY State"
                ),
                &mut b
            )
            .is_empty()
        );
        assert_eq!(
            judge(
                &r,
                &answer(200, "application/json", "\"Failed to allocate nodes\""),
                &mut b
            ),
            [
                "content type: expected text/plain, got application/json",
                r#"body: expected text "Insufficient Nodes in READY State", got "\"Failed to allocate nodes\"""#
            ]
        );
        let r = rec(
            r#"{"request":{"path":"/Node/get"},"expect":{"status":200,"json":{"hosts":["{{h}}"],"ssid":"{{s}}"}}}"#,
        );
        assert_eq!(
            judge(
                &r,
                &answer(503, "text/plain", "Duffy API unavailable"),
                &mut b
            ),
            [
                "status: expected 200, got 503",
                r#"body: expected JSON, got text "Duffy API unavailable""#
            ]
        );
        assert!(
            judge(
                &r,
                &answer(200, "application/json", r#"{"hosts":["n"],"ssid":"4"}"#),
                &mut b
            )
            .is_empty()
        );
        assert_eq!(b.text("s").as_deref(), Some("4"));
    }

    #[test]
    fn requests_are_shown_with_keys_masked() {
        assert_eq!(show_request("GET", "/Inventory", ""), "GET /Inventory");
        assert_eq!(
            show_request("GET", "/Node/get", "key=abc&ver=7"),
            "GET /Node/get?key=***&ver=7"
        );
    }
}
