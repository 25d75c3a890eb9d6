-- title: Alert: runs longer than expected
-- description: Attempts in the window (finished, or still running) that took longer than the task's expected maximum duration from its schedule, or, without one, longer than a factor times the task's own p95 over its last successful runs.
-- param now: The time to judge at (ISO-8601 with zone; blank: now) |
-- param window_seconds: How far back to look, in seconds | 86400
-- param factor: How many times the task's p95 counts as too long | 3
-- param history: How many recent successful runs the p95 comes from (at least 10 needed) | 50
WITH clock AS (
    SELECT CASE
        WHEN coalesce(:now, '') = '' THEN strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'
        ELSE strftime('%Y-%m-%dT%H:%M:%f', :now) || '000Z'
    END AS now
),
recent AS (
    SELECT task_slug, duration_ms,
        row_number() OVER (PARTITION BY task_slug ORDER BY started_at DESC) AS recency
    FROM task_executions
    WHERE status = 'success' AND duration_ms IS NOT NULL
),
history AS (
    SELECT task_slug, duration_ms,
        row_number() OVER (PARTITION BY task_slug ORDER BY duration_ms) AS rn,
        count(*) OVER (PARTITION BY task_slug) AS n
    FROM recent
    WHERE recency <= coalesce(:history, 50)
),
p95 AS (
    SELECT task_slug, min(CASE WHEN rn >= 0.95 * n THEN duration_ms END) AS p95_ms
    FROM history
    WHERE n >= 10
    GROUP BY task_slug
),
candidates AS (
    SELECT t.*,
        coalesce(t.duration_ms,
            (julianday(clock.now) - julianday(t.started_at)) * 86400000.0) AS took_ms,
        coalesce(s.max_duration_seconds * 1000.0,
            coalesce(json_extract(s.thresholds, '$.factor'), :factor, 3) * p.p95_ms) AS limit_ms,
        CASE WHEN s.max_duration_seconds IS NOT NULL THEN 'its schedule allows '
            || s.max_duration_seconds || ' s'
            ELSE coalesce(json_extract(s.thresholds, '$.factor'), :factor, 3) || 'x its p95 of ' || CAST(round(p.p95_ms) AS INTEGER) || ' ms' END AS why
    FROM task_executions AS t
    CROSS JOIN clock
    LEFT JOIN schedules AS s ON s.task_slug = t.task_slug
    LEFT JOIN p95 AS p ON p.task_slug = t.task_slug
    WHERE t.started_at >= strftime('%Y-%m-%dT%H:%M:%f', clock.now, '-' || coalesce(:window_seconds, 86400) || ' seconds') || '000Z'
        AND t.started_at <= clock.now
        AND t.status IN ('running', 'success', 'failed', 'timeout')
)
SELECT
    'long' AS kind,
    task_slug,
    span_id AS alert_key,
    started_at AS since,
    task_slug || CASE WHEN status = 'running' THEN ' has been running for ' ELSE ' took ' END
        || CAST(round(took_ms / 1000.0) AS INTEGER) || ' s' AS title,
    'longer than ' || why || '; status ' || status AS detail,
    trace_id,
    span_id,
    NULL AS stack_hash
FROM candidates
WHERE limit_ms IS NOT NULL AND took_ms > limit_ms
ORDER BY started_at DESC
