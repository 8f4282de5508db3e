-- The INSERT that POST /run-task performs (src/store/tasks.rs, insert_row),
-- one row per transaction, for pgbench -M prepared. The API binds a UUIDv7
-- and a UUIDv4 request id; here both are random UUIDs.
INSERT INTO tasks (id, task_name, task_parameters, queue, max_attempts, request_id, trace_context, dispatched_at) VALUES (gen_random_uuid(), 'sum', '{"a": 1, "b": 2}'::jsonb, 'default', 3, gen_random_uuid()::text, NULL, now()) RETURNING id, task_name, status, task_output, error, attempts, max_attempts, run_after, created_at, started_at, completed_at;
