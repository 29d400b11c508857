-- Listing what is live must not read the history: after months, sessions and nodes are
-- mostly retired, so the active ones get partial indexes of their own.
CREATE INDEX sessions_active ON sessions (id) WHERE retired_at IS NULL;
CREATE INDEX nodes_live ON nodes (id) WHERE retired_at IS NULL;
