-- title: Success and failure rates per task
-- description: Finished attempts per task since the start of the window: successes, failures (failed, timeout, abandoned), cancellations and the failure rate (failures / finished attempts).
-- param since: Start of the window: 30m, 24h, 7d, 2w, an ISO-8601 time with zone, or all | 7d
WITH w AS (
    SELECT te_since(:since, '7d') AS since
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
