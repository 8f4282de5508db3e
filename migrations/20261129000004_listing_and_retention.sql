-- Listing newest first by id (UUIDv7 ids are time-ordered), filtered by
-- status and/or task type, with keyset pagination on id.
CREATE INDEX IF NOT EXISTS idx_tasks_status_id ON tasks (status, id);
CREATE INDEX IF NOT EXISTS idx_tasks_task_name_id ON tasks (task_name, id);
-- Retention: finished tasks by completion time.
CREATE INDEX IF NOT EXISTS idx_tasks_finished_completed_at ON tasks (completed_at)
    WHERE status IN ('completed', 'failed');
