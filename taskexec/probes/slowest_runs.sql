-- title: Slowest runs
-- description: The longest attempts since the start of the window, slowest first.
-- param since: Start of the window: 30m, 24h, 7d, 2w, an ISO-8601 time with zone, or all | 7d
-- param limit: How many rows | 50
WITH w AS (
    SELECT te_since(:since, '7d') AS since
)
SELECT
    id,
    task_slug,
    duration_ms,
    status,
    started_at,
    attempt,
    trace_id,
    memories_retrieved
FROM task_executions
WHERE id IN (
    SELECT id
    FROM task_executions, w
    WHERE started_at >= w.since AND duration_ms IS NOT NULL
    ORDER BY duration_ms DESC
    LIMIT CAST(coalesce(nullif(:limit, ''), 50) AS INTEGER)
)
ORDER BY duration_ms DESC
