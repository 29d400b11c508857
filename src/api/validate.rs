//! Request bodies and path parameters, checked field by field so that a bad request gets
//! the original's 422 list (`[{"type", "loc", "msg", "input", "ctx"?}, …]`, pydantic's
//! shape) naming every bad field, never a 500.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::protocol::v3::MAX_QUANTITY;

/// One element of an error's `loc`: a field name or a list index.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Loc {
    /// A field, or the part of the request (`body`, `path`).
    Key(String),
    /// A position in a list, or a character offset for invalid JSON.
    Index(usize),
}

impl From<&str> for Loc {
    fn from(s: &str) -> Self {
        Loc::Key(s.to_owned())
    }
}

impl From<usize> for Loc {
    fn from(i: usize) -> Self {
        Loc::Index(i)
    }
}

/// One validation error, serialized as pydantic does.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = ValidationError)]
pub struct FieldError {
    /// pydantic's error type (`missing`, `int_parsing`, `greater_than_equal`, …).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Where: `["body", "nodes_specs", 0, "quantity"]`.
    pub loc: Vec<Loc>,
    /// A human-readable message.
    pub msg: String,
    /// The offending input.
    #[schema(value_type = Object)]
    pub input: Value,
    /// Parameters of the rule (`{"ge": 1}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub ctx: Option<Value>,
}

/// What is wrong with one value, before its location is known.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    kind: &'static str,
    msg: String,
    ctx: Option<Value>,
}

impl Issue {
    /// An issue of pydantic type `kind`.
    pub fn new(kind: &'static str, msg: impl Into<String>) -> Self {
        Issue {
            kind,
            msg: msg.into(),
            ctx: None,
        }
    }

    /// A `value_error`, as a custom validator raises it.
    pub fn value_error(reason: impl std::fmt::Display) -> Self {
        Issue::new("value_error", format!("Value error, {reason}"))
            .with_ctx(json!({"error": reason.to_string()}))
    }

    fn with_ctx(mut self, ctx: Value) -> Self {
        self.ctx = Some(ctx);
        self
    }

    /// Places the issue at `loc` with the input that caused it.
    pub fn at(self, loc: Vec<Loc>, input: Value) -> FieldError {
        FieldError {
            kind: self.kind,
            loc,
            msg: self.msg,
            input,
            ctx: self.ctx,
        }
    }
}

/// Parses a request body. Invalid JSON is pydantic's `json_invalid` at the character where
/// parsing stopped; an empty body is a missing body.
pub fn parse_json(body: &[u8]) -> Result<Value, Vec<FieldError>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(vec![
            Issue::new("missing", "Field required").at(vec!["body".into()], Value::Null),
        ]);
    }
    serde_json::from_slice(body).map_err(|e| {
        let text = String::from_utf8_lossy(body);
        let offset = char_offset(&text, e.line(), e.column());
        vec![
            Issue::new("json_invalid", "JSON decode error")
                .with_ctx(json!({"error": e.to_string()}))
                .at(vec!["body".into(), offset.into()], json!({})),
        ]
    })
}

/// The character offset of a 1-based line and column.
fn char_offset(text: &str, line: usize, column: usize) -> usize {
    let before: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(|l| l.chars().count())
        .sum();
    before + column.saturating_sub(1)
}

/// Parses a body that must be a JSON object and reads its fields with `read`; every
/// problem found on the way is reported together, as pydantic does.
pub fn body_object<T>(
    body: &[u8],
    read: impl FnOnce(&mut Fields<'_>) -> Option<T>,
) -> Result<T, Vec<FieldError>> {
    let value = parse_json(body)?;
    let mut errors = Vec::new();
    let parsed =
        Fields::of(&value, vec!["body".into()], &mut errors).and_then(|mut f| read(&mut f));
    match parsed {
        Some(parsed) if errors.is_empty() => Ok(parsed),
        _ => Err(errors),
    }
}

/// Both results, or the errors of both (a bad path id and a bad body are one 422).
pub fn both<A, B>(
    a: Result<A, Vec<FieldError>>,
    b: Result<B, Vec<FieldError>>,
) -> Result<(A, B), Vec<FieldError>> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (a, b) => {
            let mut errors = a.err().unwrap_or_default();
            errors.extend(b.err().unwrap_or_default());
            Err(errors)
        }
    }
}

/// Checks a path parameter that must be an integer (`/sessions/{id}`).
pub fn path_id(raw: &str, name: &str) -> Result<i64, Vec<FieldError>> {
    let raw = crate::http::path_segment(raw);
    raw.parse::<i64>().map_err(|_| {
        vec![
            Issue::new(
                "int_parsing",
                "Input should be a valid integer, unable to parse string as an integer",
            )
            .at(
                vec!["path".into(), name.into()],
                Value::String(raw.to_owned()),
            ),
        ]
    })
}

/// A query string's parameters, decoded; for each name the first value counts.
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Decodes a raw query string (`a=1&b=x%20y`); bytes that are not UTF-8 are replaced.
    pub fn parse(raw: &str) -> Query {
        Query(
            form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, each split at commas (`?state=a,b&state=c`), blanks dropped.
    pub fn list(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect()
    }
}

/// A query parameter that is not what it should be: `loc` is `["query", name]`.
pub fn query_error(name: &str, issue: Issue, input: &str) -> FieldError {
    issue.at(
        vec!["query".into(), name.into()],
        Value::String(input.to_owned()),
    )
}

/// One of a fixed set of strings, as pydantic reports a bad `Literal`/`Enum` value.
pub fn one_of<'a>(choices: &'a [&'a str]) -> impl Fn(&Value) -> Result<String, Issue> + 'a {
    move |v| match v.as_str() {
        Some(s) if choices.contains(&s) => Ok(s.to_owned()),
        _ => Err(not_one_of(choices)),
    }
}

/// The issue of a value that is none of `choices`.
pub fn not_one_of(choices: &[&str]) -> Issue {
    let expected = choices
        .iter()
        .map(|c| format!("'{c}'"))
        .collect::<Vec<_>>()
        .join(", ");
    Issue::new("enum", format!("Input should be {expected}"))
        .with_ctx(json!({"expected": expected}))
}

/// Reads the fields of one JSON object, collecting every problem instead of stopping at the
/// first, like pydantic.
pub struct Fields<'a> {
    obj: &'a Map<String, Value>,
    loc: Vec<Loc>,
    errors: &'a mut Vec<FieldError>,
}

impl<'a> Fields<'a> {
    /// Starts reading `value` at `loc`; `None` (with the error recorded) if it is no object.
    pub fn of(value: &'a Value, loc: Vec<Loc>, errors: &'a mut Vec<FieldError>) -> Option<Self> {
        match value {
            Value::Object(obj) => Some(Fields { obj, loc, errors }),
            other => {
                errors.push(
                    Issue::new(
                        "model_attributes_type",
                        "Input should be a valid dictionary or object to extract fields from",
                    )
                    .at(loc, other.clone()),
                );
                None
            }
        }
    }

    /// Whether the object has `key` at all (even as null).
    pub fn has(&self, key: &str) -> bool {
        self.obj.contains_key(key)
    }

    fn loc_of(&self, key: &str) -> Vec<Loc> {
        let mut loc = self.loc.clone();
        loc.push(key.into());
        loc
    }

    /// Records an issue about `key`.
    pub fn reject(&mut self, key: &str, issue: Issue) {
        let input = self.obj.get(key).cloned().unwrap_or(Value::Null);
        let loc = self.loc_of(key);
        self.errors.push(issue.at(loc, input));
    }

    /// A field that must be present and not null.
    pub fn required<T>(
        &mut self,
        key: &str,
        parse: impl FnOnce(&Value) -> Result<T, Issue>,
    ) -> Option<T> {
        match self.obj.get(key) {
            None => {
                let loc = self.loc_of(key);
                self.errors.push(
                    Issue::new("missing", "Field required")
                        .at(loc, Value::Object(self.obj.clone())),
                );
                None
            }
            Some(value) => self.parse(key, value, parse),
        }
    }

    /// A field that may be absent or null (both `None`).
    pub fn optional<T>(
        &mut self,
        key: &str,
        parse: impl FnOnce(&Value) -> Result<T, Issue>,
    ) -> Option<T> {
        self.nullable(key, parse).flatten()
    }

    /// A field where absent (`None`) differs from null (`Some(None)`), e.g. "back to the
    /// default" in tenant updates.
    pub fn nullable<T>(
        &mut self,
        key: &str,
        parse: impl FnOnce(&Value) -> Result<T, Issue>,
    ) -> Option<Option<T>> {
        match self.obj.get(key) {
            None => None,
            Some(Value::Null) => Some(None),
            Some(value) => self.parse(key, value, parse).map(Some),
        }
    }

    fn parse<T>(
        &mut self,
        key: &str,
        value: &Value,
        parse: impl FnOnce(&Value) -> Result<T, Issue>,
    ) -> Option<T> {
        match parse(value) {
            Ok(v) => Some(v),
            Err(issue) => {
                let loc = self.loc_of(key);
                self.errors.push(issue.at(loc, value.clone()));
                None
            }
        }
    }

    /// Where this object sits, for nested lists.
    pub fn loc(&self, key: &str) -> Vec<Loc> {
        self.loc_of(key)
    }

    /// Errors collected so far, for nested objects.
    pub fn errors(&mut self) -> &mut Vec<FieldError> {
        self.errors
    }
}

/// A string.
pub fn string(v: &Value) -> Result<String, Issue> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| Issue::new("string_type", "Input should be a valid string"))
}

/// A non-empty string.
pub fn non_empty_string(v: &Value) -> Result<String, Issue> {
    let s = string(v)?;
    if s.trim().is_empty() {
        return Err(Issue::new(
            "string_too_short",
            "String should have at least 1 character",
        )
        .with_ctx(json!({"min_length": 1})));
    }
    Ok(s)
}

/// An integer, with pydantic's lax rules: `5`, `5.0` and `"5"` are 5. Integers beyond the
/// 64-bit range saturate, so range checks report them.
pub fn integer(v: &Value) -> Result<i64, Issue> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else if n.is_u64() {
                Ok(i64::MAX)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() != 0.0 || !f.is_finite() {
                    Err(Issue::new(
                        "int_from_float",
                        "Input should be a valid integer, got a number with a fractional part",
                    ))
                } else if f >= i64::MAX as f64 {
                    Ok(i64::MAX)
                } else if f <= i64::MIN as f64 {
                    Ok(i64::MIN)
                } else {
                    Ok(f as i64)
                }
            }
        }
        Value::String(s) => s.trim().parse::<i64>().map_err(|_| {
            Issue::new(
                "int_parsing",
                "Input should be a valid integer, unable to parse string as an integer",
            )
        }),
        _ => Err(Issue::new("int_type", "Input should be a valid integer")),
    }
}

/// An integer in `min..=max`, with pydantic's bound errors.
pub fn integer_in(min: i64, max: i64) -> impl Fn(&Value) -> Result<i64, Issue> {
    move |v| {
        let i = integer(v)?;
        if i < min {
            return Err(Issue::new(
                "greater_than_equal",
                format!("Input should be greater than or equal to {min}"),
            )
            .with_ctx(json!({"ge": min})));
        }
        if i > max {
            return Err(Issue::new(
                "less_than_equal",
                format!("Input should be less than or equal to {max}"),
            )
            .with_ctx(json!({"le": max})));
        }
        Ok(i)
    }
}

/// A positive integer that fits the database's 32-bit columns, reported as pydantic's
/// `gt=0` (tenant `node_quota`).
pub fn positive_int32(v: &Value) -> Result<i64, Issue> {
    let i = integer(v)?;
    if i <= 0 {
        return Err(
            Issue::new("greater_than", "Input should be greater than 0").with_ctx(json!({"gt": 0}))
        );
    }
    integer_in(1, MAX_QUANTITY)(v)
}

/// A boolean, with pydantic's lax rules (`"true"`, `"yes"`, `1`, …).
pub fn boolean(v: &Value) -> Result<bool, Issue> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_i64() == Some(0) => Ok(false),
        Value::Number(n) if n.as_i64() == Some(1) => Ok(true),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "0" | "off" | "f" | "false" | "n" | "no" => Ok(false),
            "1" | "on" | "t" | "true" | "y" | "yes" => Ok(true),
            _ => Err(Issue::new(
                "bool_parsing",
                "Input should be a valid boolean, unable to interpret input",
            )),
        },
        _ => Err(Issue::new("bool_type", "Input should be a valid boolean")),
    }
}

/// A JSON object.
pub fn object(v: &Value) -> Result<Map<String, Value>, Issue> {
    v.as_object()
        .cloned()
        .ok_or_else(|| Issue::new("dict_type", "Input should be a valid dictionary"))
}

/// A JSON array.
pub fn array(v: &Value) -> Result<Vec<Value>, Issue> {
    v.as_array()
        .cloned()
        .ok_or_else(|| Issue::new("list_type", "Input should be a valid list"))
}

/// A UUID in any of the usual spellings.
pub fn uuid(v: &Value) -> Result<uuid::Uuid, Issue> {
    let s = v.as_str().ok_or_else(|| {
        Issue::new(
            "uuid_type",
            "UUID input should be a string, bytes or UUID object",
        )
    })?;
    uuid::Uuid::parse_str(s.trim()).map_err(|e| {
        Issue::new("uuid_parsing", format!("Input should be a valid UUID, {e}"))
            .with_ctx(json!({"error": e.to_string()}))
    })
}

/// An IPv4 or IPv6 address, returned in canonical form.
pub fn ip_address(v: &Value) -> Result<String, Issue> {
    let invalid = || {
        Issue::new(
            "ip_any_address",
            "value is not a valid IPv4 or IPv6 address",
        )
    };
    let s = v.as_str().ok_or_else(invalid)?;
    s.trim()
        .parse::<std::net::IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| invalid())
}

/// A configuration-style duration (`6h`, `300`, `"1d12h"`), never negative.
pub fn config_duration(v: &Value) -> Result<chrono::TimeDelta, Issue> {
    crate::config::parse_config_duration(v)
        .map_err(Issue::value_error)
        .and_then(|d| crate::engine::tenants::check_lifetime(d).map_err(Issue::value_error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_json_points_at_the_character() {
        let errors = parse_json(b"{\"a\": }").unwrap_err();
        assert_eq!(errors[0].kind, "json_invalid");
        assert_eq!(errors[0].loc, vec![Loc::Key("body".into()), Loc::Index(6)]);
        let errors = parse_json(b"  ").unwrap_err();
        assert_eq!(errors[0].kind, "missing");
    }

    #[test]
    fn integers_are_lax_like_pydantic() {
        assert_eq!(integer(&json!(5)), Ok(5));
        assert_eq!(integer(&json!(5.0)), Ok(5));
        assert_eq!(integer(&json!("5")), Ok(5));
        assert_eq!(integer(&json!(5.5)).unwrap_err().kind, "int_from_float");
        assert_eq!(integer(&json!("x")).unwrap_err().kind, "int_parsing");
        assert_eq!(integer(&json!(true)).unwrap_err().kind, "int_type");
        assert_eq!(integer(&json!(18446744073709551615u64)), Ok(i64::MAX));
        assert_eq!(integer(&json!(1e300)), Ok(i64::MAX));
    }

    #[test]
    fn bounds_report_pydantic_types() {
        let quantity = integer_in(1, MAX_QUANTITY);
        assert_eq!(quantity(&json!(0)).unwrap_err().kind, "greater_than_equal");
        assert_eq!(quantity(&json!(-1)).unwrap_err().kind, "greater_than_equal");
        assert_eq!(
            quantity(&json!(1_000_000_000_000i64)).unwrap_err().kind,
            "less_than_equal"
        );
        assert_eq!(positive_int32(&json!(0)).unwrap_err().kind, "greater_than");
        assert_eq!(positive_int32(&json!(3)), Ok(3));
    }

    #[test]
    fn fields_collect_every_error() {
        let body = json!({"a": "x", "c": null});
        let mut errors = Vec::new();
        let mut f = Fields::of(&body, vec!["body".into()], &mut errors).unwrap();
        assert_eq!(f.required("a", integer), None);
        assert_eq!(f.required("b", string), None);
        assert_eq!(f.nullable("c", integer), Some(None));
        assert_eq!(f.nullable("d", integer), None);
        assert_eq!(errors.len(), 2);
        assert_eq!(
            errors[0].loc,
            vec![Loc::Key("body".into()), Loc::Key("a".into())]
        );
        assert_eq!(errors[1].kind, "missing");
        let text = serde_json::to_string(&errors[0]).unwrap();
        assert!(
            text.starts_with(r#"{"type":"int_parsing","loc":["body","a"],"msg":"#),
            "{text}"
        );
    }
}
