-- title: Daily trend per task
-- description: Day by task: attempts, failures, failure rate, and p50/p95 duration (ms). The series behind the dashboard's charts.
-- param since: Start of the window: 7d, 24h or an ISO-8601 time with zone | 7d
-- param task_slug: Only this task (empty: all tasks) |
WITH w AS (
    SELECT CASE
        WHEN coalesce(:since, '') = ''
            THEN strftime('%Y-%m-%dT%H:%M:%f', 'now', '-7 days') || '000Z'
        WHEN :since GLOB '[0-9]*[dD]'
            THEN strftime('%Y-%m-%dT%H:%M:%f', 'now', '-' || CAST(:since AS INTEGER) || ' days') || '000Z'
        WHEN :since GLOB '[0-9]*[hH]'
            THEN strftime('%Y-%m-%dT%H:%M:%f', 'now', '-' || CAST(:since AS INTEGER) || ' hours') || '000Z'
        ELSE strftime('%Y-%m-%dT%H:%M:%f', :since) || '000Z'
    END AS since
),
-- MATERIALIZED: read the covering index (started_at, task_slug, status, duration_ms) once.
base AS MATERIALIZED (
    SELECT substr(started_at, 1, 10) AS day, task_slug, status, duration_ms
    FROM task_executions, w
    WHERE started_at >= w.since
        AND status != 'running'
        AND (coalesce(:task_slug, '') = '' OR task_slug = :task_slug)
),
counts AS MATERIALIZED (
    SELECT
        day,
        task_slug,
        count(*) AS attempts,
        sum(status IN ('failed', 'timeout', 'abandoned')) AS failures,
        count(duration_ms) AS n
    FROM base
    GROUP BY day, task_slug
),
ranked AS (
    SELECT
        day,
        task_slug,
        duration_ms,
        row_number() OVER (PARTITION BY day, task_slug ORDER BY duration_ms) AS rn
    FROM base
    WHERE duration_ms IS NOT NULL
),
-- Nearest rank: the smallest rn >= p * n. Only the rows at those ranks reach the GROUP BY.
pct AS (
    SELECT
        r.day,
        r.task_slug,
        min(CASE WHEN r.rn >= 0.50 * c.n THEN r.duration_ms END) AS p50_ms,
        min(CASE WHEN r.rn >= 0.95 * c.n THEN r.duration_ms END) AS p95_ms
    FROM ranked AS r
    JOIN counts AS c ON c.day = r.day AND c.task_slug = r.task_slug
    WHERE (r.rn >= 0.50 * c.n AND r.rn - 1 < 0.50 * c.n)
        OR (r.rn >= 0.95 * c.n AND r.rn - 1 < 0.95 * c.n)
    GROUP BY r.day, r.task_slug
)
SELECT
    c.day,
    c.task_slug,
    c.attempts,
    c.failures,
    round(1.0 * c.failures / c.attempts, 4) AS failure_rate,
    p.p50_ms,
    p.p95_ms
FROM counts AS c
LEFT JOIN pct AS p ON p.day = c.day AND p.task_slug = c.task_slug
ORDER BY c.day, c.task_slug
