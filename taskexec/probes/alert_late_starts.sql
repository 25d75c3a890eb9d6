-- title: Alert: late starts
-- description: First attempts that started later than their scheduled time plus the grace period (the task's schedule's grace, else the default), in the window.
-- param now: The time to judge at (ISO-8601 with zone; blank: now) |
-- param window_seconds: How far back to look, in seconds | 86400
-- param grace_seconds: Grace for tasks without a schedule, in seconds | 300
WITH clock AS (
    SELECT CASE
        WHEN coalesce(:now, '') = '' THEN strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'
        ELSE strftime('%Y-%m-%dT%H:%M:%f', :now) || '000Z'
    END AS now
),
w AS (
    SELECT
        clock.now,
        strftime('%Y-%m-%dT%H:%M:%f', clock.now, '-' || coalesce(:window_seconds, 86400) || ' seconds') || '000Z' AS since
    FROM clock
),
-- The attempts that may be late. Those more than a minute late are all the partial index
-- ix_te_late_starts holds (its WHERE is repeated here, so it is the one read); a task allowed
-- less than a minute (by its schedule, or by the default when it has none) has all its
-- attempts in the window read.
maybe AS (
    SELECT t.id
    FROM w CROSS JOIN task_executions AS t
    WHERE t.attempt = 1 AND t.scheduled_at IS NOT NULL
        AND (julianday(t.started_at) - julianday(t.scheduled_at)) * 86400 > 60
        AND t.started_at >= w.since AND t.started_at <= w.now
    UNION
    SELECT t.id
    FROM w CROSS JOIN schedules AS s CROSS JOIN task_executions AS t
    WHERE s.grace_seconds < 60 AND t.task_slug = s.task_slug
        AND t.started_at >= w.since AND t.started_at <= w.now
    UNION
    SELECT t.id
    FROM w CROSS JOIN task_executions AS t
    WHERE coalesce((nullif(:grace_seconds, '') + 0), 300) < 60
        AND t.started_at >= w.since AND t.started_at <= w.now
)
SELECT
    'late' AS kind,
    t.task_slug,
    t.span_id AS alert_key,
    t.scheduled_at AS since,
    t.task_slug || ' started ' || CAST(round((julianday(t.started_at) - julianday(t.scheduled_at)) * 86400) AS INTEGER)
        || ' s after its slot at ' || t.scheduled_at AS title,
    'allowed: ' || coalesce(s.grace_seconds, coalesce((nullif(:grace_seconds, '') + 0), 300)) || ' s; host ' || coalesce(t.host, '?') AS detail,
    t.trace_id,
    t.span_id,
    NULL AS stack_hash
FROM maybe
CROSS JOIN task_executions AS t
LEFT JOIN schedules AS s ON s.task_slug = t.task_slug
WHERE t.id = maybe.id
    AND t.attempt = 1
    AND t.scheduled_at IS NOT NULL
    AND (julianday(t.started_at) - julianday(t.scheduled_at)) * 86400
        > coalesce(s.grace_seconds, coalesce((nullif(:grace_seconds, '') + 0), 300))
ORDER BY t.started_at DESC
