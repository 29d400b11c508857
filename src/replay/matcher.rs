//! Expected JSON answers with placeholders, and readable differences.
//!
//! A pattern is plain JSON that must equal the answer, except for three escapes:
//! * a string that is exactly `{{name}}`, `{{name:KIND}}` or `{{_}}` is a *placeholder*. A
//!   named one matches a value of its kind (`string`, the default; `int`; `any`) and binds it
//!   the first time it is seen; every later use must equal the bound value. `{{_}}` matches
//!   anything and binds nothing (`{{_:string}}`, `{{_:int}}` check the kind only);
//! * an object whose keys start with `$` is an operator: `{"$each": P}` (an array whose every
//!   element matches P, of any length), `{"$contains": [P, …]}` (an array holding, for each
//!   P, an element of its own that matches it; both may be given together),
//!   `{"$anyof": [P, …]}` (the first alternative that matches wins) and `{"$literal": V}`
//!   (V exactly, braces and dollars included);
//! * object keys may come in any order; an answer's key the pattern lacks is a difference.
//!
//! Differences name the place with a JSON path such as `$.hosts[0]`.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

/// How many differences one comparison reports before it stops looking.
const MAX_DIFFERENCES: usize = 8;
/// How much of a value a difference shows.
const SHOWN_CHARS: usize = 160;

/// What a placeholder accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A JSON string (the default of a named placeholder).
    String,
    /// A JSON integer.
    Int,
    /// Any JSON value (the default of `{{_}}`).
    Any,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        match s {
            "string" => Some(Kind::String),
            "int" => Some(Kind::Int),
            "any" => Some(Kind::Any),
            _ => None,
        }
    }

    fn accepts(self, value: &Value) -> bool {
        match self {
            Kind::String => value.is_string(),
            Kind::Int => value.is_i64() || value.is_u64(),
            Kind::Any => true,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Int => "an integer",
            Kind::Any => "any value",
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Int => "int",
            Kind::Any => "any",
        }
    }
}

/// An expected JSON answer, compiled from a fixture so that mistakes surface when it is read.
#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    /// This value exactly (scalars, and `$literal`).
    Exact(Value),
    /// An array of exactly these elements, in this order.
    Array(Vec<Pattern>),
    /// An object with exactly these keys, in any order.
    Object(Vec<(String, Pattern)>),
    /// `{{name:kind}}`; `name` is `None` for `{{_}}`.
    Placeholder {
        /// The binding's name; `None` never binds.
        name: Option<String>,
        /// What the placeholder accepts.
        kind: Kind,
    },
    /// `$each` and/or `$contains`: an array of any length.
    List {
        /// What every element must match.
        each: Option<Box<Pattern>>,
        /// Patterns that distinct elements must match.
        contains: Vec<Pattern>,
    },
    /// `$anyof`: the first alternative that matches.
    AnyOf(Vec<Pattern>),
}

/// A fixture's pattern is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct PatternError {
    /// Where in the pattern, as a JSON path.
    pub path: String,
    /// What is wrong there.
    pub reason: String,
}

/// Whether `s` is a placeholder name: letters, digits and `_`, not starting with a digit.
pub fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Pattern {
    /// Compiles a fixture's expected JSON.
    pub fn parse(value: &Value) -> Result<Pattern, PatternError> {
        parse_at(value, &mut JsonPath::root())
    }

    /// A short description of what the pattern accepts, for "expected …" messages.
    fn describe(&self) -> String {
        match self {
            Pattern::Exact(v) => show(v),
            Pattern::Placeholder { kind, .. } => kind.describe().to_owned(),
            Pattern::Array(items) => format!("an array of {} elements", items.len()),
            Pattern::Object(_) => "an object".to_owned(),
            Pattern::List { .. } => "an array".to_owned(),
            Pattern::AnyOf(alternatives) => {
                let shown: Vec<String> = alternatives.iter().map(|a| a.to_string()).collect();
                clip(&format!("one of {}", shown.join(" | ")))
            }
        }
    }

    /// The names of the placeholders inside, in order of appearance.
    fn names<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Pattern::Placeholder { name: Some(n), .. } => {
                if !out.contains(&n.as_str()) {
                    out.push(n);
                }
            }
            Pattern::Array(items) | Pattern::AnyOf(items) => {
                items.iter().for_each(|p| p.names(out));
            }
            Pattern::Object(fields) => fields.iter().for_each(|(_, p)| p.names(out)),
            Pattern::List { each, contains } => {
                if let Some(each) = each {
                    each.names(out);
                }
                contains.iter().for_each(|p| p.names(out));
            }
            Pattern::Exact(_) | Pattern::Placeholder { name: None, .. } => {}
        }
    }
}

/// Renders the pattern back in fixture syntax (for messages).
impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(v) if needs_literal(v) => write!(f, "{{\"$literal\":{v}}}"),
            Pattern::Exact(v) => write!(f, "{v}"),
            Pattern::Placeholder { name, kind } => {
                let name = name.as_deref().unwrap_or("_");
                let default = if name == "_" { Kind::Any } else { Kind::String };
                if *kind == default {
                    write!(f, "\"{{{{{name}}}}}\"")
                } else {
                    write!(f, "\"{{{{{name}:{}}}}}\"", kind.as_str())
                }
            }
            Pattern::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Pattern::Object(fields) => {
                f.write_str("{")?;
                for (i, (key, item)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{}:{item}", Value::String(key.clone()))?;
                }
                f.write_str("}")
            }
            Pattern::List { each, contains } => {
                f.write_str("{")?;
                if let Some(each) = each {
                    write!(f, "\"$each\":{each}")?;
                    if !contains.is_empty() {
                        f.write_str(",")?;
                    }
                }
                if !contains.is_empty() {
                    f.write_str("\"$contains\":")?;
                    write!(f, "{}", Pattern::Array(contains.clone()))?;
                }
                f.write_str("}")
            }
            Pattern::AnyOf(alternatives) => {
                write!(f, "{{\"$anyof\":{}}}", Pattern::Array(alternatives.clone()))
            }
        }
    }
}

/// Whether an exact value would read as a placeholder or operator if written plainly.
fn needs_literal(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains("{{"),
        Value::Array(items) => items.iter().any(needs_literal),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.starts_with('$') || needs_literal(v)),
        _ => false,
    }
}

fn parse_at(value: &Value, path: &mut JsonPath) -> Result<Pattern, PatternError> {
    let fail = |path: &JsonPath, reason: String| PatternError {
        path: path.to_string(),
        reason,
    };
    match value {
        Value::String(s) if s.contains("{{") => parse_placeholder(s).map_err(|r| fail(path, r)),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                path.push_index(i);
                let p = parse_at(item, path);
                path.pop();
                out.push(p?);
            }
            Ok(Pattern::Array(out))
        }
        Value::Object(map) if map.keys().any(|k| k.starts_with('$')) => parse_operator(map, path),
        Value::Object(map) => {
            let mut out = Vec::with_capacity(map.len());
            for (key, item) in map {
                path.push_key(key);
                let p = parse_at(item, path);
                path.pop();
                out.push((key.clone(), p?));
            }
            Ok(Pattern::Object(out))
        }
        other => Ok(Pattern::Exact(other.clone())),
    }
}

fn parse_placeholder(s: &str) -> Result<Pattern, String> {
    let inner = s
        .strip_prefix("{{")
        .and_then(|rest| rest.strip_suffix("}}"))
        .filter(|inner| !inner.contains("{{") && !inner.contains("}}"))
        .ok_or_else(|| {
            format!(
                "{s:?}: a placeholder must be the whole string, like \"{{{{name}}}}\"; write {{\"$literal\": …}} for text with braces"
            )
        })?;
    let (name, kind) = match inner.split_once(':') {
        Some((name, kind)) => {
            let kind = Kind::parse(kind.trim())
                .ok_or_else(|| format!("{s:?}: unknown kind {kind:?} (use string, int or any)"))?;
            (name.trim(), Some(kind))
        }
        None => (inner.trim(), None),
    };
    if name == "_" {
        return Ok(Pattern::Placeholder {
            name: None,
            kind: kind.unwrap_or(Kind::Any),
        });
    }
    if !is_name(name) {
        return Err(format!(
            "{s:?}: a placeholder name is made of letters, digits and _"
        ));
    }
    Ok(Pattern::Placeholder {
        name: Some(name.to_owned()),
        kind: kind.unwrap_or(Kind::String),
    })
}

fn parse_operator(
    map: &serde_json::Map<String, Value>,
    path: &mut JsonPath,
) -> Result<Pattern, PatternError> {
    let fail = |path: &JsonPath, reason: &str| PatternError {
        path: path.to_string(),
        reason: reason.to_owned(),
    };
    if let Some(unknown) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "$each" | "$contains" | "$anyof" | "$literal"))
    {
        return Err(fail(
            path,
            &format!(
                "{unknown:?}: an operator object takes only $each, $contains, $anyof or $literal"
            ),
        ));
    }
    if let Some(literal) = map.get("$literal") {
        if map.len() > 1 {
            return Err(fail(path, "$literal stands alone"));
        }
        return Ok(Pattern::Exact(literal.clone()));
    }
    if let Some(alternatives) = map.get("$anyof") {
        if map.len() > 1 {
            return Err(fail(path, "$anyof stands alone"));
        }
        let Some(items) = alternatives.as_array().filter(|a| !a.is_empty()) else {
            return Err(fail(path, "$anyof takes a non-empty array of patterns"));
        };
        path.push_key("$anyof");
        let parsed = parse_each_item(items, path);
        path.pop();
        return Ok(Pattern::AnyOf(parsed?));
    }
    let each = match map.get("$each") {
        Some(each) => {
            path.push_key("$each");
            let p = parse_at(each, path);
            path.pop();
            Some(Box::new(p?))
        }
        None => None,
    };
    let contains = match map.get("$contains") {
        Some(Value::Array(items)) => {
            path.push_key("$contains");
            let p = parse_each_item(items, path);
            path.pop();
            p?
        }
        Some(_) => return Err(fail(path, "$contains takes an array of patterns")),
        None => Vec::new(),
    };
    Ok(Pattern::List { each, contains })
}

fn parse_each_item(items: &[Value], path: &mut JsonPath) -> Result<Vec<Pattern>, PatternError> {
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        path.push_index(i);
        let p = parse_at(item, path);
        path.pop();
        out.push(p?);
    }
    Ok(out)
}

/// Values bound to placeholder names: from `--key`/`--var` and from earlier answers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bindings {
    values: BTreeMap<String, Value>,
}

impl Bindings {
    /// The value bound to `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    /// Binds (or rebinds) `name`.
    pub fn bind(&mut self, name: &str, value: Value) {
        self.values.insert(name.to_owned(), value);
    }

    /// The text a request gets for `name`: a string as it is, anything else as JSON.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

/// One way an answer differs from its pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// Where, as a JSON path (`$.hosts[0]`).
    pub path: String,
    /// Expected versus got.
    pub message: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Compares an answer with a pattern, binding placeholders seen for the first time; returns
/// the differences (empty when the answer matches). Bindings made before a difference was
/// found are kept, so later requests can still use them.
pub fn compare(pattern: &Pattern, actual: &Value, bindings: &mut Bindings) -> Vec<Difference> {
    let mut diffs = Vec::new();
    walk(pattern, actual, &mut JsonPath::root(), bindings, &mut diffs);
    diffs
}

/// Tries a pattern without side effects; commits its bindings only when it matches.
fn attempt(pattern: &Pattern, actual: &Value, path: &JsonPath, bindings: &mut Bindings) -> bool {
    let mut trial = bindings.clone();
    let mut diffs = Vec::new();
    walk(pattern, actual, &mut path.clone(), &mut trial, &mut diffs);
    if diffs.is_empty() {
        *bindings = trial;
        true
    } else {
        false
    }
}

fn walk(
    pattern: &Pattern,
    actual: &Value,
    path: &mut JsonPath,
    bindings: &mut Bindings,
    diffs: &mut Vec<Difference>,
) {
    if diffs.len() >= MAX_DIFFERENCES {
        return;
    }
    let mut differ = |path: &JsonPath, message: String| {
        diffs.push(Difference {
            path: path.to_string(),
            message,
        });
    };
    match pattern {
        Pattern::Exact(expected) => {
            if expected != actual {
                differ(
                    path,
                    format!("expected {}, got {}", show(expected), show(actual)),
                );
            }
        }
        Pattern::Placeholder { name, kind } => {
            if !kind.accepts(actual) {
                differ(
                    path,
                    format!("expected {}, got {}", kind.describe(), show(actual)),
                );
                return;
            }
            let Some(name) = name else { return };
            match bindings.get(name) {
                Some(bound) if bound == actual => {}
                Some(bound) => differ(
                    path,
                    format!(
                        "expected {} (the value of {{{{{name}}}}}), got {}",
                        show(bound),
                        show(actual)
                    ),
                ),
                None => bindings.bind(name, actual.clone()),
            }
        }
        Pattern::Array(items) => {
            let Some(got) = actual.as_array() else {
                differ(
                    path,
                    format!("expected {}, got {}", pattern.describe(), show(actual)),
                );
                return;
            };
            if got.len() != items.len() {
                differ(
                    path,
                    format!(
                        "expected {} elements, got {}: {}",
                        items.len(),
                        got.len(),
                        show(actual)
                    ),
                );
                return;
            }
            for (i, (p, v)) in items.iter().zip(got).enumerate() {
                path.push_index(i);
                walk(p, v, path, bindings, diffs);
                path.pop();
            }
        }
        Pattern::Object(fields) => {
            let Some(got) = actual.as_object() else {
                differ(path, format!("expected an object, got {}", show(actual)));
                return;
            };
            for (key, p) in fields {
                path.push_key(key);
                match got.get(key) {
                    Some(v) => walk(p, v, path, bindings, diffs),
                    None => diffs.push(Difference {
                        path: path.to_string(),
                        message: format!("missing (expected {})", p.describe()),
                    }),
                }
                path.pop();
            }
            for (key, v) in got {
                if !fields.iter().any(|(k, _)| k == key) {
                    path.push_key(key);
                    diffs.push(Difference {
                        path: path.to_string(),
                        message: format!("unexpected key (value {})", show(v)),
                    });
                    path.pop();
                }
            }
        }
        Pattern::List { each, contains } => {
            let Some(got) = actual.as_array() else {
                differ(path, format!("expected an array, got {}", show(actual)));
                return;
            };
            if let Some(each) = each {
                for (i, v) in got.iter().enumerate() {
                    path.push_index(i);
                    walk(each, v, path, bindings, diffs);
                    path.pop();
                    if diffs.len() >= MAX_DIFFERENCES {
                        return;
                    }
                }
            }
            let mut used = vec![false; got.len()];
            for wanted in contains {
                let found = got.iter().enumerate().find_map(|(i, v)| {
                    if used[i] {
                        return None;
                    }
                    let mut at = path.clone();
                    at.push_index(i);
                    attempt(wanted, v, &at, bindings).then_some(i)
                });
                match found {
                    Some(i) => used[i] = true,
                    None => diffs.push(Difference {
                        path: path.to_string(),
                        message: format!(
                            "no element of {} matches {}{}",
                            count_elements(got.len()),
                            clip(&wanted.to_string()),
                            bound_values(wanted, bindings)
                        ),
                    }),
                }
            }
        }
        Pattern::AnyOf(alternatives) => {
            if !alternatives
                .iter()
                .any(|a| attempt(a, actual, path, bindings))
            {
                differ(
                    path,
                    format!(
                        "expected {}{}, got {}",
                        pattern.describe(),
                        bound_values(pattern, bindings),
                        show(actual)
                    ),
                );
            }
        }
    }
}

fn count_elements(n: usize) -> String {
    match n {
        1 => "the 1 element".to_owned(),
        n => format!("the {n} elements"),
    }
}

/// ` (with {{a}} = "x", {{b}} = 3)` for the bound placeholders a pattern uses.
fn bound_values(pattern: &Pattern, bindings: &Bindings) -> String {
    let mut names = Vec::new();
    pattern.names(&mut names);
    let shown: Vec<String> = names
        .iter()
        .filter_map(|n| {
            bindings
                .get(n)
                .map(|v| format!("{{{{{n}}}}} = {}", show(v)))
        })
        .take(4)
        .collect();
    if shown.is_empty() {
        String::new()
    } else {
        format!(" (with {})", shown.join(", "))
    }
}

/// A value as compact JSON, cut to a readable length.
pub fn show(value: &Value) -> String {
    clip(&value.to_string())
}

/// Cuts text to [`SHOWN_CHARS`] characters, marking the cut.
pub fn clip(text: &str) -> String {
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// A position in a JSON document, printed like `$.hosts[0]`.
#[derive(Debug, Clone, Default)]
struct JsonPath(Vec<Step>);

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

impl JsonPath {
    fn root() -> Self {
        JsonPath(Vec::new())
    }
    fn push_key(&mut self, key: &str) {
        self.0.push(Step::Key(key.to_owned()));
    }
    fn push_index(&mut self, i: usize) {
        self.0.push(Step::Index(i));
    }
    fn pop(&mut self) {
        self.0.pop();
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("$")?;
        for step in &self.0 {
            match step {
                Step::Key(k) if is_name(k) => write!(f, ".{k}")?,
                Step::Key(k) => write!(f, "[{}]", Value::String(k.clone()))?,
                Step::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pattern(v: Value) -> Pattern {
        Pattern::parse(&v).unwrap()
    }

    fn diffs(p: &Value, actual: &Value, b: &mut Bindings) -> Vec<String> {
        compare(&pattern(p.clone()), actual, b)
            .iter()
            .map(|d| d.to_string())
            .collect()
    }

    #[test]
    fn a_named_placeholder_binds_a_string_on_first_sight() {
        let mut b = Bindings::default();
        let p = json!({"hosts": ["{{h1}}"], "ssid": "{{ssid}}"});
        assert!(diffs(&p, &json!({"ssid": "42", "hosts": ["a.test"]}), &mut b).is_empty());
        assert_eq!(b.get("ssid"), Some(&json!("42")));
        assert_eq!(b.text("h1").as_deref(), Some("a.test"));
        // Later uses must be equal.
        assert!(
            diffs(
                &json!([["{{h1}}", "{{ssid}}"]]),
                &json!([["a.test", "42"]]),
                &mut b
            )
            .is_empty()
        );
        assert_eq!(
            diffs(
                &json!([["{{h1}}", "{{ssid}}"]]),
                &json!([["a.test", "43"]]),
                &mut b
            ),
            [r#"$[0][1]: expected "42" (the value of {{ssid}}), got "43""#]
        );
    }

    #[test]
    fn kinds_are_checked_with_readable_differences() {
        let mut b = Bindings::default();
        assert_eq!(
            diffs(&json!({"ssid": "{{ssid}}"}), &json!({"ssid": 42}), &mut b),
            ["$.ssid: expected a string, got 42"]
        );
        assert!(b.get("ssid").is_none(), "a mismatch binds nothing");
        assert!(diffs(&json!("{{n:int}}"), &json!(7), &mut b).is_empty());
        assert_eq!(b.text("n").as_deref(), Some("7"));
        assert_eq!(
            diffs(&json!("{{m:int}}"), &json!("7"), &mut b),
            [r#"$: expected an integer, got "7""#]
        );
        assert_eq!(
            diffs(&json!("{{_:int}}"), &json!(1.5), &mut b),
            ["$: expected an integer, got 1.5"]
        );
        assert!(diffs(&json!("{{_}}"), &json!({"x": [1]}), &mut b).is_empty());
        assert!(diffs(&json!("{{v:any}}"), &json!(null), &mut b).is_empty());
        assert_eq!(b.get("v"), Some(&Value::Null));
    }

    #[test]
    fn literals_objects_and_arrays() {
        let mut b = Bindings::default();
        assert_eq!(
            diffs(
                &json!("Done"),
                &json!({"msg": "Session not in Prod"}),
                &mut b
            ),
            [r#"$: expected "Done", got {"msg":"Session not in Prod"}"#]
        );
        assert_eq!(
            diffs(&json!({"msg": "x"}), &json!({"detail": "x"}), &mut b),
            [
                r#"$.msg: missing (expected "x")"#,
                r#"$.detail: unexpected key (value "x")"#
            ]
        );
        assert_eq!(
            diffs(
                &json!({"hosts": ["{{a}}", "{{b}}"]}),
                &json!({"hosts": ["x"]}),
                &mut b
            ),
            [r#"$.hosts: expected 2 elements, got 1: ["x"]"#]
        );
        assert_eq!(
            diffs(&json!({"a b": [1]}), &json!({"a b": [2]}), &mut b),
            [r#"$["a b"][0]: expected 1, got 2"#]
        );
        assert!(diffs(&json!({"a": 1, "b": 2}), &json!({"b": 2, "a": 1}), &mut b).is_empty());
    }

    #[test]
    fn each_and_contains_match_arrays_of_unknown_length() {
        let mut b = Bindings::default();
        b.bind("h", json!("n2"));
        let p = json!({"$each": ["{{_:string}}", "{{_:int}}"], "$contains": [["{{h}}", "{{used:int}}"]]});
        assert!(diffs(&p, &json!([["n1", 0], ["n2", 3], ["n3", 1]]), &mut b).is_empty());
        assert_eq!(b.get("used"), Some(&json!(3)));
        assert_eq!(
            diffs(&p, &json!([["n1", 0], ["n2", "3"]]), &mut b),
            [
                r#"$[1][1]: expected an integer, got "3""#,
                r#"$: no element of the 2 elements matches ["{{h}}","{{used:int}}"] (with {{h}} = "n2", {{used}} = 3)"#
            ]
        );
        assert!(diffs(&json!({"$each": "{{_:int}}"}), &json!([]), &mut b).is_empty());
        // Each $contains pattern needs an element of its own.
        assert_eq!(
            diffs(
                &json!({"$contains": ["{{_}}", "{{_}}"]}),
                &json!([1]),
                &mut b
            )
            .len(),
            1
        );
        assert_eq!(
            diffs(&json!({"$each": 1}), &json!({"a": 1}), &mut b),
            [r#"$: expected an array, got {"a":1}"#]
        );
    }

    #[test]
    fn a_failed_alternative_binds_nothing() {
        let mut b = Bindings::default();
        let p = json!({"$anyof": [["{{x}}", 1], ["{{y}}", 2]]});
        assert!(diffs(&p, &json!(["a", 2]), &mut b).is_empty());
        assert_eq!(b.get("x"), None);
        assert_eq!(b.get("y"), Some(&json!("a")));
        assert_eq!(
            diffs(
                &json!({"$anyof": [null, "{{_:string}}"]}),
                &json!(3),
                &mut b
            ),
            [r#"$: expected one of null | "{{_:string}}", got 3"#]
        );
    }

    #[test]
    fn literal_escapes_braces_and_dollars() {
        let mut b = Bindings::default();
        let p = json!({"$literal": {"$each": "{{x}}"}});
        assert!(diffs(&p, &json!({"$each": "{{x}}"}), &mut b).is_empty());
        assert_eq!(pattern(p).to_string(), r#"{"$literal":{"$each":"{{x}}"}}"#);
    }

    #[test]
    fn bad_patterns_are_refused_with_their_place() {
        let err = |v: Value| Pattern::parse(&v).unwrap_err().to_string();
        assert!(
            err(json!({"a": ["x {{y}}"]}))
                .starts_with("$.a[0]: \"x {{y}}\": a placeholder must be the whole string")
        );
        assert!(err(json!("{{a:float}}")).contains("unknown kind"));
        assert!(err(json!("{{a-b}}")).contains("letters, digits and _"));
        assert!(err(json!({"$every": 1})).contains("$every"));
        assert!(err(json!({"$anyof": []})).contains("non-empty"));
        assert!(err(json!({"$anyof": [1], "$each": 1})).contains("stands alone"));
        assert!(err(json!({"$contains": 1})).contains("array of patterns"));
    }

    #[test]
    fn differences_are_bounded() {
        let mut b = Bindings::default();
        let p = json!({"$each": 0});
        let many: Vec<i32> = (1..100).collect();
        assert_eq!(diffs(&p, &json!(many), &mut b).len(), MAX_DIFFERENCES);
        let long = "x".repeat(1000);
        let d = diffs(&json!("y"), &json!(long), &mut b);
        assert!(d[0].chars().count() < 200 && d[0].ends_with('…'), "{d:?}");
    }

    #[test]
    fn patterns_render_back_in_fixture_syntax() {
        let p =
            json!({"$each": ["{{_:string}}", "{{_}}", "{{n:int}}", "{{s}}"], "$contains": [null]});
        assert_eq!(
            pattern(p).to_string(),
            r#"{"$each":["{{_:string}}","{{_}}","{{n:int}}","{{s}}"],"$contains":[null]}"#
        );
    }
}
