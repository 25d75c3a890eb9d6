-- title: Duration statistics per task
-- description: Count, mean, p50, p95, p99 and max duration (ms) of finished attempts per task since the start of the window. Percentiles are nearest-rank, computed in SQL with window functions.
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
-- MATERIALIZED: one read of the covering index (started_at, task_slug, status, duration_ms).
base AS MATERIALIZED (
    SELECT task_slug, duration_ms
    FROM task_executions, w
    WHERE started_at >= w.since
        AND duration_ms IS NOT NULL
        AND (coalesce(:task_slug, '') = '' OR task_slug = :task_slug)
),
counts AS MATERIALIZED (
    SELECT task_slug, count(*) AS n, avg(duration_ms) AS mean_ms, max(duration_ms) AS max_ms
    FROM base
    GROUP BY task_slug
),
ranked AS (
    SELECT
        task_slug,
        duration_ms,
        row_number() OVER (PARTITION BY task_slug ORDER BY duration_ms) AS rn
    FROM base
),
-- Nearest rank: the smallest rn >= p * n. Only the rows at those ranks reach the GROUP BY.
pct AS (
    SELECT
        r.task_slug,
        min(CASE WHEN r.rn >= 0.50 * c.n THEN r.duration_ms END) AS p50_ms,
        min(CASE WHEN r.rn >= 0.95 * c.n THEN r.duration_ms END) AS p95_ms,
        min(CASE WHEN r.rn >= 0.99 * c.n THEN r.duration_ms END) AS p99_ms
    FROM ranked AS r
    JOIN counts AS c ON c.task_slug = r.task_slug
    WHERE (r.rn >= 0.50 * c.n AND r.rn - 1 < 0.50 * c.n)
        OR (r.rn >= 0.95 * c.n AND r.rn - 1 < 0.95 * c.n)
        OR (r.rn >= 0.99 * c.n AND r.rn - 1 < 0.99 * c.n)
    GROUP BY r.task_slug
)
SELECT
    c.task_slug,
    c.n AS runs,
    round(c.mean_ms, 1) AS mean_ms,
    p.p50_ms,
    p.p95_ms,
    p.p99_ms,
    c.max_ms
FROM counts AS c
JOIN pct AS p ON p.task_slug = c.task_slug
ORDER BY p.p95_ms DESC
