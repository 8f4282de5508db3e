-- Indexes the statements use, and no others: every index of `tasks` takes
-- an entry on each of a task's writes (docs/decisions.md, "Indexes of the
-- tasks table", has the figures). `status` and `created_at` alone serve no
-- statement (listing uses (status, id)); re-dispatch reads pending tasks
-- in the order they were last dispatched, so a long backlog that is still
-- queued costs it nothing. (Building the partial index reads the table
-- once, holding off writes meanwhile: seconds for millions of rows.)
DROP INDEX IF EXISTS idx_tasks_status;
DROP INDEX IF EXISTS idx_tasks_created_at;
DROP INDEX IF EXISTS idx_tasks_pending_due;
-- Pending tasks always have a dispatch time from now on (recovery sets it
-- to the task's due time).
UPDATE tasks SET dispatched_at = run_after WHERE status = 'pending' AND dispatched_at IS NULL;
CREATE INDEX IF NOT EXISTS idx_tasks_pending_dispatched
    ON tasks (dispatched_at, id) WHERE status = 'pending';
