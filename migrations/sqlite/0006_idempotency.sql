-- `Idempotency-Key` on `POST /api/v1/sessions`: a key a tenant sent, what request it came
-- with, and the session it created. A retry with the same key gets that session back and
-- never a second one.

CREATE TABLE idempotency_keys (
    -- the tenant that sent the key (the requester, for an admin acting for another)
    tenant_id   INTEGER NOT NULL,
    key         TEXT    NOT NULL,
    -- a digest of the request (its nodes specs and target tenant): the same key with
    -- another request is refused
    fingerprint TEXT    NOT NULL,
    created_at  TEXT    NOT NULL,
    -- the instance answering the request while it runs
    claimed_by  INTEGER NOT NULL,
    -- the session it created, written in the transaction that created it
    session_id  INTEGER NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
