-- title: Alert: regressions
-- description: Known errors back after a quiet spell: an error group seen in the window whose previous occurrence is older than the quiet days, or that broke a streak of successes of its task.
-- param now: The time to judge at (ISO-8601 with zone; blank: now) |
-- param window_seconds: How far back to look, in seconds | 86400
-- param quiet_days: Days without the error that make its return a regression | 7
-- param streak: Successes in a row before the failure that make it a regression | 20
WITH clock AS (
    SELECT CASE
        WHEN coalesce(:now, '') = '' THEN strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'
        ELSE strftime('%Y-%m-%dT%H:%M:%f', :now) || '000Z'
    END AS now
),
w AS (
    SELECT strftime('%Y-%m-%dT%H:%M:%f', clock.now, '-' || coalesce(:window_seconds, 86400) || ' seconds') || '000Z' AS since, clock.now
    FROM clock
),
returned AS (
    -- the earliest occurrence of each known group inside the window
    SELECT t.stack_hash, min(t.started_at) AS back_at
    FROM task_executions AS t, w
    WHERE t.stack_hash IS NOT NULL AND t.started_at >= w.since AND t.started_at <= w.now
        AND t.first_seen_error = 0
    GROUP BY t.stack_hash
),
described AS (
    SELECT r.stack_hash, r.back_at, t.task_slug, t.trace_id, t.span_id, t.error_type, t.error_message,
        (SELECT max(p.started_at) FROM task_executions AS p
            WHERE p.stack_hash = r.stack_hash AND p.started_at < r.back_at) AS previous_at,
        (SELECT count(*) FROM task_executions AS q
            WHERE q.task_slug = t.task_slug AND q.status = 'success' AND q.started_at < r.back_at
                AND q.started_at > coalesce((
                    SELECT max(f.started_at) FROM task_executions AS f
                    WHERE f.task_slug = t.task_slug AND f.started_at < r.back_at
                        AND f.status IN ('failed', 'timeout', 'abandoned')), '')) AS successes_before
    FROM returned AS r
    JOIN task_executions AS t ON t.stack_hash = r.stack_hash AND t.started_at = r.back_at
),
judged AS (
    SELECT d.*,
        coalesce(json_extract(s.thresholds, '$.quiet_days'), :quiet_days, 7) AS quiet_days,
        coalesce(json_extract(s.thresholds, '$.streak'), :streak, 20) AS streak
    FROM described AS d LEFT JOIN schedules AS s ON s.task_slug = d.task_slug
)
SELECT
    'regression' AS kind,
    task_slug,
    stack_hash AS alert_key,
    back_at AS since,
    'error back in ' || task_slug || ': ' || coalesce(error_type, '?') AS title,
    CASE WHEN previous_at < strftime('%Y-%m-%dT%H:%M:%f', back_at, '-' || quiet_days || ' days') || '000Z'
        THEN 'quiet since ' || previous_at
        ELSE 'after ' || successes_before || ' successes in a row' END
        || '; ' || coalesce(error_message, '') AS detail,
    trace_id,
    span_id,
    stack_hash
FROM judged
WHERE previous_at < strftime('%Y-%m-%dT%H:%M:%f', back_at, '-' || quiet_days || ' days') || '000Z'
    OR successes_before >= streak
ORDER BY back_at DESC
