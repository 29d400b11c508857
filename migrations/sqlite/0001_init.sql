-- The Duffy schema (SQLite). Timestamps are naive UTC, stored by the application with
-- microsecond precision; `active` is not a column but `retired_at IS NULL`. JSON documents
-- are TEXT so both backends keep the key order a client sent.

CREATE TABLE tenants (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at           TEXT    NOT NULL,
    retired_at           TEXT    NULL,
    name                 TEXT    NOT NULL UNIQUE,
    is_admin             BOOLEAN NOT NULL DEFAULT 0,
    ssh_key              TEXT    NOT NULL,
    -- a hash: "sha256:<hex>" for keys we issued, "$2b$..." for bcrypt keys from the original
    api_key              TEXT    NOT NULL,
    node_quota           INTEGER NULL,
    -- seconds; NULL means "use defaults"
    session_lifetime     REAL    NULL,
    session_lifetime_max REAL    NULL
);
-- unique: a key alone must name one tenant (Bearer auth)
CREATE UNIQUE INDEX tenants_api_key ON tenants (api_key);

CREATE TABLE sessions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT    NOT NULL,
    retired_at TEXT    NULL,
    tenant_id  INTEGER NOT NULL REFERENCES tenants (id),
    expires_at TEXT    NULL,
    data       TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX sessions_active_tenant ON sessions (tenant_id) WHERE retired_at IS NULL;
CREATE INDEX sessions_active_expiry ON sessions (expires_at) WHERE retired_at IS NULL;

CREATE TABLE nodes (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at       TEXT    NOT NULL,
    retired_at       TEXT    NULL,
    hostname         TEXT    NULL,
    ipaddr           TEXT    NULL,
    state            TEXT    NOT NULL DEFAULT 'unused' CHECK (state IN (
                         'unused', 'provisioning', 'ready', 'contextualizing',
                         'deployed', 'deprovisioning', 'done', 'failed')),
    comment          TEXT    NULL,
    pool             TEXT    NULL,
    reusable         BOOLEAN NOT NULL DEFAULT 0,
    data             TEXT    NOT NULL DEFAULT '{}',
    -- how often the node was handed out in a session (least-used nodes go first)
    used_count       INTEGER NOT NULL DEFAULT 0,
    -- when the node entered its current state: transient states have deadlines
    state_changed_at TEXT    NOT NULL
);
CREATE INDEX nodes_state ON nodes (state);
CREATE INDEX nodes_pool ON nodes (pool);
CREATE INDEX nodes_ready_by_use ON nodes (pool, used_count, id)
    WHERE state = 'ready' AND retired_at IS NULL;
CREATE UNIQUE INDEX nodes_live_hostname ON nodes (hostname)
    WHERE retired_at IS NULL AND state <> 'provisioning' AND state <> 'failed';
CREATE UNIQUE INDEX nodes_live_ipaddr ON nodes (ipaddr)
    WHERE retired_at IS NULL AND state <> 'provisioning' AND state <> 'failed';

-- Kept after retirement: which sessions a node served.
CREATE TABLE sessions_nodes (
    session_id INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    node_id    INTEGER NOT NULL REFERENCES nodes (id),
    pool       TEXT    NOT NULL,
    data       TEXT    NOT NULL,
    PRIMARY KEY (session_id, node_id)
);
CREATE INDEX sessions_nodes_node ON sessions_nodes (node_id);
CREATE INDEX sessions_nodes_pool ON sessions_nodes (pool);
