-- title: Alert: new errors
-- description: Error groups seen for the first time in the window: a bug that did not exist before.
-- param now: The time to judge at (ISO-8601 with zone; blank: now) |
-- param window_seconds: How far back to look, in seconds | 86400
WITH clock AS (
    SELECT CASE
        WHEN coalesce(:now, '') = '' THEN strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'
        ELSE strftime('%Y-%m-%dT%H:%M:%f', :now) || '000Z'
    END AS now
)
SELECT
    'new_error' AS kind,
    t.task_slug,
    g.stack_hash AS alert_key,
    g.first_seen AS since,
    'new error in ' || t.task_slug || ': ' || coalesce(g.error_type, '?') AS title,
    coalesce(g.sample_message, '') || ' (' || g.occurrences || ' so far)' AS detail,
    t.trace_id,
    t.span_id,
    g.stack_hash
FROM error_groups AS g
CROSS JOIN clock
JOIN task_executions AS t ON t.span_id = g.first_span_id
WHERE g.first_seen >= strftime('%Y-%m-%dT%H:%M:%f', clock.now, '-' || coalesce(:window_seconds, 86400) || ' seconds') || '000Z'
    AND g.first_seen <= clock.now
ORDER BY g.first_seen DESC
