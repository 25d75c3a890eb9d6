-- title: Retry analysis
-- description: Per task, over logical runs (traces) started in the window: attempts per run, how many runs needed a retry, how many succeeded only after a retry, and how many retried runs never succeeded.
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
),
runs AS (
    SELECT
        task_slug,
        trace_id,
        count(*) AS attempts,
        max(status = 'success') AS succeeded,
        min(CASE WHEN status = 'success' THEN attempt END) AS success_attempt
    FROM task_executions, w
    WHERE started_at >= w.since
    GROUP BY task_slug, trace_id
)
SELECT
    task_slug,
    count(*) AS runs,
    round(avg(attempts), 3) AS attempts_per_run,
    max(attempts) AS max_attempts,
    sum(attempts > 1) AS retried_runs,
    sum(success_attempt > 1) AS succeeded_after_retry,
    round(1.0 * sum(success_attempt > 1) / count(*), 4) AS share_succeeded_only_after_retry,
    sum(attempts > 1 AND NOT succeeded) AS retried_never_succeeded,
    round(1.0 * sum(success_attempt > 1) / nullif(sum(attempts > 1), 0), 4) AS retry_recovery_rate
FROM runs
GROUP BY task_slug
ORDER BY retried_runs DESC
