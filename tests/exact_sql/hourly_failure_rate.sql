-- title: Hourly failure rate per task
-- description: Hour by task: finished attempts, failures (failed, timeout, abandoned) and the failure rate. The hourly companion of the daily trend, for spotting bad hours and time-of-day patterns.
-- param since: Start of the window: 48h, 7d or an ISO-8601 time with zone | 48h
-- param task_slug: Only this task (empty: all tasks) |
WITH w AS (
    SELECT CASE
        WHEN coalesce(:since, '') = ''
            THEN strftime('%Y-%m-%dT%H:%M:%f', 'now', '-48 hours') || '000Z'
        WHEN :since GLOB '[0-9]*[dD]'
            THEN strftime('%Y-%m-%dT%H:%M:%f', 'now', '-' || CAST(:since AS INTEGER) || ' days') || '000Z'
        WHEN :since GLOB '[0-9]*[hH]'
            THEN strftime('%Y-%m-%dT%H:%M:%f', 'now', '-' || CAST(:since AS INTEGER) || ' hours') || '000Z'
        ELSE strftime('%Y-%m-%dT%H:%M:%f', :since) || '000Z'
    END AS since
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
