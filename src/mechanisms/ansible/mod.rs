//! The `ansible` mechanism: the original Duffy's playbooks, run with `ansible-playbook`.
//!
//! A run gets the mechanism's `extra-vars`, overlaid with the phase's (`provision` or
//! `deprovision`), every string rendered as a template with the pool's keys, `name` and
//! `duffy_in`; then `duffy_in` itself (`{"nodes": [{id, hostname, ipaddr[, data]}]}`). The
//! result is `duffy_out` of the last successful `set_fact` that sets it, whose `nodes` the
//! engine pairs with the nodes (provisioning, by position) or matches against their
//! `data.provision` (deprovisioning). A pool without a deprovision playbook deprovisions
//! nothing and succeeds (`docs/deviations.md` D#8).
//!
//! Extensions of the pool's `mechanism.ansible` keys: `ansible-playbook` (the program) and
//! `timeout` (how long one run may take before it is killed).

pub mod results;
pub mod runner;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Map, Value, json};

use super::{Deprovisioned, Mechanism, MechanismError, NodeInput};
use crate::config::{AnsibleConfig, PlaybookConfig, Pool};

/// Which playbook a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Provision,
    Deprovision,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Provision => "provision",
            Phase::Deprovision => "deprovision",
        }
    }
}

/// An `ansible` mechanism of one pool.
pub struct Ansible {
    config: AnsibleConfig,
}

impl Ansible {
    /// Sets up the mechanism; warns (without failing) when `ansible-playbook` or `topdir` is
    /// not found, so a server can start before its playbooks are installed.
    pub fn new(pool: &str, config: &AnsibleConfig) -> Self {
        if runner::resolve_program(&config.program).is_none() {
            tracing::warn!(pool.name = %pool, program = %config.program.display(), "pool {pool}: {} not found; its playbook runs will fail until it is installed", config.program.display());
        }
        if !config.topdir.is_dir() {
            tracing::warn!(pool.name = %pool, topdir = %config.topdir.display(), "pool {pool}: topdir {} is not a directory; its playbook runs will fail", config.topdir.display());
        }
        Ansible {
            config: config.clone(),
        }
    }

    fn playbook(&self, phase: Phase) -> Option<&PlaybookConfig> {
        match phase {
            Phase::Provision => self.config.provision.as_ref(),
            Phase::Deprovision => self.config.deprovision.as_ref(),
        }
    }

    /// Runs a phase's playbook and returns the node entries of its `duffy_out`.
    async fn run(
        &self,
        pool: &Pool,
        phase: Phase,
        playbook: &PlaybookConfig,
        duffy_in: Value,
    ) -> Result<Vec<Value>, MechanismError> {
        let extra_vars = extra_vars(
            pool,
            &self.config.extra_vars,
            &playbook.extra_vars,
            duffy_in,
        )
        .map_err(|e| MechanismError(format!("{} extra-vars: {e}", phase.name())))?;
        let run = runner::Run {
            program: &self.config.program,
            topdir: &self.config.topdir,
            playbook: &playbook.playbook,
            extra_vars: &extra_vars,
            timeout: self.config.timeout,
            pool: &pool.name,
        };
        tracing::debug!(pool.name = %pool.name, phase = phase.name(), playbook = %playbook.playbook, "pool {}: running {} playbook {}", pool.name, phase.name(), playbook.playbook);
        let duffy_out = run
            .duffy_out()
            .await
            .map_err(|e| MechanismError(format!("{} playbook {e}", phase.name())))?;
        results::node_entries(&duffy_out).ok_or_else(|| {
            MechanismError(format!(
                "{} playbook {}: duffy_out has no list of nodes: {}",
                phase.name(),
                playbook.playbook,
                results::one_line(&duffy_out.to_string())
            ))
        })
    }
}

/// The extra variables of a run: the mechanism's, overlaid with the phase's, rendered with
/// the pool's keys, `name` and `duffy_in`, plus `duffy_in` itself.
fn extra_vars(
    pool: &Pool,
    mechanism: &Map<String, Value>,
    phase: &Map<String, Value>,
    duffy_in: Value,
) -> Result<Value, String> {
    let mut merged = mechanism.clone();
    for (key, value) in phase {
        merged.insert(key.clone(), value.clone());
    }
    let mut context = pool.settings.clone();
    context.insert("name".into(), Value::String(pool.name.clone()));
    context.insert("duffy_in".into(), duffy_in.clone());
    let env = crate::templates::environment();
    let mut rendered = Map::new();
    for (key, value) in merged {
        let value = render(&env, &context, value).map_err(|e| format!("{key}: {e}"))?;
        rendered.insert(key, value);
    }
    rendered.insert("duffy_in".into(), duffy_in);
    Ok(Value::Object(rendered))
}

/// Renders every string in `value`, recursively through lists and mappings.
fn render(
    env: &minijinja::Environment<'_>,
    context: &Map<String, Value>,
    value: Value,
) -> Result<Value, minijinja::Error> {
    Ok(match value {
        Value::String(template) => {
            Value::String(env.render_str(&template, minijinja::value::Serde(context))?)
        }
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| render(env, context, v))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| Ok((k, render(env, context, v)?)))
                .collect::<Result<_, minijinja::Error>>()?,
        ),
        other => other,
    })
}

impl Mechanism for Ansible {
    fn provision<'a>(
        &'a self,
        pool: &'a Pool,
        nodes: &'a [NodeInput],
    ) -> BoxFuture<'a, Result<Vec<Value>, MechanismError>> {
        async move {
            let Some(playbook) = self.playbook(Phase::Provision) else {
                return Err(MechanismError(
                    "no provision playbook configured (mechanism.ansible.provision)".into(),
                ));
            };
            let duffy_in = json!({
                "nodes": nodes
                    .iter()
                    .map(|n| json!({"id": n.id, "hostname": n.hostname, "ipaddr": n.ipaddr}))
                    .collect::<Vec<_>>(),
            });
            let entries = self.run(pool, Phase::Provision, playbook, duffy_in).await?;
            if entries.len() < nodes.len() {
                tracing::warn!(pool.name = %pool.name, nodes.asked = nodes.len(), nodes.returned = entries.len(), "pool {}: provision playbook {} returned {} node(s) for {} asked; the rest are dropped", pool.name, playbook.playbook, entries.len(), nodes.len());
            }
            Ok(entries)
        }
        .boxed()
    }

    fn deprovision<'a>(
        &'a self,
        pool: &'a Pool,
        nodes: &'a [NodeInput],
    ) -> BoxFuture<'a, Result<Deprovisioned, MechanismError>> {
        async move {
            let Some(playbook) = self.playbook(Phase::Deprovision) else {
                return Ok(Deprovisioned::All);
            };
            let duffy_in = json!({
                "nodes": nodes
                    .iter()
                    .map(|n| json!({
                        "id": n.id,
                        "hostname": n.hostname,
                        "ipaddr": n.ipaddr,
                        "data": n.data,
                    }))
                    .collect::<Vec<_>>(),
            });
            let entries = self
                .run(pool, Phase::Deprovision, playbook, duffy_in)
                .await?;
            Ok(Deprovisioned::Entries(entries))
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Pool {
        let settings = json!({"name": "p1", "flavor": "small", "count": 2});
        Pool {
            name: "p1".into(),
            is_abstract: false,
            settings: settings.as_object().cloned().unwrap(),
            fill_level: Some(1),
            mechanism: None,
            reuse_nodes: None,
            run_parallel: true,
            contextualize: false,
            max_ready_age: None,
        }
    }

    #[test]
    fn extra_vars_merge_render_and_carry_duffy_in() {
        let mechanism = json!({"a": "{{ name }}-{{ flavor }}", "b": "mech", "n": 5})
            .as_object()
            .cloned()
            .unwrap();
        let phase = json!({"b": "{{ duffy_in.nodes | length }}", "deep": {"l": ["{{ count }}", "{{ missing }}x"]}})
            .as_object()
            .cloned()
            .unwrap();
        let duffy_in = json!({"nodes": [{"id": 1}, {"id": 2}, {"id": 3}]});
        let vars = extra_vars(&pool(), &mechanism, &phase, duffy_in.clone()).unwrap();
        assert_eq!(
            vars,
            json!({"a": "p1-small", "b": "3", "n": 5, "deep": {"l": ["2", "x"]}, "duffy_in": duffy_in})
        );
    }

    #[test]
    fn a_template_error_names_the_key() {
        let phase = json!({"bad": "{{ 1 + }}"}).as_object().cloned().unwrap();
        let e = extra_vars(&pool(), &Map::new(), &phase, json!({})).unwrap_err();
        assert!(e.starts_with("bad: "), "{e}");
    }
}
