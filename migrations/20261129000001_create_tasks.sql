-- The tasks table: PostgreSQL is the only source of truth for every task.
CREATE TABLE IF NOT EXISTS tasks (
    id               UUID PRIMARY KEY,
    task_name        VARCHAR(100) NOT NULL,
    task_parameters  JSONB        NOT NULL,
    status           VARCHAR(20)  NOT NULL DEFAULT 'pending'
                     CONSTRAINT tasks_status_check
                     CHECK (status IN ('pending', 'running', 'completed', 'failed')),
    task_output      JSONB,
    error            TEXT,
    queue            VARCHAR(100) NOT NULL,
    -- Attempts started so far; also the fencing token of the current lease.
    attempts         INTEGER      NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     INTEGER      NOT NULL CHECK (max_attempts >= 1),
    -- Earliest time the next attempt may start (retry backoff).
    run_after        TIMESTAMPTZ  NOT NULL DEFAULT now(),
    -- Last time a dispatch message was sent for this task.
    dispatched_at    TIMESTAMPTZ,
    lease_expires_at TIMESTAMPTZ,
    request_id       VARCHAR(200),
    created_at       TIMESTAMPTZ  NOT NULL DEFAULT now(),
    started_at       TIMESTAMPTZ,
    completed_at     TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ  NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS idx_tasks_status ON tasks (status);
CREATE INDEX IF NOT EXISTS idx_tasks_created_at ON tasks (created_at);
-- Pending work by queue and due time: re-dispatch and queue depth.
CREATE INDEX IF NOT EXISTS idx_tasks_pending_due ON tasks (queue, run_after)
    WHERE status = 'pending';
-- Running work by lease expiry: recovery of lost workers.
CREATE INDEX IF NOT EXISTS idx_tasks_running_lease ON tasks (lease_expires_at)
    WHERE status = 'running';
