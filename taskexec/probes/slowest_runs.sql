-- title: Slowest runs
-- description: The longest attempts since the start of the window, slowest first.
-- param since: Start of the window: 7d, 24h or an ISO-8601 time with zone | 7d
-- param limit: How many rows | 50
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
)
SELECT
    id,
    started_at,
    task_slug,
    status,
    attempt,
    duration_ms,
    memories_retrieved,
    trace_id
FROM task_executions
WHERE id IN (
    SELECT id
    FROM task_executions, w
    WHERE started_at >= w.since AND duration_ms IS NOT NULL
    ORDER BY duration_ms DESC
    LIMIT CAST(coalesce(nullif(:limit, ''), 50) AS INTEGER)
)
ORDER BY duration_ms DESC
