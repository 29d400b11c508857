-- `duffy import`: which rows came from which source, so that a second run brings over only
-- what changed in the source since, and refuses rows of another origin that clash.

-- One line per run that wrote something.
CREATE TABLE imports (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    -- 'duffy3' (a Duffy 3.x database) or 'v2' (a Duffy v2 MariaDB database)
    origin      TEXT      NOT NULL,
    -- the source URL without its password
    source      TEXT      NOT NULL,
    imported_at TEXT      NOT NULL,
    -- what the run did: rows new, changed and unchanged per source table (a JSON object)
    summary     TEXT      NOT NULL DEFAULT '{}'
);

-- Every source row imported, by its key in the source.
CREATE TABLE import_rows (
    origin       TEXT      NOT NULL,
    -- the source table: tenants, nodes, sessions, sessions_nodes (3.x); users, stock (v2)
    source_table TEXT      NOT NULL,
    -- the row's key there: its id, "session:node" for links, a SHA-256 of a v2 key
    source_key   TEXT      NOT NULL,
    -- the id of the row it became here (NULL for links, whose key is the same here)
    target_id    INTEGER   NULL,
    -- what does not change in the life of a source row (e.g. its created_at): a row with
    -- the same key and another identity comes from another database
    identity     TEXT      NOT NULL,
    -- a hash of the row as last imported: equal means unchanged since
    digest       TEXT      NOT NULL,
    imported_at  TEXT      NOT NULL,
    PRIMARY KEY (origin, source_table, source_key)
);
