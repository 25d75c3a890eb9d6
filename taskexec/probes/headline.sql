-- title: Headline numbers
-- description: One row for the last window (default 24 hours): attempts, failures, failure rate, new error patterns, runs still running and abandoned runs.
-- param since: Start of the window: 30m, 24h, 7d, 2w, an ISO-8601 time with zone, or all | 24h
WITH w AS MATERIALIZED (
    -- The window's whole hours (from w.whole on) are read from the rollups, the part-hour
    -- it starts in from the raw rows: exact for any start, whatever the table's size.
    SELECT
        since,
        CASE WHEN substr(since, 14) = ':00:00.000000Z' THEN substr(since, 1, 13)
            ELSE strftime('%Y-%m-%dT%H', since, '+1 hour') END AS whole
    FROM (SELECT te_since(:since, '24h') AS since)
),
r AS (
    SELECT
        coalesce(sum(attempts), 0) AS attempts,
        coalesce(sum(failed + timeout + abandoned), 0) AS failures,
        coalesce(sum(ended), 0) AS ended,
        coalesce(sum(abandoned), 0) AS abandoned
    FROM (
        SELECT attempts, failed, timeout, abandoned, ended
        FROM rollup_hourly
        WHERE rollup_hourly.hour >= (SELECT whole FROM w)
        UNION ALL
        SELECT
            1,
            status = 'failed',
            status = 'timeout',
            status = 'abandoned',
            status != 'running'
        FROM task_executions, w
        WHERE started_at >= w.since AND started_at < w.whole
    )
)
SELECT
    r.attempts,
    r.failures,
    round(1.0 * r.failures / nullif(r.ended, 0), 4) AS failure_rate,
    (SELECT count(*) FROM error_groups, w WHERE first_seen >= w.since) AS new_error_patterns,
    (SELECT count(*) FROM task_executions WHERE status = 'running') AS running_now,
    r.abandoned
FROM r
