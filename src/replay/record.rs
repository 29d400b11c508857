//! The JSON-lines record format: one request and its expected answer per line.
//!
//! ```text
//! # a comment line
//! {"name": "one node", "request": {"path": "/Node/get", "query": "key={{key}}&count=1"},
//!  "expect": {"status": 200, "type": "application/json", "json": {"hosts": ["{{h}}"], "ssid": "{{s}}"}}}
//! ```
//! (one line in a file). `request.method` defaults to `GET`; `request.path` and
//! `request.query` may use `{{name}}` placeholders, filled from `--key`, `--var` and earlier
//! answers (URL-encoded). `expect.type` is compared with the answer's content type without
//! parameters; `expect.json` is a [`Pattern`], `expect.text` the exact body. Unknown fields
//! are refused, so a typo in a fixture cannot silently weaken it.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::matcher::{Bindings, Pattern, PatternError, is_name};
use super::query::encode;

/// The longest record line read (a longer one is refused, not truncated).
pub const MAX_LINE: usize = 1 << 20;

/// A record line that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The line is not JSON, or not a record.
    #[error("unreadable record: {0}")]
    Syntax(String),
    /// The line is longer than [`MAX_LINE`].
    #[error("unreadable record: longer than {MAX_LINE} bytes")]
    TooLong,
    /// The request part is not usable.
    #[error("bad request in record: {0}")]
    Request(String),
    /// The expected answer is not usable.
    #[error("bad expectation in record: {0}")]
    Expect(String),
    /// The expected JSON is not a valid pattern.
    #[error("bad expect.json: {0}")]
    Pattern(#[from] PatternError),
}

/// One request and its expected answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// A short description, shown in the report.
    pub name: Option<String>,
    /// What to send.
    pub request: RequestTemplate,
    /// What must come back.
    pub expect: Expectation,
}

/// The request of a record, placeholders not yet filled.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestTemplate {
    /// The HTTP method, upper case.
    pub method: String,
    /// The path below the `--against` URL, starting with `/`.
    pub path: Template,
    /// The query string, without `?`; `None` sends none.
    pub query: Option<Template>,
}

/// The expected answer of a record.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    /// The HTTP status.
    pub status: u16,
    /// The content type without parameters (`application/json`); `None` is not checked.
    pub content_type: Option<String>,
    /// What the body must be.
    pub body: ExpectedBody,
}

/// What an answer's body must be.
#[derive(Debug, Clone, PartialEq)]
pub enum ExpectedBody {
    /// Not checked.
    Any,
    /// JSON matching this pattern.
    Json(Pattern),
    /// Exactly this text.
    Text(String),
}

/// A request string with `{{name}}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(String),
}

impl Template {
    /// Parses `text`, where `{{name}}` marks a placeholder.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("{text:?}: a `{{{{` without its `}}}}`"))?;
            let name = after[..end].trim();
            if !is_name(name) {
                return Err(format!(
                    "{text:?}: {{{{{name}}}}} is not a placeholder name (letters, digits and _)"
                ));
            }
            parts.push(Part::Var(name.to_owned()));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// Fills the placeholders, percent-encoding every value as a path segment or query
    /// component; the name of an unbound one is returned as the error.
    pub fn render(&self, bindings: &Bindings) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(name) => {
                    let value = bindings.text(name).ok_or_else(|| name.clone())?;
                    out.push_str(&encode(&value));
                }
            }
        }
        Ok(out)
    }

    /// The template as written (for messages about a request that could not be sent).
    pub fn source(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.clone(),
                Part::Var(n) => format!("{{{{{n}}}}}"),
            })
            .collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    name: Option<String>,
    #[expect(dead_code, reason = "documentation inside the fixture, never used")]
    comment: Option<Value>,
    request: RawRequest,
    expect: RawExpect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    method: Option<String>,
    path: String,
    query: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    status: u16,
    #[serde(rename = "type")]
    content_type: Option<String>,
    // `"json": null` expects a JSON null; only an absent key means "not checked".
    #[serde(default, deserialize_with = "present")]
    json: Option<Value>,
    text: Option<String>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// What one line of a JSON-lines file holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// A blank line or a `#` comment.
    Nothing,
    /// A record.
    Record(Box<Record>),
}

/// Reads one line of a JSON-lines file.
pub fn parse_line(line: &str) -> Result<Line, RecordError> {
    if line.len() > MAX_LINE {
        return Err(RecordError::TooLong);
    }
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(Line::Nothing);
    }
    let raw: RawRecord =
        serde_json::from_str(trimmed).map_err(|e| RecordError::Syntax(e.to_string()))?;
    Ok(Line::Record(Box::new(build(raw)?)))
}

fn build(raw: RawRecord) -> Result<Record, RecordError> {
    let method = raw.request.method.unwrap_or_else(|| "GET".to_owned());
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(RecordError::Request(format!(
            "method {method:?} is not an HTTP method"
        )));
    }
    let path = raw.request.path;
    if !path.starts_with('/') {
        return Err(RecordError::Request(format!(
            "path {path:?} must start with /"
        )));
    }
    if let Some(bad) = path
        .chars()
        .find(|c| matches!(c, '?' | '#') || c.is_whitespace())
    {
        return Err(RecordError::Request(format!(
            "path {path:?} contains {bad:?}; put the query in request.query and percent-encode the rest"
        )));
    }
    let path = Template::parse(&path).map_err(RecordError::Request)?;
    let query = match raw.request.query {
        Some(q) => {
            if let Some(bad) = q.chars().find(|c| *c == '#' || c.is_whitespace()) {
                return Err(RecordError::Request(format!(
                    "query {q:?} contains {bad:?}; percent-encode it (%23, %20)"
                )));
            }
            Some(Template::parse(&q).map_err(RecordError::Request)?)
        }
        None => None,
    };
    let e = raw.expect;
    if !(100..=599).contains(&e.status) {
        return Err(RecordError::Expect(format!(
            "status {} is not an HTTP status",
            e.status
        )));
    }
    let body = match (e.json, e.text) {
        (Some(_), Some(_)) => {
            return Err(RecordError::Expect(
                "give either json or text, not both".to_owned(),
            ));
        }
        (Some(json), None) => ExpectedBody::Json(Pattern::parse(&json)?),
        (None, Some(text)) => ExpectedBody::Text(text),
        (None, None) => ExpectedBody::Any,
    };
    Ok(Record {
        name: raw.name.filter(|n| !n.trim().is_empty()),
        request: RequestTemplate {
            method: method.to_ascii_uppercase(),
            path,
            query,
        },
        expect: Expectation {
            status: e.status,
            content_type: e.content_type.map(|t| essence(&t)),
            body,
        },
    })
}

/// A content type without its parameters, lower case: `text/plain; charset=utf-8` → `text/plain`.
pub fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(line: &str) -> Record {
        match parse_line(line).unwrap() {
            Line::Record(r) => *r,
            Line::Nothing => panic!("not a record"),
        }
    }

    #[test]
    fn a_full_record() {
        let r = record(
            r#"{"name":"one","comment":"why","request":{"method":"post","path":"/Node/get","query":"key={{key}}&count=1"},"expect":{"status":405,"type":"Application/JSON; charset=utf-8","json":{"detail":"Method Not Allowed"}}}"#,
        );
        assert_eq!(r.name.as_deref(), Some("one"));
        assert_eq!(r.request.method, "POST");
        assert_eq!(r.request.path.source(), "/Node/get");
        assert_eq!(
            r.request.query.as_ref().map(Template::source).as_deref(),
            Some("key={{key}}&count=1")
        );
        assert_eq!(r.expect.status, 405);
        assert_eq!(r.expect.content_type.as_deref(), Some("application/json"));
        assert_eq!(
            r.expect.body,
            ExpectedBody::Json(Pattern::parse(&json!({"detail": "Method Not Allowed"})).unwrap())
        );
    }

    #[test]
    fn defaults_text_and_null() {
        let r = record(r#"{"request":{"path":"/Inventory"},"expect":{"status":200}}"#);
        assert_eq!(r.request.method, "GET");
        assert_eq!(r.request.query, None);
        assert_eq!(r.expect.body, ExpectedBody::Any);
        assert_eq!(r.expect.content_type, None);
        let r =
            record(r#"{"request":{"path":"/x"},"expect":{"status":200,"text":"Insufficient"}}"#);
        assert_eq!(r.expect.body, ExpectedBody::Text("Insufficient".into()));
        let r = record(r#"{"request":{"path":"/x"},"expect":{"status":200,"json":null}}"#);
        assert_eq!(
            r.expect.body,
            ExpectedBody::Json(Pattern::Exact(Value::Null))
        );
    }

    #[test]
    fn blank_and_comment_lines_are_nothing() {
        assert_eq!(parse_line("").unwrap(), Line::Nothing);
        assert_eq!(parse_line("   \t").unwrap(), Line::Nothing);
        assert_eq!(
            parse_line("# {\"not\": \"a record\"}").unwrap(),
            Line::Nothing
        );
    }

    #[test]
    fn bad_records_say_why() {
        let err = |line: &str| parse_line(line).unwrap_err().to_string();
        assert!(err("{").starts_with("unreadable record: EOF while parsing"));
        assert!(err("[1]").starts_with("unreadable record: invalid type"));
        assert!(
            err(r#"{"request":{"path":"/x"},"expect":{"status":200,"jsn":1}}"#)
                .contains("unknown field `jsn`")
        );
        assert!(err(r#"{"request":{"path":"/x"}}"#).contains("missing field `expect`"));
        assert!(
            err(r#"{"request":{"path":"x"},"expect":{"status":200}}"#)
                .contains("must start with /")
        );
        assert!(
            err(r#"{"request":{"path":"/x?a=1"},"expect":{"status":200}}"#)
                .contains("request.query")
        );
        assert!(
            err(r#"{"request":{"path":"/x","query":"a=b c"},"expect":{"status":200}}"#)
                .contains("%20")
        );
        assert!(
            err(r#"{"request":{"path":"/x","query":"a={{b"},"expect":{"status":200}}"#)
                .contains("without its")
        );
        assert!(
            err(r#"{"request":{"path":"/x","query":"a={{b-c}}"},"expect":{"status":200}}"#)
                .contains("not a placeholder name")
        );
        assert!(
            err(r#"{"request":{"path":"/x","method":"G T"},"expect":{"status":200}}"#)
                .contains("not an HTTP method")
        );
        assert!(
            err(r#"{"request":{"path":"/x"},"expect":{"status":99}}"#)
                .contains("not an HTTP status")
        );
        assert!(
            err(r#"{"request":{"path":"/x"},"expect":{"status":200,"json":1,"text":"1"}}"#)
                .contains("not both")
        );
        assert!(
            err(r#"{"request":{"path":"/x"},"expect":{"status":200,"json":"{{a:b}}"}}"#)
                .starts_with("bad expect.json: $: ")
        );
        assert_eq!(
            parse_line(&" ".repeat(MAX_LINE + 1)),
            Err(RecordError::TooLong)
        );
    }

    #[test]
    fn templates_fill_and_encode_values() {
        let t = Template::parse("key={{key}}&ssid={{ s1 }}&x=%20").unwrap();
        let mut b = Bindings::default();
        b.bind("key", json!("a b&c=d/é"));
        assert_eq!(t.render(&b), Err("s1".to_owned()));
        b.bind("s1", json!(42));
        assert_eq!(
            t.render(&b).unwrap(),
            "key=a%20b%26c%3Dd%2F%C3%A9&ssid=42&x=%20"
        );
        assert_eq!(t.source(), "key={{key}}&ssid={{s1}}&x=%20");
    }
}
