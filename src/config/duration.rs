//! Duffy's two duration grammars and their Python-compatible renderings.
//!
//! Both grammars share the chunk syntax `Nw Nd Nh Nm Ns Nms` (each chunk optional, integers
//! only, in this fixed order, whitespace allowed between chunks). They differ in the sign:
//! configuration values ([`parse_config_duration`]) take an optional `+` and reject negative
//! values, while `expires_at` in `PUT /sessions/{id}` ([`parse_api_duration`]) requires a sign
//! and allows `-`. See `docs/v3-api.md` §3.

use chrono::TimeDelta;

const NANOS_PER_SEC: i128 = 1_000_000_000;
const MICROS_PER_DAY: i128 = 86_400_000_000;

/// Why a duration was rejected; the text is shown to operators and API clients as is.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum DurationError {
    /// The value was empty or only whitespace.
    #[error("empty duration: expected chunks like 1w2d3h4m5s6ms")]
    Empty,
    /// The text does not follow the chunk grammar.
    #[error("invalid duration '{0}': expected chunks like 1w2d3h4m5s6ms")]
    Invalid(String),
    /// A configuration duration was negative.
    #[error("negative durations are not allowed")]
    Negative,
    /// An API duration lacked its mandatory sign.
    #[error("a sign (+ or -) is required, e.g. +1h")]
    SignRequired,
    /// The value does not fit the supported range (about 292 million years).
    #[error("duration '{0}' is too large")]
    Overflow(String),
    /// The value was neither a string nor a number (e.g. a list or a boolean).
    #[error("invalid duration: expected a string like 6h or a number of seconds, found {0}")]
    WrongType(&'static str),
}

/// Whether a leading sign is optional (configuration) or mandatory (API).
#[derive(Clone, Copy, PartialEq)]
enum Grammar {
    Config,
    Api,
}

/// Parses a ConfigTimeDelta given as a JSON value: a string, or a bare number of seconds.
///
/// Configuration files hold both `6h` and `300`/`600.0`, so the untyped value is the input.
pub fn parse_config_duration(value: &serde_json::Value) -> Result<TimeDelta, DurationError> {
    match value {
        serde_json::Value::String(s) => parse_config_duration_str(s),
        serde_json::Value::Number(n) => {
            if let Some(secs) = n.as_u64() {
                i64::try_from(secs)
                    .ok()
                    .and_then(TimeDelta::try_seconds)
                    .ok_or_else(|| DurationError::Overflow(n.to_string()))
            } else if n.as_i64().is_some() {
                Err(DurationError::Negative)
            } else {
                let secs = n
                    .as_f64()
                    .ok_or_else(|| DurationError::Invalid(n.to_string()))?;
                seconds_from_f64(secs)
            }
        }
        serde_json::Value::Null => Err(DurationError::Empty),
        serde_json::Value::Bool(_) => Err(DurationError::WrongType("a boolean")),
        serde_json::Value::Array(_) => Err(DurationError::WrongType("a list")),
        serde_json::Value::Object(_) => Err(DurationError::WrongType("a mapping")),
    }
}

/// Parses a ConfigTimeDelta string: `6h`, `1d12h`, `+3h30m`, `1w 2d`, or digits meaning seconds.
///
/// Split from [`parse_config_duration`] for callers that already hold text (CLI options).
pub fn parse_config_duration_str(s: &str) -> Result<TimeDelta, DurationError> {
    parse(s, Grammar::Config)
}

/// Parses an APITimeDelta: a mandatory sign and chunks (`+1h`, `-30m`, `+1d2h`).
///
/// Session extensions are relative to the current expiry, so the sign must be explicit.
pub fn parse_api_duration(s: &str) -> Result<TimeDelta, DurationError> {
    parse(s, Grammar::Api)
}

/// Converts a non-negative float number of seconds, as YAML `600.0` or `0.5` give it.
fn seconds_from_f64(secs: f64) -> Result<TimeDelta, DurationError> {
    if !secs.is_finite() {
        return Err(DurationError::Invalid(secs.to_string()));
    }
    if secs < 0.0 {
        return Err(DurationError::Negative);
    }
    // TimeDelta holds at most i64::MAX milliseconds; stay clear of the float-to-int saturation.
    if secs >= 9.2e15 {
        return Err(DurationError::Overflow(secs.to_string()));
    }
    let whole = secs.trunc();
    let mut nanos = ((secs - whole) * 1e9).round();
    let mut whole = whole as i64;
    if nanos >= 1e9 {
        whole += 1;
        nanos = 0.0;
    }
    TimeDelta::new(whole, nanos as u32).ok_or_else(|| DurationError::Overflow(secs.to_string()))
}

/// The shared chunk parser behind both grammars.
fn parse(input: &str, grammar: Grammar) -> Result<TimeDelta, DurationError> {
    let text = input.trim().to_lowercase();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let invalid = || DurationError::Invalid(input.trim().to_owned());

    let (negative, rest) = match text.as_bytes()[0] {
        b'+' => (false, &text[1..]),
        b'-' => (true, &text[1..]),
        _ => {
            if grammar == Grammar::Api {
                return Err(DurationError::SignRequired);
            }
            (false, text.as_str())
        }
    };
    if negative && grammar == Grammar::Config {
        return Err(DurationError::Negative);
    }
    let rest = rest.trim_start();
    if rest.is_empty() {
        return Err(invalid());
    }

    // A digit-only configuration value means seconds (`"300"`).
    if grammar == Grammar::Config && rest.bytes().all(|b| b.is_ascii_digit()) {
        let secs: i64 = rest
            .parse()
            .map_err(|_| DurationError::Overflow(input.trim().to_owned()))?;
        return TimeDelta::try_seconds(secs)
            .ok_or_else(|| DurationError::Overflow(input.trim().to_owned()));
    }

    // Milliseconds per unit, in the only order the grammar allows.
    const UNITS: [(&str, i128); 6] = [
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];

    let bytes = rest.as_bytes();
    let mut pos = 0;
    let mut next_unit = 0;
    let mut total_ms: i128 = 0;
    while pos < bytes.len() {
        while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        let digits_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos == digits_start {
            return Err(invalid());
        }
        let digits = &rest[digits_start..pos];
        let unit_len = if rest[pos..].starts_with("ms") {
            2
        } else if pos < bytes.len() && b"wdhms".contains(&bytes[pos]) {
            1
        } else {
            return Err(invalid());
        };
        let unit = &rest[pos..pos + unit_len];
        pos += unit_len;
        let index = UNITS
            .iter()
            .position(|(name, _)| *name == unit)
            .ok_or_else(invalid)?;
        if index < next_unit {
            return Err(invalid());
        }
        next_unit = index + 1;
        let amount: i128 = digits
            .parse()
            .map_err(|_| DurationError::Overflow(input.trim().to_owned()))?;
        total_ms = amount
            .checked_mul(UNITS[index].1)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| DurationError::Overflow(input.trim().to_owned()))?;
    }

    let signed = if negative { -total_ms } else { total_ms };
    i64::try_from(signed)
        .ok()
        .and_then(TimeDelta::try_milliseconds)
        .ok_or_else(|| DurationError::Overflow(input.trim().to_owned()))
}

/// The exact number of nanoseconds in a TimeDelta, without chrono's 292-year limit.
fn total_nanos(d: TimeDelta) -> i128 {
    // `num_seconds` truncates towards zero and `subsec_nanos` carries the same sign.
    i128::from(d.num_seconds()) * NANOS_PER_SEC + i128::from(d.subsec_nanos())
}

/// Renders a duration like Python's `str(timedelta)`: `6:00:00`, `1 day, 2:00:00`.
///
/// The CLI prints tenant lifetimes this way, as the original did (`docs/cli.md` §3).
pub fn python_timedelta(d: TimeDelta) -> String {
    let micros = total_nanos(d).div_euclid(1_000);
    let days = micros.div_euclid(MICROS_PER_DAY);
    let rest = micros.rem_euclid(MICROS_PER_DAY);
    let secs = rest / 1_000_000;
    let frac = rest % 1_000_000;
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);

    let mut out = String::new();
    if days != 0 {
        let plural = if days.abs() == 1 { "" } else { "s" };
        out.push_str(&format!("{days} day{plural}, "));
    }
    out.push_str(&format!("{h}:{m:02}:{s:02}"));
    if frac != 0 {
        out.push_str(&format!(".{frac:06}"));
    }
    out
}

/// Renders a duration as JSON seconds, an integer when whole (`7200`) and a float otherwise.
///
/// The original API emits config-style durations this way (`docs/v3-api.md` §3).
pub fn seconds_json(d: TimeDelta) -> serde_json::Value {
    let nanos = total_nanos(d);
    if nanos % NANOS_PER_SEC == 0 {
        let secs = nanos / NANOS_PER_SEC;
        // A TimeDelta's whole seconds always fit an i64.
        match i64::try_from(secs) {
            Ok(secs) => serde_json::Value::from(secs),
            Err(_) => serde_json::Value::from(secs as f64),
        }
    } else {
        serde_json::Value::from(nanos as f64 / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secs(s: i64) -> TimeDelta {
        TimeDelta::seconds(s)
    }

    #[test]
    fn config_strings_parse() {
        let cases = [
            ("6h", secs(6 * 3600)),
            ("1d12h", secs(36 * 3600)),
            ("+3h30m", secs(3 * 3600 + 30 * 60)),
            ("300", secs(300)),
            ("1w 2d", secs(9 * 86400)),
            ("  6H  ", secs(6 * 3600)),
            (
                "1W2D3H4M5S6MS",
                TimeDelta::milliseconds(((((9 * 24 + 3) * 60 + 4) * 60 + 5) * 1000) + 6),
            ),
            ("500ms", TimeDelta::milliseconds(500)),
            ("5m", secs(300)),
            ("5m 5s", secs(305)),
            ("0s", secs(0)),
            ("+ 2h", secs(7200)),
            ("+300", secs(300)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_config_duration_str(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn config_numbers_parse() {
        assert_eq!(parse_config_duration(&json!(300)), Ok(secs(300)));
        assert_eq!(parse_config_duration(&json!(600.0)), Ok(secs(600)));
        assert_eq!(
            parse_config_duration(&json!(0.5)),
            Ok(TimeDelta::milliseconds(500))
        );
        assert_eq!(parse_config_duration(&json!("300")), Ok(secs(300)));
        assert_eq!(parse_config_duration(&json!("6h")), Ok(secs(21600)));
    }

    #[test]
    fn config_rejections() {
        assert_eq!(parse_config_duration_str(""), Err(DurationError::Empty));
        assert_eq!(parse_config_duration_str("   "), Err(DurationError::Empty));
        assert_eq!(
            parse_config_duration_str("-1h"),
            Err(DurationError::Negative)
        );
        assert_eq!(
            parse_config_duration(&json!(-5)),
            Err(DurationError::Negative)
        );
        assert_eq!(
            parse_config_duration(&json!(-0.5)),
            Err(DurationError::Negative)
        );
        for bad in [
            "6x", "1h1d", "1h1h", "h", "1.5h", "1.5", "+", "1 h", "abc", "1h-2m",
        ] {
            assert!(
                matches!(
                    parse_config_duration_str(bad),
                    Err(DurationError::Invalid(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            parse_config_duration_str("6x").map_err(|e| e.to_string()),
            Err("invalid duration '6x': expected chunks like 1w2d3h4m5s6ms".to_owned())
        );
        assert!(matches!(
            parse_config_duration(&json!(true)),
            Err(DurationError::WrongType(_))
        ));
        assert!(matches!(
            parse_config_duration_str("99999999999999999999w"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse_config_duration(&json!(1e300)),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn api_grammar() {
        assert_eq!(parse_api_duration("+1h"), Ok(secs(3600)));
        assert_eq!(parse_api_duration("-30m"), Ok(secs(-1800)));
        assert_eq!(parse_api_duration("+1d2h"), Ok(secs(26 * 3600)));
        assert_eq!(parse_api_duration(" +3H30M "), Ok(secs(3 * 3600 + 1800)));
        assert_eq!(parse_api_duration("-2d"), Ok(secs(-2 * 86400)));
        assert_eq!(parse_api_duration("1h"), Err(DurationError::SignRequired));
        assert_eq!(parse_api_duration("300"), Err(DurationError::SignRequired));
        assert_eq!(parse_api_duration(""), Err(DurationError::Empty));
        assert!(matches!(
            parse_api_duration("+300"),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            parse_api_duration("+"),
            Err(DurationError::Invalid(_))
        ));
        assert_eq!(
            parse_api_duration("1h").map_err(|e| e.to_string()),
            Err("a sign (+ or -) is required, e.g. +1h".to_owned())
        );
    }

    #[test]
    fn python_rendering() {
        assert_eq!(python_timedelta(secs(0)), "0:00:00");
        assert_eq!(python_timedelta(secs(5)), "0:00:05");
        assert_eq!(python_timedelta(secs(6 * 3600)), "6:00:00");
        assert_eq!(python_timedelta(secs(86400)), "1 day, 0:00:00");
        assert_eq!(python_timedelta(secs(26 * 3600)), "1 day, 2:00:00");
        assert_eq!(python_timedelta(secs(2 * 86400)), "2 days, 0:00:00");
        assert_eq!(
            python_timedelta(secs(3 * 86400 + 4 * 3600 + 5 * 60 + 6) + TimeDelta::microseconds(7)),
            "3 days, 4:05:06.000007"
        );
        assert_eq!(
            python_timedelta(TimeDelta::milliseconds(500)),
            "0:00:00.500000"
        );
        assert_eq!(python_timedelta(secs(-3600)), "-1 day, 23:00:00");
        assert_eq!(python_timedelta(secs(-2 * 86400)), "-2 days, 0:00:00");
        assert_eq!(
            python_timedelta(TimeDelta::microseconds(-1)),
            "-1 day, 23:59:59.999999"
        );
    }

    #[test]
    fn json_seconds() {
        assert_eq!(seconds_json(secs(7200)), json!(7200));
        assert_eq!(seconds_json(TimeDelta::milliseconds(500)), json!(0.5));
        assert_eq!(seconds_json(TimeDelta::milliseconds(1500)), json!(1.5));
        assert_eq!(seconds_json(secs(0)), json!(0));
        assert_eq!(seconds_json(secs(-60)), json!(-60));
    }
}
