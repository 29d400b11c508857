//! Reading a Duffy 3.x database (the original 3.4.0's schema, alembic head `6654d536b836`):
//! tenants, nodes, sessions and their links, every id kept.
//!
//! What the original stores, as seen with 3.4.0 itself: timestamps are naive UTC (SQLite:
//! text, seconds only where the database's `CURRENT_TIMESTAMP` filled them); on SQLite an
//! `Interval` is a DATETIME that far after 1970-01-01, on PostgreSQL an `interval`; JSON is
//! text (SQLite) or `json` (PostgreSQL); the node state is an enum type on PostgreSQL.

use chrono::{NaiveDate, NaiveDateTime};

use super::cells::{Cells, digest_of};
use super::source::SourceDb;
use super::{Extract, ImportError, Item, Origin};
use crate::store::imports::Link;
use crate::store::nodes::{Node, NodeState};
use crate::store::sessions::Session;
use crate::store::tenants::Tenant;

/// The alembic revision of Duffy 3.4.0's schema, the one this reads.
pub const REVISION: &str = "6654d536b836";

/// The tables a Duffy 3.x database has.
const TABLES: [&str; 5] = [
    "alembic_version",
    "tenants",
    "nodes",
    "sessions",
    "sessions_nodes",
];

/// The statements, per backend: every column as text.
struct Queries {
    tenants: &'static str,
    nodes: &'static str,
    sessions: &'static str,
    links: &'static str,
}

const SQLITE: Queries = Queries {
    tenants: "SELECT CAST(id AS TEXT), CAST(created_at AS TEXT), CAST(retired_at AS TEXT), \
        name, CAST(is_admin AS TEXT), ssh_key, api_key, CAST(node_quota AS TEXT), \
        CAST(session_lifetime AS TEXT), CAST(session_lifetime_max AS TEXT) \
        FROM tenants ORDER BY id",
    nodes: "SELECT CAST(n.id AS TEXT), CAST(n.created_at AS TEXT), CAST(n.retired_at AS TEXT), \
        n.hostname, n.ipaddr, n.state, n.comment, n.pool, CAST(n.reusable AS TEXT), \
        CAST(n.data AS TEXT), CAST(COALESCE(u.served, 0) AS TEXT) \
        FROM nodes n LEFT JOIN (SELECT node_id, COUNT(*) AS served FROM sessions_nodes \
        GROUP BY node_id) u ON u.node_id = n.id ORDER BY n.id",
    sessions: "SELECT CAST(id AS TEXT), CAST(created_at AS TEXT), CAST(retired_at AS TEXT), \
        CAST(tenant_id AS TEXT), CAST(expires_at AS TEXT), CAST(data AS TEXT) \
        FROM sessions ORDER BY id",
    links: "SELECT CAST(session_id AS TEXT), CAST(node_id AS TEXT), pool, CAST(data AS TEXT) \
        FROM sessions_nodes ORDER BY session_id, node_id",
};

const POSTGRES: Queries = Queries {
    tenants: "SELECT id::text, created_at::text, retired_at::text, name, is_admin::text, \
        ssh_key, api_key, node_quota::text, EXTRACT(EPOCH FROM session_lifetime)::text, \
        EXTRACT(EPOCH FROM session_lifetime_max)::text FROM tenants ORDER BY id",
    nodes: "SELECT n.id::text, n.created_at::text, n.retired_at::text, n.hostname, n.ipaddr, \
        n.state::text, n.comment, n.pool, n.reusable::text, n.data::text, \
        COALESCE(u.served, 0)::text \
        FROM nodes n LEFT JOIN (SELECT node_id, COUNT(*) AS served FROM sessions_nodes \
        GROUP BY node_id) u ON u.node_id = n.id ORDER BY n.id",
    sessions: "SELECT id::text, created_at::text, retired_at::text, tenant_id::text, \
        expires_at::text, data::text FROM sessions ORDER BY id",
    links: "SELECT session_id::text, node_id::text, pool, data::text \
        FROM sessions_nodes ORDER BY session_id, node_id",
};

/// Reads everything; `now` becomes the imported nodes' `state_changed_at`.
pub(crate) async fn read(
    db: &SourceDb,
    source: String,
    now: NaiveDateTime,
) -> Result<Extract, ImportError> {
    let (queries, interval): (&Queries, fn(&str) -> Option<f64>) = match db {
        SourceDb::Sqlite(_) => (&SQLITE, sqlite_interval),
        SourceDb::Postgres(_) => (&POSTGRES, |t| t.trim().parse().ok()),
        SourceDb::MySql(_) => {
            return Err(ImportError::NotDuffy(
                "a MySQL database is read as a Duffy v2 database".into(),
            ));
        }
    };
    let tables = db.tables().await?;
    for table in TABLES {
        if !tables.iter().any(|t| t == table) {
            return Err(ImportError::NotDuffy(format!(
                "it has no table {table}, so it is not a Duffy 3.x database"
            )));
        }
    }
    let revisions: Vec<String> = db
        .rows("SELECT version_num FROM alembic_version")
        .await?
        .into_iter()
        .filter_map(|mut r| r.pop().flatten())
        .collect();
    match revisions.as_slice() {
        [found] if found == REVISION => {}
        [found] => {
            return Err(ImportError::Revision {
                found: found.clone(),
            });
        }
        [] => {
            return Err(ImportError::Revision {
                found: "none (alembic_version is empty)".into(),
            });
        }
        several => {
            return Err(ImportError::Revision {
                found: several.join(", "),
            });
        }
    }

    let mut extract = Extract::new(Origin::Duffy3, source);
    extract.described = format!("a Duffy 3.x database at alembic revision {REVISION}");

    db.each_row(queries.tenants, |cells| {
        let c = Cells {
            table: "tenants",
            row: cells.first().cloned().flatten().unwrap_or_default(),
            cells: &cells,
        };
        let lifetime = |i, column: &str| -> Result<Option<f64>, ImportError> {
            c.text(i)
                .map(|t| {
                    interval(t)
                        .ok_or_else(|| c.error(format!("{column} is not an interval: {t:?}")))
                })
                .transpose()
        };
        let tenant = Tenant {
            id: c.required_int(0, "id")?,
            created_at: c.required_time(1, "created_at")?,
            retired_at: c.time(2, "retired_at")?,
            name: c.required(3, "name")?.to_owned(),
            is_admin: c.boolean(4, "is_admin")?,
            ssh_key: c.required(5, "ssh_key")?.to_owned(),
            api_key: c.required(6, "api_key")?.to_owned(),
            node_quota: c.int(7, "node_quota")?,
            session_lifetime: lifetime(8, "session_lifetime")?,
            session_lifetime_max: lifetime(9, "session_lifetime_max")?,
        };
        extract.tenants.push(Item {
            source_table: "tenants",
            key: tenant.id.to_string(),
            identity: identity([c.text(1), c.text(3)]),
            digest: c.digest(),
            label: format!("tenants row {} ({})", tenant.id, tenant.name),
            row: tenant,
        });
        Ok(())
    })
    .await?;

    db.each_row(queries.nodes, |cells| {
        let c = Cells {
            table: "nodes",
            row: cells.first().cloned().flatten().unwrap_or_default(),
            cells: &cells,
        };
        let state = c.required(5, "state")?;
        let node = Node {
            id: c.required_int(0, "id")?,
            created_at: c.required_time(1, "created_at")?,
            retired_at: c.time(2, "retired_at")?,
            hostname: c.text(3).map(str::to_owned),
            ipaddr: c.text(4).map(str::to_owned),
            state: state
                .trim()
                .parse::<NodeState>()
                .map_err(|_| c.error(format!("state is not a node state: {state:?}")))?,
            comment: c.text(6).map(str::to_owned),
            pool: c.text(7).map(str::to_owned),
            reusable: c.boolean(8, "reusable")?,
            data: c.json_object(9, "data")?,
            used_count: c.required_int(10, "used_count")?,
            state_changed_at: now,
            owner: None,
            run_pool: None,
        };
        extract.nodes.push(Item {
            source_table: "nodes",
            key: node.id.to_string(),
            identity: identity([c.text(1)]),
            digest: c.digest(),
            label: format!(
                "nodes row {}{}",
                node.id,
                node.hostname
                    .as_deref()
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default()
            ),
            row: node,
        });
        Ok(())
    })
    .await?;

    db.each_row(queries.sessions, |cells| {
        let c = Cells {
            table: "sessions",
            row: cells.first().cloned().flatten().unwrap_or_default(),
            cells: &cells,
        };
        let session = Session {
            id: c.required_int(0, "id")?,
            created_at: c.required_time(1, "created_at")?,
            retired_at: c.time(2, "retired_at")?,
            tenant_id: c.required_int(3, "tenant_id")?,
            expires_at: c.time(4, "expires_at")?,
            data: c.json_object(5, "data")?,
        };
        extract.sessions.push(Item {
            source_table: "sessions",
            key: session.id.to_string(),
            identity: identity([c.text(1), c.text(3)]),
            digest: c.digest(),
            label: format!("sessions row {}", session.id),
            row: session,
        });
        Ok(())
    })
    .await?;

    db.each_row(queries.links, |cells| {
        let key = format!(
            "{}:{}",
            cells.first().cloned().flatten().unwrap_or_default(),
            cells.get(1).cloned().flatten().unwrap_or_default()
        );
        let c = Cells {
            table: "sessions_nodes",
            row: key.clone(),
            cells: &cells,
        };
        let link = Link {
            session_id: c.required_int(0, "session_id")?,
            node_id: c.required_int(1, "node_id")?,
            pool: c.required(2, "pool")?.to_owned(),
            data: c.json_object(3, "data")?.to_text(),
        };
        extract.links.push(Item {
            source_table: "sessions_nodes",
            label: format!("sessions_nodes row {key}"),
            key,
            identity: String::new(),
            digest: c.digest(),
            row: link,
        });
        Ok(())
    })
    .await?;
    Ok(extract)
}

/// What never changes in a source row's life, as one text.
fn identity<const N: usize>(cells: [Option<&str>; N]) -> String {
    digest_of(cells.into_iter())
}

/// SQLAlchemy keeps an `Interval` on SQLite as the DATETIME that long after the epoch.
fn sqlite_interval(text: &str) -> Option<f64> {
    let time = super::cells::parse_time(text)?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?.and_hms_opt(0, 0, 0)?;
    let delta = time - epoch;
    Some(delta.num_microseconds()? as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_intervals_are_offsets_from_the_epoch() {
        assert_eq!(sqlite_interval("1970-01-01 02:30:00.000000"), Some(9000.0));
        assert_eq!(sqlite_interval("1970-01-02 00:00:00.000000"), Some(86400.0));
        assert_eq!(sqlite_interval("1970-01-01 00:00:00.500000"), Some(0.5));
        assert_eq!(sqlite_interval("soon"), None);
    }
}
