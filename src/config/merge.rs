//! Deep merge of YAML documents, remembering which file last set each key.
//!
//! Operators split their configuration over several files (`10_app.yaml` … `80_secrets.yaml`),
//! so an error must say which of them to fix. [`Provenance`] records, for every mapping key
//! path, the origin that last wrote it; errors name the nearest recorded ancestor's origin.

use std::collections::HashMap;

use yaml_serde::{Mapping, Value};

use super::ConfigError;

/// A key path from the document root: mapping keys, and `[i]` for list indices.
pub(crate) type KeyPath = Vec<String>;

/// Which origin (file name) last set each key path of the merged configuration.
#[derive(Debug, Clone, Default)]
pub(crate) struct Provenance {
    origins: HashMap<KeyPath, String>,
    /// The last origin merged, named when an error has no better candidate.
    last: Option<String>,
}

impl Provenance {
    /// The origin that set `path` or, failing that, its nearest recorded ancestor.
    pub(crate) fn origin_of(&self, path: &[String]) -> String {
        (0..=path.len())
            .rev()
            .find_map(|len| self.origins.get(&path[..len]))
            .or(self.last.as_ref())
            .cloned()
            .unwrap_or_else(|| "configuration".to_owned())
    }

    /// Records `origin` for `path` and every mapping key below it in `value`.
    fn record(&mut self, path: &mut KeyPath, value: &Value, origin: &str) {
        self.origins.insert(path.clone(), origin.to_owned());
        if let Value::Mapping(map) = value {
            for (key, child) in map {
                path.push(key_to_string(key));
                self.record(path, child, origin);
                path.pop();
            }
        }
    }
}

/// Renders a mapping key as a path segment; YAML allows non-string keys such as `7` or `true`.
pub(crate) fn key_to_string(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_owned(),
        other => yaml_serde::to_string(other)
            .map(|s| s.trim_end().to_owned())
            .unwrap_or_else(|_| "?".to_owned()),
    }
}

/// Joins a key path for messages: `nodepools.concrete.foo.fill-level`, `poolmap[0].pool`.
pub(crate) fn dotted(path: &[String]) -> String {
    let mut out = String::new();
    for segment in path {
        if !out.is_empty() && !segment.starts_with('[') {
            out.push('.');
        }
        out.push_str(segment);
    }
    if out.is_empty() {
        out.push_str("(top level)");
    }
    out
}

/// A short name of a YAML node's kind, for merge-conflict messages.
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// Accumulates documents in order into one merged mapping, with provenance.
#[derive(Debug, Default)]
pub(crate) struct Merger {
    merged: Mapping,
    provenance: Provenance,
}

impl Merger {
    /// Merges one document read from `origin`; an empty document (`null`) changes nothing.
    pub(crate) fn merge_document(&mut self, doc: Value, origin: &str) -> Result<(), ConfigError> {
        let map = match doc {
            Value::Null => return Ok(()),
            Value::Mapping(map) => map,
            other => {
                return Err(ConfigError::Invalid {
                    origin: origin.to_owned(),
                    key: "(top level)".to_owned(),
                    reason: format!("expected a mapping of sections, found {}", kind_of(&other)),
                });
            }
        };
        self.provenance.last = Some(origin.to_owned());
        let mut path = KeyPath::new();
        merge_mappings(
            &mut self.merged,
            map,
            &mut path,
            origin,
            &mut self.provenance,
        )
    }

    /// The merged mapping and the provenance of its keys.
    pub(crate) fn finish(self) -> (Mapping, Provenance) {
        (self.merged, self.provenance)
    }
}

/// Merges `incoming` into `target`: mappings recursively, anything else replaced.
fn merge_mappings(
    target: &mut Mapping,
    incoming: Mapping,
    path: &mut KeyPath,
    origin: &str,
    prov: &mut Provenance,
) -> Result<(), ConfigError> {
    for (key, value) in incoming {
        path.push(key_to_string(&key));
        match target.get_mut(&key) {
            Some(Value::Mapping(existing)) => match value {
                Value::Mapping(sub) => {
                    prov.origins.insert(path.clone(), origin.to_owned());
                    merge_mappings(existing, sub, path, origin, prov)?;
                }
                other => {
                    return Err(ConfigError::MergeConflict {
                        key: dotted(path),
                        earlier: prov.origin_of(path),
                        later: origin.to_owned(),
                        found: kind_of(&other),
                    });
                }
            },
            Some(slot) => {
                // A later scalar or list replaces the earlier value (so may a mapping: the
                // spec only forbids the opposite direction).
                prov.record(path, &value, origin);
                *slot = value;
            }
            None => {
                prov.record(path, &value, origin);
                target.insert(key, value);
            }
        }
        path.pop();
    }
    Ok(())
}

/// Deep-merges a pool's own keys over its parent's effective keys; the child always wins.
///
/// Unlike file merging, a child may replace a mapping with a scalar (`reuse-nodes: false`,
/// `deprovision: null`): that is how a pool switches an inherited feature off.
pub(crate) fn overlay(base: &mut Mapping, own: &Mapping) {
    for (key, value) in own {
        match (base.get_mut(key), value) {
            (Some(Value::Mapping(existing)), Value::Mapping(sub)) => overlay(existing, sub),
            (Some(slot), _) => *slot = value.clone(),
            (None, _) => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        match yaml_serde::from_str(text) {
            Ok(v) => v,
            Err(e) => panic!("bad test YAML: {e}"),
        }
    }

    fn path(p: &str) -> KeyPath {
        p.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn merges_recursively_and_records_provenance() {
        let mut m = Merger::default();
        m.merge_document(
            yaml("app: {host: a, port: 1}\nmetaclient: {host: x}"),
            "one.yaml",
        )
        .unwrap();
        m.merge_document(yaml("app: {port: 2, loglevel: debug}"), "two.yaml")
            .unwrap();
        let (merged, prov) = m.finish();
        assert_eq!(
            Value::Mapping(merged),
            yaml("app: {host: a, port: 2, loglevel: debug}\nmetaclient: {host: x}")
        );
        assert_eq!(prov.origin_of(&path("app.host")), "one.yaml");
        assert_eq!(prov.origin_of(&path("app.port")), "two.yaml");
        assert_eq!(prov.origin_of(&path("app.loglevel")), "two.yaml");
        assert_eq!(prov.origin_of(&path("metaclient.host.deeper")), "one.yaml");
        assert_eq!(prov.origin_of(&path("unknown")), "two.yaml");
    }

    #[test]
    fn lists_and_scalars_replace() {
        let mut m = Merger::default();
        m.merge_document(yaml("a: {l: [1, 2], s: x}"), "1").unwrap();
        m.merge_document(yaml("a: {l: [3], s: y}"), "2").unwrap();
        m.merge_document(yaml("a: {s: {now: mapping}}"), "3")
            .unwrap();
        let (merged, prov) = m.finish();
        assert_eq!(
            Value::Mapping(merged),
            yaml("a: {l: [3], s: {now: mapping}}")
        );
        assert_eq!(prov.origin_of(&path("a.s.now")), "3");
        assert_eq!(prov.origin_of(&path("a.l")), "2");
    }

    #[test]
    fn mapping_replaced_by_scalar_names_both_files() {
        let mut m = Merger::default();
        m.merge_document(
            yaml("app: {retries: {no-attempts: 3}}"),
            "/etc/duffy/10_app.yaml",
        )
        .unwrap();
        let err = m
            .merge_document(yaml("app: {retries: 5}"), "/etc/duffy/60_defaults.yaml")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/duffy/60_defaults.yaml: app.retries: cannot replace the mapping set in \
             /etc/duffy/10_app.yaml with a number"
        );
    }

    #[test]
    fn non_mapping_document_is_rejected() {
        let mut m = Merger::default();
        let err = m.merge_document(yaml("- a\n- b"), "list.yaml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "list.yaml: (top level): expected a mapping of sections, found a list"
        );
        assert!(m.merge_document(Value::Null, "empty.yaml").is_ok());
    }

    #[test]
    fn overlay_lets_the_child_win() {
        let mut base = match yaml("m: {a: 1, sub: {x: 1}}\nr: {arch: x}") {
            Value::Mapping(m) => m,
            _ => unreachable!(),
        };
        let own = match yaml("m: {b: 2, sub: {y: 2}}\nr: false") {
            Value::Mapping(m) => m,
            _ => unreachable!(),
        };
        overlay(&mut base, &own);
        assert_eq!(
            Value::Mapping(base),
            yaml("m: {a: 1, sub: {x: 1, y: 2}, b: 2}\nr: false")
        );
    }

    #[test]
    fn dotted_paths() {
        assert_eq!(dotted(&path("a.b")), "a.b");
        assert_eq!(
            dotted(&["poolmap".to_owned(), "[0]".to_owned(), "pool".to_owned()]),
            "poolmap[0].pool"
        );
        assert_eq!(dotted(&[]), "(top level)");
    }
}
