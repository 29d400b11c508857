//! What `duffy client` prints: the three `--format`s of the original Python client, byte
//! for byte (`docs/cli.md` §6).
//!
//! The original hands the server's JSON body (or its error wrapper) to `json.dumps(…,
//! indent=4)`, PyYAML's `yaml.dump(…)` or its own flat formatter, and prints the result with
//! `click.echo`, which adds a newline. Scripts parse these outputs, so each module here
//! reproduces its Python counterpart exactly for the JSON values a server can send:
//! `json` the standard library's encoder, `yaml` PyYAML 6.0.3's emitter, `flat` the
//! client's `key='value'` lines.

mod flat;
mod json;
mod yaml;

use serde_json::Value;

/// `--format`: how `duffy client` prints a server answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Python's `json.dumps(body, indent=4)`; the default.
    Json,
    /// PyYAML's `yaml.dump(body)`: block style, keys sorted.
    Yaml,
    /// One `key='value'` line per pool or session node, for shell scripts.
    Flat,
}

/// The exact bytes the original client writes to stdout for `value` (a server body such as
/// `{"action":"get","pools":[...]}`, or the error wrapper `{"error":{"detail":...}}`),
/// trailing newline included where the original prints one, nothing at all where it prints
/// nothing.
///
/// `click.echo` appends a newline to every format, so the YAML text, which already ends
/// with one, is followed by an empty line. The original's list commands skip that newline
/// when the text is empty, which only happens in the flat format (`pools` or `sessions`
/// with no line to show).
pub fn render(format: Format, value: &Value) -> String {
    match format {
        Format::Json => json::render(value),
        Format::Yaml => yaml::render(value),
        Format::Flat => flat::render(value),
    }
}

/// A float as Python's `repr(float)` writes it, which `json.dumps`, `str()` and PyYAML all
/// use: the shortest digits that read back to the same value, in positional notation
/// (`100.0`, `0.0001`) when the decimal exponent is in `-5 < e < 16`, else in scientific
/// notation with a signed exponent of at least two digits (`1e+16`, `1.5e-05`).
///
/// Rust's `{:e}` yields the same shortest digits; only the layout is Python's. A JSON value
/// never holds NaN or an infinity, but they print as Python's `repr` does.
fn py_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let sci = shortest_digits(x.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if (-5 < exponent) && (exponent < 16) {
        // Positional: the decimal point goes after `exponent + 1` digits.
        let point = exponent + 1;
        let n = i32::try_from(digits.len()).unwrap_or(i32::MAX);
        let body = if point <= 0 {
            let zeros = "0".repeat(usize::try_from(-point).unwrap_or(0));
            format!("0.{zeros}{digits}")
        } else if point < n {
            let (int, frac) = digits.split_at(usize::try_from(point).unwrap_or(0));
            format!("{int}.{frac}")
        } else {
            let zeros = "0".repeat(usize::try_from(point - n).unwrap_or(0));
            format!("{digits}{zeros}.0")
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exponent < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{esign}{:02}", exponent.unsigned_abs())
    }
}

/// `x` (not negative) as `d[.ddd]e[-]x` with the digits Python's `repr` picks: the fewest
/// that read back as `x` and, among those, the nearest to `x`, a tie going to the even
/// digit.
///
/// Rust's `{:e}` finds the fewest digits but breaks an exact tie upwards
/// (`830458085862624.25` gives `…624.3`; Python says `…624.2`). Rust's exactly rounded
/// `{:.N e}` breaks ties to even, so with as many digits it is Python's answer, unless
/// that candidate does not read back (possible just above a power of two, where the
/// interval of values that read back is narrower below `x` than above).
fn shortest_digits(x: f64) -> String {
    let shortest = format!("{x:e}");
    let mantissa = shortest
        .split_once('e')
        .map_or(shortest.as_str(), |(m, _)| m);
    let significant = mantissa.chars().filter(char::is_ascii_digit).count();
    let nearest = format!("{:.*e}", significant.saturating_sub(1), x);
    if nearest.parse::<f64>() == Ok(x) {
        nearest
    } else {
        shortest
    }
}

/// A JSON number as Python prints the value `json.loads` made of it: integers exactly,
/// floats through [`py_float`].
fn py_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        n.to_string()
    } else {
        py_float(n.as_f64().unwrap_or(f64::NAN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected strings from CPython 3.11.7: `python3 -c 'print(repr(X))'` for each X.
    #[test]
    fn floats_print_as_python_repr() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (1.5, "1.5"),
            (-2.25, "-2.25"),
            (100.0, "100.0"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.000012345, "1.2345e-05"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789012345.6, "123456789012345.6"),
            (1e20, "1e+20"),
            (1e100, "1e+100"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (1.0 / 3.0, "0.3333333333333333"),
            (2.0 / 3.0, "0.6666666666666666"),
            (-1e-7, "-1e-07"),
            (9007199254740993.0, "9007199254740992.0"),
            // Exactly halfway between two shortest candidates: Python rounds to even.
            (830458085862624.0 + 0.25, "830458085862624.2"),
            (1324157845642657.0 + 0.25, "1324157845642657.2"),
            (-2016887976090924.0 - 0.25, "-2016887976090924.2"),
            (1e23, "1e+23"),
            (9.5e-5, "9.5e-05"),
        ];
        for (x, want) in cases {
            assert_eq!(py_float(*x), *want, "repr({x:e})");
        }
    }

    #[test]
    fn integers_stay_exact() {
        let big: Value = serde_json::from_str("18446744073709551615").unwrap();
        let Value::Number(n) = big else { panic!() };
        assert_eq!(py_number(&n), "18446744073709551615");
        let neg: Value = serde_json::from_str("-9223372036854775808").unwrap();
        let Value::Number(n) = neg else { panic!() };
        assert_eq!(py_number(&n), "-9223372036854775808");
        let float: Value = serde_json::from_str("1e20").unwrap();
        let Value::Number(n) = float else { panic!() };
        assert_eq!(py_number(&n), "1e+20");
    }
}
