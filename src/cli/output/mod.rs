//! Output formats of `duffy client` (interim: JSON only until the formats land).

use serde_json::Value;

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Python's `json.dumps(…, indent=4)`.
    Json,
    /// PyYAML's `yaml.dump`.
    Yaml,
    /// One `key=value` line per pool or session node.
    Flat,
}

/// The exact bytes the original client writes to stdout for `value`.
pub fn render(_format: Format, value: &Value) -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(value).unwrap_or_default()
    )
}
