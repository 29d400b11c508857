-- Several instances on one database, and work that survives a crash: every `duffy serve`
-- (and every `duffy admin` command) registers itself here and renews
-- its heartbeat; a node in a transient state records the instance whose run moves it on.

CREATE TABLE instances (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    -- 'serve' or 'admin'
    role         TEXT    NOT NULL,
    host         TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    -- the machine's boot id and the process's pid namespace: two instances with the same
    -- value see each other's processes, so one can tell at once that the other is gone
    process_space TEXT   NOT NULL,
    version      TEXT    NOT NULL,
    started_at   TEXT    NOT NULL,
    heartbeat_at TEXT    NOT NULL,
    -- set when it stopped, or when another instance found it dead and took its work over
    stopped_at   TEXT    NULL
);
CREATE INDEX instances_live ON instances (heartbeat_at) WHERE stopped_at IS NULL;

-- The instance whose run moves the node on; NULL outside the transient states (and for a
-- transient node no live instance owns, e.g. one written by an older version).
ALTER TABLE nodes ADD COLUMN owner INTEGER NULL;
CREATE INDEX nodes_owner ON nodes (owner) WHERE owner IS NOT NULL;
-- The pool whose mechanism that run uses: a deprovisioning node has already left its pool.
ALTER TABLE nodes ADD COLUMN run_pool TEXT NULL;
