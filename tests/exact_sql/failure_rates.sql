-- title: Success and failure rates per task
-- description: Finished attempts per task since the start of the window: successes, failures (failed, timeout, abandoned), cancellations and the failure rate (failures / finished attempts).
-- param since: Start of the window: 7d, 24h or an ISO-8601 time with zone | 7d
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
)
SELECT
    task_slug,
    count(DISTINCT trace_id) AS runs,
    count(*) AS attempts,
    sum(status = 'success') AS successes,
    sum(status IN ('failed', 'timeout', 'abandoned')) AS failures,
    sum(status = 'cancelled') AS cancelled,
    round(1.0 * sum(status IN ('failed', 'timeout', 'abandoned')) / count(*), 4) AS failure_rate
FROM task_executions, w
WHERE started_at >= w.since AND status != 'running'
GROUP BY task_slug
ORDER BY failure_rate DESC, attempts DESC
