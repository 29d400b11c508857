//! `--format json`: Python's `json.dumps(body, indent=4)` plus `click.echo`'s newline.
//!
//! serde_json's pretty printer differs from Python's in indentation, in escaping (Python
//! writes every non-ASCII character as a `\u` escape such as `\u00fc`, since `ensure_ascii`
//! is on) and in
//! floats (`1e+20`, not `1e20`), so the encoder is written out here.

use std::fmt::Write as _;

use serde_json::Value;

/// One level of `indent=4`.
const INDENT: &str = "    ";

/// The body as the original prints it, trailing newline included.
pub(super) fn render(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, 0);
    out.push('\n');
    out
}

/// Appends `value`, whose first line is already indented to `depth`.
fn write_value(out: &mut String, value: &Value, depth: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&super::py_number(n)),
        Value::String(s) => write_string(out, s),
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Object(map) if map.is_empty() => out.push_str("{}"),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                write_value(out, item, depth + 1);
            }
            newline(out, depth);
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                write_string(out, key);
                out.push_str(": ");
                write_value(out, item, depth + 1);
            }
            newline(out, depth);
            out.push('}');
        }
    }
}

/// A line break followed by the indentation of `depth`.
fn newline(out: &mut String, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str(INDENT);
    }
}

/// A string literal with `ensure_ascii`: the two-character escapes Python knows, every
/// other control character, DEL and all non-ASCII as lowercase `\uxxxx` (UTF-16 units, so
/// characters beyond the BMP become surrogate pairs).
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(ch),
            _ => {
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    // Writing to a String cannot fail.
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    // Every expected string below was printed by CPython 3.11.7:
    //   python3 -c 'import json,sys; sys.stdout.write(json.dumps(json.loads(sys.argv[1]), indent=4)+"\n")' 'BODY'
    // and, for the `docs/cli.md` §6 examples, by the real `duffy client` 3.4.0 from PyPI against a
    // stub server answering those bodies.

    #[test]
    fn list_pools_example() {
        let body = json!({"action": "get", "pools": [
            {"name": "virt-ec2-t2-centos-9s-x86_64", "fill-level": 5}
        ]});
        assert_eq!(
            render(&body),
            r#"{
    "action": "get",
    "pools": [
        {
            "name": "virt-ec2-t2-centos-9s-x86_64",
            "fill-level": 5
        }
    ]
}
"#
        );
    }

    #[test]
    fn error_wrapper_example() {
        let body = json!({"error": {"detail": "Not Found"}});
        assert_eq!(
            render(&body),
            "{\n    \"error\": {\n        \"detail\": \"Not Found\"\n    }\n}\n"
        );
    }

    #[test]
    fn keys_keep_the_server_order_and_empty_containers_stay_inline() {
        let body: Value =
            serde_json::from_str(r#"{"z": [], "a": {}, "m": [[], [1, [2]], {"k": null}]}"#)
                .unwrap();
        assert_eq!(
            render(&body),
            r#"{
    "z": [],
    "a": {},
    "m": [
        [],
        [
            1,
            [
                2
            ]
        ],
        {
            "k": null
        }
    ]
}
"#
        );
    }

    #[test]
    fn scalars_at_the_top() {
        assert_eq!(render(&json!(null)), "null\n");
        assert_eq!(render(&json!(true)), "true\n");
        assert_eq!(render(&json!(false)), "false\n");
        assert_eq!(render(&json!(-17)), "-17\n");
        assert_eq!(render(&json!("")), "\"\"\n");
    }

    #[test]
    fn floats_as_python_repr() {
        let body: Value =
            serde_json::from_str("[1e20, 1.0, 0.00001, 123.456, -0.0, 1e16]").unwrap();
        assert_eq!(
            render(&body),
            "[\n    1e+20,\n    1.0,\n    1e-05,\n    123.456,\n    -0.0,\n    1e+16\n]\n"
        );
    }

    #[test]
    fn escapes_as_ensure_ascii() {
        let body = json!({"k\u{e9}y": "a\"b\\c\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}~ \u{e9}\u{20ac}\u{1f600}\u{10ffff}/"});
        assert_eq!(
            render(&body),
            "{\n    \"k\\u00e9y\": \"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f\\u007f~ \\u00e9\\u20ac\\ud83d\\ude00\\udbff\\udfff/\"\n}\n"
        );
    }
}
