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
w AS (
    SELECT
        clock.now,
        strftime('%Y-%m-%dT%H:%M:%f', clock.now, '-' || coalesce(:window_seconds, 86400) || ' seconds') || '000Z' AS since
    FROM clock
),
-- The tasks with attempts in the window (from the hourly rollup), each with its limit.
limits AS MATERIALIZED (
    SELECT
        task_slug,
        max_duration_seconds,
        factor,
        p95_ms,
        coalesce(max_duration_seconds * 1000.0, factor * p95_ms) AS limit_ms
    FROM (
        SELECT
            r.task_slug,
            s.max_duration_seconds,
            coalesce(json_extract(s.thresholds, '$.factor'), (nullif(:factor, '') + 0), 3) AS factor,
            -- p95 (nearest rank) of the task's last successful runs: read newest first from
            -- ix_te_task_slug_started, which stops after :history of them
            CASE WHEN s.max_duration_seconds IS NULL THEN (
                SELECT min(CASE WHEN rn >= 0.95 * n THEN duration_ms END)
                FROM (
                    SELECT
                        duration_ms,
                        row_number() OVER (ORDER BY duration_ms) AS rn,
                        count(*) OVER () AS n
                    FROM (
                        SELECT h.duration_ms
                        FROM task_executions AS h
                        WHERE h.task_slug = r.task_slug AND +h.status = 'success'
                            AND +h.duration_ms IS NOT NULL
                        ORDER BY h.started_at DESC
                        LIMIT coalesce((nullif(:history, '') + 0), 50)
                    )
                )
                WHERE n >= 10
            ) END AS p95_ms
        FROM w
        CROSS JOIN rollup_hourly AS r
        LEFT JOIN schedules AS s ON s.task_slug = r.task_slug
        WHERE r.hour >= substr(w.since, 1, 13) AND r.hour <= substr(w.now, 1, 13)
        GROUP BY r.task_slug
    )
),
-- Attempts over their task's limit, from the partial index ix_te_long_runs (task, duration,
-- start) of attempts that are running or finished (its WHERE is repeated here so it is the
-- one read): each task's attempts longer than its limit, then those with no duration yet.
over AS MATERIALIZED (
    SELECT t.id, t.duration_ms AS took_ms, l.*
    FROM w
    CROSS JOIN limits AS l
    CROSS JOIN task_executions AS t
    WHERE t.task_slug = l.task_slug AND t.duration_ms > l.limit_ms
        AND t.status NOT IN ('cancelled', 'abandoned')
        AND +t.status IN ('running', 'success', 'failed', 'timeout')
        AND +t.started_at >= w.since AND +t.started_at <= w.now
    UNION ALL
    SELECT t.id, (julianday(w.now) - julianday(t.started_at)) * 86400000.0, l.*
    FROM w
    CROSS JOIN task_executions AS t
    CROSS JOIN limits AS l
    WHERE t.task_slug IN (SELECT task_slug FROM limits WHERE limit_ms IS NOT NULL)
        AND t.duration_ms IS NULL
        AND t.status NOT IN ('cancelled', 'abandoned')
        AND +t.status IN ('running', 'success', 'failed', 'timeout')
        AND t.started_at >= w.since AND t.started_at <= w.now
        AND l.task_slug = t.task_slug
)
SELECT
    'long' AS kind,
    t.task_slug,
    t.span_id AS alert_key,
    t.started_at AS since,
    t.task_slug || CASE WHEN t.status = 'running' THEN ' has been running for ' ELSE ' took ' END
        || CAST(round(o.took_ms / 1000.0) AS INTEGER) || ' s' AS title,
    'longer than ' || CASE WHEN o.max_duration_seconds IS NOT NULL
            THEN 'its schedule allows ' || o.max_duration_seconds || ' s'
            ELSE o.factor || 'x its p95 of ' || CAST(round(o.p95_ms) AS INTEGER) || ' ms' END
        || '; status ' || t.status AS detail,
    t.trace_id,
    t.span_id,
    NULL AS stack_hash
FROM over AS o
CROSS JOIN task_executions AS t
WHERE t.id = o.id AND o.took_ms > o.limit_ms
ORDER BY t.started_at DESC
