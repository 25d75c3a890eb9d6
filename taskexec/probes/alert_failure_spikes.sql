-- title: Alert: failure-rate spikes
-- description: Tasks whose failure rate in the window is at least twice their rate over the baseline before it and at least 20 points higher (with enough attempts in the window to judge). Counts come from the hourly rollup, the part-hours at the edges from the raw rows: exact.
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
-- The baseline is [base_since, since), the window [since, now]. Each is a difference of counts
-- of rows started before a moment x, and the count before x is the hourly rollup's hours
-- before x's hour plus the raw rows of its hour before x (in the first half hour), or the
-- rollup's hours up to x's hour minus the raw rows of its hour from x on (in the second half,
-- or always for now when it is the clock: nothing has started after it). So the raw rows read
-- are at most half an hour at each moment, and every count is exact.
w AS (
    SELECT
        *,
        CASE WHEN pre_base THEN substr(base_since, 1, 13) ELSE base_since END AS base_lo,
        CASE WHEN pre_base THEN base_since ELSE substr(base_since, 1, 13) || ':99' END AS base_hi,
        CASE WHEN pre_since THEN substr(since, 1, 13) ELSE since END AS since_lo,
        CASE WHEN pre_since THEN since ELSE substr(since, 1, 13) || ':99' END AS since_hi,
        CASE WHEN pre_now THEN substr(now, 1, 13) ELSE now END AS now_lo,
        CASE WHEN pre_now THEN now ELSE substr(now, 1, 13) || ':99' END AS now_hi,
        CASE WHEN pre_base THEN substr(base_since, 1, 13)
            ELSE strftime('%Y-%m-%dT%H', base_since, '+1 hour') END AS cut_base,
        CASE WHEN pre_since THEN substr(since, 1, 13)
            ELSE strftime('%Y-%m-%dT%H', since, '+1 hour') END AS cut_since,
        CASE WHEN pre_now THEN substr(now, 1, 13)
            ELSE strftime('%Y-%m-%dT%H', now, '+1 hour') END AS cut_now
    FROM (
        SELECT
            *,
            substr(base_since, 15, 2) < '30' AS pre_base,
            substr(since, 15, 2) < '30' AS pre_since,
            coalesce(:now, '') != '' AND substr(now, 15, 2) < '30' AS pre_now
        FROM (
            SELECT
                clock.now,
                strftime('%Y-%m-%dT%H:%M:%f', clock.now, '-' || coalesce(:window_seconds, 3600) || ' seconds') || '000Z' AS since,
                strftime('%Y-%m-%dT%H:%M:%f', clock.now, '-' || (coalesce(:window_seconds, 3600) + coalesce(:baseline_seconds, 604800)) || ' seconds') || '000Z' AS base_since
            FROM clock
        )
    )
),
-- Per task: finished attempts and failures, each with its weight in the baseline and in the window.
parts AS (
    SELECT
        r.task_slug,
        r.ended AS n,
        r.failed + r.timeout + r.abandoned AS failures,
        (r.hour < w.cut_since) - (r.hour < w.cut_base) AS in_base,
        (r.hour < w.cut_now) - (r.hour < w.cut_since) AS in_recent
    FROM w CROSS JOIN rollup_hourly AS r
    WHERE r.hour >= min(w.cut_base, w.cut_since, w.cut_now)
        AND r.hour < max(w.cut_base, w.cut_since, w.cut_now)
    UNION ALL
    SELECT t.task_slug, 1, t.status IN ('failed', 'timeout', 'abandoned'),
        CASE WHEN w.pre_base THEN -1 ELSE 1 END, 0
    FROM w CROSS JOIN task_executions AS t
    WHERE t.started_at >= w.base_lo AND t.started_at < w.base_hi AND t.status != 'running'
    UNION ALL
    SELECT t.task_slug, 1, t.status IN ('failed', 'timeout', 'abandoned'),
        CASE WHEN w.pre_since THEN 1 ELSE -1 END, CASE WHEN w.pre_since THEN -1 ELSE 1 END
    FROM w CROSS JOIN task_executions AS t
    WHERE t.started_at >= w.since_lo AND t.started_at < w.since_hi AND t.status != 'running'
    UNION ALL
    SELECT t.task_slug, 1, t.status IN ('failed', 'timeout', 'abandoned'),
        0, CASE WHEN w.pre_now THEN 1 ELSE -1 END
    FROM w CROSS JOIN task_executions AS t
    WHERE t.started_at >= w.now_lo AND t.started_at <= w.now_hi AND t.status != 'running'
        AND (w.pre_now OR t.started_at != w.now)
),
rates AS (
    SELECT
        task_slug,
        sum(n * in_recent) AS recent,
        sum(failures * in_recent) AS recent_failed,
        sum(n * in_base) AS before,
        sum(failures * in_base) AS before_failed
    FROM parts
    GROUP BY task_slug
)
SELECT
    'spike' AS kind,
    rates.task_slug,
    'failure_rate' AS alert_key,
    -- the first failure in the window: the task's own rows, newest first in its index
    (SELECT min(f.started_at) FROM task_executions AS f
        WHERE f.task_slug = rates.task_slug AND f.started_at >= w.since AND f.started_at <= w.now
            AND f.status IN ('failed', 'timeout', 'abandoned')) AS since,
    rates.task_slug || ' fails ' || CAST(round(100.0 * recent_failed / recent) AS INTEGER) || '% of attempts (usually '
        || CAST(round(100.0 * coalesce(1.0 * before_failed / nullif(before, 0), 0)) AS INTEGER) || '%)' AS title,
    recent_failed || ' of ' || recent || ' attempts in the window failed' AS detail,
    NULL AS trace_id,
    NULL AS span_id,
    NULL AS stack_hash
FROM rates, w
WHERE recent >= coalesce((nullif(:min_attempts, '') + 0), 5)
    AND 1.0 * recent_failed / recent >= 2 * coalesce(1.0 * before_failed / nullif(before, 0), 0)
    AND 1.0 * recent_failed / recent >= coalesce(1.0 * before_failed / nullif(before, 0), 0) + 0.2
ORDER BY rates.task_slug
