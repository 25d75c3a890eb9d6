-- title: Failures by error group per day
-- description: Day by error group (the top groups of the window by occurrences): failures per day, for a stacked chart of what is failing and since when.
-- param since: Start of the window: 7d, 24h or an ISO-8601 time with zone | 7d
-- param top: How many error groups to keep | 8
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
failures AS (
    SELECT substr(e.started_at, 1, 10) AS day, e.stack_hash
    FROM task_executions AS e, w
    WHERE e.status IN ('failed', 'timeout', 'abandoned')
        AND e.started_at >= w.since
        AND e.stack_hash IS NOT NULL
),
top AS (
    SELECT stack_hash, count(*) AS total
    FROM failures
    GROUP BY stack_hash
    ORDER BY total DESC
    LIMIT CAST(coalesce(nullif(:top, ''), 8) AS INTEGER)
)
SELECT
    f.day,
    f.stack_hash,
    g.error_type || ' ' || substr(f.stack_hash, 1, 8) AS error_group,
    count(*) AS failures
FROM failures AS f
JOIN top AS t ON t.stack_hash = f.stack_hash
JOIN error_groups AS g ON g.stack_hash = f.stack_hash
GROUP BY f.day, f.stack_hash
ORDER BY f.day, failures DESC
