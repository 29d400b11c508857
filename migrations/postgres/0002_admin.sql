-- Admin controls: a `downtime` node state (a node an operator took out of service) and
-- paused allocations.

ALTER TABLE nodes DROP CONSTRAINT nodes_state_check;
ALTER TABLE nodes ADD CONSTRAINT nodes_state_check CHECK (state IN (
    'unused', 'provisioning', 'ready', 'contextualizing',
    'deployed', 'deprovisioning', 'done', 'failed', 'downtime'));

-- Allocations an admin paused: scope '*' is the whole service, anything else a pool name.
CREATE TABLE pauses (
    scope     TEXT PRIMARY KEY,
    paused_at TIMESTAMP NOT NULL,
    paused_by TEXT NOT NULL,
    reason    TEXT NOT NULL DEFAULT ''
);
