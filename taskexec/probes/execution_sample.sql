-- title: Sample of executions
-- description: An evenly spaced sample (every k-th row by id) of at most limit finished attempts since the start of the window, for distribution and scatter charts that cannot load millions of rows. Deterministic: the same data gives the same sample.
-- param since: Start of the window: 7d, 24h or an ISO-8601 time with zone | 7d
-- param limit: At most this many rows | 20000
WITH w AS (
    SELECT CASE
        WHEN coalesce(:since, '') = ''
            THEN strftime('%Y-%m-%dT%H:%M:%f', 'now', '-7 days') || '000Z'
        WHEN :since GLOB '[0-9]*[dD]'
            THEN strftime('%Y-%m-%dT%H:%M:%f', 'now', '-' || CAST(:since AS INTEGER) || ' days') || '000Z'
        WHEN :since GLOB '[0-9]*[hH]'
            THEN strftime('%Y-%m-%dT%H:%M:%f', 'now', '-' || CAST(:since AS INTEGER) || ' hours') || '000Z'
        ELSE strftime('%Y-%m-%dT%H:%M:%f', :since) || '000Z'
    END AS since
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
