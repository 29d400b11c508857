//! Node pools: `extends` inheritance, typed pool keys and template checks (`docs/config.md` §4).
//!
//! Pools are processed in the order they appear in the merged YAML (`abstract`, then
//! `concrete`, normally), so `extends` may only name a pool defined earlier. A pool's effective
//! configuration is its parent's effective configuration with its own keys deep-merged on top.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration as StdDuration;

use chrono::TimeDelta;
use serde::Deserialize;
use serde::de::{Deserializer, Error as _};
use yaml_serde::{Mapping, Value};

use super::ConfigError;
use super::fields::{
    Dur, FieldError, Fraction, PositiveInt, Template, check_template, describe, typed,
};
use super::merge::{KeyPath, Provenance, dotted, key_to_string, overlay};

/// The `noop` hostname template when none is configured.
pub const DEFAULT_NOOP_HOSTNAME: &str = "{{ pool | replace('_', '-') }}-{{ id }}.noop.test";

/// All node pools, in definition order.
#[derive(Debug, Clone, Default)]
pub struct NodePools {
    /// Abstract and concrete pools, in the order they were defined.
    pub pools: Vec<Pool>,
}

impl NodePools {
    /// The pool with this name, abstract or concrete.
    pub fn get(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// The pools that are filled and served, in definition order.
    pub fn concrete(&self) -> impl Iterator<Item = &Pool> {
        self.pools.iter().filter(|p| !p.is_abstract)
    }
}

/// One node pool with its inheritance resolved.
#[derive(Debug, Clone)]
pub struct Pool {
    /// The pool's name (its key under `nodepools.abstract`/`.concrete`).
    pub name: String,
    /// Abstract pools are templates only: never filled, never listed.
    pub is_abstract: bool,
    /// The pool's effective (inherited + own) keys as JSON, WITHOUT `extends`, plus "name": the pool name. This is the template context.
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// `fill-level`: how many nodes to keep ready; `None` = not filled.
    pub fill_level: Option<u32>,
    /// How nodes are made; every concrete pool has one.
    pub mechanism: Option<MechanismConfig>,
    /// `reuse-nodes`: node-data key → int or template; `None` = always create new nodes.
    pub reuse_nodes: Option<serde_json::Map<String, serde_json::Value>>,
    /// `run-parallel` (default true): one mechanism run per node instead of one per batch.
    pub run_parallel: bool,
    /// `contextualize` (extension): whether `POST /sessions` runs the SSH step.
    pub contextualize: bool,
    /// `max-ready-age` (extension): ready nodes older than this are replaced, a few at a
    /// time, as v2 reinstalled its unused standby machines; `None` keeps them forever.
    pub max_ready_age: Option<TimeDelta>,
}

/// How a pool's nodes are provisioned and deprovisioned.
#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "built once per pool at startup, never moved on a hot path"
)]
pub enum MechanismConfig {
    /// Fake nodes on loopback, for tests and demos.
    Noop(NoopConfig),
    /// The original's Ansible playbooks.
    Ansible(AnsibleConfig),
}

/// Settings of the `noop` mechanism (`docs/config.md` §5).
#[derive(Debug, Clone)]
pub struct NoopConfig {
    /// Hostname template with `pool` and `id`, default `{{ pool | replace('_', '-') }}-{{ id }}.noop.test`
    /// (pool names such as `…-x86_64` hold underscores, which hostnames may not).
    pub hostname: String,
    /// IP address template; `None` derives a loopback address from the node id.
    pub ipaddr: Option<String>,
    /// How long each run waits, simulating a slow provider.
    pub delay: StdDuration,
    /// `fail-rate` (0.0–1.0): the chance that a node fails, simulating a flaky provider.
    pub fail_rate: f64,
    /// `journal`: a file to which every finished run appends a line per node
    /// (`provision <id>` or `deprovision <id>`), so that tests and chaos runs can count
    /// what was done, across processes.
    pub journal: Option<PathBuf>,
}

/// How long one playbook run may take when the pool does not say (`timeout`): below the
/// default provisioning deadline, so a hung run is killed before its nodes time out.
pub const DEFAULT_ANSIBLE_TIMEOUT: StdDuration = StdDuration::from_secs(30 * 60);

/// Settings of the `ansible` mechanism.
#[derive(Debug, Clone)]
pub struct AnsibleConfig {
    /// The playbooks' project directory (the working directory of every run).
    pub topdir: PathBuf,
    /// Extension `ansible-playbook`: the program to run, default `ansible-playbook` on `PATH`.
    pub program: PathBuf,
    /// Extension `timeout`: how long one playbook run may take before it is killed
    /// (default [`DEFAULT_ANSIBLE_TIMEOUT`]).
    pub timeout: StdDuration,
    /// `extra-vars` for every run; string values are templates.
    pub extra_vars: serde_json::Map<String, serde_json::Value>,
    /// The provisioning playbook.
    pub provision: Option<PlaybookConfig>,
    /// The deprovisioning playbook; `None` (absent or `null`) = nothing to run.
    pub deprovision: Option<PlaybookConfig>,
}

/// One playbook and its own `extra-vars` (merged over the mechanism's).
#[derive(Debug, Clone)]
pub struct PlaybookConfig {
    /// The playbook path, relative to `topdir`.
    pub playbook: String,
    /// `extra-vars` for this playbook; string values are templates.
    pub extra_vars: serde_json::Map<String, serde_json::Value>,
}

/// Checks every string inside an `extra-vars` value, recursively.
fn check_templates_in(value: &serde_json::Value, at: &mut Vec<String>) -> Result<(), String> {
    match value {
        serde_json::Value::String(s) => check_template(s).map_err(|e| {
            if at.is_empty() {
                e
            } else {
                format!("{}: {e}", dotted(at))
            }
        }),
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                at.push(k.clone());
                check_templates_in(v, at)?;
                at.pop();
            }
            Ok(())
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                at.push(format!("[{i}]"));
                check_templates_in(v, at)?;
                at.pop();
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// An `extra-vars` mapping whose strings all compile as templates.
#[derive(Debug, Clone, Default)]
struct ExtraVars(serde_json::Map<String, serde_json::Value>);

impl<'de> Deserialize<'de> for ExtraVars {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        let map = match value {
            Value::Null => return Ok(ExtraVars::default()),
            Value::Mapping(_) => serde_json::to_value(&value).map_err(D::Error::custom)?,
            other => {
                return Err(D::Error::custom(format!(
                    "invalid type: {}, expected a mapping of variables",
                    describe(&other)
                )));
            }
        };
        check_templates_in(&map, &mut Vec::new()).map_err(D::Error::custom)?;
        match map {
            serde_json::Value::Object(map) => Ok(ExtraVars(map)),
            _ => Err(D::Error::custom("expected a mapping of variables")),
        }
    }
}

/// `reuse-nodes`: `false`/`null` for none, else node-data key → int or template string.
#[derive(Debug, Clone, Default)]
struct ReuseNodes(Option<serde_json::Map<String, serde_json::Value>>);

impl<'de> Deserialize<'de> for ReuseNodes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = match Value::deserialize(d)? {
            Value::Null | Value::Bool(false) => return Ok(ReuseNodes(None)),
            Value::Mapping(map) => map,
            other => {
                return Err(D::Error::custom(format!(
                    "invalid value: {}, expected false or a mapping of node-data key to int or template",
                    describe(&other)
                )));
            }
        };
        let mut out = serde_json::Map::new();
        for (key, value) in map {
            let key = match key {
                Value::String(s) => s,
                other => {
                    return Err(D::Error::custom(format!(
                        "invalid key: {}, expected a string",
                        describe(&other)
                    )));
                }
            };
            let json = match &value {
                Value::Number(n) if n.as_i64().is_some() || n.as_u64().is_some() => {
                    serde_json::to_value(n).map_err(D::Error::custom)?
                }
                Value::String(s) => {
                    check_template(s).map_err(|e| D::Error::custom(format!("{key}: {e}")))?;
                    serde_json::Value::String(s.clone())
                }
                other => {
                    return Err(D::Error::custom(format!(
                        "{key}: invalid type: {}, expected an integer or a string",
                        describe(other)
                    )));
                }
            };
            out.insert(key, json);
        }
        Ok(ReuseNodes(Some(out)))
    }
}

/// The pool keys Duffy interprets; all others stay free-form for templates.
#[derive(Deserialize, Default)]
#[serde(expecting = "a mapping of pool settings")]
struct RawPoolKeys {
    #[serde(rename = "fill-level")]
    fill_level: Option<PositiveInt>,
    #[serde(rename = "run-parallel")]
    run_parallel: Option<bool>,
    contextualize: Option<bool>,
    #[serde(rename = "reuse-nodes")]
    reuse_nodes: Option<ReuseNodes>,
    #[serde(rename = "max-ready-age")]
    max_ready_age: Option<Dur>,
    mechanism: Option<RawMechanism>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Debug)]
#[serde(rename_all = "lowercase")]
enum MechanismKind {
    Noop,
    Ansible,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with type and noop or ansible settings"
)]
struct RawMechanism {
    #[serde(rename = "type")]
    kind: Option<MechanismKind>,
    noop: Option<RawNoop>,
    ansible: Option<RawAnsible>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of noop settings")]
struct RawNoop {
    hostname: Option<Template>,
    ipaddr: Option<Template>,
    delay: Option<Dur>,
    #[serde(rename = "fail-rate")]
    fail_rate: Option<Fraction>,
    journal: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of ansible settings")]
struct RawAnsible {
    topdir: Option<PathBuf>,
    #[serde(rename = "extra-vars")]
    extra_vars: Option<ExtraVars>,
    provision: Option<RawPlaybook>,
    deprovision: Option<RawPlaybook>,
    /// Extension: the `ansible-playbook` program (a path, or a name looked up on `PATH`).
    #[serde(rename = "ansible-playbook")]
    program: Option<PathBuf>,
    /// Extension: how long one playbook run may take before it is killed.
    timeout: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with playbook and extra-vars"
)]
struct RawPlaybook {
    playbook: String,
    #[serde(rename = "extra-vars")]
    extra_vars: Option<ExtraVars>,
}

fn rel(p: &[&str]) -> KeyPath {
    p.iter().map(|s| (*s).to_owned()).collect()
}

/// Turns a parsed mechanism into its typed form; errors carry pool-relative paths.
fn build_mechanism(raw: RawMechanism) -> Result<MechanismConfig, FieldError> {
    let kind = match raw.kind {
        Some(kind) => kind,
        None => match (&raw.noop, &raw.ansible) {
            (Some(_), None) => MechanismKind::Noop,
            (None, Some(_)) => MechanismKind::Ansible,
            _ => {
                return Err(FieldError::new(
                    rel(&["mechanism", "type"]),
                    "missing mechanism type: expected noop or ansible",
                ));
            }
        },
    };
    match kind {
        MechanismKind::Noop => {
            if raw.ansible.is_some() {
                return Err(FieldError::new(
                    rel(&["mechanism", "ansible"]),
                    "ansible settings given, but the mechanism type is noop",
                ));
            }
            let noop = raw.noop.unwrap_or(RawNoop {
                hostname: None,
                ipaddr: None,
                delay: None,
                fail_rate: None,
                journal: None,
            });
            let delay = match noop.delay {
                Some(Dur(d)) => d.to_std().map_err(|_| {
                    FieldError::new(
                        rel(&["mechanism", "noop", "delay"]),
                        "negative durations are not allowed",
                    )
                })?,
                None => StdDuration::ZERO,
            };
            Ok(MechanismConfig::Noop(NoopConfig {
                hostname: noop
                    .hostname
                    .map_or_else(|| DEFAULT_NOOP_HOSTNAME.to_owned(), |t| t.0),
                ipaddr: noop.ipaddr.map(|t| t.0),
                delay,
                fail_rate: noop.fail_rate.map_or(0.0, |f| f.0),
                journal: noop.journal,
            }))
        }
        MechanismKind::Ansible => {
            if raw.noop.is_some() {
                return Err(FieldError::new(
                    rel(&["mechanism", "noop"]),
                    "noop settings given, but the mechanism type is ansible",
                ));
            }
            let Some(ansible) = raw.ansible else {
                return Err(FieldError::new(
                    rel(&["mechanism", "ansible"]),
                    "missing ansible settings (at least topdir)",
                ));
            };
            let Some(topdir) = ansible.topdir else {
                return Err(FieldError::new(
                    rel(&["mechanism", "ansible"]),
                    "missing field `topdir`",
                ));
            };
            let playbook = |p: RawPlaybook| PlaybookConfig {
                playbook: p.playbook,
                extra_vars: p.extra_vars.unwrap_or_default().0,
            };
            let timeout = match ansible.timeout {
                Some(Dur(d)) => d.to_std().ok().filter(|d| !d.is_zero()).ok_or_else(|| {
                    FieldError::new(
                        rel(&["mechanism", "ansible", "timeout"]),
                        "the timeout must be positive",
                    )
                })?,
                None => DEFAULT_ANSIBLE_TIMEOUT,
            };
            Ok(MechanismConfig::Ansible(AnsibleConfig {
                topdir,
                program: ansible
                    .program
                    .unwrap_or_else(|| PathBuf::from("ansible-playbook")),
                timeout,
                extra_vars: ansible.extra_vars.unwrap_or_default().0,
                provision: ansible.provision.map(playbook),
                deprovision: ansible.deprovision.map(playbook),
            }))
        }
    }
}

/// A pool already processed, kept for its children.
struct Resolved {
    /// The effective keys, without `extends`.
    effective: Mapping,
    /// Pool-relative key path → absolute path of the YAML node that supplied it.
    origins: HashMap<KeyPath, KeyPath>,
    /// Where the pool itself is defined (`nodepools.abstract.virtual`).
    path: KeyPath,
}

/// Records, for every key path in `own`, that it comes from `abs`.
fn record_origins(
    own: &Mapping,
    rel: &mut KeyPath,
    abs: &KeyPath,
    out: &mut HashMap<KeyPath, KeyPath>,
) {
    for (key, value) in own {
        rel.push(key_to_string(key));
        out.insert(rel.clone(), abs.iter().chain(rel.iter()).cloned().collect());
        if let Value::Mapping(sub) = value {
            record_origins(sub, rel, abs, out);
        }
        rel.pop();
    }
}

/// Builds every pool from the `nodepools` section; an absent section means no pools.
pub(crate) fn build_pools(
    section: Option<&Value>,
    prov: &Provenance,
) -> Result<NodePools, ConfigError> {
    let at = |p: &[&str], reason: String| FieldError::new(rel(p), reason).located(prov);
    let sections = match section {
        None | Some(Value::Null) => return Ok(NodePools::default()),
        Some(Value::Mapping(m)) => m,
        Some(other) => {
            return Err(at(
                &["nodepools"],
                format!(
                    "invalid type: {}, expected a mapping with abstract and concrete",
                    describe(other)
                ),
            ));
        }
    };
    if !sections.contains_key("concrete") {
        return Err(at(&["nodepools"], "missing field `concrete`".to_owned()));
    }

    let mut resolved: Vec<Resolved> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut pools = Vec::new();

    for (section_key, pool_defs) in sections {
        let section_name = key_to_string(section_key);
        let is_abstract = match section_name.as_str() {
            "abstract" => true,
            "concrete" => false,
            other => {
                return Err(at(
                    &["nodepools", other],
                    format!("unknown field `{other}`, expected `abstract` or `concrete`"),
                ));
            }
        };
        let pool_defs = match pool_defs {
            Value::Mapping(m) => m.clone(),
            Value::Null if is_abstract => Mapping::new(),
            other => {
                return Err(at(
                    &["nodepools", &section_name],
                    format!(
                        "invalid type: {}, expected a mapping of pool name to pool",
                        describe(other)
                    ),
                ));
            }
        };

        for (name_key, definition) in pool_defs {
            let Value::String(name) = name_key else {
                return Err(at(
                    &["nodepools", &section_name],
                    format!(
                        "invalid pool name: {}, expected a string",
                        describe(&name_key)
                    ),
                ));
            };
            let pool_path = rel(&["nodepools", &section_name, &name]);
            let fail = |rel_path: &[String], reason: String| {
                FieldError::new(pool_path.iter().chain(rel_path).cloned().collect(), reason)
                    .located(prov)
            };

            if let Some(&earlier) = index.get(&name) {
                return Err(fail(
                    &[],
                    format!(
                        "pool '{name}' is already defined at {}",
                        dotted(&resolved[earlier].path)
                    ),
                ));
            }
            let mut own = match definition {
                Value::Mapping(m) => m,
                Value::Null => Mapping::new(),
                other => {
                    return Err(fail(
                        &[],
                        format!(
                            "invalid type: {}, expected a mapping of pool settings",
                            describe(&other)
                        ),
                    ));
                }
            };

            let parent = match own.shift_remove("extends") {
                None | Some(Value::Null) => None,
                Some(Value::String(parent)) => match index.get(&parent) {
                    Some(&i) => Some(i),
                    None => {
                        return Err(fail(
                            &rel(&["extends"]),
                            format!(
                                "pool '{name}' extends '{parent}', which is not defined before it"
                            ),
                        ));
                    }
                },
                Some(other) => {
                    return Err(fail(
                        &rel(&["extends"]),
                        format!(
                            "invalid type: {}, expected the name of a pool",
                            describe(&other)
                        ),
                    ));
                }
            };

            let (mut effective, mut origins) = match parent {
                Some(i) => (resolved[i].effective.clone(), resolved[i].origins.clone()),
                None => (Mapping::new(), HashMap::new()),
            };
            overlay(&mut effective, &own);
            record_origins(&own, &mut KeyPath::new(), &pool_path, &mut origins);

            let resolved_pool = Resolved {
                effective,
                origins,
                path: pool_path.clone(),
            };
            let pool = build_pool(&name, is_abstract, &resolved_pool)
                .map_err(|e| locate_in_pool(e, &resolved_pool, prov))?;
            index.insert(name, resolved.len());
            resolved.push(resolved_pool);
            pools.push(pool);
        }
    }
    Ok(NodePools { pools })
}

/// Turns a pool-relative error into a config error: the key is shown where the pool uses it,
/// the file is the one that supplied the value (possibly through a parent pool).
fn locate_in_pool(err: FieldError, pool: &Resolved, prov: &Provenance) -> ConfigError {
    let shown: KeyPath = pool.path.iter().chain(&err.path).cloned().collect();
    let source = (0..=err.path.len()).rev().find_map(|len| {
        pool.origins.get(&err.path[..len]).map(|abs| {
            abs.iter()
                .chain(&err.path[len..])
                .cloned()
                .collect::<KeyPath>()
        })
    });
    let source = source.unwrap_or_else(|| shown.clone());
    let mut reason = err.reason;
    if !source.starts_with(&pool.path) {
        // The value came from a parent pool: point the operator at where it is written.
        reason.push_str(&format!(" (inherited from {})", dotted(&source)));
    }
    ConfigError::Invalid {
        origin: prov.origin_of(&source),
        key: dotted(&shown),
        reason,
    }
}

/// Validates one pool's effective keys.
fn build_pool(name: &str, is_abstract: bool, pool: &Resolved) -> Result<Pool, FieldError> {
    let value = Value::Mapping(pool.effective.clone());
    let keys: RawPoolKeys = typed(&value, &[])?;

    let mechanism = match keys.mechanism {
        Some(raw) => match build_mechanism(raw) {
            Ok(m) => Some(m),
            // Abstract pools are templates: their children may complete the mechanism.
            Err(_) if is_abstract => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    if mechanism.is_none() && !is_abstract {
        return Err(FieldError::new(
            rel(&["mechanism"]),
            "a concrete pool needs a mechanism: {type: noop, …} or {type: ansible, ansible: {topdir, …}}",
        ));
    }
    // A mechanism error swallowed in an abstract pool resurfaces, with its origin, in every
    // concrete pool that inherits it.

    let max_ready_age = match keys.max_ready_age {
        Some(Dur(age)) if age <= chrono::TimeDelta::zero() => {
            return Err(FieldError::new(
                rel(&["max-ready-age"]),
                "must be longer than zero (leave it out to keep ready nodes forever)",
            ));
        }
        other => other.map(|d| d.0),
    };
    let contextualize = keys
        .contextualize
        .unwrap_or(matches!(mechanism, Some(MechanismConfig::Ansible(_))));

    let mut settings = serde_json::Map::new();
    settings.insert(
        "name".to_owned(),
        serde_json::Value::String(name.to_owned()),
    );
    match serde_json::to_value(&value) {
        Ok(serde_json::Value::Object(map)) => {
            for (k, v) in map {
                if k != "name" {
                    settings.insert(k, v);
                }
            }
        }
        Ok(_) => {}
        Err(e) => {
            return Err(FieldError::new(
                KeyPath::new(),
                format!("cannot be used as template variables: {e}"),
            ));
        }
    }

    Ok(Pool {
        name: name.to_owned(),
        is_abstract,
        settings,
        fill_level: keys.fill_level.map(|f| f.0),
        mechanism,
        reuse_nodes: keys.reuse_nodes.and_then(|r| r.0),
        run_parallel: keys.run_parallel.unwrap_or(true),
        contextualize,
        max_ready_age,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::merge::Merger;
    use serde_json::json;

    fn pools_from(docs: &[(&str, &str)]) -> Result<NodePools, ConfigError> {
        let mut merger = Merger::default();
        for (origin, text) in docs {
            let value: Value = yaml_serde::from_str(text).unwrap();
            merger.merge_document(value, origin)?;
        }
        let (map, prov) = merger.finish();
        build_pools(map.get("nodepools"), &prov)
    }

    fn err(docs: &[(&str, &str)]) -> String {
        match pools_from(docs) {
            Ok(p) => panic!("expected an error, got {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    const NOOP_POOLS: &str = "
nodepools:
  abstract:
    base:
      mechanism: {type: noop, noop: {delay: 2s, fail-rate: 0.1}}
      architecture: x86_64
      nested: {a: 1, b: 2}
  concrete:
    one: {extends: base, fill-level: 3, nested: {b: 3}}
    two:
      extends: one
      fill-level: 1
      run-parallel: false
      contextualize: true
      mechanism: {noop: {hostname: '{{ pool }}-{{ id }}.example.test', ipaddr: '10.0.0.{{ id }}'}}
";

    #[test]
    fn inheritance_and_settings() {
        let pools = pools_from(&[("p.yaml", NOOP_POOLS)]).unwrap();
        assert_eq!(pools.pools.len(), 3);
        assert_eq!(
            pools
                .concrete()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>(),
            ["one", "two"]
        );
        let base = pools.get("base").unwrap();
        assert!(base.is_abstract);
        assert!(base.fill_level.is_none());

        let one = pools.get("one").unwrap();
        assert_eq!(one.fill_level, Some(3));
        assert_eq!(
            serde_json::Value::Object(one.settings.clone()),
            json!({
                "name": "one",
                "mechanism": {"type": "noop", "noop": {"delay": "2s", "fail-rate": 0.1}},
                "architecture": "x86_64",
                "nested": {"a": 1, "b": 3},
                "fill-level": 3
            })
        );
        assert!(!one.contextualize);
        assert!(one.run_parallel);
        match &one.mechanism {
            Some(MechanismConfig::Noop(n)) => {
                assert_eq!(n.hostname, DEFAULT_NOOP_HOSTNAME);
                assert_eq!(n.ipaddr, None);
                assert_eq!(n.delay, StdDuration::from_secs(2));
                assert_eq!(n.fail_rate, 0.1);
            }
            other => panic!("{other:?}"),
        }

        let two = pools.get("two").unwrap();
        assert_eq!(two.fill_level, Some(1));
        assert!(!two.run_parallel);
        assert!(two.contextualize);
        match &two.mechanism {
            Some(MechanismConfig::Noop(n)) => {
                assert_eq!(n.hostname, "{{ pool }}-{{ id }}.example.test");
                assert_eq!(n.ipaddr.as_deref(), Some("10.0.0.{{ id }}"));
                assert_eq!(n.delay, StdDuration::from_secs(2));
            }
            other => panic!("{other:?}"),
        }
        assert!(!two.settings.contains_key("extends"));
    }

    #[test]
    fn absent_section_means_no_pools() {
        assert!(
            pools_from(&[("a.yaml", "app: {}")])
                .unwrap()
                .pools
                .is_empty()
        );
    }

    #[test]
    fn concrete_is_required() {
        assert_eq!(
            err(&[("a.yaml", "nodepools: {abstract: {}}")]),
            "a.yaml: nodepools: missing field `concrete`"
        );
        assert!(
            err(&[("a.yaml", "nodepools: {concrete: {}, other: {}}")])
                .contains("nodepools.other: unknown field `other`")
        );
    }

    #[test]
    fn extends_must_name_an_earlier_pool() {
        let e = err(&[(
            "70_nodepools.yaml",
            "nodepools:\n  concrete:\n    a: {extends: b, mechanism: {type: noop}}\n    b: {mechanism: {type: noop}}",
        )]);
        assert_eq!(
            e,
            "70_nodepools.yaml: nodepools.concrete.a.extends: pool 'a' extends 'b', which is not defined before it"
        );
        let e = err(&[("x.yaml", "nodepools: {concrete: {a: {extends: ghost}}}")]);
        assert!(e.contains("extends 'ghost'"), "{e}");
    }

    #[test]
    fn duplicate_pool_names_are_rejected() {
        let e = err(&[(
            "x.yaml",
            "nodepools: {abstract: {a: {}}, concrete: {a: {mechanism: {type: noop}}}}",
        )]);
        assert!(
            e.contains("pool 'a' is already defined at nodepools.abstract.a"),
            "{e}"
        );
    }

    #[test]
    fn concrete_pools_need_a_mechanism() {
        let e = err(&[(
            "x.yaml",
            "nodepools: {abstract: {a: {}}, concrete: {b: {extends: a}}}",
        )]);
        assert!(
            e.starts_with(
                "x.yaml: nodepools.concrete.b.mechanism: a concrete pool needs a mechanism"
            ),
            "{e}"
        );
    }

    #[test]
    fn key_errors_name_the_file_that_set_the_value() {
        let e = err(&[
            (
                "10.yaml",
                "nodepools: {concrete: {foo: {mechanism: {type: noop}}}}",
            ),
            ("20.yaml", "nodepools: {concrete: {foo: {fill-level: 0}}}"),
        ]);
        assert_eq!(
            e,
            "20.yaml: nodepools.concrete.foo.fill-level: invalid value: integer 0, expected an integer > 0"
        );
        // Abstract pools' own keys are validated where they are defined.
        let e = err(&[(
            "10.yaml",
            "nodepools: {abstract: {base: {run-parallel: maybe}}, concrete: {}}",
        )]);
        assert!(
            e.starts_with("10.yaml: nodepools.abstract.base.run-parallel: invalid type"),
            "{e}"
        );
        // Inherited values are traced back to the parent that set them.
        let e = err(&[
            (
                "10.yaml",
                "nodepools: {abstract: {base: {mechanism: {type: ansible, ansible: {provision: {playbook: p.yml}}}}}}",
            ),
            ("20.yaml", "nodepools: {concrete: {foo: {extends: base}}}"),
        ]);
        assert_eq!(
            e,
            "10.yaml: nodepools.concrete.foo.mechanism.ansible: missing field `topdir` \
             (inherited from nodepools.abstract.base.mechanism.ansible)"
        );
    }

    #[test]
    fn mechanism_validation() {
        let e = err(&[(
            "x.yaml",
            "nodepools: {concrete: {a: {mechanism: {type: docker}}}}",
        )]);
        assert!(
            e.contains("nodepools.concrete.a.mechanism.type: unknown variant `docker`"),
            "{e}"
        );
        let e = err(&[(
            "x.yaml",
            "nodepools: {concrete: {a: {mechanism: {type: noop, foo: 1}}}}",
        )]);
        assert!(
            e.contains("nodepools.concrete.a.mechanism.foo: unknown field `foo`"),
            "{e}"
        );
        let e = err(&[(
            "x.yaml",
            "nodepools: {concrete: {a: {mechanism: {type: noop, noop: {fail-rate: 2}}}}}",
        )]);
        assert!(
            e.contains("mechanism.noop.fail-rate: invalid value: integer 2"),
            "{e}"
        );
        let e = err(&[(
            "x.yaml",
            "nodepools: {concrete: {a: {mechanism: {type: noop, noop: {hostname: '{{ pool'}}}}}",
        )]);
        assert!(e.contains("mechanism.noop.hostname: syntax error"), "{e}");
        let e = err(&[(
            "x.yaml",
            "nodepools: {concrete: {a: {mechanism: {type: ansible}}}}",
        )]);
        assert!(
            e.contains("nodepools.concrete.a.mechanism.ansible: missing ansible settings"),
            "{e}"
        );
        let e = err(&[(
            "x.yaml",
            "nodepools: {concrete: {a: {mechanism: {type: ansible, ansible: {provision: {playbook: p.yml}}}}}}",
        )]);
        assert!(
            e.contains("nodepools.concrete.a.mechanism.ansible: missing field `topdir`"),
            "{e}"
        );
        let e = err(&[(
            "x.yaml",
            "nodepools: {concrete: {a: {mechanism: {type: ansible, ansible: {topdir: /t, extra-vars: {x: '{% for %}'}}}}}}",
        )]);
        assert!(
            e.contains("mechanism.ansible.extra-vars: x: syntax error"),
            "{e}"
        );
        let e = err(&[(
            "x.yaml",
            "nodepools: {concrete: {a: {mechanism: {type: noop, ansible: {topdir: /t}}}}}",
        )]);
        assert!(
            e.contains("mechanism.ansible: ansible settings given, but the mechanism type is noop"),
            "{e}"
        );
    }

    #[test]
    fn mechanism_type_is_inferred_from_its_settings() {
        let pools = pools_from(&[(
            "x.yaml",
            "nodepools: {concrete: {a: {mechanism: {ansible: {topdir: /t, provision: {playbook: p.yml}}}}}}",
        )])
        .unwrap();
        let a = pools.get("a").unwrap();
        assert!(matches!(a.mechanism, Some(MechanismConfig::Ansible(_))));
        assert!(a.contextualize, "ansible pools contextualize by default");
    }

    #[test]
    fn reuse_nodes_forms() {
        let pools = pools_from(&[(
            "x.yaml",
            "nodepools:\n  abstract:\n    p: {reuse-nodes: {architecture: '{{ architecture }}', slot: 3}}\n  \
             concrete:\n    a: {extends: p, mechanism: {type: noop}}\n    b: {extends: p, reuse-nodes: false, mechanism: {type: noop}}",
        )])
        .unwrap();
        assert_eq!(
            pools
                .get("a")
                .unwrap()
                .reuse_nodes
                .clone()
                .map(serde_json::Value::Object),
            Some(json!({"architecture": "{{ architecture }}", "slot": 3}))
        );
        assert_eq!(pools.get("b").unwrap().reuse_nodes, None);
        let e = err(&[(
            "x.yaml",
            "nodepools: {concrete: {a: {reuse-nodes: true, mechanism: {type: noop}}}}",
        )]);
        assert!(
            e.contains("nodepools.concrete.a.reuse-nodes: invalid value: boolean true"),
            "{e}"
        );
        let e = err(&[(
            "x.yaml",
            "nodepools: {concrete: {a: {reuse-nodes: {x: [1]}, mechanism: {type: noop}}}}",
        )]);
        assert!(e.contains("reuse-nodes: x: invalid type: a list"), "{e}");
    }

    #[test]
    fn child_may_switch_off_inherited_mappings() {
        let pools = pools_from(&[(
            "x.yaml",
            "nodepools:\n  abstract:\n    p:\n      mechanism:\n        type: ansible\n        ansible:\n          topdir: /t\n          deprovision: {playbook: d.yml}\n  \
             concrete:\n    a: {extends: p, mechanism: {ansible: {deprovision: null}}}",
        )])
        .unwrap();
        match &pools.get("a").unwrap().mechanism {
            Some(MechanismConfig::Ansible(a)) => assert!(a.deprovision.is_none()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn abstract_pools_may_hold_partial_mechanisms() {
        let pools = pools_from(&[(
            "x.yaml",
            "nodepools:\n  abstract:\n    p: {mechanism: {type: ansible, ansible: {provision: {playbook: p.yml}}}}\n  \
             concrete:\n    a: {extends: p, mechanism: {ansible: {topdir: /t}}}",
        )])
        .unwrap();
        assert!(pools.get("p").unwrap().mechanism.is_none());
        assert!(matches!(
            pools.get("a").unwrap().mechanism,
            Some(MechanismConfig::Ansible(_))
        ));
    }

    #[test]
    fn templates_compile_or_fail() {
        assert!(check_template("{{ name }}").is_ok());
        assert!(
            check_template("{% set parts=name.split(\"-\") %}duffy-{{ parts[1:] | join(\"-\") }}")
                .is_ok()
        );
        assert!(check_template("{{ duffy_in.nodes | length }}").is_ok());
        assert!(check_template("{{ name ").is_err());
    }

    #[test]
    fn max_ready_age_is_a_positive_duration() {
        let pools = pools_from(&[(
            "a.yaml",
            "nodepools:\n  concrete:\n    p: {mechanism: {type: noop}, fill-level: 1, max-ready-age: 24h}\n    q: {mechanism: {type: noop}}\n",
        )])
        .unwrap();
        assert_eq!(
            pools.get("p").unwrap().max_ready_age,
            Some(chrono::TimeDelta::hours(24))
        );
        assert_eq!(pools.get("q").unwrap().max_ready_age, None);
        let e = err(&[(
            "a.yaml",
            "nodepools:\n  concrete:\n    p: {mechanism: {type: noop}, max-ready-age: 0}\n",
        )]);
        assert!(
            e.contains("max-ready-age") && e.contains("longer than zero"),
            "{e}"
        );
        let e = err(&[(
            "a.yaml",
            "nodepools:\n  concrete:\n    p: {mechanism: {type: noop}, max-ready-age: soon}\n",
        )]);
        assert!(e.contains("max-ready-age"), "{e}");
    }
}
