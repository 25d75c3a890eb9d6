-- title: Headline numbers
-- description: One row for the last window (default 24 hours): attempts, failures, failure rate, new error patterns, runs still running and abandoned runs.
-- param since: Start of the window: 24h, 7d or an ISO-8601 time with zone | 24h
WITH w AS (
    SELECT CASE
        WHEN coalesce(:since, '') = ''
            THEN strftime('%Y-%m-%dT%H:%M:%f', 'now', '-24 hours') || '000Z'
        WHEN :since GLOB '[0-9]*[dD]'
            THEN strftime('%Y-%m-%dT%H:%M:%f', 'now', '-' || CAST(:since AS INTEGER) || ' days') || '000Z'
        WHEN :since GLOB '[0-9]*[hH]'
            THEN strftime('%Y-%m-%dT%H:%M:%f', 'now', '-' || CAST(:since AS INTEGER) || ' hours') || '000Z'
        ELSE strftime('%Y-%m-%dT%H:%M:%f', :since) || '000Z'
    END AS since
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
