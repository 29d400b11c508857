//! `metaclient.poolmap`: which v3 pool serves a v2 `ver`/`arch`/`flavor`.
//!
//! Rules are compiled once at start (regexes and pool-name templates), so a typo in the
//! configuration stops `serve` instead of failing requests one by one.
//!
//! The map also runs backwards for the unkeyed `/Inventory`: [`PoolMap::request_for`] finds
//! the v2 request (`ver`, `arch`, `flavor`) whose resolution gives a pool, for the columns
//! v2 rows had and v3 nodes lack.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};

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

/// v2's releases, architectures and flavors as its clients asked for them. Besides the
/// values the entries name, they are what a reverse lookup tries for a field an entry
/// leaves open (a pool name such as `c-{{ ver }}` needs some `ver` to render).
const V2_VERS: &[&str] = &["7", "6", "8", "8-stream", "9", "9-stream"];
const V2_ARCHES: &[&str] = &["x86_64", "aarch64", "ppc64le", "ppc64", "i386"];
const V2_FLAVORS: &[&str] = &[
    "tiny",
    "small",
    "medium",
    "lram.tiny",
    "lram.small",
    "xram.tiny",
    "xram.small",
    "xram.medium",
    "xram.large",
];

/// At most this many values of one `^…$` field are listed for reverse lookups.
const MAX_LISTED: usize = 64;

/// At most this many pool names keep their reverse lookup (pool names come from the v3
/// node listing, so from the server's configuration; the bound is a safety net).
const MAX_CACHED: usize = 10_000;

/// How one field of an entry matches.
#[derive(Debug)]
enum Matcher {
    /// The value must be exactly this.
    Exact(String),
    /// The value must match this (written `^…$` in the configuration); with the values it
    /// matches when they are few and can be listed, as in `^(a|b|c)$` or `^9(-stream)?$`.
    Pattern(Regex, Option<Vec<String>>),
}

impl Matcher {
    fn new(index: usize, field: &'static str, text: &str) -> Result<Matcher, PoolMapError> {
        if text.len() >= 2 && text.starts_with('^') && text.ends_with('$') {
            let regex = Regex::new(text).map_err(|e| PoolMapError::Regex {
                index,
                field,
                pattern: text.to_owned(),
                reason: e.to_string(),
            })?;
            let listed = listed_values(text, &regex);
            Ok(Matcher::Pattern(regex, listed))
        } else {
            Ok(Matcher::Exact(text.to_owned()))
        }
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(text) => text == value,
            Matcher::Pattern(regex, _) => regex.is_match(value),
        }
    }

    /// Every value this field matches, when they can be listed.
    fn values(&self) -> Option<&[String]> {
        match self {
            Matcher::Exact(text) => Some(std::slice::from_ref(text)),
            Matcher::Pattern(_, listed) => listed.as_deref(),
        }
    }

    /// The values to try for this field: the ones it matches when they can be listed,
    /// else those of `known` that it matches.
    fn candidates<'a>(&'a self, known: &'a [String]) -> Vec<&'a str> {
        match self.values() {
            Some(values) => values.iter().map(String::as_str).collect(),
            None => known
                .iter()
                .map(String::as_str)
                .filter(|v| self.matches(v))
                .collect(),
        }
    }
}

/// The whole language of a `^…$` pattern when it is finite and small (literals,
/// alternations, optional parts), each value checked against the regex itself; `None`
/// otherwise.
fn listed_values(pattern: &str, regex: &Regex) -> Option<Vec<String>> {
    let hir = regex_syntax::parse(pattern).ok()?;
    let seq = regex_syntax::hir::literal::Extractor::new()
        .limit_total(MAX_LISTED)
        .extract(&hir);
    if !seq.is_exact() {
        return None;
    }
    let mut values: Vec<String> = Vec::new();
    for literal in seq.literals()? {
        let Ok(value) = std::str::from_utf8(literal.as_bytes()) else {
            continue;
        };
        // Anchors inside the pattern read as empty to the extractor: keep what matches.
        if regex.is_match(value) && !values.iter().any(|v| v == value) {
            values.push(value.to_owned());
        }
    }
    Some(values)
}

/// A field's known values, each once: `first`, then those the entries name (in entry
/// order), then v2's usual ones.
fn known_values(first: &[&str], named: Vec<String>, known: &[&str]) -> Vec<String> {
    let mut seen = HashSet::new();
    first
        .iter()
        .map(|v| (*v).to_owned())
        .chain(named)
        .chain(known.iter().map(|v| (*v).to_owned()))
        .filter(|v| seen.insert(v.clone()))
        .collect()
}

#[derive(Debug)]
struct Rule {
    ver: Option<Matcher>,
    arch: Option<Matcher>,
    flavor: Option<Matcher>,
    /// The variables the pool-name template reads.
    reads: HashSet<String>,
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

/// The v2 request that leads to a pool: what an inventory row of its nodes shows as
/// `centos_version`, `architecture` and `flavor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRequest {
    /// `ver`.
    pub ver: String,
    /// `arch`.
    pub arch: String,
    /// `flavor`; `None` when the entry leaves it open (neither names nor uses it).
    pub flavor: Option<String>,
}

/// The compiled poolmap.
#[derive(Debug)]
pub struct PoolMap {
    rules: Vec<Rule>,
    templates: Environment<'static>,
    /// What a reverse lookup tries for an open `ver`, `arch` and `flavor`: v2's default,
    /// the values the entries name (in entry order), then v2's known values.
    known_vers: Vec<String>,
    known_arches: Vec<String>,
    known_flavors: Vec<String>,
    /// Pool name → the request that leads to it, once looked up.
    requests: RwLock<HashMap<String, Option<Arc<PoolRequest>>>>,
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
            let template_error = |e: minijinja::Error| PoolMapError::Template {
                index,
                template: entry.pool.clone(),
                reason: e.to_string(),
            };
            templates
                .add_template_owned(index.to_string(), entry.pool.clone())
                .map_err(template_error)?;
            let reads = templates
                .get_template(&index.to_string())
                .map_err(template_error)?
                .undeclared_variables(false);
            rules.push(Rule {
                ver: field("ver", &entry.ver)?,
                arch: field("arch", &entry.arch)?,
                flavor: field("flavor", &entry.flavor)?,
                reads,
            });
        }
        let named = |field: &dyn Fn(&Rule) -> Option<&Matcher>| -> Vec<String> {
            rules
                .iter()
                .filter_map(field)
                .filter_map(Matcher::values)
                .flatten()
                .cloned()
                .collect()
        };
        let known_vers = known_values(&["7"], named(&|r| r.ver.as_ref()), V2_VERS);
        let known_arches = known_values(&["x86_64"], named(&|r| r.arch.as_ref()), V2_ARCHES);
        let known_flavors = known_values(&[], named(&|r| r.flavor.as_ref()), V2_FLAVORS);
        Ok(PoolMap {
            rules,
            templates,
            known_vers,
            known_arches,
            known_flavors,
            requests: RwLock::new(HashMap::new()),
        })
    }

    /// The pool of the first matching entry, rendered with the request's values; `None`
    /// when no entry matches or the name renders empty, `.` or `..`.
    pub fn resolve(&self, wanted: &Wanted) -> Option<String> {
        let index = self.first_match(wanted)?;
        match self.render(index, wanted) {
            Ok(name) => name,
            Err(e) => {
                tracing::warn!(entry = index, error = %e, "metaclient.poolmap: cannot render the pool name: {e}");
                None
            }
        }
    }

    fn first_match(&self, wanted: &Wanted) -> Option<usize> {
        self.rules.iter().position(|r| r.matches(wanted))
    }

    /// Entry `index`'s pool name for `wanted`; `None` when it renders empty, `.` or `..`.
    fn render(&self, index: usize, wanted: &Wanted) -> Result<Option<String>, minijinja::Error> {
        let name = self
            .templates
            .get_template(&index.to_string())?
            .render(minijinja::value::Serde(wanted))?;
        // `.` and `..` would rewrite the v3 URL's path instead of naming a pool.
        let name = name.trim();
        Ok((!name.is_empty() && name != "." && name != "..").then(|| name.to_owned()))
    }

    /// The v2 request that leads to `pool`, as [`PoolMap::reverse`] finds it, looked up
    /// once per pool name and then remembered (the map never changes while it runs).
    pub fn request_for(&self, pool: &str) -> Option<Arc<PoolRequest>> {
        if let Some(known) = self
            .requests
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(pool)
        {
            return known.clone();
        }
        let found = self.reverse(pool).map(Arc::new);
        let mut requests = self
            .requests
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if requests.len() < MAX_CACHED {
            requests.insert(pool.to_owned(), found.clone());
        }
        found
    }

    /// A v2 request that [`PoolMap::resolve`] maps to exactly `pool`, or `None` when no
    /// entry leads there.
    ///
    /// Entries are tried in order. For each, the candidates of a field are the values it
    /// names (an exact string, or every value of a `^…$` pattern when they can be listed,
    /// e.g. `^(8|8-stream)$`), else the known values it matches: v2's default first (`7`,
    /// `x86_64`, no flavor), then every value the entries name, then v2's usual releases,
    /// architectures and flavors. A candidate counts only when this entry is the first that
    /// matches it (an entry shadowed by an earlier one is never reported) and its pool name
    /// renders to `pool`; the first such candidate wins. A flavor the entry leaves open
    /// (it neither names nor uses it) is reported absent, as v2 hosts without a flavor had,
    /// unless the request without it goes elsewhere. Resolving the answer (through
    /// [`Wanted::new`]) always gives `pool` again.
    pub fn reverse(&self, pool: &str) -> Option<PoolRequest> {
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.reads.is_empty() {
                // A fixed name: one render says whether this entry can lead to `pool`.
                let any = Wanted::new(None, None, None);
                if self.render(index, &any).ok().flatten().as_deref() != Some(pool) {
                    continue;
                }
            }
            let choices = |m: &'_ Option<Matcher>, known: &'_ [String]| -> Vec<String> {
                match m {
                    Some(m) => m.candidates(known).into_iter().map(str::to_owned).collect(),
                    None => known.to_vec(),
                }
            };
            let vers = choices(&rule.ver, &self.known_vers);
            let arches = choices(&rule.arch, &self.known_arches);
            let reads_flavor = rule.reads.contains("flavor");
            let flavors: Vec<Option<String>> = match &rule.flavor {
                Some(m) => m
                    .candidates(&self.known_flavors)
                    .into_iter()
                    .map(|f| Some(f.to_owned()))
                    .collect(),
                None => {
                    let named = self.known_flavors.iter().cloned().map(Some);
                    // A name built from the flavor is best told by the flavor that builds
                    // it; otherwise no flavor first (it escapes flavored entries before).
                    if reads_flavor {
                        named.chain([None]).collect()
                    } else {
                        [None].into_iter().chain(named).collect()
                    }
                }
            };
            for ver in &vers {
                for arch in &arches {
                    for flavor in &flavors {
                        let wanted =
                            Wanted::new(Some(ver.clone()), Some(arch.clone()), flavor.clone());
                        if self.first_match(&wanted) != Some(index) {
                            continue;
                        }
                        if self.render(index, &wanted).ok().flatten().as_deref() == Some(pool) {
                            // Open, unless only some flavor escapes an earlier entry: then
                            // that flavor is part of the way here.
                            let open = rule.flavor.is_none()
                                && !reads_flavor
                                && self.first_match(&Wanted::new(
                                    Some(ver.clone()),
                                    Some(arch.clone()),
                                    None,
                                )) == Some(index);
                            return Some(PoolRequest {
                                ver: wanted.ver,
                                arch: wanted.arch,
                                flavor: if open { None } else { wanted.flavor },
                            });
                        }
                    }
                }
            }
        }
        None
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

    /// The two entries of `docs/legacy-v2.md` §4 and their documented results.
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

    /// `map.reverse(pool)` as `(ver, arch, flavor)`, checked to resolve back to `pool`.
    fn reverse(map: &PoolMap, pool: &str) -> Option<(String, String, Option<String>)> {
        let found = map.reverse(pool)?;
        let again = Wanted::new(
            Some(found.ver.clone()),
            Some(found.arch.clone()),
            found.flavor.clone(),
        );
        assert_eq!(map.resolve(&again).as_deref(), Some(pool), "{found:?}");
        Some((found.ver, found.arch, found.flavor))
    }

    fn request(
        ver: &str,
        arch: &str,
        flavor: Option<&str>,
    ) -> Option<(String, String, Option<String>)> {
        Some((ver.into(), arch.into(), flavor.map(Into::into)))
    }

    #[test]
    fn reverse_exact_entries_and_v2_defaults_for_open_fields() {
        let map = PoolMap::new(&[
            entry("c7-medium", Some("7"), Some("x86_64"), Some("medium")),
            entry("c7", Some("7"), Some("x86_64"), None),
            entry("c8", Some("8"), None, None),
            entry("anything", None, None, None),
        ])
        .unwrap();
        assert_eq!(
            reverse(&map, "c7-medium"),
            request("7", "x86_64", Some("medium"))
        );
        // The flavored entry before does not take a request without a flavor.
        assert_eq!(reverse(&map, "c7"), request("7", "x86_64", None));
        // An open arch is v2's default.
        assert_eq!(reverse(&map, "c8"), request("8", "x86_64", None));
        // Open everywhere: v2's default request is taken by `c7`, its next architecture
        // is not.
        assert_eq!(reverse(&map, "anything"), request("7", "aarch64", None));
        assert_eq!(reverse(&map, "c9"), None);
    }

    #[test]
    fn reverse_regex_alternations() {
        let map = PoolMap::new(&[
            entry("metal", Some("^(8|8-stream)$"), None, None),
            entry(
                "c9s-{{ arch }}",
                Some("^9(-stream)?$"),
                Some("^(aarch64|ppc64le|s390x)$"),
                None,
            ),
            entry("fast", Some("^10-stream$"), None, Some("^(large|xlarge)$")),
            entry("teens", Some("^1[0-9]$"), None, None),
            entry("loose", Some("^1[0-9]+$"), None, None),
            entry("streams", Some("^.+-stream$"), None, None),
        ])
        .unwrap();
        assert_eq!(reverse(&map, "metal"), request("8", "x86_64", None));
        // The flavor is left open by the entry: absent, although aarch64 asks `tiny`.
        // `?` lists the longer value first.
        assert_eq!(
            reverse(&map, "c9s-aarch64"),
            request("9-stream", "aarch64", None)
        );
        // Values only the pattern names are found too.
        assert_eq!(
            reverse(&map, "c9s-s390x"),
            request("9-stream", "s390x", None)
        );
        assert_eq!(reverse(&map, "c9s-x86_64"), None);
        assert_eq!(
            reverse(&map, "fast"),
            request("10-stream", "x86_64", Some("large"))
        );
        // A small class is listed.
        assert_eq!(reverse(&map, "teens"), request("10", "x86_64", None));
        // A pattern whose values cannot be listed is tried with the known values: none of
        // them matches this one; `9-stream` is the first stream no entry before takes.
        assert_eq!(reverse(&map, "loose"), None);
        assert_eq!(
            reverse(&map, "streams"),
            request("9-stream", "x86_64", None)
        );
    }

    #[test]
    fn reverse_templated_pool_names() {
        let map = PoolMap::new(&[
            entry("c8-aarch64-{{ flavor }}", Some("8"), Some("aarch64"), None),
            entry(
                "virtual-centos{{ ver | replace('-', '') }}-{{ arch }}-{{ flavor | default('medium') }}",
                None,
                Some("^(ppc64|ppc64le)$"),
                None,
            ),
            entry("physical-centos{{ ver | replace('-', '') }}-{{ arch }}", None, Some("x86_64"), None),
        ])
        .unwrap();
        assert_eq!(
            reverse(&map, "c8-aarch64-tiny"),
            request("8", "aarch64", Some("tiny"))
        );
        assert_eq!(
            reverse(&map, "c8-aarch64-xram.medium"),
            request("8", "aarch64", Some("xram.medium"))
        );
        assert_eq!(
            reverse(&map, "c8-aarch64-huge"),
            None,
            "no flavor of v2's names it"
        );
        // A name built from the flavor names the flavor that builds it.
        assert_eq!(
            reverse(&map, "virtual-centos7-ppc64-medium"),
            request("7", "ppc64", Some("medium"))
        );
        assert_eq!(
            reverse(&map, "virtual-centos8stream-ppc64le-small"),
            request("8-stream", "ppc64le", Some("small"))
        );
        assert_eq!(
            reverse(&map, "physical-centos9stream-x86_64"),
            request("9-stream", "x86_64", None)
        );
        assert_eq!(reverse(&map, "physical-centos7-aarch64"), None);
    }

    #[test]
    fn reverse_never_reports_a_shadowed_entry() {
        let map = PoolMap::new(&[
            entry("first", Some("7"), None, None),
            entry("shadowed", Some("7"), Some("x86_64"), None),
            entry("c8-tiny", Some("8"), Some("aarch64"), Some("tiny")),
            entry("c8-other", Some("8"), Some("aarch64"), None),
            entry("special", Some("9-stream"), Some("aarch64"), None),
            entry(
                "c-{{ ver }}-{{ arch }}",
                Some("^(8|9-stream)$"),
                Some("^(x86_64|aarch64)$"),
                None,
            ),
        ])
        .unwrap();
        assert_eq!(reverse(&map, "first"), request("7", "x86_64", None));
        assert_eq!(reverse(&map, "shadowed"), None);
        assert_eq!(
            reverse(&map, "c8-tiny"),
            request("8", "aarch64", Some("tiny"))
        );
        // Only a flavor other than the default `tiny` gets there: it is part of the way.
        assert_eq!(
            reverse(&map, "c8-other"),
            request("8", "aarch64", Some("small"))
        );
        assert_eq!(
            reverse(&map, "c-9-stream-x86_64"),
            request("9-stream", "x86_64", None)
        );
        assert_eq!(
            reverse(&map, "c-9-stream-aarch64"),
            None,
            "taken by `special`"
        );
        assert_eq!(
            reverse(&map, "c-8-aarch64"),
            None,
            "taken by the c8 entries"
        );
        assert_eq!(reverse(&map, "c-8-x86_64"), request("8", "x86_64", None));
    }

    #[test]
    fn reverse_unknown_pools_and_names_no_request_gives() {
        let map = PoolMap::new(&[
            entry("{{ ver }}", Some("^(\\.|\\.\\.|x)$"), None, None),
            entry("c9s", Some("9-stream"), None, None),
        ])
        .unwrap();
        for pool in ["", ".", "..", "nope", "c8s"] {
            assert_eq!(reverse(&map, pool), None, "{pool:?}");
        }
        assert_eq!(reverse(&map, "x"), request("x", "x86_64", None));
        assert_eq!(PoolMap::new(&[]).unwrap().reverse("c9s"), None);
    }

    #[test]
    fn request_for_remembers_each_pool() {
        let map = PoolMap::new(&[entry("c9s-{{ arch }}", Some("9-stream"), None, None)]).unwrap();
        let first = map.request_for("c9s-aarch64").unwrap();
        assert_eq!(
            *first,
            PoolRequest {
                ver: "9-stream".into(),
                arch: "aarch64".into(),
                flavor: None
            }
        );
        assert!(Arc::ptr_eq(
            &first,
            &map.request_for("c9s-aarch64").unwrap()
        ));
        assert_eq!(map.request_for("other"), None);
        let cached = map.requests.read().unwrap();
        assert_eq!(cached.len(), 2, "misses are remembered too");
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
