-- title: Alert: failure-rate spikes
-- description: Tasks whose failure rate in the window is at least twice their rate over the baseline before it and at least 20 points higher (with enough attempts in the window to judge).
-- param now: The time to judge at (ISO-8601 with zone; blank: now) |
-- param window_seconds: The recent window, in seconds | 3600
-- param baseline_seconds: The baseline before it, in seconds | 604800
-- param min_attempts: Attempts in the window needed to judge | 5
WITH clock AS (
    SELECT CASE
        WHEN coalesce(:now, '') = '' THEN strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'
        ELSE strftime('%Y-%m-%dT%H:%M:%f', :now) || '000Z'
    END AS now
),
w AS (
    SELECT
        strftime('%Y-%m-%dT%H:%M:%f', clock.now, '-' || coalesce(:window_seconds, 3600) || ' seconds') || '000Z' AS since,
        strftime('%Y-%m-%dT%H:%M:%f', clock.now, '-' || (coalesce(:window_seconds, 3600) + coalesce(:baseline_seconds, 604800)) || ' seconds') || '000Z' AS base_since,
        clock.now
    FROM clock
),
rates AS (
    SELECT t.task_slug,
        sum(t.started_at >= w.since) AS recent,
        sum(t.started_at >= w.since AND t.status IN ('failed', 'timeout', 'abandoned')) AS recent_failed,
        sum(t.started_at < w.since) AS before,
        sum(t.started_at < w.since AND t.status IN ('failed', 'timeout', 'abandoned')) AS before_failed,
        min(CASE WHEN t.started_at >= w.since AND t.status IN ('failed', 'timeout', 'abandoned')
            THEN t.started_at END) AS first_failure
    FROM task_executions AS t, w
    WHERE t.started_at >= w.base_since AND t.started_at <= w.now AND t.status != 'running'
    GROUP BY t.task_slug
)
SELECT
    'spike' AS kind,
    task_slug,
    'failure_rate' AS alert_key,
    first_failure AS since,
    task_slug || ' fails ' || CAST(round(100.0 * recent_failed / recent) AS INTEGER) || '% of attempts (usually '
        || CAST(round(100.0 * coalesce(1.0 * before_failed / nullif(before, 0), 0)) AS INTEGER) || '%)' AS title,
    recent_failed || ' of ' || recent || ' attempts in the window failed' AS detail,
    NULL AS trace_id,
    NULL AS span_id,
    NULL AS stack_hash
FROM rates
WHERE recent >= coalesce(:min_attempts, 5)
    AND 1.0 * recent_failed / recent >= 2 * coalesce(1.0 * before_failed / nullif(before, 0), 0)
    AND 1.0 * recent_failed / recent >= coalesce(1.0 * before_failed / nullif(before, 0), 0) + 0.2
ORDER BY task_slug
