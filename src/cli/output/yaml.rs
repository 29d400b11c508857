//! `--format yaml`: PyYAML 6.0.3's `yaml.dump(body)` plus `click.echo`'s newline.
//!
//! The original calls `yaml.dump` with no options: the default `Dumper`, keys sorted,
//! block style (`default_flow_style=False`), `allow_unicode` off, width 80, indent 2. No
//! Rust YAML crate writes what PyYAML writes (its quoting choices, its folding of long
//! scalars at column 80, its `? ` keys), so this module is a port of the parts of PyYAML's
//! emitter that JSON data reaches: the same state (column, indentation, "last character
//! was whitespace / indentation") and the same writers, driven by a walk of the value
//! instead of an event queue. Comments name the PyYAML functions they mirror.
//!
//! A JSON value reaches only a few of PyYAML's paths: no anchors (each parsed list and dict
//! is a distinct object), no tags (every scalar resolves implicitly), no block scalars
//! (`|`, `>`), and flow style only for empty collections (`[]`, `{}`).

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

/// PyYAML's `best_width`: plain and quoted scalars are folded past this column.
const WIDTH: usize = 80;
/// PyYAML's `best_indent`.
const INDENT: usize = 2;
/// The characters PyYAML treats as line breaks.
const BREAKS: &[char] = &['\n', '\u{85}', '\u{2028}', '\u{2029}'];

/// The body as the original prints it: `yaml.dump`'s text (which ends with a newline)
/// followed by the newline `click.echo` adds.
pub(super) fn render(value: &Value) -> String {
    let mut emitter = Emitter::default();
    emitter.document(value);
    emitter.out.push('\n');
    emitter.out
}

/// A scalar as the representer hands it to the emitter.
struct Scalar {
    /// The text, as code points (PyYAML indexes and counts columns by code point).
    text: Vec<char>,
    /// Whether it is a string (`!!str`); other scalars are plain and never quoted.
    is_str: bool,
}

impl Scalar {
    /// `represent_str`.
    fn string(s: &str) -> Self {
        Self {
            text: s.chars().collect(),
            is_str: true,
        }
    }

    /// `represent_none`, `represent_bool`, `represent_int` and `represent_float`.
    fn other(text: &str) -> Self {
        Self {
            text: text.chars().collect(),
            is_str: false,
        }
    }
}

/// Which styles `analyze_scalar` allows for a scalar in block context (the only context
/// scalars reach here).
struct Analysis {
    empty: bool,
    multiline: bool,
    allow_block_plain: bool,
    allow_single_quoted: bool,
}

/// How a scalar is written: `choose_scalar_style`'s answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Single,
    Double,
}

/// The emitter's state, named as in PyYAML.
#[derive(Default)]
struct Emitter {
    out: String,
    /// The current indentation; `None` before the root collection opens.
    indent: Option<usize>,
    indents: Vec<Option<usize>>,
    root_context: bool,
    mapping_context: bool,
    simple_key_context: bool,
    column: usize,
    /// The last character written was whitespace (or nothing was written yet).
    whitespace: bool,
    /// Only indentation (spaces, `-`, `?`, `:`) has been written on this line.
    indention: bool,
    /// A top-level plain scalar needs the `...` document end marker.
    open_ended: bool,
}

impl Emitter {
    /// `expect_document_start` (implicit: no `---`) to `expect_stream_end`.
    fn document(&mut self, value: &Value) {
        self.whitespace = true;
        self.indention = true;
        self.node(value, true, false, false);
        // expect_document_end
        self.write_indent();
        // expect_document_start at the stream end
        if self.open_ended {
            self.write_indicator("...", true, false, false);
            self.write_indent();
        }
    }

    /// `expect_node`.
    fn node(&mut self, value: &Value, root: bool, mapping: bool, simple_key: bool) {
        self.root_context = root;
        self.mapping_context = mapping;
        self.simple_key_context = simple_key;
        match value {
            Value::Null => self.scalar(&Scalar::other("null")),
            Value::Bool(b) => self.scalar(&Scalar::other(if *b { "true" } else { "false" })),
            Value::Number(n) => self.scalar(&Scalar::other(&number(n))),
            Value::String(s) => self.scalar(&Scalar::string(s)),
            Value::Array(items) if items.is_empty() => self.empty_flow("[", "]"),
            Value::Object(map) if map.is_empty() => self.empty_flow("{", "}"),
            Value::Array(items) => self.block_sequence(items),
            Value::Object(map) => {
                // represent_mapping with sort_keys: Python compares str by code point,
                // which is the byte order of UTF-8.
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                self.block_mapping(&entries);
            }
        }
    }

    /// `expect_flow_sequence` / `expect_flow_mapping` for an empty collection: `[]`, `{}`
    /// (the only flow collections, so no scalar is ever in flow context).
    fn empty_flow(&mut self, open: &str, close: &str) {
        self.write_indicator(open, true, true, false);
        self.write_indicator(close, false, false, false);
    }

    /// `expect_block_sequence` and its items: `- item`, not indented under a mapping key.
    fn block_sequence(&mut self, items: &[Value]) {
        let indentless = self.mapping_context && !self.indention;
        self.increase_indent(false, indentless);
        for item in items {
            self.write_indent();
            self.write_indicator("-", true, false, true);
            self.node(item, false, false, false);
        }
        self.pop_indent();
    }

    /// `expect_block_mapping` and its keys: `key: value`, or `? key` / `: value` for a key
    /// that cannot be simple (empty, multi-line or long).
    fn block_mapping(&mut self, entries: &[(&String, &Value)]) {
        self.increase_indent(false, false);
        for (key, value) in entries {
            let key = Scalar::string(key);
            self.write_indent();
            if simple_key(&key) {
                self.node_scalar(&key, true, true);
                self.write_indicator(":", false, false, false);
            } else {
                self.write_indicator("?", true, false, true);
                self.node_scalar(&key, true, false);
                self.write_indent();
                self.write_indicator(":", true, false, true);
            }
            self.node(value, false, true, false);
        }
        self.pop_indent();
    }

    /// `expect_node` for a mapping key.
    fn node_scalar(&mut self, scalar: &Scalar, mapping: bool, simple_key: bool) {
        self.root_context = false;
        self.mapping_context = mapping;
        self.simple_key_context = simple_key;
        self.scalar(scalar);
    }

    /// `expect_scalar` and `process_scalar`.
    fn scalar(&mut self, scalar: &Scalar) {
        self.increase_indent(true, false);
        let split = !self.simple_key_context;
        match self.choose_style(scalar) {
            Style::Plain => self.write_plain(&scalar.text, split),
            Style::Single => self.write_single_quoted(&scalar.text, split),
            Style::Double => self.write_double_quoted(&scalar.text, split),
        }
        self.pop_indent();
    }

    /// `choose_scalar_style` for a scalar with no requested style, in block context.
    fn choose_style(&self, scalar: &Scalar) -> Style {
        let analysis = analyze(&scalar.text);
        // The serializer's `implicit[0]`: the plain text reads back as the same type.
        let implicit = !scalar.is_str || resolves_to_str(&scalar.text);
        if implicit
            && !(self.simple_key_context && (analysis.empty || analysis.multiline))
            && analysis.allow_block_plain
        {
            return Style::Plain;
        }
        if analysis.allow_single_quoted && !(self.simple_key_context && analysis.multiline) {
            return Style::Single;
        }
        Style::Double
    }

    /// `increase_indent`.
    fn increase_indent(&mut self, flow: bool, indentless: bool) {
        self.indents.push(self.indent);
        self.indent = match self.indent {
            None if flow => Some(INDENT),
            None => Some(0),
            Some(n) if !indentless => Some(n + INDENT),
            Some(n) => Some(n),
        };
    }

    /// Restores the indentation saved by the matching [`Self::increase_indent`].
    fn pop_indent(&mut self) {
        self.indent = self.indents.pop().flatten();
    }

    /// `write_indicator`.
    fn write_indicator(
        &mut self,
        indicator: &str,
        need_whitespace: bool,
        whitespace: bool,
        indention: bool,
    ) {
        if !self.whitespace && need_whitespace {
            self.out.push(' ');
            self.column += 1;
        }
        self.out.push_str(indicator);
        self.column += indicator.chars().count();
        self.whitespace = whitespace;
        self.indention = self.indention && indention;
        self.open_ended = false;
    }

    /// `write_indent`: a new line unless only indentation is on this one, then spaces up to
    /// the current indentation.
    fn write_indent(&mut self) {
        let indent = self.indent.unwrap_or(0);
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.write_line_break(None);
        }
        if self.column < indent {
            self.whitespace = true;
            for _ in self.column..indent {
                self.out.push(' ');
            }
            self.column = indent;
        }
    }

    /// `write_line_break`: `\n`, or the break character given.
    fn write_line_break(&mut self, data: Option<char>) {
        self.whitespace = true;
        self.indention = true;
        self.column = 0;
        self.out.push(data.unwrap_or('\n'));
    }

    /// Writes `text[start..end]`, counting its columns.
    fn write_chars(&mut self, text: &[char], start: usize, end: usize) {
        self.out.extend(&text[start..end]);
        self.column += end - start;
    }

    /// Writes the line breaks `text[start..end]` of a quoted or plain scalar: a lone `\n`
    /// folds to a space when read back, so a first `\n` is written twice.
    fn write_breaks(&mut self, text: &[char], start: usize, end: usize) {
        if text[start] == '\n' {
            self.write_line_break(None);
        }
        for &br in &text[start..end] {
            self.write_line_break(Some(br));
        }
        self.write_indent();
    }

    /// `write_plain`: words separated by single spaces fold at a space past column 80.
    fn write_plain(&mut self, text: &[char], split: bool) {
        if self.root_context {
            self.open_ended = true;
        }
        if text.is_empty() {
            return;
        }
        if !self.whitespace {
            self.out.push(' ');
            self.column += 1;
        }
        self.whitespace = false;
        self.indention = false;
        let mut spaces = false;
        let mut breaks = false;
        let mut start = 0;
        for end in 0..=text.len() {
            let ch = text.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    if start + 1 == end && self.column > WIDTH && split {
                        self.write_indent();
                        self.whitespace = false;
                        self.indention = false;
                    } else {
                        self.write_chars(text, start, end);
                    }
                    start = end;
                }
            } else if breaks {
                if !ch.is_some_and(|c| BREAKS.contains(&c)) {
                    self.write_breaks(text, start, end);
                    self.whitespace = false;
                    self.indention = false;
                    start = end;
                }
            } else if ch.is_none_or(|c| c == ' ' || BREAKS.contains(&c)) {
                self.write_chars(text, start, end);
                start = end;
            }
            if let Some(c) = ch {
                spaces = c == ' ';
                breaks = BREAKS.contains(&c);
            }
        }
    }

    /// `write_single_quoted`: `'` doubled; folds like plain text, but never at the first
    /// or last character.
    fn write_single_quoted(&mut self, text: &[char], split: bool) {
        self.write_indicator("'", true, false, false);
        let mut spaces = false;
        let mut breaks = false;
        let mut start = 0;
        for end in 0..=text.len() {
            let ch = text.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    if start + 1 == end
                        && self.column > WIDTH
                        && split
                        && start != 0
                        && end != text.len()
                    {
                        self.write_indent();
                    } else {
                        self.write_chars(text, start, end);
                    }
                    start = end;
                }
            } else if breaks {
                if !ch.is_some_and(|c| BREAKS.contains(&c)) {
                    self.write_breaks(text, start, end);
                    start = end;
                }
            } else if ch.is_none_or(|c| c == ' ' || c == '\'' || BREAKS.contains(&c)) && start < end
            {
                self.write_chars(text, start, end);
                start = end;
            }
            if ch == Some('\'') {
                self.out.push_str("''");
                self.column += 2;
                start = end + 1;
            }
            if let Some(c) = ch {
                spaces = c == ' ';
                breaks = BREAKS.contains(&c);
            }
        }
        self.write_indicator("'", false, false, false);
    }

    /// `write_double_quoted` with `allow_unicode` off: everything outside printable ASCII
    /// escaped; long text folded with a trailing `\` at a space (or right after an escape)
    /// past column 80.
    fn write_double_quoted(&mut self, text: &[char], split: bool) {
        self.write_indicator("\"", true, false, false);
        let mut start = 0;
        for end in 0..=text.len() {
            let ch = text.get(end).copied();
            let escaped = match ch {
                None => true,
                Some(c) => {
                    matches!(
                        c,
                        '"' | '\\' | '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}'
                    ) || !(' '..='~').contains(&c)
                }
            };
            if escaped {
                if start < end {
                    self.write_chars(text, start, end);
                    start = end;
                }
                if let Some(c) = ch {
                    let data = escape(c);
                    self.column += data.len();
                    self.out.push_str(&data);
                    start = end + 1;
                }
            }
            // Right after an escape `start` is `end + 1`, and PyYAML's `end - start` is -1.
            let pending = end as isize - start as isize;
            if 0 < end
                && end + 1 < text.len()
                && (ch == Some(' ') || start >= end)
                && self.column as isize + pending > WIDTH as isize
                && split
            {
                self.out.extend(&text[start.min(end)..end]);
                self.out.push('\\');
                self.column += end.saturating_sub(start) + 1;
                if start < end {
                    start = end;
                }
                self.write_indent();
                self.whitespace = false;
                self.indention = false;
                if text.get(start) == Some(&' ') {
                    self.out.push('\\');
                    self.column += 1;
                }
            }
        }
        self.write_indicator("\"", false, false, false);
    }
}

/// `check_simple_key` for a string key: `key: value` when the key is neither empty nor
/// multi-line and its tag (`!!str`, 5 characters, counted although never written) plus
/// its text are shorter than 128 characters.
fn simple_key(key: &Scalar) -> bool {
    let analysis = analyze(&key.text);
    "!!str".len() + key.text.len() < 128 && !analysis.empty && !analysis.multiline
}

/// PyYAML's escape of one character in a double-quoted scalar.
fn escape(c: char) -> String {
    let short = match c {
        '\0' => Some('0'),
        '\u{7}' => Some('a'),
        '\u{8}' => Some('b'),
        '\t' => Some('t'),
        '\n' => Some('n'),
        '\u{b}' => Some('v'),
        '\u{c}' => Some('f'),
        '\r' => Some('r'),
        '\u{1b}' => Some('e'),
        '"' => Some('"'),
        '\\' => Some('\\'),
        '\u{85}' => Some('N'),
        '\u{a0}' => Some('_'),
        '\u{2028}' => Some('L'),
        '\u{2029}' => Some('P'),
        _ => None,
    };
    match (short, u32::from(c)) {
        (Some(s), _) => format!("\\{s}"),
        (None, n) if n <= 0xff => format!("\\x{n:02X}"),
        (None, n) if n <= 0xffff => format!("\\u{n:04X}"),
        (None, n) => format!("\\U{n:08X}"),
    }
}

/// `analyze_scalar` with `allow_unicode` off, reduced to what block context needs.
fn analyze(text: &[char]) -> Analysis {
    if text.is_empty() {
        return Analysis {
            empty: true,
            multiline: false,
            allow_block_plain: true,
            allow_single_quoted: true,
        };
    }
    let is_space = |c: char| matches!(c, '\0' | ' ' | '\t' | '\r') || BREAKS.contains(&c);
    let mut block_indicators = false;
    let mut line_breaks = false;
    let mut special_characters = false;
    let (mut leading_space, mut leading_break) = (false, false);
    let (mut trailing_space, mut trailing_break) = (false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut previous_space, mut previous_break) = (false, false);

    if text.starts_with(&['-', '-', '-']) || text.starts_with(&['.', '.', '.']) {
        block_indicators = true;
    }
    let mut preceded_by_whitespace = true;
    let mut followed_by_whitespace = text.len() == 1 || is_space(text[1]);
    let last = text.len() - 1;
    for (index, &ch) in text.iter().enumerate() {
        if index == 0 {
            // Leading indicators.
            if "#,[]{}&*!|>'\"%@`".contains(ch) {
                block_indicators = true;
            }
            if (ch == '?' || ch == ':' || ch == '-') && followed_by_whitespace {
                block_indicators = true;
            }
        } else if (ch == ':' && followed_by_whitespace) || (ch == '#' && preceded_by_whitespace) {
            block_indicators = true;
        }
        if BREAKS.contains(&ch) {
            line_breaks = true;
        }
        if !(ch == '\n' || (' '..='~').contains(&ch)) {
            // Without allow_unicode every other character is special.
            special_characters = true;
        }
        if ch == ' ' {
            leading_space |= index == 0;
            trailing_space |= index == last;
            break_space |= previous_break;
            previous_space = true;
            previous_break = false;
        } else if BREAKS.contains(&ch) {
            leading_break |= index == 0;
            trailing_break |= index == last;
            space_break |= previous_space;
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = is_space(ch);
        followed_by_whitespace = index + 2 >= text.len() || is_space(text[index + 2]);
    }

    let mut allow_block_plain = true;
    let mut allow_single_quoted = true;
    if leading_space || leading_break || trailing_space || trailing_break {
        allow_block_plain = false;
    }
    if break_space {
        allow_block_plain = false;
        allow_single_quoted = false;
    }
    if space_break || special_characters {
        allow_block_plain = false;
        allow_single_quoted = false;
    }
    if line_breaks || block_indicators {
        allow_block_plain = false;
    }
    Analysis {
        empty: false,
        multiline: line_breaks,
        allow_block_plain,
        allow_single_quoted,
    }
}

/// The implicit resolvers of PyYAML's YAML 1.1 `Resolver`, each tried only on strings
/// starting with one of its characters. Written without `re.X`'s ignored whitespace.
static RESOLVERS: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    let table: [(&str, &str); 8] = [
        // bool
        (
            "yYnNtTfFoO",
            r"yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF",
        ),
        // float
        (
            "-+0123456789.",
            r"[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
        ),
        // int
        (
            "-+0123456789",
            r"[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+",
        ),
        // merge
        ("<", r"<<"),
        // null (the empty string is handled by the caller)
        ("~nN", r"~|null|Null|NULL|"),
        // timestamp
        (
            "0123456789",
            r"[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?",
        ),
        // value
        ("=", r"="),
        // yaml
        ("!&*", r"!|&|\*"),
    ];
    table
        .into_iter()
        .filter_map(|(first, pattern)| {
            // The patterns are constants; a typo would show in every test.
            Regex::new(&format!(r"\A(?:{pattern})\z"))
                .ok()
                .map(|re| (first, re))
        })
        .collect()
});

/// Whether a plain scalar with this text reads back as a string, i.e. no implicit resolver
/// claims it: otherwise a string such as `yes`, `1.5`, `~` or a timestamp gets quoted.
///
/// Python's `$` also matches before a final newline, so `yes\n` is claimed too (it gets
/// quoted either way, as multi-line text).
fn resolves_to_str(text: &[char]) -> bool {
    let Some(&first) = text.first() else {
        // The empty string resolves to null.
        return false;
    };
    let s: String = text.iter().collect();
    let trimmed = s.strip_suffix('\n');
    !RESOLVERS.iter().any(|(chars, re)| {
        chars.contains(first) && (re.is_match(&s) || trimmed.is_some_and(|t| re.is_match(t)))
    })
}

/// `represent_int` and `represent_float`: Python's `repr`, lowercased, with `.0` added to
/// a mantissa without a point so that it reads back as a float (`1e+20` → `1.0e+20`).
fn number(n: &serde_json::Number) -> String {
    let text = super::py_number(n).to_lowercase();
    if n.is_f64() && !text.contains('.') && text.contains('e') {
        text.replacen('e', ".0e", 1)
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    // Every expected string below is `yaml.dump(v) + "\n"` as printed by PyYAML 6.0.3 on
    // CPython 3.11.7, produced with
    //   python3 -c 'import json,sys,yaml; print(repr(yaml.dump(json.loads(sys.argv[1]))+"\n"))' 'BODY'
    // (the `+ "\n"` is `click.echo`'s); the `docs/cli.md` §6 example was also checked against the
    // real `duffy client --format yaml` 3.4.0 from PyPI and a stub server.

    /// `yaml.dump` of `{"k": <s>}`, without the `k: ` and the final newlines.
    fn value_of(s: &str) -> String {
        let out = render(&json!({ "k": s }));
        out.strip_prefix("k: ")
            .and_then(|o| o.strip_suffix("\n\n"))
            .unwrap_or_else(|| panic!("unexpected {out:?}"))
            .to_owned()
    }

    #[test]
    fn list_pools_example() {
        let body = json!({"action": "get", "pools": [
            {"name": "virt-ec2-t2-centos-9s-x86_64", "fill-level": 5}
        ]});
        assert_eq!(
            render(&body),
            "action: get\npools:\n- fill-level: 5\n  name: virt-ec2-t2-centos-9s-x86_64\n\n"
        );
    }

    #[test]
    fn session_with_timestamps_and_nulls() {
        let body: Value = serde_json::from_str(
            r#"{"action": "get", "session": {"id": 4, "active": true,
            "created_at": "2026-11-22T02:36:36Z", "retired_at": null,
            "tenant": {"id": 1, "name": "x"}, "nodes": []}}"#,
        )
        .unwrap();
        assert_eq!(
            render(&body),
            "action: get\nsession:\n  active: true\n  created_at: '2026-11-22T02:36:36Z'\n  id: 4\n  nodes: []\n  retired_at: null\n  tenant:\n    id: 1\n    name: x\n\n"
        );
    }

    #[test]
    fn error_wrapper() {
        let body = json!({"error": {"detail": "Not Found"}});
        assert_eq!(render(&body), "error:\n  detail: Not Found\n\n");
    }

    #[test]
    fn strings_that_read_as_other_types_are_single_quoted() {
        for s in [
            "yes",
            "No",
            "ON",
            "off",
            "y",
            "n",
            "true",
            "False",
            "null",
            "Null",
            "~",
            "",
            "1",
            "-1",
            "+1",
            "0x1f",
            "0o7",
            "017",
            "0b101",
            "1_000",
            "1:30",
            "1.5",
            ".5",
            "1.",
            "-.inf",
            ".NaN",
            "1:30.5",
            "2026-11-22",
            "2026-11-22T02:36:36Z",
            "2026-1-2 3:04:05.123 +01:00",
            "<<",
            "=",
            "!",
            "&",
            "*",
        ] {
            let want = match s {
                // Indicators: quoted for being indicators, not for their type.
                "y" | "n" | "0o7" => s.to_owned(),
                _ => format!("'{s}'"),
            };
            assert_eq!(value_of(s), want, "{s:?}");
        }
    }

    #[test]
    fn plain_strings() {
        for s in [
            "abc",
            "a b",
            "a:b",
            "a#b",
            "1e5",
            "0x",
            "-a",
            "?a",
            ":a",
            "a,b[c]{d}",
            "a?",
            "a'b",
            "a\"b",
            "yes!",
            "nul",
            "192.168.1.37",
            "1.2.3",
            "node-opennebula-small-27.example.net",
            "--",
            "..",
            "a-",
        ] {
            assert_eq!(value_of(s), s, "{s:?}");
        }
    }

    #[test]
    fn indicator_and_space_rules() {
        let cases = [
            ("- a", "'- a'"),
            ("-", "'-'"),
            ("?", "'?'"),
            (":", "':'"),
            ("? a", "'? a'"),
            ("a: b", "'a: b'"),
            ("a:", "'a:'"),
            ("a #b", "'a #b'"),
            ("#a", "'#a'"),
            (",a", "',a'"),
            ("[a", "'[a'"),
            ("{a", "'{a'"),
            ("&a", "'&a'"),
            ("*a", "'*a'"),
            ("!a", "'!a'"),
            ("|a", "'|a'"),
            (">a", "'>a'"),
            ("'a", "'''a'"),
            ("\"a", "'\"a'"),
            ("%a", "'%a'"),
            ("@a", "'@a'"),
            ("`a", "'`a'"),
            ("---", "'---'"),
            ("...a", "'...a'"),
            (" a", "' a'"),
            ("a ", "'a '"),
            ("it's", "it's"),
            ("'", "''''"),
        ];
        for (s, want) in cases {
            assert_eq!(value_of(s), want, "{s:?}");
        }
    }

    #[test]
    fn control_and_non_ascii_characters_are_double_quoted_escapes() {
        let cases = [
            ("a\tb", r#""a\tb""#),
            ("caf\u{e9}", r#""caf\xE9""#),
            ("\u{20ac}", r#""\u20AC""#),
            ("\u{1f600}", r#""\U0001F600""#),
            (
                "\u{0}\u{7}\u{8}\u{b}\u{c}\r\u{1b}\u{1}\u{7f}",
                r#""\0\a\b\v\f\r\e\x01\x7F""#,
            ),
            (
                "\u{85}\u{a0}\u{2028}\u{2029}\u{feff}",
                r#""\N\_\L\P\uFEFF""#,
            ),
            ("\"\\\u{e9}", r#""\"\\\xE9""#),
            ("a \nb", "\"a \\nb\""),
        ];
        for (s, want) in cases {
            assert_eq!(value_of(s), want, "{s:?}");
        }
    }

    #[test]
    fn multi_line_strings_are_single_quoted_with_doubled_breaks() {
        assert_eq!(value_of("a\nb"), "'a\n\n  b'");
        assert_eq!(value_of("a\n\nb"), "'a\n\n\n  b'");
        assert_eq!(value_of("\na"), "'\n\n  a'");
        assert_eq!(value_of("a\n"), "'a\n\n  '");
        assert_eq!(value_of("a\n b"), "\"a\\n b\"");
    }

    #[test]
    fn long_plain_strings_fold_at_the_first_space_past_column_80() {
        let words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore";
        assert_eq!(
            value_of(words),
            "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt\n  ut labore et dolore"
        );
        // No space: never folded.
        let long = "x".repeat(150);
        assert_eq!(value_of(&long), long);
        // Double spaces are not a fold point.
        let spaced = format!("{}  {}", "a".repeat(85), "b".repeat(5));
        assert_eq!(value_of(&spaced), spaced);
    }

    #[test]
    fn long_quoted_strings_fold_too() {
        let single = format!("{}: {}", "a".repeat(60), "b c ".repeat(10));
        assert_eq!(
            value_of(&single),
            "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa: b c b c b c b c\n  b c b c b c b c b c b c '"
        );
        let double = format!("{}\u{e9} {}", "a".repeat(75), "b ".repeat(8));
        assert_eq!(
            value_of(&double),
            "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\\xE9\\\n  \\ b b b b b b b b \""
        );
    }

    #[test]
    fn keys_sort_and_long_or_empty_keys_use_question_marks() {
        let body = json!({"b": 1, "B": 2, "a": {"z": [], "y": {}}, "": 3});
        assert_eq!(
            render(&body),
            "? ''\n: 3\nB: 2\na:\n  y: {}\n  z: []\nb: 1\n\n"
        );
        let key122 = "k".repeat(122);
        let key123 = "k".repeat(123);
        assert_eq!(
            render(&json!({ key122.clone(): 1 })),
            format!("{key122}: 1\n\n")
        );
        assert_eq!(
            render(&json!({ key123.clone(): 1 })),
            format!("? {key123}\n: 1\n\n")
        );
        assert_eq!(render(&json!({"a\nb": [1]})), "? 'a\n\n  b'\n: - 1\n\n");
    }

    #[test]
    fn nested_sequences_and_mappings() {
        let body = json!({"a": [[1, [2, []]], {"b": [{"c": null}]}, []], "d": [{}]});
        assert_eq!(
            render(&body),
            "a:\n- - 1\n  - - 2\n    - []\n- b:\n  - c: null\n- []\nd:\n- {}\n\n"
        );
    }

    #[test]
    fn scalars_at_the_top() {
        assert_eq!(render(&json!("abc")), "abc\n...\n\n");
        assert_eq!(render(&json!("yes")), "'yes'\n\n");
        assert_eq!(render(&json!(null)), "null\n...\n\n");
        assert_eq!(render(&json!(7)), "7\n...\n\n");
        assert_eq!(render(&json!([])), "[]\n\n");
        assert_eq!(render(&json!({})), "{}\n\n");
        assert_eq!(render(&json!([1, "a"])), "- 1\n- a\n\n");
    }

    #[test]
    fn numbers_and_bools() {
        let body: Value = serde_json::from_str(
            r#"{"a": 1e20, "b": 1.5, "c": -0.0, "d": 0.00001, "e": 18446744073709551615, "f": false, "g": 1e16}"#,
        )
        .unwrap();
        assert_eq!(
            render(&body),
            "a: 1.0e+20\nb: 1.5\nc: -0.0\nd: 1.0e-05\ne: 18446744073709551615\nf: false\ng: 1.0e+16\n\n"
        );
    }
}
