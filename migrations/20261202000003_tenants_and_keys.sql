-- Tenants: every task belongs to the tenant of the API key that submitted
-- it ('default' when authentication is off, and for every task stored
-- before this migration).
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS tenant VARCHAR(100) NOT NULL DEFAULT 'default';

-- Listing is per tenant: newest first, optionally by status or task type.
-- These replace the (status, id) and (task_name, id) indexes, so a write
-- costs one index more than before, not three.
CREATE INDEX IF NOT EXISTS idx_tasks_tenant_id ON tasks (tenant, id);
CREATE INDEX IF NOT EXISTS idx_tasks_tenant_status_id ON tasks (tenant, status, id);
CREATE INDEX IF NOT EXISTS idx_tasks_tenant_task_name_id ON tasks (tenant, task_name, id);
DROP INDEX IF EXISTS idx_tasks_status_id;
DROP INDEX IF EXISTS idx_tasks_task_name_id;

-- Idempotency keys belong to a tenant: the same key from two tenants makes
-- two tasks.
ALTER TABLE idempotency_keys ADD COLUMN IF NOT EXISTS tenant VARCHAR(100) NOT NULL DEFAULT 'default';
ALTER TABLE idempotency_keys DROP CONSTRAINT IF EXISTS idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (tenant, key);

-- API keys. The token is shown once, at creation; only its SHA-256 is kept.
CREATE TABLE IF NOT EXISTS api_keys (
    id          VARCHAR(64)  PRIMARY KEY,
    token_hash  BYTEA        NOT NULL UNIQUE,
    tenant      VARCHAR(100) NOT NULL,
    -- Any of 'submit', 'read', 'admin'.
    scopes      TEXT[]       NOT NULL,
    -- Submissions per second this key may make (batch items count one
    -- each); NULL: no limit.
    rate_per_second INTEGER  CHECK (rate_per_second > 0),
    description VARCHAR(200),
    created_at  TIMESTAMPTZ  NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);

-- Limits of a tenant, whichever key submitted its tasks.
CREATE TABLE IF NOT EXISTS tenants (
    name        VARCHAR(100) PRIMARY KEY,
    -- Tasks of this tenant running at once across every worker; NULL: no limit.
    max_running INTEGER      CHECK (max_running > 0),
    updated_at  TIMESTAMPTZ  NOT NULL DEFAULT now()
);
