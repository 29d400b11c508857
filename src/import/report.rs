//! What an import did, or with `--dry-run` would do, as `duffy import` prints it: counts
//! per source table, every row left behind and why, v2's tenant names, and what the
//! operator should look at next. No API key ever appears in it.

use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDateTime;

use super::{Extract, Origin, Skipped};
use crate::config::Config;
use crate::store::nodes::{Node, NodeState};
use crate::store::sessions::Session;

/// What happened (or would happen) to one source table's rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Imported for the first time.
    pub new: usize,
    /// Imported before and changed in the source since: overwritten here.
    pub changed: usize,
    /// Imported before and unchanged.
    pub unchanged: usize,
    /// Left out (see the report's list).
    pub skipped: usize,
    /// Changed in the source, but kept as they are here (see the report's notes).
    pub kept: usize,
}

/// A v2 key's tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantName {
    /// The `users` row, by project and job name.
    pub source: String,
    /// The tenant's name here.
    pub name: String,
    /// Created by this run (else imported before).
    pub new: bool,
}

/// The outcome of an import.
#[derive(Debug, Clone)]
pub struct Report {
    /// Where the rows came from.
    pub origin: Origin,
    /// The source URL, without password.
    pub source: String,
    /// What the source was found to be.
    pub described: String,
    /// The target database, without password.
    pub target: String,
    /// Nothing was written.
    pub dry_run: bool,
    /// Per source table, in import order.
    pub counts: Vec<(&'static str, Counts)>,
    /// v2: which tenant each key became.
    pub tenant_names: Vec<TenantName>,
    /// Rows left behind.
    pub skipped: Vec<Skipped>,
    /// Everything else worth knowing.
    pub notes: Vec<String>,
    /// Imported nodes in transient states, by state.
    pub transient: BTreeMap<&'static str, Vec<i64>>,
    /// Live imported nodes of pools the configuration does not have, by pool.
    pub unconfigured: BTreeMap<String, usize>,
    /// Active sessions imported (new or changed).
    pub active_sessions: usize,
    /// Of those, the ones already past their expiry.
    pub expired_sessions: usize,
    /// The highest id the source gave, per table (Duffy 3.x keeps them).
    pub highest: Vec<(&'static str, i64)>,
}

impl Default for Report {
    fn default() -> Self {
        Report {
            origin: Origin::Duffy3,
            source: String::new(),
            described: String::new(),
            target: String::new(),
            dry_run: false,
            counts: Vec::new(),
            tenant_names: Vec::new(),
            skipped: Vec::new(),
            notes: Vec::new(),
            transient: BTreeMap::new(),
            unconfigured: BTreeMap::new(),
            active_sessions: 0,
            expired_sessions: 0,
            highest: Vec::new(),
        }
    }
}

impl Report {
    /// A report on `extract` going to `target`.
    pub(crate) fn new(extract: &Extract, target: String, dry_run: bool) -> Report {
        let mut highest = Vec::new();
        if extract.origin == Origin::Duffy3 {
            for (table, max) in [
                ("tenants", extract.tenants.iter().map(|i| i.row.id).max()),
                ("nodes", extract.nodes.iter().map(|i| i.row.id).max()),
                ("sessions", extract.sessions.iter().map(|i| i.row.id).max()),
            ] {
                if let Some(max) = max {
                    highest.push((table, max));
                }
            }
        }
        Report {
            origin: extract.origin,
            source: extract.source.clone(),
            described: extract.described.clone(),
            target,
            dry_run,
            skipped: extract.skipped.clone(),
            notes: extract.notes.clone(),
            highest,
            ..Report::default()
        }
    }

    /// Notes what an imported (new or changed) node needs after the import.
    pub(crate) fn saw_node(&mut self, node: &Node, config: &Config) {
        if node.retired_at.is_some() {
            return;
        }
        if matches!(
            node.state,
            NodeState::Provisioning | NodeState::Contextualizing | NodeState::Deprovisioning
        ) {
            self.transient
                .entry(node.state.as_str())
                .or_default()
                .push(node.id);
        }
        if let Some(pool) = &node.pool
            && config.nodepools.get(pool).is_none_or(|p| p.is_abstract)
            && !matches!(node.state, NodeState::Done | NodeState::Failed)
        {
            *self.unconfigured.entry(pool.clone()).or_default() += 1;
        }
    }

    /// Notes an imported (new or changed) session.
    pub(crate) fn saw_session(&mut self, session: &Session, now: NaiveDateTime) {
        if session.retired_at.is_some() {
            return;
        }
        self.active_sessions += 1;
        if session.expires_at.is_some_and(|at| at <= now) {
            self.expired_sessions += 1;
        }
    }

    /// Whether the run changed (or would change) anything.
    pub fn wrote_anything(&self) -> bool {
        self.counts.iter().any(|(_, c)| c.new + c.changed > 0)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run {
            "Dry run: would import"
        } else {
            "Imported"
        };
        writeln!(
            f,
            "{verb} from {} ({}) into {}",
            self.source, self.described, self.target
        )?;
        writeln!(
            f,
            "{:<16}{:>9}{:>9}{:>11}{:>9}{:>7}",
            "table", "new", "changed", "unchanged", "skipped", "kept"
        )?;
        for (table, c) in &self.counts {
            writeln!(
                f,
                "{:<16}{:>9}{:>9}{:>11}{:>9}{:>7}",
                table, c.new, c.changed, c.unchanged, c.skipped, c.kept
            )?;
        }
        if !self.tenant_names.is_empty() {
            writeln!(f, "Tenants (one per v2 API key):")?;
            for t in &self.tenant_names {
                let status = if t.new { "new" } else { "imported before" };
                writeln!(f, "  {} -> {} ({status})", t.source, t.name)?;
            }
        }
        if !self.skipped.is_empty() {
            writeln!(f, "Skipped:")?;
            for s in &self.skipped {
                writeln!(f, "  {} row {}: {}", s.table, s.row, s.reason)?;
            }
        }
        if !self.highest.is_empty() {
            let ids: Vec<String> = self
                .highest
                .iter()
                .map(|(table, id)| format!("{table} {id}"))
                .collect();
            writeln!(
                f,
                "Ids are kept; new ones continue above the highest imported: {}",
                ids.join(", ")
            )?;
        }
        if self.active_sessions > 0 {
            write!(f, "Active sessions: {}", self.active_sessions)?;
            if self.expired_sessions > 0 {
                write!(
                    f,
                    " ({} already past their expiry: duffy serve retires them when it starts)",
                    self.expired_sessions
                )?;
            }
            writeln!(f)?;
        }
        if !self.transient.is_empty() {
            let states: Vec<String> = self
                .transient
                .iter()
                .map(|(state, ids)| format!("{state} {ids:?}"))
                .collect();
            writeln!(
                f,
                "Nodes in transient states: {}; duffy serve takes them over when it starts \
                 (provisioning: deprovisioned and dropped; contextualizing: session retired, \
                 node deprovisioned; deprovisioning: deprovisioned again)",
                states.join(", ")
            )?;
        }
        if !self.unconfigured.is_empty() {
            let pools: Vec<String> = self
                .unconfigured
                .iter()
                .map(|(pool, n)| format!("{pool} ({n} live)"))
                .collect();
            writeln!(
                f,
                "Pools the configuration does not have: {}; once no session holds their nodes, \
                 `duffy admin retire-pool NAME` retires them",
                pools.join(", ")
            )?;
        }
        for note in &self.notes {
            writeln!(f, "Note: {note}")?;
        }
        if self.dry_run {
            writeln!(f, "Nothing was written.")?;
        } else if !self.wrote_anything() {
            writeln!(f, "Nothing changed since the last import.")?;
        }
        Ok(())
    }
}
