-- An Idempotency-Key of POST /run-tasks maps to the whole batch: every id,
-- in the order given. (task_id keeps the first, for single submissions and
-- for rows written before this column.)
ALTER TABLE idempotency_keys ADD COLUMN IF NOT EXISTS task_ids UUID[];
