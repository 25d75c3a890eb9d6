-- title: Abandoned runs
-- description: Attempts that never recorded an end (their worker died) and were marked abandoned by a sweep or an import, newest first.
-- param limit: How many rows | 50
SELECT id, started_at, task_slug, attempt, trace_id, host, pid, error_message
FROM task_executions
WHERE status = 'abandoned'
ORDER BY started_at DESC
LIMIT CAST(coalesce(nullif(:limit, ''), 50) AS INTEGER)
