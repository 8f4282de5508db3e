-- Retention deletes every terminal status, `cancelled` included, but the
-- partial index it was given names only `completed` and `failed`: a
-- predicate that also names `cancelled` cannot use it, so each batch of
-- deletes walked every finished task by another index (82 rows read per
-- task deleted at 60,000 kept, growing with the table). The index now
-- covers the statement's predicate.
-- (Building it reads the table once, holding off writes meanwhile:
-- seconds for millions of rows.)
CREATE INDEX IF NOT EXISTS idx_tasks_terminal_completed_at ON tasks (completed_at)
    WHERE status IN ('completed', 'failed', 'cancelled');
DROP INDEX IF EXISTS idx_tasks_finished_completed_at;
