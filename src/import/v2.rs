//! Reading a Duffy v2 database (MariaDB): a tenant per API key, the hosts of `stock` that
//! `metaclient.poolmap` maps to a configured pool as reusable `unused` nodes of that pool.
//!
//! v2 has no ids we keep: tenants and nodes get ours. A key's tenant is found again on a
//! later run by the key's hash, a host by its `stock.id`. Sessions are not imported (their
//! ids were v2's hexadecimal ssids): a database with active ones is refused unless told.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDateTime;
use serde_json::{Map, Value, json};

use super::cells::{Cells, digest_of};
use super::source::SourceDb;
use super::{Extract, ImportError, Item, Origin, Skipped};
use crate::config::Config;
use crate::engine::auth::hash_key;
use crate::legacy::poolmap::{PoolMap, Wanted};
use crate::store::JsonObject;
use crate::store::nodes::{Node, NodeState};
use crate::store::tenants::Tenant;

/// The tables of a v2 database the import reads.
const TABLES: [&str; 4] = ["users", "userkeys", "stock", "sessions"];

const USERS: &str = "SELECT apikey, projectname, jobname, CAST(createdat AS CHAR), \
    CAST(limitnodes AS CHAR) FROM users ORDER BY createdat, projectname, jobname, apikey";
const USERKEYS: &str = "SELECT project_id, `key` FROM userkeys ORDER BY id";
const STOCK: &str = "SELECT CAST(id AS CHAR), hostname, ip, chassis, CAST(used_count AS CHAR), \
    state, comment, distro, rel, ver, arch, CAST(pool AS CHAR), CAST(console_port AS CHAR), \
    flavor, session_id, next_state FROM stock ORDER BY id";
const ACTIVE_SESSIONS: &str = "SELECT s.id, s.state, CAST(s.delivered_at AS CHAR), u.projectname \
    FROM sessions s LEFT JOIN users u ON u.apikey = s.apikey \
    WHERE s.state IN ('Prod', 'Fail') ORDER BY s.delivered_at, s.id";

/// The `stock` columns kept in a node's `data.v2`, by position in [`STOCK`].
const KEPT_COLUMNS: [(usize, &str); 12] = [
    (0, "id"),
    (3, "chassis"),
    (5, "state"),
    (6, "comment"),
    (7, "distro"),
    (8, "rel"),
    (9, "ver"),
    (10, "arch"),
    (11, "pool"),
    (12, "console_port"),
    (13, "flavor"),
    (15, "next_state"),
];

/// Reads users, their SSH keys and the mapped hosts.
pub(crate) async fn read(
    db: &SourceDb,
    source: String,
    config: &Config,
    ignore_active_sessions: bool,
    now: NaiveDateTime,
) -> Result<Extract, ImportError> {
    let tables = db.tables().await?;
    for table in TABLES {
        if !tables.iter().any(|t| t.eq_ignore_ascii_case(table)) {
            return Err(ImportError::NotDuffy(format!(
                "it has no table {table}, so it is not a Duffy v2 database"
            )));
        }
    }
    let mut extract = Extract::new(Origin::V2, source);
    extract.described = "a Duffy v2 database".into();

    let active = db.rows(ACTIVE_SESSIONS).await?;
    let active_ids: Vec<String> = active
        .iter()
        .filter_map(|r| r.first().cloned().flatten())
        .collect();
    if !active.is_empty() {
        let described: Vec<String> = active
            .iter()
            .map(|r| {
                let cell = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
                format!("{} ({}, {} since {})", cell(0), cell(3), cell(1), cell(2))
            })
            .collect();
        if !ignore_active_sessions {
            return Err(ImportError::ActiveSessions(described));
        }
        extract.notes.push(format!(
            "{} active v2 session(s) not imported (--ignore-active-sessions): {}; their hosts are skipped",
            active.len(),
            described.join(", ")
        ));
    }

    // SSH keys per API key, in the order they were added.
    let mut ssh_keys: HashMap<String, Vec<String>> = HashMap::new();
    for row in db.rows(USERKEYS).await? {
        if let [Some(project), Some(key)] = row.as_slice() {
            ssh_keys
                .entry(project.clone())
                .or_default()
                .push(key.trim().to_owned());
        }
    }

    let users = db.rows(USERS).await?;
    // Projects with several keys name each tenant after project and job.
    let mut per_project: BTreeMap<String, usize> = BTreeMap::new();
    for row in &users {
        *per_project
            .entry(row.get(1).cloned().flatten().unwrap_or_default())
            .or_default() += 1;
    }
    for row in &users {
        let project = row.get(1).cloned().flatten().unwrap_or_default();
        let job = row.get(2).cloned().flatten().unwrap_or_default();
        let c = Cells {
            table: "users",
            row: format!("(projectname {project:?}, jobname {job:?})"),
            cells: row,
        };
        let key = c.required(0, "apikey")?;
        let wanted = if per_project.get(&project).copied().unwrap_or(0) > 1 && !job.is_empty() {
            format!("{project}-{job}")
        } else {
            project.clone()
        };
        let wanted = tenant_name(&wanted);
        if wanted.is_empty() {
            return Err(c.error("projectname is empty: no tenant name can be made of it"));
        }
        let keys = ssh_keys.remove(key).unwrap_or_default();
        let stored_key = hash_key(key);
        let tenant = Tenant {
            id: 0,
            created_at: c.time(3, "createdat")?.unwrap_or(now),
            retired_at: None,
            name: wanted,
            is_admin: false,
            ssh_key: keys.join("\n"),
            api_key: stored_key.clone(),
            node_quota: c.int(4, "limitnodes")?,
            session_lifetime: None,
            session_lifetime_max: None,
        };
        // Never the key itself: its hash names the row in our records.
        let digest = digest_of(
            [
                Some(project.as_str()),
                Some(job.as_str()),
                c.text(3),
                c.text(4),
                Some(tenant.ssh_key.as_str()),
            ]
            .into_iter(),
        );
        extract.tenants.push(Item {
            source_table: "users",
            key: stored_key.trim_start_matches("sha256:").to_owned(),
            identity: String::new(),
            digest,
            label: format!("users row {}", c.row),
            row: tenant,
        });
    }

    let poolmap =
        PoolMap::new(&config.metaclient.poolmap).map_err(|e| ImportError::Config(e.to_string()))?;
    for row in db.rows(STOCK).await? {
        let id = row.first().cloned().flatten().unwrap_or_default();
        let hostname = row.get(1).cloned().flatten();
        let c = Cells {
            table: "stock",
            row: format!(
                "{id}{}",
                hostname
                    .as_deref()
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default()
            ),
            cells: &row,
        };
        let skip = |reason: String| Skipped {
            table: "stock",
            row: c.row.clone(),
            reason,
        };
        let state = c.text(5).unwrap_or_default().trim().to_owned();
        if matches!(state.as_str(), "Reserved" | "Failed") {
            extract
                .skipped
                .push(skip(format!("state {state}: not managed by Duffy")));
            continue;
        }
        let session = c.text(14).unwrap_or_default();
        if !session.is_empty() && active_ids.iter().any(|s| s == session) {
            extract
                .skipped
                .push(skip(format!("held by active session {session}")));
            continue;
        }
        let Some(ver) = c.text(9).filter(|v| !v.trim().is_empty()) else {
            extract
                .skipped
                .push(skip("no ver: no poolmap entry can match it".into()));
            continue;
        };
        let nonempty = |i| c.text(i).map(str::trim).filter(|t| !t.is_empty());
        let wanted = Wanted::new(
            Some(ver.trim().to_owned()),
            nonempty(10).map(str::to_owned),
            nonempty(13).map(str::to_owned),
        );
        let Some(pool) = poolmap.resolve(&wanted) else {
            extract.skipped.push(skip(format!(
                "{}: no metaclient.poolmap entry matches",
                wanted.describe()
            )));
            continue;
        };
        if config
            .nodepools
            .get(&pool)
            .is_none_or(|p| p.is_abstract || p.mechanism.is_none())
        {
            extract.skipped.push(skip(format!(
                "{}: metaclient.poolmap leads to pool '{pool}', which the configuration does not have",
                wanted.describe()
            )));
            continue;
        }
        let (Some(hostname), Some(ip)) = (
            nonempty(1).map(str::to_owned),
            nonempty(2).map(str::to_owned),
        ) else {
            extract.skipped.push(skip("no hostname or no ip".into()));
            continue;
        };
        let mut v2 = Map::new();
        for (i, column) in KEPT_COLUMNS {
            let value = match (column, c.text(i)) {
                (_, None) => Value::Null,
                ("id" | "pool" | "console_port", Some(t)) => {
                    t.parse::<i64>().map_or_else(|_| json!(t), |n| json!(n))
                }
                (_, Some(t)) => json!(t),
            };
            v2.insert(column.to_owned(), value);
        }
        let mut data = Map::new();
        // What `reuse-nodes: {architecture: …}` pools match once the host is reused.
        data.insert("architecture".into(), json!(wanted.arch));
        data.insert("v2".into(), Value::Object(v2));
        let node = Node {
            id: 0,
            created_at: now,
            retired_at: None,
            hostname: Some(hostname),
            ipaddr: Some(ip),
            state: NodeState::Unused,
            comment: None,
            pool: Some(pool),
            reusable: true,
            data: JsonObject(data),
            used_count: c.int(4, "used_count")?.unwrap_or(0).max(0),
            state_changed_at: now,
            owner: None,
            run_pool: None,
        };
        // The digest covers the whole source row and what the configuration made of it.
        let digest = digest_of(
            row.iter()
                .map(Option::as_deref)
                .chain([node.pool.as_deref()]),
        );
        extract.nodes.push(Item {
            source_table: "stock",
            key: id.clone(),
            identity: String::new(),
            digest,
            label: format!("stock row {}", c.row),
            row: node,
        });
    }
    Ok(extract)
}

/// A tenant name from v2's project and job names: trimmed, inner whitespace as `-`.
fn tenant_name(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_their_whitespace() {
        assert_eq!(tenant_name(" nfs ganesha "), "nfs-ganesha");
        assert_eq!(tenant_name("CentOS-centos_arrfab"), "CentOS-centos_arrfab");
        assert_eq!(tenant_name("  "), "");
    }
}
