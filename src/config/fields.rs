//! Typed YAML fields: the validating newtypes and the error with a key path that every
//! section of the configuration (the top-level model and the node pools) builds on.

use chrono::TimeDelta;
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, Error as _};
use yaml_serde::Value;

use super::ConfigError;
use super::duration::parse_config_duration;
use super::merge::{KeyPath, Provenance, dotted};

/// Checks that a Jinja template compiles, so syntax errors surface at startup, not mid-fill.
pub(crate) fn check_template(source: &str) -> Result<(), String> {
    let env = minijinja::Environment::new();
    env.template_from_str(source)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Describes a YAML value for error messages, serde-style: `integer 70000`, `string "x"`.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) if n.is_f64() => format!("floating point {n}"),
        Value::Number(n) => format!("integer {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Sequence(_) => "a list".to_owned(),
        Value::Mapping(_) => "a mapping".to_owned(),
        Value::Tagged(t) => format!("a value tagged {}", t.tag),
    }
}

/// A ConfigTimeDelta (`6h`, `300`, `600.0`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dur(pub(crate) TimeDelta);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        let json = match &value {
            Value::String(s) => serde_json::Value::from(s.as_str()),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    serde_json::Value::from(u)
                } else if let Some(i) = n.as_i64() {
                    serde_json::Value::from(i)
                } else {
                    let f = n.as_f64().unwrap_or(f64::NAN);
                    serde_json::Number::from_f64(f)
                        .map(serde_json::Value::Number)
                        .ok_or_else(|| D::Error::custom(format!("invalid duration '{n}'")))?
                }
            }
            other => {
                return Err(D::Error::custom(format!(
                    "invalid type: {}, expected a duration like 6h or a number of seconds",
                    describe(other)
                )));
            }
        };
        parse_config_duration(&json)
            .map(Dur)
            .map_err(D::Error::custom)
    }
}

/// An integer ≥ 1 that fits a u32 (`fill-level`, `node-quota`, `no-attempts`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PositiveInt(pub(crate) u32);

impl<'de> Deserialize<'de> for PositiveInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        if let Some(n) = value.as_u64() {
            if let Ok(n) = u32::try_from(n)
                && n > 0
            {
                return Ok(PositiveInt(n));
            }
            return Err(D::Error::custom(format!(
                "invalid value: {}, expected an integer > 0",
                describe(&value)
            )));
        }
        let kind = if value.as_i64().is_some() {
            "value"
        } else {
            "type"
        };
        Err(D::Error::custom(format!(
            "invalid {kind}: {}, expected an integer > 0",
            describe(&value)
        )))
    }
}

/// A probability in 0.0..=1.0 (`noop.fail-rate`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fraction(pub(crate) f64);

impl<'de> Deserialize<'de> for Fraction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        match value.as_f64() {
            Some(f) if (0.0..=1.0).contains(&f) => Ok(Fraction(f)),
            _ => Err(D::Error::custom(format!(
                "invalid value: {}, expected a number in 0.0..=1.0",
                describe(&value)
            ))),
        }
    }
}

/// A Jinja template that compiles; rendering happens later, in the engine.
#[derive(Debug, Clone)]
pub(crate) struct Template(pub(crate) String);

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text =
            text_like(Value::deserialize(d)?, "a template string").map_err(D::Error::custom)?;
        check_template(&text).map_err(D::Error::custom)?;
        Ok(Template(text))
    }
}

/// A validation failure at a key path, before the file is known.
#[derive(Debug, Clone)]
pub(crate) struct FieldError {
    pub(crate) path: KeyPath,
    pub(crate) reason: String,
}

impl FieldError {
    pub(crate) fn new(path: KeyPath, reason: impl Into<String>) -> Self {
        FieldError {
            path,
            reason: reason.into(),
        }
    }

    /// Names the file that set this key (or its nearest ancestor).
    pub(crate) fn located(self, prov: &Provenance) -> ConfigError {
        ConfigError::Invalid {
            origin: prov.origin_of(&self.path),
            key: dotted(&self.path),
            reason: self.reason,
        }
    }
}

/// Joins a prefix and a relative path.
pub(crate) fn join(prefix: &[String], rest: &[String]) -> KeyPath {
    prefix.iter().chain(rest).cloned().collect()
}

/// Deserializes `T` from `value`, reporting failures with their key path below `prefix`.
pub(crate) fn typed<T: DeserializeOwned>(
    value: &Value,
    prefix: &[String],
) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let rel: KeyPath = err
            .path()
            .iter()
            .map(|segment| match segment {
                serde_path_to_error::Segment::Seq { index } => format!("[{index}]"),
                serde_path_to_error::Segment::Map { key } => key.clone(),
                serde_path_to_error::Segment::Enum { variant } => variant.clone(),
                serde_path_to_error::Segment::Unknown => "?".to_owned(),
            })
            .collect();
        FieldError::new(join(prefix, &rel), err.into_inner().to_string())
    })
}

/// A string, also accepting YAML numbers (`ver: 7`), which operators write unquoted.
#[derive(Debug, Clone)]
pub(crate) struct TextLike(pub(crate) String);

impl<'de> Deserialize<'de> for TextLike {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        text_like(Value::deserialize(d)?, "a string")
            .map(TextLike)
            .map_err(D::Error::custom)
    }
}

/// Converts a string or number to text; anything else is a type error.
pub(crate) fn text_like(value: Value, expected: &str) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(format!(
            "invalid type: {}, expected {expected}",
            describe(&other)
        )),
    }
}
