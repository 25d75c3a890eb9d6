-- title: Failures by error group per day
-- description: Day by error group (the top groups of the window by occurrences): failures per day, for a stacked chart of what is failing and since when. Read from the rollup of failures by error group.
-- param since: Start of the window: 30m, 24h, 7d, 2w, an ISO-8601 time with zone, or all | 7d
-- param top: How many error groups to keep | 8
WITH w AS MATERIALIZED (
    -- The window's whole hours (from w.whole on) are read from the rollups, the part-hour
    -- it starts in from the raw rows: exact for any start, whatever the table's size.
    SELECT
        since,
        CASE WHEN substr(since, 14) = ':00:00.000000Z' THEN substr(since, 1, 13)
            ELSE strftime('%Y-%m-%dT%H', since, '+1 hour') END AS whole
    FROM (SELECT te_since(:since, '7d') AS since)
),
failures AS MATERIALIZED (
    SELECT substr(hour, 1, 10) AS day, stack_hash, sum(n) AS n
    FROM (
        SELECT hour, stack_hash, failures AS n
        FROM rollup_errors
        WHERE rollup_errors.hour >= (SELECT whole FROM w)
        UNION ALL
        SELECT started_at, stack_hash, 1
        FROM task_executions, w
        WHERE status IN ('failed', 'timeout', 'abandoned')
            AND started_at >= w.since AND started_at < w.whole
            AND stack_hash IS NOT NULL
    )
    GROUP BY day, stack_hash
),
top AS (
    SELECT stack_hash, sum(n) AS total
    FROM failures
    GROUP BY stack_hash
    ORDER BY total DESC, stack_hash
    LIMIT CAST(coalesce(nullif(:top, ''), 8) AS INTEGER)
)
SELECT
    f.day,
    f.stack_hash,
    g.error_type || ' ' || substr(f.stack_hash, 1, 8) AS error_group,
    f.n AS failures
FROM failures AS f
JOIN top AS t ON t.stack_hash = f.stack_hash
JOIN error_groups AS g ON g.stack_hash = f.stack_hash
ORDER BY f.day, failures DESC
