-- title: Headline numbers
-- description: One row for the last window (default 24 hours): attempts, failures, failure rate, new error patterns, runs still running and abandoned runs.
-- param since: Start of the window: 30m, 24h, 7d, 2w, an ISO-8601 time with zone, or all | 24h
WITH w AS (
    SELECT te_since(:since, '24h') AS since
)
SELECT
    (SELECT count(*) FROM task_executions, w WHERE started_at >= w.since) AS attempts,
    (SELECT count(*) FROM task_executions, w
        WHERE started_at >= w.since AND status IN ('failed', 'timeout', 'abandoned')) AS failures,
    (SELECT round(1.0 * sum(status IN ('failed', 'timeout', 'abandoned')) / nullif(count(*), 0), 4)
        FROM task_executions, w WHERE started_at >= w.since AND status != 'running') AS failure_rate,
    (SELECT count(*) FROM error_groups, w WHERE first_seen >= w.since) AS new_error_patterns,
    (SELECT count(*) FROM task_executions WHERE status = 'running') AS running_now,
    (SELECT count(*) FROM task_executions, w
        WHERE started_at >= w.since AND status = 'abandoned') AS abandoned
