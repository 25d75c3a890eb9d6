-- title: Success and failure rates per task
-- description: Finished attempts per task since the start of the window: runs (first attempts), successes, failures (failed, timeout, abandoned), cancellations and the failure rate (failures / finished attempts). Read from the hourly rollup.
-- param since: Start of the window: 30m, 24h, 7d, 2w, an ISO-8601 time with zone, or all | 7d
WITH w AS MATERIALIZED (
    -- The window's whole hours (from w.whole on) are read from the rollups, the part-hour
    -- it starts in from the raw rows: exact for any start, whatever the table's size.
    SELECT
        since,
        CASE WHEN substr(since, 14) = ':00:00.000000Z' THEN substr(since, 1, 13)
            ELSE strftime('%Y-%m-%dT%H', since, '+1 hour') END AS whole
    FROM (SELECT te_since(:since, '7d') AS since)
),
r AS (
    SELECT task_slug, runs, ended, success, failed + timeout + abandoned AS failures, cancelled
    FROM rollup_hourly
    WHERE rollup_hourly.hour >= (SELECT whole FROM w)
    UNION ALL
    SELECT
        task_slug,
        attempt = 1,
        status != 'running',
        status = 'success',
        status IN ('failed', 'timeout', 'abandoned'),
        status = 'cancelled'
    FROM task_executions, w
    WHERE started_at >= w.since AND started_at < w.whole
)
SELECT
    task_slug,
    sum(runs) AS runs,
    sum(ended) AS attempts,
    sum(success) AS successes,
    sum(failures) AS failures,
    sum(cancelled) AS cancelled,
    round(1.0 * sum(failures) / sum(ended), 4) AS failure_rate
FROM r
GROUP BY task_slug
HAVING sum(ended) > 0
ORDER BY failure_rate DESC, attempts DESC
