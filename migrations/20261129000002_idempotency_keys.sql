-- Idempotency keys of POST /run-task: the same key and body give the same task.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key          VARCHAR(255) PRIMARY KEY,
    task_id      UUID         NOT NULL,
    -- sha256 of the normalised request, to tell a replay from a conflicting reuse.
    fingerprint  VARCHAR(64)  NOT NULL,
    created_at   TIMESTAMPTZ  NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ  NOT NULL
);

CREATE INDEX IF NOT EXISTS idx_idempotency_keys_expires_at ON idempotency_keys (expires_at);
