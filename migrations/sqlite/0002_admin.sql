-- no-transaction
-- Admin controls: a `downtime` node state (a node an operator took out of service) and
-- paused allocations. SQLite cannot change a CHECK constraint in place, so `nodes` is
-- rebuilt (https://sqlite.org/lang_altertable.html#otheralter), with foreign keys off while
-- the table is swapped: the rows are copied with their ids, so every reference stays valid.

PRAGMA foreign_keys = OFF;

BEGIN;

CREATE TABLE nodes_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at       TEXT    NOT NULL,
    retired_at       TEXT    NULL,
    hostname         TEXT    NULL,
    ipaddr           TEXT    NULL,
    state            TEXT    NOT NULL DEFAULT 'unused' CHECK (state IN (
                         'unused', 'provisioning', 'ready', 'contextualizing',
                         'deployed', 'deprovisioning', 'done', 'failed', 'downtime')),
    comment          TEXT    NULL,
    pool             TEXT    NULL,
    reusable         BOOLEAN NOT NULL DEFAULT 0,
    data             TEXT    NOT NULL DEFAULT '{}',
    used_count       INTEGER NOT NULL DEFAULT 0,
    state_changed_at TEXT    NOT NULL
);
INSERT INTO nodes_new (id, created_at, retired_at, hostname, ipaddr, state, comment, pool,
                       reusable, data, used_count, state_changed_at)
    SELECT id, created_at, retired_at, hostname, ipaddr, state, comment, pool,
           reusable, data, used_count, state_changed_at
    FROM nodes;
-- keep AUTOINCREMENT's high-water mark: ids of deleted rows are never handed out again
DELETE FROM sqlite_sequence WHERE name = 'nodes_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'nodes_new', seq FROM sqlite_sequence WHERE name = 'nodes';
DROP TABLE nodes;
ALTER TABLE nodes_new RENAME TO nodes;

CREATE INDEX nodes_state ON nodes (state);
CREATE INDEX nodes_pool ON nodes (pool);
CREATE INDEX nodes_ready_by_use ON nodes (pool, used_count, id)
    WHERE state = 'ready' AND retired_at IS NULL;
CREATE UNIQUE INDEX nodes_live_hostname ON nodes (hostname)
    WHERE retired_at IS NULL AND state <> 'provisioning' AND state <> 'failed';
CREATE UNIQUE INDEX nodes_live_ipaddr ON nodes (ipaddr)
    WHERE retired_at IS NULL AND state <> 'provisioning' AND state <> 'failed';

-- Allocations an admin paused: scope '*' is the whole service, anything else a pool name.
CREATE TABLE pauses (
    scope     TEXT PRIMARY KEY,
    paused_at TEXT NOT NULL,
    paused_by TEXT NOT NULL,
    reason    TEXT NOT NULL DEFAULT ''
);

COMMIT;

PRAGMA foreign_keys = ON;
