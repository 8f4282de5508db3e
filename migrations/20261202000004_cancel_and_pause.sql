-- Operator control: `cancelled` is a terminal status, and queues can be
-- paused. The pause is kept here (PostgreSQL is the source of truth) so it
-- survives restarts of every process and a Redis that loses its data; the
-- workers copy it into Redis, where their pops see it at once.
ALTER TABLE tasks DROP CONSTRAINT IF EXISTS tasks_status_check;
-- NOT VALID, then VALIDATE: checking the existing rows does not hold off
-- writes while it reads the table.
ALTER TABLE tasks ADD CONSTRAINT tasks_status_check
    CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')) NOT VALID;
ALTER TABLE tasks VALIDATE CONSTRAINT tasks_status_check;

CREATE TABLE IF NOT EXISTS queue_pauses (
    queue      VARCHAR(100) PRIMARY KEY,
    paused_at  TIMESTAMPTZ  NOT NULL DEFAULT now(),
    -- The API key that paused it (NULL with authentication off).
    paused_by  VARCHAR(64)
);
