-- title: Failures by error group per day
-- description: Day by error group (the top groups of the window by occurrences): failures per day, for a stacked chart of what is failing and since when. Read from the rollups of failures by error group (days, and the hours of a partial first day).
-- param since: Start of the window: 30m, 24h, 7d, 2w, an ISO-8601 time with zone, or all | 7d
-- param top: How many error groups to keep | 8
WITH w AS MATERIALIZED (
    -- The window's whole hours (from w.whole on) are read from the rollups, the part-hour
    -- it starts in from the raw rows: exact for any start, whatever the table's size.
    SELECT
        since,
        CASE WHEN substr(since, 14) = ':00:00.000000Z' THEN substr(since, 1, 13)
            ELSE strftime('%Y-%m-%dT%H', since, '+1 hour') END AS whole,
        CASE WHEN substr(since, 11) = 'T00:00:00.000000Z' THEN substr(since, 1, 10)
            ELSE date(since, '+1 day') END AS whole_day
    FROM (SELECT te_since(:since, '7d') AS since)
),
-- Whole days from the daily rollup, the first, partial day from its whole hours and the
-- part-hour from the raw rows.
failures AS MATERIALIZED (
    SELECT day, stack_hash, sum(n) AS n
    FROM (
        SELECT day, stack_hash, failures AS n
        FROM rollup_errors_daily
        WHERE rollup_errors_daily.day >= (SELECT whole_day FROM w)
        UNION ALL
        SELECT substr(hour, 1, 10), stack_hash, failures
        FROM rollup_errors
        WHERE rollup_errors.hour >= (SELECT whole FROM w) AND rollup_errors.hour < (SELECT whole_day FROM w)
        UNION ALL
        SELECT substr(started_at, 1, 10), stack_hash, 1
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
