//! What an import does to the target: each source row is new, changed since the last run,
//! or unchanged; rows that would clash are refused before anything is written; then the
//! plan is written in one transaction (or only reported, for a dry run).
//!
//! The rules:
//! * A row recorded by an earlier run of the same origin is the same row if what never
//!   changes in it (its identity: e.g. its `created_at`) is the same; otherwise it comes
//!   from another database, and the import is refused.
//! * A row not recorded yet whose id the target already uses (a Duffy 3.x import keeps
//!   ids) is refused: the target holds rows of another origin.
//! * A changed row overwrites its copy here: the source is the authority until the
//!   cut-over. Exceptions: a v2 tenant keeps the name, admin flag and lifetimes it has
//!   here; a v2 host is only updated while its node here is still `unused`.
//! * Names, API keys and live hostnames and addresses stay unique, among the imported
//!   rows and against everything the target holds.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDateTime;
use serde_json::json;

use super::report::{Counts, Report, TenantName};
use super::{Extract, ImportError, Item, Options, Origin};
use crate::config::{Config, DatabaseUrl};
use crate::store::imports::{self, IdTable, Imported, Record, Schema};
use crate::store::nodes::{Node, NodeState};
use crate::store::tenants::Tenant;
use crate::store::{Db, Tx};

/// What the target holds that the plan needs.
#[derive(Default)]
struct Target {
    recorded: HashMap<(String, String), Imported>,
    tenants: Vec<Tenant>,
    live: Vec<imports::LiveNode>,
    nodes: HashSet<i64>,
    sessions: HashSet<i64>,
    node_states: HashMap<i64, String>,
}

/// What becomes of one row.
enum Fate {
    New,
    Changed(Option<i64>),
    Unchanged,
    /// Imported before, deleted here since (e.g. a purged pool): left alone.
    Gone,
}

/// The rows to write, per table.
struct Plan {
    tenants: Rows<Tenant>,
    nodes: Rows<Node>,
    sessions: Rows<crate::store::sessions::Session>,
    links: Rows<imports::Link>,
    report: Report,
}

struct Rows<T> {
    new: Vec<Item<T>>,
    changed: Vec<Item<T>>,
}

impl<T> Rows<T> {
    /// The rows to insert.
    fn new_rows(&self) -> Vec<&T> {
        self.new.iter().map(|i| &i.row).collect()
    }

    /// Every row written, new or changed.
    fn written(&self) -> impl Iterator<Item = &Item<T>> {
        self.new.iter().chain(&self.changed)
    }

    /// What `import_rows` says of the rows written; `target_id` names the row here.
    fn records(&self, target_id: impl Fn(&T) -> Option<i64>) -> impl Iterator<Item = Record> {
        self.written().map(move |item| Record {
            source_table: item.source_table,
            source_key: item.key.clone(),
            imported: Imported {
                target_id: target_id(&item.row),
                identity: item.identity.clone(),
                digest: item.digest.clone(),
            },
        })
    }
}

impl<T> Default for Rows<T> {
    fn default() -> Self {
        Rows {
            new: Vec::new(),
            changed: Vec::new(),
        }
    }
}

/// Plans the import of `extract` into `target` and writes it unless it is a dry run.
pub(crate) async fn import(
    extract: Extract,
    config: &Config,
    target: &DatabaseUrl,
    options: Options,
    now: NaiveDateTime,
) -> Result<Report, ImportError> {
    // A dry run creates nothing, not even an SQLite file.
    if options.dry_run
        && let DatabaseUrl::Sqlite { path } = target
        && !path.exists()
    {
        return plan(extract, &Target::default(), config, target, options, now).map(|p| p.report);
    }
    let db = Db::connect(target).await?;
    let result = import_into(&db, extract, config, target, options, now).await;
    db.close().await;
    result
}

async fn import_into(
    db: &Db,
    extract: Extract,
    config: &Config,
    url: &DatabaseUrl,
    options: Options,
    now: NaiveDateTime,
) -> Result<Report, ImportError> {
    if !options.dry_run {
        db.migrate().await?;
    }
    let mut tx = db.begin().await?;
    let schema = imports::schema(&mut tx).await?;
    if !options.dry_run {
        imports::lock_tables(&mut tx).await?;
    }
    let target = read_target(&mut tx, &extract, schema).await?;
    let plan = plan(extract, &target, config, url, options, now)?;
    if options.dry_run {
        // Dropped unwritten: rolled back.
        return Ok(plan.report);
    }
    let report = write(&mut tx, plan, now).await?;
    tx.commit().await?;
    Ok(report)
}

/// Reads what the plan compares the source with.
async fn read_target(
    tx: &mut Tx,
    extract: &Extract,
    schema: Schema,
) -> Result<Target, ImportError> {
    if !schema.tables {
        return Ok(Target::default());
    }
    let recorded = if schema.records {
        imports::recorded(tx, extract.origin.as_str()).await?
    } else {
        HashMap::new()
    };
    let recorded_ids = |table: &str| -> Vec<i64> {
        recorded
            .iter()
            .filter(|((t, _), _)| t == table)
            .filter_map(|(_, r)| r.target_id)
            .collect()
    };
    let node_table = match extract.origin {
        Origin::Duffy3 => "nodes",
        Origin::V2 => "stock",
    };
    let mut node_ids = recorded_ids(node_table);
    node_ids.extend(
        extract
            .nodes
            .iter()
            .filter(|i| i.row.id > 0)
            .map(|i| i.row.id),
    );
    let mut session_ids = recorded_ids("sessions");
    session_ids.extend(extract.sessions.iter().map(|i| i.row.id));
    let nodes = imports::existing_ids(tx, IdTable::Nodes, &node_ids).await?;
    let sessions = imports::existing_ids(tx, IdTable::Sessions, &session_ids).await?;
    let node_states = if extract.origin == Origin::V2 {
        imports::node_states(tx, &recorded_ids("stock")).await?
    } else {
        HashMap::new()
    };
    Ok(Target {
        tenants: imports::all_tenants(tx).await?,
        live: imports::live_nodes(tx).await?,
        nodes: nodes.into_iter().collect(),
        sessions: sessions.into_iter().collect(),
        node_states,
        recorded,
    })
}

/// Decides the fate of every row and checks every constraint; writes nothing.
fn plan(
    extract: Extract,
    target: &Target,
    config: &Config,
    url: &DatabaseUrl,
    options: Options,
    now: NaiveDateTime,
) -> Result<Plan, ImportError> {
    let origin = extract.origin;
    let mut report = Report::new(&extract, url.redacted(), options.dry_run);
    let mut plan = Plan {
        tenants: Rows::default(),
        nodes: Rows::default(),
        sessions: Rows::default(),
        links: Rows::default(),
        report: Report::default(),
    };
    let tenant_ids: HashSet<i64> = target.tenants.iter().map(|t| t.id).collect();
    let keeps_ids = origin == Origin::Duffy3;

    // Tenants.
    let mut names: HashMap<String, Owner> = HashMap::new();
    let mut keys: HashMap<String, Owner> = HashMap::new();
    for t in &target.tenants {
        names.insert(t.name.clone(), Owner::Target(t.id, t.name.clone()));
        keys.insert(t.api_key.clone(), Owner::Target(t.id, t.name.clone()));
    }
    let mut counts = Counts::default();
    for mut item in extract.tenants {
        let fate = fate(&item, target, origin, |id| {
            keeps_ids
                .then(|| tenant_ids.contains(&id).then(|| format!("tenant {id}")))
                .flatten()
        })?;
        let own = match &fate {
            Fate::New if keeps_ids => Some(item.row.id),
            Fate::New => None,
            Fate::Changed(id) => *id,
            Fate::Unchanged | Fate::Gone => {
                count(&mut counts, &fate);
                if origin == Origin::V2
                    && let Some(name) = recorded_target(target, &item)
                        .and_then(|id| target.tenants.iter().find(|t| t.id == id))
                        .map(|t| t.name.clone())
                {
                    report.tenant_names.push(TenantName {
                        source: item.label.clone(),
                        name,
                        new: false,
                    });
                }
                continue;
            }
        };
        if origin == Origin::V2 {
            match own.and_then(|id| target.tenants.iter().find(|t| t.id == id)) {
                // What an admin may have set here stays.
                Some(here) => {
                    item.row.id = here.id;
                    item.row.name = here.name.clone();
                    item.row.is_admin = here.is_admin;
                    item.row.retired_at = here.retired_at;
                    item.row.session_lifetime = here.session_lifetime;
                    item.row.session_lifetime_max = here.session_lifetime_max;
                }
                None => item.row.name = free_name(&names, &item.row.name),
            }
            report.tenant_names.push(TenantName {
                source: item.label.clone(),
                name: item.row.name.clone(),
                new: matches!(fate, Fate::New),
            });
        }
        let me = match own {
            Some(id) => Owner::Target(id, item.row.name.clone()),
            None => Owner::Source(item.label.clone()),
        };
        if let Some(other) = names.get(&item.row.name)
            && !other.same(&me)
        {
            return Err(clash(
                &item,
                format!(
                    "the name '{}' is already taken by {}",
                    item.row.name,
                    other.describe()
                ),
            ));
        }
        if let Some(other) = keys.get(&item.row.api_key)
            && !other.same(&me)
        {
            return Err(clash(
                &item,
                format!("its API key is already the key of {}", other.describe()),
            ));
        }
        if !item.row.api_key.starts_with("$2") && !item.row.api_key.starts_with("sha256:") {
            report.notes.push(format!(
                "{}: the stored API key is neither a bcrypt hash nor one of ours: no key will authenticate it",
                item.label
            ));
        }
        names.insert(item.row.name.clone(), me.clone());
        keys.insert(item.row.api_key.clone(), me);
        push(&mut plan.tenants, &mut counts, item, fate);
    }
    report.counts.push((
        match origin {
            Origin::Duffy3 => "tenants",
            Origin::V2 => "users",
        },
        counts,
    ));

    // Nodes: first what becomes of each, then whether the live ones stay unique among
    // the target's live nodes (less those being overwritten) and each other.
    let mut counts = Counts::default();
    let mut writing: Vec<(Item<Node>, Fate)> = Vec::new();
    for item in extract.nodes {
        let fate = fate(&item, target, origin, |id| {
            keeps_ids
                .then(|| target.nodes.contains(&id).then(|| format!("node {id}")))
                .flatten()
        })?;
        match fate {
            Fate::Changed(Some(id))
                if origin == Origin::V2
                    && target.node_states.get(&id).map(String::as_str) != Some("unused") =>
            {
                counts.kept += 1;
                report.notes.push(format!(
                    "{} changed in the source, but node {id} is {} here: kept as it is",
                    item.label,
                    target.node_states.get(&id).map_or("gone", String::as_str)
                ));
            }
            Fate::Gone => {
                report.notes.push(format!(
                    "{} was imported before and deleted here since: not imported again",
                    item.label
                ));
                count(&mut counts, &fate);
            }
            Fate::Unchanged => count(&mut counts, &fate),
            Fate::New | Fate::Changed(_) => writing.push((item, fate)),
        }
    }
    let overwritten: HashSet<i64> = writing
        .iter()
        .filter_map(|(_, fate)| match fate {
            Fate::Changed(id) => *id,
            _ => None,
        })
        .collect();
    let mut hostnames: HashMap<String, Owner> = HashMap::new();
    let mut addresses: HashMap<String, Owner> = HashMap::new();
    for (id, hostname, ipaddr, _) in &target.live {
        if overwritten.contains(id) {
            continue;
        }
        let owner = Owner::Target(*id, hostname.clone().unwrap_or_default());
        if let Some(h) = hostname {
            hostnames.insert(h.clone(), owner.clone());
        }
        if let Some(a) = ipaddr {
            addresses.insert(a.clone(), owner);
        }
    }
    for (item, fate) in writing {
        let node = &item.row;
        let unique = node.retired_at.is_none()
            && !matches!(node.state, NodeState::Provisioning | NodeState::Failed);
        if unique {
            let me = match (&fate, origin) {
                (Fate::Changed(Some(id)), _) => Owner::Target(*id, String::new()),
                (_, Origin::Duffy3) => Owner::Target(node.id, String::new()),
                _ => Owner::Source(item.label.clone()),
            };
            for (value, taken, what) in [
                (&node.hostname, &mut hostnames, "hostname"),
                (&node.ipaddr, &mut addresses, "ipaddr"),
            ] {
                let Some(value) = value else { continue };
                if let Some(other) = taken.get(value)
                    && !other.same(&me)
                {
                    return Err(clash(
                        &item,
                        format!(
                            "{what} '{value}' is also the {what} of {}, and both are live",
                            other.describe()
                        ),
                    ));
                }
                taken.insert(value.clone(), me.clone());
            }
        }
        report.saw_node(node, config);
        push(&mut plan.nodes, &mut counts, item, fate);
    }
    report.counts.push((
        match origin {
            Origin::Duffy3 => "nodes",
            Origin::V2 => "stock",
        },
        Counts {
            skipped: report.skipped.iter().filter(|s| s.table == "stock").count(),
            ..counts
        },
    ));

    // Sessions (Duffy 3.x only).
    if origin == Origin::Duffy3 {
        let mut counts = Counts::default();
        for item in extract.sessions {
            let fate = fate(&item, target, origin, |id| {
                target
                    .sessions
                    .contains(&id)
                    .then(|| format!("session {id}"))
            })?;
            match fate {
                Fate::New | Fate::Changed(_) => report.saw_session(&item.row, now),
                Fate::Gone => report.notes.push(format!(
                    "{} was imported before and deleted here since: not imported again",
                    item.label
                )),
                Fate::Unchanged => {}
            }
            push(&mut plan.sessions, &mut counts, item, fate);
        }
        report.counts.push(("sessions", counts));

        // A link needs its session and node here: kept, or imported by this run. One
        // whose session or node was deleted here since (a purged pool) is not imported.
        let sessions_here: HashSet<i64> = target
            .sessions
            .iter()
            .copied()
            .chain(plan.sessions.new.iter().map(|i| i.row.id))
            .collect();
        let nodes_here: HashSet<i64> = target
            .nodes
            .iter()
            .copied()
            .chain(plan.nodes.new.iter().map(|i| i.row.id))
            .collect();
        let mut counts = Counts::default();
        let mut gone = 0;
        for item in extract.links {
            let link = &item.row;
            if !sessions_here.contains(&link.session_id) || !nodes_here.contains(&link.node_id) {
                gone += 1;
                counts.unchanged += 1;
                continue;
            }
            let fate = fate(&item, target, origin, |_| None)?;
            push(&mut plan.links, &mut counts, item, fate);
        }
        if gone > 0 {
            report.notes.push(format!(
                "{gone} sessions_nodes row(s) name a session or node deleted here since an \
                 earlier import: not imported again"
            ));
        }
        report.counts.push(("sessions_nodes", counts));
    }
    plan.report = report;
    Ok(plan)
}

/// Who holds a name, key, hostname or address.
#[derive(Debug, Clone)]
enum Owner {
    /// A row of the target (by id; the text names it in messages).
    Target(i64, String),
    /// A source row without an id here yet.
    Source(String),
}

impl Owner {
    fn same(&self, other: &Owner) -> bool {
        match (self, other) {
            (Owner::Target(a, _), Owner::Target(b, _)) => a == b,
            (Owner::Source(a), Owner::Source(b)) => a == b,
            _ => false,
        }
    }

    fn describe(&self) -> String {
        match self {
            Owner::Target(id, name) if name.is_empty() => format!("row {id} in the target"),
            Owner::Target(id, name) => format!("row {id} ({name}) in the target"),
            Owner::Source(label) => label.clone(),
        }
    }
}

/// A clash that stops the import, about `item`.
fn clash<T>(item: &Item<T>, reason: String) -> ImportError {
    let (table, row) = match item.label.split_once(" row ") {
        Some((_, row)) => (item.source_table, row.to_owned()),
        None => (item.source_table, item.label.clone()),
    };
    ImportError::Row { table, row, reason }
}

/// The target id an earlier run recorded for `item`.
fn recorded_target<T>(target: &Target, item: &Item<T>) -> Option<i64> {
    target
        .recorded
        .get(&(item.source_table.to_owned(), item.key.clone()))
        .and_then(|r| r.target_id)
}

/// `wanted`, or `wanted-2`, `wanted-3`… whichever no tenant has.
fn free_name(names: &HashMap<String, Owner>, wanted: &str) -> String {
    if !names.contains_key(wanted) {
        return wanted.to_owned();
    }
    (2..)
        .map(|n| format!("{wanted}-{n}"))
        .find(|name| !names.contains_key(name))
        .unwrap_or_else(|| wanted.to_owned())
}

/// Decides what becomes of `item`. `taken(id)` says which row of the target uses the id
/// a new row would keep.
fn fate<T>(
    item: &Item<T>,
    target: &Target,
    origin: Origin,
    taken: impl Fn(i64) -> Option<String>,
) -> Result<Fate, ImportError>
where
    T: HasId,
{
    let key = (item.source_table.to_owned(), item.key.clone());
    match target.recorded.get(&key) {
        Some(recorded) if recorded.identity != item.identity => Err(clash(
            item,
            format!(
                "an earlier import brought a different row under this key from another {} database \
                 (its created_at or owner differ): import each deployment into a database of its own",
                origin_name(origin)
            ),
        )),
        Some(recorded) => {
            let present = match (item.source_table, recorded.target_id) {
                ("tenants" | "users", _) => true,
                ("nodes" | "stock", Some(id)) => target.nodes.contains(&id),
                ("sessions", Some(id)) => target.sessions.contains(&id),
                _ => true,
            };
            if !present {
                Ok(Fate::Gone)
            } else if recorded.digest == item.digest {
                Ok(Fate::Unchanged)
            } else {
                Ok(Fate::Changed(recorded.target_id))
            }
        }
        None => match taken(item.row.id()) {
            Some(here) => Err(clash(
                item,
                format!(
                    "the target already has {here}, which did not come from this source: \
                     import into an empty database (`duffy migrate` makes one)"
                ),
            )),
            None => Ok(Fate::New),
        },
    }
}

fn origin_name(origin: Origin) -> &'static str {
    match origin {
        Origin::Duffy3 => "Duffy 3.x",
        Origin::V2 => "Duffy v2",
    }
}

/// Rows with an id of their own.
trait HasId {
    fn id(&self) -> i64;
}

impl HasId for Tenant {
    fn id(&self) -> i64 {
        self.id
    }
}

impl HasId for Node {
    fn id(&self) -> i64 {
        self.id
    }
}

impl HasId for crate::store::sessions::Session {
    fn id(&self) -> i64 {
        self.id
    }
}

impl HasId for imports::Link {
    fn id(&self) -> i64 {
        0
    }
}

fn count(counts: &mut Counts, fate: &Fate) {
    match fate {
        Fate::New => counts.new += 1,
        Fate::Changed(_) => counts.changed += 1,
        Fate::Unchanged | Fate::Gone => counts.unchanged += 1,
    }
}

fn push<T>(rows: &mut Rows<T>, counts: &mut Counts, item: Item<T>, fate: Fate) {
    count(counts, &fate);
    match fate {
        Fate::New => rows.new.push(item),
        Fate::Changed(_) => rows.changed.push(item),
        Fate::Unchanged | Fate::Gone => {}
    }
}

/// Writes the plan inside `tx`.
async fn write(tx: &mut Tx, mut plan: Plan, now: NaiveDateTime) -> Result<Report, ImportError> {
    let origin = plan.report.origin;
    if origin == Origin::V2 {
        let ids = imports::fresh_ids(tx, IdTable::Tenants, plan.tenants.new.len()).await?;
        for (item, id) in plan.tenants.new.iter_mut().zip(ids) {
            item.row.id = id;
        }
        let ids = imports::fresh_ids(tx, IdTable::Nodes, plan.nodes.new.len()).await?;
        for (item, id) in plan.nodes.new.iter_mut().zip(ids) {
            item.row.id = id;
        }
    }
    imports::insert_tenants(tx, &plan.tenants.new_rows()).await?;
    for item in &plan.tenants.changed {
        imports::update_tenant(tx, &item.row).await?;
    }
    imports::insert_nodes(tx, &plan.nodes.new_rows()).await?;
    for item in &plan.nodes.changed {
        imports::update_node(tx, &item.row).await?;
    }
    imports::insert_sessions(tx, &plan.sessions.new_rows()).await?;
    for item in &plan.sessions.changed {
        imports::update_session(tx, &item.row).await?;
    }
    let links: Vec<_> = plan.links.written().map(|i| &i.row).collect();
    imports::upsert_links(tx, &links).await?;

    let records: Vec<Record> = plan
        .tenants
        .records(|t| Some(t.id))
        .chain(plan.nodes.records(|n| Some(n.id)))
        .chain(plan.sessions.records(|s| Some(s.id)))
        .chain(plan.links.records(|_| None))
        .collect();
    let written = !records.is_empty();
    imports::record(tx, origin.as_str(), now, &records).await?;
    if written {
        let summary: BTreeMap<&str, serde_json::Value> = plan
            .report
            .counts
            .iter()
            .map(|(table, c)| {
                (
                    *table,
                    json!({"new": c.new, "changed": c.changed, "unchanged": c.unchanged, "skipped": c.skipped, "kept": c.kept}),
                )
            })
            .collect();
        imports::log_run(
            tx,
            origin.as_str(),
            &plan.report.source,
            now,
            &serde_json::to_string(&summary).unwrap_or_default(),
        )
        .await?;
    }
    imports::continue_ids(tx).await?;
    Ok(plan.report)
}
