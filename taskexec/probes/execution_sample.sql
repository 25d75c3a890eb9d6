-- title: Sample of executions
-- description: An evenly spaced sample (every k-th row by id) of at most limit finished attempts since the start of the window, for distribution and scatter charts that cannot load millions of rows. Deterministic: the same data gives the same sample.
-- param since: Start of the window: 30m, 24h, 7d, 2w, an ISO-8601 time with zone, or all | 7d
-- param limit: At most this many rows | 20000
WITH w AS (
    SELECT te_since(:since, '7d') AS since
),
step AS (
    SELECT max(1, (count(*) + lim - 1) / lim) AS k
    FROM task_executions, w,
        (SELECT max(1, CAST(coalesce(nullif(:limit, ''), 20000) AS INTEGER)) AS lim)
    WHERE started_at >= w.since AND status != 'running'
)
SELECT
    id,
    started_at,
    task_slug,
    status,
    attempt,
    duration_ms,
    memories_retrieved,
    error_type,
    stack_hash
FROM task_executions, w, step
WHERE started_at >= w.since
    AND status != 'running'
    AND id % step.k = 0
ORDER BY started_at, id
