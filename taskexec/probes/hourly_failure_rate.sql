-- title: Hourly failure rate per task
-- description: Hour by task: finished attempts, failures (failed, timeout, abandoned) and the failure rate. The hourly companion of the daily trend, for spotting bad hours and time-of-day patterns.
-- param since: Start of the window: 30m, 24h, 7d, 2w, an ISO-8601 time with zone, or all | 48h
-- param task_slug: Only this task (empty: all tasks) |
WITH w AS (
    SELECT te_since(:since, '48h') AS since
)
SELECT
    substr(started_at, 1, 13) || ':00:00Z' AS hour,
    task_slug,
    count(*) AS attempts,
    sum(status IN ('failed', 'timeout', 'abandoned')) AS failures,
    round(1.0 * sum(status IN ('failed', 'timeout', 'abandoned')) / count(*), 4) AS failure_rate
FROM task_executions, w
WHERE started_at >= w.since
    AND status != 'running'
    AND (coalesce(:task_slug, '') = '' OR task_slug = :task_slug)
GROUP BY hour, task_slug
ORDER BY hour, task_slug
