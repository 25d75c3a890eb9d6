-- title: Alert: stuck runs
-- description: Attempts still running that have not been heard from: no heartbeat for longer than the heartbeat allowance, or (without heartbeats) running longer than the stuck allowance (twice the schedule's expected maximum duration when it has one). A schedule's thresholds override both per task.
-- param now: The time to judge at (ISO-8601 with zone; blank: now) |
-- param heartbeat_seconds: Silence after the last heartbeat that makes a run stuck, in seconds | 300
-- param stuck_seconds: Running time that makes a run without heartbeats stuck, in seconds | 7200
WITH clock AS (
    SELECT CASE
        WHEN coalesce(:now, '') = '' THEN strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'
        ELSE strftime('%Y-%m-%dT%H:%M:%f', :now) || '000Z'
    END AS now
)
SELECT
    'stuck' AS kind,
    t.task_slug,
    t.span_id AS alert_key,
    t.started_at AS since,
    t.task_slug || ' has been running since ' || t.started_at
        || CASE WHEN t.heartbeat_at IS NOT NULL THEN ' and has not sent a heartbeat since ' || t.heartbeat_at
            ELSE ' with no heartbeat' END AS title,
    'host ' || coalesce(t.host, '?') || ', pid ' || coalesce(t.pid, '?') || ', attempt ' || t.attempt AS detail,
    t.trace_id,
    t.span_id,
    NULL AS stack_hash
FROM task_executions AS t
CROSS JOIN clock
LEFT JOIN schedules AS s ON s.task_slug = t.task_slug
WHERE t.status = 'running'
    AND CASE
        WHEN t.heartbeat_at IS NOT NULL
            THEN t.heartbeat_at < strftime('%Y-%m-%dT%H:%M:%f', clock.now, '-' || coalesce(json_extract(s.thresholds, '$.heartbeat_seconds'), (nullif(:heartbeat_seconds, '') + 0), 300) || ' seconds') || '000Z'
        ELSE t.started_at < strftime('%Y-%m-%dT%H:%M:%f', clock.now,
            '-' || coalesce(json_extract(s.thresholds, '$.stuck_seconds'), 2 * s.max_duration_seconds, (nullif(:stuck_seconds, '') + 0), 7200) || ' seconds') || '000Z'
    END
ORDER BY t.started_at
