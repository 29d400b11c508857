//! `duffy import`: an existing deployment brought over, so that no CI job has to change.
//!
//! From a Duffy 3.x database everything comes, with its ids: tenants (their bcrypt key
//! hashes as they are, so every key works at once), nodes in every state, active and
//! retired sessions and their links. From a Duffy v2 database, a tenant per API key (the
//! key kept) and the hosts `metaclient.poolmap` maps to a configured pool.
//!
//! The steps: [`source`] opens the source read-only; [`duffy3`] or [`v2`] reads it into an
//! [`Extract`] of our rows; [`plan`] compares them with what earlier runs imported and what
//! the target holds, refusing clashes before anything is written; the plan is written in
//! one transaction, or only shown with `--dry-run`. A second run brings over only the
//! rows that changed in the source since the first.

mod cells;
mod duffy3;
mod plan;
mod report;
pub mod source;
mod v2;

use chrono::NaiveDateTime;

pub use report::{Counts, Report};
pub use source::{Source, SourceError};

use crate::config::{Config, DatabaseUrl};
use crate::store::imports::Link;
use crate::store::nodes::Node;
use crate::store::sessions::Session;
use crate::store::tenants::Tenant;
use crate::store::{self, StoreError};

pub use duffy3::REVISION;

/// What the caller asks for besides the source.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Read and plan everything, write nothing.
    pub dry_run: bool,
    /// Import a v2 database that still has active sessions, without them and their hosts.
    pub ignore_active_sessions: bool,
}

/// Why an import stopped; the target is unchanged in every case.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The source could not be opened.
    #[error("cannot reach the source database {url}: {reason}")]
    Unreachable {
        /// The source, without password.
        url: String,
        /// What the driver said.
        reason: String,
    },
    /// The source is not the kind of database its URL says.
    #[error("the source is not a Duffy database: {0}")]
    NotDuffy(String),
    /// A Duffy 3.x database at another schema revision.
    #[error(
        "the source database is at alembic revision {found}; duffy import reads Duffy 3.4.0's \
         revision {REVISION}: bring the source to that revision with the original's tools first"
    )]
    Revision {
        /// What `alembic_version` holds.
        found: String,
    },
    /// A source row that cannot be imported: names the table, the row and why.
    #[error("{table} row {row}: {reason}")]
    Row {
        /// The source table (or, for clashes, the target table).
        table: &'static str,
        /// The row's id or description.
        row: String,
        /// What is wrong.
        reason: String,
    },
    /// A v2 database still in use.
    #[error(
        "the v2 database has {} active session(s) (state Prod or Fail): {}; drain the v2 \
         service first (/PauseService, then wait for their /Node/done), or import without \
         them with --ignore-active-sessions",
        .0.len(), .0.join(", ")
    )]
    ActiveSessions(Vec<String>),
    /// The configuration in force cannot map v2 hosts.
    #[error("the configuration cannot be used for the import: {0}")]
    Config(String),
    /// Reading the source failed midway.
    #[error("reading the source database failed: {0}")]
    Source(sqlx::Error),
    /// The target database failed.
    #[error("the target database failed: {0}")]
    Target(#[from] StoreError),
}

/// Which kind of deployment the rows come from; recorded with every imported row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The original Duffy 3.x.
    Duffy3,
    /// Duffy v2 (MariaDB).
    V2,
}

impl Origin {
    /// As recorded in `import_rows.origin` and `imports.origin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Duffy3 => "duffy3",
            Origin::V2 => "v2",
        }
    }
}

/// One source row, as our row, with what identifies it across runs.
#[derive(Debug, Clone)]
pub(crate) struct Item<T> {
    /// The source table.
    pub source_table: &'static str,
    /// Its key there.
    pub key: String,
    /// What never changes in its life (empty where the key says it all).
    pub identity: String,
    /// A hash of the source row: equal to the recorded one means unchanged.
    pub digest: String,
    /// How messages name it.
    pub label: String,
    /// Our row (for v2, id 0 until the write assigns one).
    pub row: T,
}

/// A source row the import leaves behind, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The source table.
    pub table: &'static str,
    /// The row.
    pub row: String,
    /// Why.
    pub reason: String,
}

/// Everything read from a source.
#[derive(Debug)]
pub(crate) struct Extract {
    pub origin: Origin,
    /// The source URL without password.
    pub source: String,
    /// What kind of database it was found to be.
    pub described: String,
    pub tenants: Vec<Item<Tenant>>,
    pub nodes: Vec<Item<Node>>,
    pub sessions: Vec<Item<Session>>,
    pub links: Vec<Item<Link>>,
    pub skipped: Vec<Skipped>,
    /// Other things the operator should know.
    pub notes: Vec<String>,
}

impl Extract {
    fn new(origin: Origin, source: String) -> Extract {
        Extract {
            origin,
            source,
            described: String::new(),
            tenants: Vec::new(),
            nodes: Vec::new(),
            sessions: Vec::new(),
            links: Vec::new(),
            skipped: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// Imports `source` into the database `target` (the configuration in force names it and
/// its pools). Returns what was done, or with `dry_run` what would be done.
pub async fn run(
    source: &Source,
    config: &Config,
    target: &DatabaseUrl,
    options: Options,
) -> Result<Report, ImportError> {
    let now: NaiveDateTime = store::now();
    let db = source.open().await?;
    let read = match source {
        Source::Duffy3(_) => duffy3::read(&db, source.redacted(), now).await,
        Source::V2 { .. } => {
            v2::read(
                &db,
                source.redacted(),
                config,
                options.ignore_active_sessions,
                now,
            )
            .await
        }
    };
    db.close().await;
    let extract = read?;
    plan::import(extract, config, target, options, now).await
}
