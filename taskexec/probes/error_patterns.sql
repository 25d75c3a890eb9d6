-- title: Error patterns
-- description: Failures grouped by stack hash since the start of the window: how often, how many tasks, first and last seen, and a sample message. Lines moving between deploys do not split a group. Read from the rollups of failures by error group (days, and the hours of a partial first day).
-- param since: Start of the window: 30m, 24h, 7d, 2w, an ISO-8601 time with zone, or all | 7d
-- param limit: How many rows | 50
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
e AS (
    SELECT stack_hash, task_slug, failures AS n
    FROM rollup_errors_daily
    WHERE rollup_errors_daily.day >= (SELECT whole_day FROM w)
    UNION ALL
    SELECT stack_hash, task_slug, failures
    FROM rollup_errors
    WHERE rollup_errors.hour >= (SELECT whole FROM w) AND rollup_errors.hour < (SELECT whole_day FROM w)
    UNION ALL
    SELECT stack_hash, task_slug, 1
    FROM task_executions, w
    WHERE status IN ('failed', 'timeout', 'abandoned')
        AND started_at >= w.since AND started_at < w.whole
        AND stack_hash IS NOT NULL
),
top AS (
    SELECT
        stack_hash,
        sum(n) AS occurrences,
        count(DISTINCT task_slug) AS tasks_affected,
        group_concat(DISTINCT task_slug) AS tasks
    FROM (SELECT stack_hash, task_slug, n FROM e ORDER BY stack_hash, task_slug)  -- tasks A-Z
    GROUP BY stack_hash
)
-- The window is open-ended, so a group's last occurrence in it is its last one ever.
SELECT
    t.stack_hash,
    g.error_type,
    g.sample_message,
    t.occurrences,
    t.tasks_affected,
    t.tasks,
    g.first_seen,
    g.last_seen,
    g.occurrences AS occurrences_all_time
FROM top AS t
JOIN error_groups AS g ON g.stack_hash = t.stack_hash
ORDER BY t.occurrences DESC, t.stack_hash
LIMIT CAST(coalesce(nullif(:limit, ''), 50) AS INTEGER)
