-- title: Retry analysis
-- description: Per task, over the attempts started in the window: runs (first attempts), attempts per run, runs that needed a retry, runs that succeeded only after a retry, retried runs that never succeeded, and the share of retried runs that recovered. Read from the hourly rollup: each attempt counts in the hour it started.
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
    SELECT task_slug, attempts, runs, retried, recovered, max_attempt
    FROM rollup_hourly
    WHERE rollup_hourly.hour >= (SELECT whole FROM w)
    UNION ALL
    SELECT task_slug, 1, attempt = 1, attempt = 2, status = 'success' AND attempt > 1, attempt
    FROM task_executions, w
    WHERE started_at >= w.since AND started_at < w.whole
),
t AS (
    SELECT
        task_slug,
        sum(runs) AS runs,
        sum(attempts) AS attempts,
        sum(retried) AS retried,
        sum(recovered) AS recovered,
        max(max_attempt) AS max_attempts
    FROM r
    GROUP BY task_slug
)
SELECT
    task_slug,
    runs,
    round(1.0 * attempts / nullif(runs, 0), 3) AS attempts_per_run,
    max_attempts,
    retried AS retried_runs,
    recovered AS succeeded_after_retry,
    round(1.0 * recovered / nullif(runs, 0), 4) AS share_succeeded_only_after_retry,
    max(retried - recovered, 0) AS retried_never_succeeded,
    round(1.0 * recovered / nullif(retried, 0), 4) AS retry_recovery_rate
FROM t
ORDER BY retried_runs DESC, task_slug
