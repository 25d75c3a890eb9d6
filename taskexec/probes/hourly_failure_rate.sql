-- title: Hourly failure rate per task
-- description: Hour by task: finished attempts, failures (failed, timeout, abandoned) and the failure rate. The hourly companion of the daily trend, for spotting bad hours and time-of-day patterns.
-- param since: Start of the window: 30m, 24h, 7d, 2w, an ISO-8601 time with zone, or all | 48h
-- param task_slug: Only this task (empty: all tasks) |
WITH w AS MATERIALIZED (
    -- The window's whole hours (from w.whole on) are read from the rollups, the part-hour
    -- it starts in from the raw rows: exact for any start, whatever the table's size.
    SELECT
        since,
        CASE WHEN substr(since, 14) = ':00:00.000000Z' THEN substr(since, 1, 13)
            ELSE strftime('%Y-%m-%dT%H', since, '+1 hour') END AS whole
    FROM (SELECT te_since(:since, '48h') AS since)
),
r AS (
    SELECT hour, task_slug, ended, failed + timeout + abandoned AS failures
    FROM rollup_hourly
    WHERE rollup_hourly.hour >= (SELECT whole FROM w)
        AND (coalesce(:task_slug, '') = '' OR task_slug = :task_slug)
    UNION ALL
    SELECT substr(started_at, 1, 13), task_slug, 1, status IN ('failed', 'timeout', 'abandoned')
    FROM task_executions, w
    WHERE started_at >= w.since AND started_at < w.whole AND status != 'running'
        AND (coalesce(:task_slug, '') = '' OR task_slug = :task_slug)
)
SELECT
    hour || ':00:00Z' AS hour,
    task_slug,
    sum(ended) AS attempts,
    sum(failures) AS failures,
    round(1.0 * sum(failures) / sum(ended), 4) AS failure_rate
FROM r
GROUP BY r.hour, task_slug
HAVING sum(ended) > 0
ORDER BY r.hour, task_slug
