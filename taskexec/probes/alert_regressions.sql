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
seen AS MATERIALIZED (
    -- the earliest occurrence of each known group inside the window: only groups whose last
    -- occurrence (error_groups.last_seen) is in or after it can have one, each read from
    -- ix_te_stack_hash_started (group, time)
    SELECT g.stack_hash,
        (SELECT min(t.started_at) FROM task_executions AS t
            WHERE t.stack_hash = g.stack_hash AND t.started_at >= w.since
                AND t.started_at <= w.now AND t.first_seen_error = 0) AS back_at
    FROM w CROSS JOIN error_groups AS g
    WHERE g.last_seen >= w.since
),
returned AS (
    SELECT stack_hash, back_at FROM seen WHERE back_at IS NOT NULL
),
described AS MATERIALIZED (
    SELECT r.stack_hash, r.back_at, substr(r.back_at, 1, 13) AS back_hour,
        t.task_slug, t.trace_id, t.span_id, t.error_type, t.error_message,
        (SELECT max(p.started_at) FROM task_executions AS p
            WHERE p.stack_hash = r.stack_hash AND p.started_at < r.back_at) AS previous_at,
        -- the last hour before the error's own in which the rollup counts a failure of the task
        (SELECT h.hour FROM rollup_hourly AS h
            WHERE h.task_slug = t.task_slug AND h.hour < substr(r.back_at, 1, 13)
                AND h.failed + h.timeout + h.abandoned > 0
            ORDER BY h.hour DESC LIMIT 1) AS failed_hour
    FROM returned AS r
    CROSS JOIN task_executions AS t
    WHERE t.stack_hash = r.stack_hash AND t.started_at = r.back_at
),
-- The task's last failure before the error came back, from the raw rows of one hour: the
-- error's own hour, else the last earlier hour with a failure.
failed AS MATERIALIZED (
    SELECT d.*,
        coalesce(
            (SELECT max(f.started_at) FROM task_executions AS f
                WHERE f.task_slug = d.task_slug AND f.started_at >= d.back_hour
                    AND f.started_at < d.back_at AND f.status IN ('failed', 'timeout', 'abandoned')),
            (SELECT max(f.started_at) FROM task_executions AS f
                WHERE f.task_slug = d.task_slug AND f.started_at >= d.failed_hour
                    AND f.started_at < d.failed_hour || ':99'
                    AND f.status IN ('failed', 'timeout', 'abandoned'))
        ) AS failed_at
    FROM described AS d
),
-- Its successes since then: whole hours from the rollup, the part-hours from the raw rows.
judged AS MATERIALIZED (
    SELECT fl.*,
        CASE WHEN substr(fl.failed_at, 1, 13) = fl.back_hour THEN (
            SELECT count(*) FROM task_executions AS q
            WHERE q.task_slug = fl.task_slug AND q.status = 'success'
                AND q.started_at > fl.failed_at AND q.started_at < fl.back_at)
        ELSE (
            SELECT count(*) FROM task_executions AS q
            WHERE q.task_slug = fl.task_slug AND q.status = 'success'
                AND q.started_at > fl.failed_at AND q.started_at < substr(fl.failed_at, 1, 13) || ':99')
            + coalesce((
                SELECT sum(h.success) FROM rollup_hourly AS h
                WHERE h.task_slug = fl.task_slug
                    AND h.hour > coalesce(substr(fl.failed_at, 1, 13), '') AND h.hour < fl.back_hour), 0)
            + (SELECT count(*) FROM task_executions AS q
                WHERE q.task_slug = fl.task_slug AND q.status = 'success'
                    AND q.started_at >= fl.back_hour AND q.started_at < fl.back_at)
        END AS successes_before,
        coalesce(json_extract(s.thresholds, '$.quiet_days'), (nullif(:quiet_days, '') + 0), 7) AS quiet_days,
        coalesce(json_extract(s.thresholds, '$.streak'), (nullif(:streak, '') + 0), 20) AS streak
    FROM failed AS fl LEFT JOIN schedules AS s ON s.task_slug = fl.task_slug
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
