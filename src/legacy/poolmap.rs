//! `metaclient.poolmap`: which v3 pool serves a v2 `ver`/`arch`/`flavor`.
//!
//! Rules are compiled once at start (regexes and pool-name templates), so a typo in the
//! configuration stops `serve` instead of failing requests one by one.

use minijinja::Environment;
use regex::Regex;
use serde::Serialize;

use crate::config::PoolMapEntry;

/// A poolmap entry that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PoolMapError {
    /// A `^…$` value is not a valid regular expression.
    #[error(
        "metaclient.poolmap[{index}].{field}: invalid regular expression '{pattern}': {reason}"
    )]
    Regex {
        /// Position of the entry.
        index: usize,
        /// `ver`, `arch` or `flavor`.
        field: &'static str,
        /// The pattern.
        pattern: String,
        /// The regex crate's complaint.
        reason: String,
    },
    /// The pool name is not a valid template.
    #[error("metaclient.poolmap[{index}].pool: invalid template '{template}': {reason}")]
    Template {
        /// Position of the entry.
        index: usize,
        /// The template.
        template: String,
        /// minijinja's complaint.
        reason: String,
    },
}

/// What a v2 request asks for, after the v2 defaults.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Wanted {
    /// `ver`, default `7`.
    pub ver: String,
    /// `arch`, default `x86_64`.
    pub arch: String,
    /// `flavor`; `tiny` by default on aarch64 and ppc64le, else absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flavor: Option<String>,
}

impl Wanted {
    /// Applies v2's defaults to the request's values.
    pub fn new(ver: Option<String>, arch: Option<String>, flavor: Option<String>) -> Wanted {
        let arch = arch.unwrap_or_else(|| "x86_64".into());
        let flavor = flavor
            .or_else(|| matches!(arch.as_str(), "aarch64" | "ppc64le").then(|| "tiny".to_owned()));
        Wanted {
            ver: ver.unwrap_or_else(|| "7".into()),
            arch,
            flavor,
        }
    }

    /// `ver=… arch=… flavor=…` for the "no pool" answer; an absent flavor prints empty.
    pub fn describe(&self) -> String {
        format!(
            "ver={} arch={} flavor={}",
            self.ver,
            self.arch,
            self.flavor.as_deref().unwrap_or("")
        )
    }
}

/// How one field of an entry matches.
#[derive(Debug)]
enum Matcher {
    /// The value must be exactly this.
    Exact(String),
    /// The value must match this (written `^…$` in the configuration).
    Pattern(Regex),
}

impl Matcher {
    fn new(index: usize, field: &'static str, text: &str) -> Result<Matcher, PoolMapError> {
        if text.len() >= 2 && text.starts_with('^') && text.ends_with('$') {
            Regex::new(text)
                .map(Matcher::Pattern)
                .map_err(|e| PoolMapError::Regex {
                    index,
                    field,
                    pattern: text.to_owned(),
                    reason: e.to_string(),
                })
        } else {
            Ok(Matcher::Exact(text.to_owned()))
        }
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(text) => text == value,
            Matcher::Pattern(regex) => regex.is_match(value),
        }
    }
}

#[derive(Debug)]
struct Rule {
    ver: Option<Matcher>,
    arch: Option<Matcher>,
    flavor: Option<Matcher>,
}

impl Rule {
    /// Fields the entry names must match; a named field the request lacks never matches.
    fn matches(&self, wanted: &Wanted) -> bool {
        let field = |m: &Option<Matcher>, v: Option<&str>| match (m, v) {
            (None, _) => true,
            (Some(m), Some(v)) => m.matches(v),
            (Some(_), None) => false,
        };
        field(&self.ver, Some(&wanted.ver))
            && field(&self.arch, Some(&wanted.arch))
            && field(&self.flavor, wanted.flavor.as_deref())
    }
}

/// The compiled poolmap.
#[derive(Debug)]
pub struct PoolMap {
    rules: Vec<Rule>,
    templates: Environment<'static>,
}

impl PoolMap {
    /// Compiles the configured entries.
    pub fn new(entries: &[PoolMapEntry]) -> Result<PoolMap, PoolMapError> {
        let mut templates = crate::templates::environment();
        let mut rules = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let field = |name, value: &Option<String>| {
                value
                    .as_deref()
                    .map(|text| Matcher::new(index, name, text))
                    .transpose()
            };
            rules.push(Rule {
                ver: field("ver", &entry.ver)?,
                arch: field("arch", &entry.arch)?,
                flavor: field("flavor", &entry.flavor)?,
            });
            templates
                .add_template_owned(index.to_string(), entry.pool.clone())
                .map_err(|e| PoolMapError::Template {
                    index,
                    template: entry.pool.clone(),
                    reason: e.to_string(),
                })?;
        }
        Ok(PoolMap { rules, templates })
    }

    /// The pool of the first matching entry, rendered with the request's values; `None`
    /// when no entry matches or the name renders empty, `.` or `..`.
    pub fn resolve(&self, wanted: &Wanted) -> Option<String> {
        let index = self.rules.iter().position(|r| r.matches(wanted))?;
        let rendered = self
            .templates
            .get_template(&index.to_string())
            .and_then(|t| t.render(minijinja::value::Serde(wanted)));
        match rendered {
            // `.` and `..` would rewrite the v3 URL's path instead of naming a pool.
            Ok(name) => {
                Some(name.trim().to_owned()).filter(|n| !n.is_empty() && n != "." && n != "..")
            }
            Err(e) => {
                tracing::warn!(entry = index, error = %e, "metaclient.poolmap: cannot render the pool name: {e}");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        pool: &str,
        ver: Option<&str>,
        arch: Option<&str>,
        flavor: Option<&str>,
    ) -> PoolMapEntry {
        PoolMapEntry {
            pool: pool.into(),
            ver: ver.map(Into::into),
            arch: arch.map(Into::into),
            flavor: flavor.map(Into::into),
        }
    }

    fn wanted(ver: &str, arch: &str, flavor: Option<&str>) -> Wanted {
        Wanted::new(Some(ver.into()), Some(arch.into()), flavor.map(Into::into))
    }

    /// The two entries of `legacy-v2.md` §4 and their documented results.
    #[test]
    fn the_documented_examples_map_as_the_original() {
        let map = PoolMap::new(&[
            entry(
                "virtual-centos{{ ver | replace('-', '') }}-{{ arch }}-{{ flavor | default('medium') }}",
                None,
                Some("^(aarch64|ppc64|ppc64le)$"),
                None,
            ),
            entry(
                "physical-centos{{ ver | replace('-', '') }}-{{ arch }}",
                None,
                Some("x86_64"),
                None,
            ),
        ])
        .unwrap();
        assert_eq!(
            map.resolve(&wanted("8-stream", "x86_64", None)).as_deref(),
            Some("physical-centos8stream-x86_64")
        );
        // aarch64 without a flavor gets v2's default flavor `tiny` before matching.
        assert_eq!(
            map.resolve(&Wanted::new(Some("7".into()), Some("ppc64".into()), None))
                .as_deref(),
            Some("virtual-centos7-ppc64-medium")
        );
        assert_eq!(
            map.resolve(&wanted("7", "aarch64", None)).as_deref(),
            Some("virtual-centos7-aarch64-tiny")
        );
        assert_eq!(map.resolve(&wanted("7", "s390x", None)), None);
    }

    #[test]
    fn first_match_wins_and_named_fields_must_be_present() {
        let map = PoolMap::new(&[
            entry("small", Some("9-stream"), None, Some("small")),
            entry("any9", Some("^9(-stream)?$"), None, None),
        ])
        .unwrap();
        assert_eq!(
            map.resolve(&wanted("9-stream", "x86_64", Some("small")))
                .as_deref(),
            Some("small")
        );
        assert_eq!(
            map.resolve(&wanted("9-stream", "x86_64", None)).as_deref(),
            Some("any9")
        );
        assert_eq!(
            map.resolve(&wanted("9", "x86_64", Some("medium")))
                .as_deref(),
            Some("any9")
        );
        // Regexes match the whole value, exact strings too.
        assert_eq!(map.resolve(&wanted("9-streamX", "x86_64", None)), None);
        assert_eq!(map.resolve(&wanted("19", "x86_64", None)), None);
        let dots = PoolMap::new(&[entry("{{ ver }}", None, None, None)]).unwrap();
        for ver in ["", ".", ".."] {
            assert_eq!(dots.resolve(&wanted(ver, "x86_64", None)), None, "{ver:?}");
        }
        assert_eq!(
            dots.resolve(&wanted("p", "x86_64", None)).as_deref(),
            Some("p")
        );
    }

    #[test]
    fn defaults_and_description() {
        let w = Wanted::new(None, None, None);
        assert_eq!(w.describe(), "ver=7 arch=x86_64 flavor=");
        assert_eq!(
            Wanted::new(Some("6".into()), Some("ppc64le".into()), None).describe(),
            "ver=6 arch=ppc64le flavor=tiny"
        );
    }

    #[test]
    fn broken_entries_are_refused_at_start() {
        let e = PoolMap::new(&[entry("p", Some("^(7$"), None, None)]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("metaclient.poolmap[0].ver: invalid regular expression '^(7$'"),
            "{e}"
        );
        let e = PoolMap::new(&[entry("{{ ver", None, None, None)]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("metaclient.poolmap[0].pool: invalid template"),
            "{e}"
        );
    }
}
