//! Configuration: discovery, multi-file deep merge, validation (`docs/config.md`).
//!
//! An operator's Duffy 3.4.0 configuration loads unchanged: the same files and directories, the
//! same keys, the same durations. The original's Celery, Redis-locking, logging and SQLAlchemy
//! settings are accepted and translated or ignored with a warning. Everything is validated
//! before any subcommand runs, and an error names the file, the key and the reason:
//! `/etc/duffy/10_app.yaml: app.port: invalid value: integer 70000, expected 1..=65535`.

pub mod database;
pub mod duration;
mod fields;
mod merge;
pub mod model;
pub mod pools;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use database::{DatabaseUrl, DatabaseUrlError, parse_database_url, translate_sqlalchemy_url};
pub use duration::{
    DurationError, parse_api_duration, parse_config_duration, parse_config_duration_str,
    python_timedelta, seconds_json,
};
pub use model::{
    AppConfig, ClientAuth, ClientConfig, Config, ConnectionLimits, DatabaseConfig, Deadlines,
    Defaults, FillBackoff, InvalidLogLevel, LogLevel, MetaclientConfig, PoolMapEntry, Retries,
    SshConfig, TasksConfig,
};
pub use pools::{
    AnsibleConfig, DEFAULT_ANSIBLE_TIMEOUT, DEFAULT_NOOP_HOSTNAME, MechanismConfig, NodePools,
    NoopConfig, PlaybookConfig, Pool,
};

/// The embedded default, compiled into the binary.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/default.yaml");

/// The origin named in errors about the embedded default.
const EMBEDDED_ORIGIN: &str = "<embedded default configuration>";

/// Why the configuration could not be loaded; each variant names the file to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A configuration file or directory could not be read.
    #[error("{}: cannot read: {error}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's reason.
        error: io::Error,
    },
    /// A file is not valid YAML.
    #[error("{origin}: invalid YAML: {message}")]
    Syntax {
        /// The file.
        origin: String,
        /// The 1-based line of the problem, when the parser knows it.
        line: Option<usize>,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A later file replaced a mapping with a scalar or list.
    #[error("{later}: {key}: cannot replace the mapping set in {earlier} with {found}")]
    MergeConflict {
        /// The dotted key.
        key: String,
        /// The file that set the mapping.
        earlier: String,
        /// The file that tried to replace it.
        later: String,
        /// What the later file put there (`a string`, `a list`, …).
        found: &'static str,
    },
    /// A value is missing, unknown or invalid.
    #[error("{origin}: {key}: {reason}")]
    Invalid {
        /// The file that set the key, or its nearest parent key.
        origin: String,
        /// The dotted key, e.g. `nodepools.concrete.foo.fill-level`.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// What was loaded, with where it came from; `config` is the validated result.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The validated configuration.
    pub config: Config,
    /// The merged YAML, for `duffy config dump`.
    pub raw: yaml_serde::Value,
    /// The files read, in order.
    pub sources: Vec<PathBuf>,
    /// True when no file was found and the embedded default was used.
    pub embedded: bool,
    /// Accepted-but-ignored settings; the caller logs them once tracing is up.
    pub warnings: Vec<String>,
    /// The top-level keys present, in order, for `duffy config check`.
    pub sections: Vec<String>,
}

/// `-c` paths given -> read exactly those (files or directories: *.yaml and *.yml sorted by path); none -> /etc/duffy then $XDG_CONFIG_HOME/duffy (default ~/.config/duffy), each only if it exists; no file at all -> the embedded default.
pub fn load(paths: &[PathBuf]) -> Result<LoadedConfig, ConfigError> {
    load_from(paths, &default_locations())
}

/// Same, but with explicit search locations (so tests never read the machine's /etc/duffy) — load() calls this with the real defaults.
pub fn load_from(
    paths: &[PathBuf],
    default_locations: &[PathBuf],
) -> Result<LoadedConfig, ConfigError> {
    let files = if paths.is_empty() {
        let mut files = Vec::new();
        for location in default_locations {
            match fs::metadata(location) {
                Ok(_) => files.extend(expand(location)?),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(error) => {
                    return Err(ConfigError::Read {
                        path: location.clone(),
                        error,
                    });
                }
            }
        }
        if files.is_empty() {
            return embedded_default();
        }
        files
    } else {
        let mut files = Vec::new();
        for path in paths {
            files.extend(expand(path)?);
        }
        files
    };

    let mut merger = merge::Merger::default();
    for file in &files {
        let text = fs::read_to_string(file).map_err(|error| ConfigError::Read {
            path: file.clone(),
            error,
        })?;
        merge_text(&mut merger, &text, &file.display().to_string())?;
    }
    finish(merger, files, false)
}

/// Parse and validate YAML text (one or more documents) as if it were one file named `origin`. Tests and the embedded default use it.
pub fn from_yaml_str(text: &str, origin: &str) -> Result<LoadedConfig, ConfigError> {
    let mut merger = merge::Merger::default();
    merge_text(&mut merger, text, origin)?;
    finish(merger, vec![PathBuf::from(origin)], false)
}

/// The original's `database.sqlalchemy.sync_url`, as written in its configuration file or
/// directory (merged as for `load`): `duffy import --from-config` reads only this key, so
/// nothing else of the other deployment's configuration has to suit this one.
pub fn original_sync_url(path: &Path) -> Result<Option<String>, ConfigError> {
    let mut merger = merge::Merger::default();
    for file in expand(path)? {
        let text = fs::read_to_string(&file).map_err(|error| ConfigError::Read {
            path: file.clone(),
            error,
        })?;
        merge_text(&mut merger, &text, &file.display().to_string())?;
    }
    let (merged, _) = merger.finish();
    let url = ["database", "sqlalchemy", "sync_url"]
        .into_iter()
        .try_fold(&yaml_serde::Value::Mapping(merged.clone()), |value, key| {
            value.get(key)
        })
        .and_then(yaml_serde::Value::as_str)
        .map(str::to_owned);
    Ok(url)
}

/// Renders the merged configuration for `duffy config dump`.
/// Keys are sorted at every level, as the original's `yaml.safe_dump` writes them.
pub fn dump_yaml(raw: &yaml_serde::Value) -> String {
    match yaml_serde::to_string(&sorted(raw.clone())) {
        Ok(text) => text,
        // Only exotic tagged values can fail to serialize; say so rather than print nothing.
        Err(e) => format!("# the configuration cannot be rendered as YAML: {e}\n"),
    }
}

/// A copy of `value` with the keys of every mapping in sorted order.
fn sorted(value: yaml_serde::Value) -> yaml_serde::Value {
    use yaml_serde::Value;
    match value {
        Value::Mapping(mapping) => {
            let mut entries: Vec<(Value, Value)> = mapping.into_iter().collect();
            entries.sort_by_key(|(k, _)| yaml_serde::to_string(k).unwrap_or_default());
            let mut out = yaml_serde::Mapping::new();
            for (k, v) in entries {
                out.insert(k, sorted(v));
            }
            Value::Mapping(out)
        }
        Value::Sequence(items) => Value::Sequence(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// The built-in search path: `/etc/duffy`, then `$XDG_CONFIG_HOME/duffy` or `~/.config/duffy`.
fn default_locations() -> Vec<PathBuf> {
    let mut locations = vec![PathBuf::from("/etc/duffy")];
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        // The XDG spec says relative values are invalid and must be ignored.
        .filter(|p| p.is_absolute());
    let home_config = || std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config"));
    if let Some(dir) = xdg.or_else(home_config) {
        locations.push(dir.join("duffy"));
    }
    locations
}

/// A file as is; a directory as its `*.yaml` and `*.yml` files, sorted by path.
fn expand(path: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let read_error = |error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    };
    let meta = fs::metadata(path).map_err(read_error)?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in fs::read_dir(path).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let file = entry.path();
        let is_yaml = file
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml");
        if is_yaml && file.is_file() {
            files.push(file);
        }
    }
    files.sort();
    Ok(files)
}

/// Parses every YAML document of `text` and merges it.
fn merge_text(merger: &mut merge::Merger, text: &str, origin: &str) -> Result<(), ConfigError> {
    let syntax = |e: yaml_serde::Error| ConfigError::Syntax {
        origin: origin.to_owned(),
        line: e.location().map(|l| l.line()),
        message: e.to_string(),
    };
    for document in yaml_serde::Deserializer::from_str(text) {
        let mut value = yaml_serde::Value::deserialize(document).map_err(syntax)?;
        value.apply_merge().map_err(syntax)?;
        merger.merge_document(value, origin)?;
    }
    Ok(())
}

/// Validates the merged documents.
fn finish(
    merger: merge::Merger,
    sources: Vec<PathBuf>,
    embedded: bool,
) -> Result<LoadedConfig, ConfigError> {
    let (merged, provenance) = merger.finish();
    let sections = merged.keys().map(merge::key_to_string).collect();
    let raw = yaml_serde::Value::Mapping(merged);
    let (config, warnings) = model::build(&raw, &provenance)?;
    Ok(LoadedConfig {
        config,
        raw,
        sources,
        embedded,
        warnings,
        sections,
    })
}

/// Loads the configuration compiled into the binary.
fn embedded_default() -> Result<LoadedConfig, ConfigError> {
    let mut merger = merge::Merger::default();
    merge_text(&mut merger, EMBEDDED_DEFAULT, EMBEDDED_ORIGIN)?;
    finish(merger, Vec::new(), true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration as StdDuration;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/config")
            .join(name)
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn original_duffy_layout_loads() {
        let loaded = load(&[fixture("original-duffy")]).unwrap();
        let names: Vec<_> = loaded
            .sources
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "10_app.yaml",
                "20_metaclient.yaml",
                "30_logging.yaml",
                "40_tasks.yaml",
                "50_database.yaml",
                "60_defaults.yaml",
                "70_nodepools.yaml",
                "80_secrets.yaml",
            ]
        );
        assert!(!loaded.embedded);
        assert_eq!(
            loaded.sections,
            [
                "app",
                "metaclient",
                "tasks",
                "database",
                "defaults",
                "nodepools"
            ]
        );
        let c = &loaded.config;

        assert_eq!(c.app.host, "0.0.0.0");
        assert_eq!(c.app.loglevel, LogLevel::Warning);
        assert_eq!(c.metaclient.host, "0.0.0.0");
        assert_eq!(c.metaclient.dest.as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(c.metaclient.usermap.len(), 1);
        assert_eq!(c.metaclient.poolmap.len(), 2);

        let defaults = c.defaults.as_ref().unwrap();
        assert_eq!(defaults.session_lifetime, chrono::TimeDelta::hours(6));
        assert_eq!(defaults.session_lifetime_max, chrono::TimeDelta::hours(12));
        assert_eq!(defaults.node_quota, 10);
        assert_eq!(c.tasks.fill_pools_interval, StdDuration::from_secs(300));
        assert_eq!(
            c.tasks.expire_sessions_interval,
            StdDuration::from_secs(600)
        );

        match &c.database.url {
            Some(DatabaseUrl::Postgres { url }) => {
                use secrecy::ExposeSecret;
                assert_eq!(
                    url.expose_secret(),
                    "postgres://duffy:secret@db.example.org/duffy"
                );
            }
            other => panic!("expected PostgreSQL, got {other:?}"),
        }

        let names: Vec<_> = c.nodepools.concrete().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "virtual-centos8stream-x86_64-small",
                "physical-centos8stream-x86_64"
            ]
        );
        let small = c
            .nodepools
            .get("virtual-centos8stream-x86_64-small")
            .unwrap();
        assert!(!small.is_abstract);
        assert_eq!(small.fill_level, Some(5));
        assert_eq!(small.settings["flavor"], "small");
        assert_eq!(small.settings["name"], "virtual-centos8stream-x86_64-small");
        assert!(small.run_parallel);
        assert!(small.contextualize);
        match &small.mechanism {
            Some(MechanismConfig::Ansible(a)) => {
                assert_eq!(a.topdir, PathBuf::from("/etc/duffy/playbooks"));
                assert_eq!(a.extra_vars["template_name"], "{{ name }}");
                let provision = a.provision.as_ref().unwrap();
                assert_eq!(provision.playbook, "provision.yml");
                assert_eq!(
                    provision.extra_vars["quantity"],
                    "{{ duffy_in.nodes | length }}"
                );
                assert_eq!(a.deprovision.as_ref().unwrap().playbook, "deprovision.yml");
            }
            other => panic!("expected ansible, got {other:?}"),
        }

        let physical = c.nodepools.get("physical-centos8stream-x86_64").unwrap();
        assert_eq!(physical.fill_level, Some(2));
        assert_eq!(physical.settings["architecture"], "x86_64");
        assert!(!physical.run_parallel);
        assert_eq!(
            physical.reuse_nodes.clone().map(serde_json::Value::Object),
            Some(serde_json::json!({"architecture": "{{ architecture }}"}))
        );
        match &physical.mechanism {
            Some(MechanismConfig::Ansible(a)) => {
                assert!(a.deprovision.is_none());
                assert_eq!(a.provision.as_ref().unwrap().playbook, "reinstall.yml");
            }
            other => panic!("expected ansible, got {other:?}"),
        }
        assert!(c.nodepools.get("virtual").unwrap().is_abstract);
        assert_eq!(c.nodepools.concrete().count(), 2);

        let w = &loaded.warnings;
        assert!(
            w.iter()
                .any(|w| w.starts_with("app.logging is accepted but ignored")),
            "{w:?}"
        );
        assert!(
            w.iter()
                .any(|w| w.starts_with("metaclient.logging is accepted but ignored"))
        );
        assert!(
            w.contains(
                &"tasks.celery is accepted but unused: background tasks run in-process (no Celery)"
                    .to_owned()
            )
        );
        assert!(
            w.iter()
                .any(|w| w.starts_with("tasks.locking is accepted but unused"))
        );
        assert!(
            w.iter()
                .any(|w| w.starts_with("database.sqlalchemy.pool_pre_ping is accepted"))
        );
        assert!(!w.iter().any(|w| w.contains("another database")), "{w:?}");
    }

    #[test]
    fn directory_files_load_in_path_order() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "20_b.yml", "app: {port: 2000}");
        write(dir.path(), "10_a.yaml", "app: {port: 1000, host: a}");
        write(dir.path(), "30_c.yaml", "app: {host: c}");
        write(dir.path(), "99_ignored.txt", "not: [yaml");
        fs::create_dir(dir.path().join("sub.yaml")).unwrap();
        let loaded = load_from(&[dir.path().to_path_buf()], &[]).unwrap();
        assert_eq!(loaded.sources.len(), 3);
        assert_eq!(loaded.config.app.port, 2000);
        assert_eq!(loaded.config.app.host, "c");
    }

    #[test]
    fn explicit_paths_replace_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "only.yaml", "app: {port: 1234}");
        let other = tempfile::tempdir().unwrap();
        write(other.path(), "x.yaml", "app: {port: 9999}");
        let loaded = load_from(std::slice::from_ref(&file), &[other.path().to_path_buf()]).unwrap();
        assert_eq!(loaded.config.app.port, 1234);
        assert_eq!(loaded.sources, vec![file]);
    }

    #[test]
    fn multi_document_files_merge_in_order() {
        let loaded = from_yaml_str(
            "---\napp: {port: 1}\n---\napp: {port: 2, host: h}\n---\n# empty\n",
            "multi.yaml",
        )
        .unwrap();
        assert_eq!(loaded.config.app.port, 2);
        assert_eq!(loaded.config.app.host, "h");
        assert_eq!(loaded.sections, ["app"]);
    }

    #[test]
    fn default_locations_are_searched_in_order() {
        let etc = tempfile::tempdir().unwrap();
        let xdg = tempfile::tempdir().unwrap();
        write(etc.path(), "10_app.yaml", "app: {port: 1000, host: etc}");
        let user = write(xdg.path(), "duffy.yaml", "app: {port: 2000}");
        let missing = etc.path().join("does-not-exist");
        let loaded = load_from(&[], &[etc.path().to_path_buf(), missing, user.clone()]).unwrap();
        assert_eq!(loaded.config.app.port, 2000);
        assert_eq!(loaded.config.app.host, "etc");
        assert_eq!(loaded.sources.len(), 2);
        assert_eq!(loaded.sources[1], user);
        assert!(!loaded.embedded);
    }

    #[test]
    fn no_file_at_all_uses_the_embedded_default() {
        let empty = tempfile::tempdir().unwrap();
        let loaded = load_from(
            &[],
            &[empty.path().to_path_buf(), empty.path().join("nope")],
        )
        .unwrap();
        assert!(loaded.embedded);
        assert!(loaded.sources.is_empty());
        let c = &loaded.config;
        let concrete: Vec<_> = c.nodepools.concrete().collect();
        assert_eq!(concrete.len(), 4);
        for pool in &concrete {
            assert!(
                matches!(pool.mechanism, Some(MechanismConfig::Noop(_))),
                "{}",
                pool.name
            );
            assert!(pool.fill_level.is_some_and(|f| f > 0));
            assert!(!pool.contextualize);
        }
        assert_eq!(
            c.nodepools
                .get("virt-noop-centos-9s-x86_64")
                .unwrap()
                .fill_level,
            Some(3)
        );
        assert_eq!(
            c.nodepools
                .get("virt-noop-centos-8s-x86_64")
                .unwrap()
                .fill_level,
            Some(2)
        );
        assert_eq!(
            c.nodepools
                .get("metal-noop-centos-9s-x86_64")
                .unwrap()
                .fill_level,
            Some(1)
        );
        assert_eq!(
            c.nodepools
                .get("virt-noop-centos-7-x86_64")
                .unwrap()
                .fill_level,
            Some(2)
        );
        let defaults = c.defaults.as_ref().unwrap();
        assert_eq!(defaults.session_lifetime, chrono::TimeDelta::hours(6));
        assert_eq!(defaults.node_quota, 10);
        assert!(c.database.url.is_none());
        assert_eq!(c.app.port, 8080);
        assert!(!c.metaclient.poolmap.is_empty());
        for entry in &c.metaclient.poolmap {
            assert!(c.nodepools.get(&entry.pool).is_some(), "{}", entry.pool);
        }
        // v2's default request (a bare `/Node/get?key=K`) has a pool.
        use crate::legacy::poolmap::{PoolMap, Wanted};
        let poolmap = PoolMap::new(&c.metaclient.poolmap).unwrap();
        assert_eq!(
            poolmap.resolve(&Wanted::new(None, None, None)).as_deref(),
            Some("virt-noop-centos-7-x86_64")
        );
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }

    #[test]
    fn missing_explicit_path_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.yaml");
        let err = load_from(std::slice::from_ref(&missing), &[]).unwrap_err();
        assert!(matches!(&err, ConfigError::Read { path, .. } if *path == missing));
        assert!(
            err.to_string()
                .starts_with(&format!("{}: cannot read:", missing.display()))
        );
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "bad.yaml",
            "app:\n  port: 8080\n  host: [unclosed\n",
        );
        let err = load_from(std::slice::from_ref(&file), &[]).unwrap_err();
        match &err {
            ConfigError::Syntax { origin, line, .. } => {
                assert_eq!(origin, &file.display().to_string());
                assert!(line.is_some());
            }
            other => panic!("{other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("{}: invalid YAML:", file.display())),
            "{text}"
        );
        assert!(text.contains("line"), "{text}");
    }

    #[test]
    fn errors_name_the_file_that_set_the_key() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "10_app.yaml", "app: {host: 0.0.0.0}");
        write(dir.path(), "20_port.yaml", "app: {port: 70000}");
        let err = load_from(&[dir.path().to_path_buf()], &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: app.port: invalid value: integer 70000, expected 1..=65535",
                dir.path().join("20_port.yaml").display()
            )
        );
    }

    #[test]
    fn merge_conflicts_name_both_files() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "10_a.yaml",
            "tasks: {celery: {broker_url: 'redis://x'}}",
        );
        write(dir.path(), "20_b.yaml", "tasks: {celery: off}");
        let err = load_from(&[dir.path().to_path_buf()], &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: tasks.celery: cannot replace the mapping set in {} with a string",
                dir.path().join("20_b.yaml").display(),
                dir.path().join("10_a.yaml").display()
            )
        );
    }

    #[test]
    fn yaml_merge_keys_and_anchors_work() {
        let loaded = from_yaml_str(
            "defaults: &d {session-lifetime: 1h, session-lifetime-max: 2h, node-quota: 1}\n\
             nodepools:\n  abstract:\n    base: &base {mechanism: {type: noop}}\n  concrete:\n    \
             p: {<<: *base, fill-level: 1}",
            "anchors.yaml",
        )
        .unwrap();
        assert_eq!(
            loaded.config.nodepools.get("p").unwrap().fill_level,
            Some(1)
        );
    }

    #[test]
    fn dump_round_trips() {
        let loaded =
            from_yaml_str("app: {port: 8081}\nnodepools: {concrete: {}}", "x.yaml").unwrap();
        let text = dump_yaml(&loaded.raw);
        let again = from_yaml_str(&text, "dump.yaml").unwrap();
        assert_eq!(again.raw, loaded.raw);
        assert!(text.contains("port: 8081"), "{text}");
    }

    #[test]
    fn empty_configuration_validates() {
        let loaded = from_yaml_str("", "empty.yaml").unwrap();
        assert!(loaded.sections.is_empty());
        assert!(loaded.config.defaults.is_none());
    }

    #[test]
    fn the_production_example_loads_with_ansible_pools() {
        let text = include_str!("../../config/production.yaml");
        let loaded = from_yaml_str(text, "production.yaml").unwrap();
        let pools: Vec<_> = loaded.config.nodepools.concrete().collect();
        assert_eq!(pools.len(), 3);
        for pool in &pools {
            let Some(MechanismConfig::Ansible(a)) = &pool.mechanism else {
                panic!("{}: not ansible", pool.name);
            };
            assert_eq!(a.topdir, PathBuf::from("config/playbooks"));
            assert!(pool.contextualize, "{}", pool.name);
        }
        let metal = loaded
            .config
            .nodepools
            .get("physical-centos9s-aarch64")
            .unwrap();
        match &metal.mechanism {
            Some(MechanismConfig::Ansible(a)) => {
                assert!(a.deprovision.is_none());
                assert_eq!(a.timeout, DEFAULT_ANSIBLE_TIMEOUT);
            }
            other => panic!("{other:?}"),
        }
        assert!(!metal.run_parallel);
        let vm = loaded
            .config
            .nodepools
            .get("virtual-centos9s-x86_64-small")
            .unwrap();
        match &vm.mechanism {
            Some(MechanismConfig::Ansible(a)) => {
                assert_eq!(a.timeout, std::time::Duration::from_secs(600));
                assert_eq!(a.program, PathBuf::from("ansible-playbook"));
                assert_eq!(a.provision.as_ref().unwrap().playbook, "provision.yml");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_child_pool_can_drop_the_inherited_deprovision_playbook() {
        let yaml = "nodepools:\n  abstract:\n    base: {mechanism: {type: ansible, ansible: {topdir: /t, provision: {playbook: p.yml}, deprovision: {playbook: d.yml}}}}\n  concrete:\n    metal: {extends: base, fill-level: 1, mechanism: {ansible: {deprovision: null}}}\n    vm: {extends: base, fill-level: 1}\n";
        let loaded = from_yaml_str(yaml, "t.yaml").unwrap();
        let deprovision = |name: &str| match &loaded.config.nodepools.get(name).unwrap().mechanism {
            Some(MechanismConfig::Ansible(a)) => a.deprovision.as_ref().map(|d| d.playbook.clone()),
            other => panic!("{other:?}"),
        };
        assert_eq!(deprovision("metal"), None);
        assert_eq!(deprovision("vm").as_deref(), Some("d.yml"));
    }

    #[test]
    fn an_ansible_timeout_must_be_positive() {
        for bad in ["0", "-5"] {
            let yaml = format!(
                "nodepools: {{concrete: {{a: {{mechanism: {{type: ansible, ansible: {{topdir: /t, timeout: {bad}}}}}}}}}}}"
            );
            let e = from_yaml_str(&yaml, "t.yaml").unwrap_err().to_string();
            assert!(e.contains("mechanism.ansible.timeout"), "{e}");
        }
    }

    #[test]
    fn embedded_default_is_valid_yaml_for_from_yaml_str() {
        let loaded = from_yaml_str(EMBEDDED_DEFAULT, "default.yaml").unwrap();
        assert!(!loaded.embedded);
        assert!(loaded.sections.contains(&"nodepools".to_owned()));
    }
}
