-- title: Alert: missed runs
-- description: Scheduled tasks with no run started for a slot that is due (its grace period is over). The expected slot is the first one after the task's last start; `taskexec check` keeps it current from the schedule's cron expression or interval.
-- param now: The time to judge at (ISO-8601 with zone; blank: now) |
WITH clock AS (
    SELECT CASE
        WHEN coalesce(:now, '') = '' THEN strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'
        ELSE strftime('%Y-%m-%dT%H:%M:%f', :now) || '000Z'
    END AS now
)
SELECT
    'missed' AS kind,
    s.task_slug,
    'schedule' AS alert_key,
    s.expected_at AS since,
    'no run of ' || s.task_slug || ' since the slot at ' || s.expected_at AS title,
    'expected by ' || strftime('%Y-%m-%dT%H:%M:%SZ', s.expected_at, '+' || s.grace_seconds || ' seconds')
        || ' (' || coalesce(s.cron, 'every ' || s.every_seconds || ' s') || ', ' || s.timezone || ')'
        || '; last start: ' || coalesce(s.last_started_at, 'never') AS detail,
    NULL AS trace_id,
    NULL AS span_id,
    NULL AS stack_hash
FROM schedules AS s, clock
WHERE s.expected_at IS NOT NULL
    AND strftime('%Y-%m-%dT%H:%M:%f', s.expected_at, '+' || s.grace_seconds || ' seconds') || '000Z' < clock.now
    AND NOT EXISTS (
        SELECT 1 FROM task_executions AS t
        WHERE t.task_slug = s.task_slug
            AND t.started_at >= strftime('%Y-%m-%dT%H:%M:%f', s.expected_at, '-' || s.tolerance_seconds || ' seconds') || '000Z'
    )
ORDER BY s.task_slug
