-- W3C trace context of the request that submitted the task, so the worker's
-- span joins the submitter's trace even when the task is re-dispatched.
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS trace_context VARCHAR(512);
