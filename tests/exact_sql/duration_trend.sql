-- title: Duration percentiles per task over time
-- description: Day (or hour) by task: finished attempts with a duration and their nearest-rank p50, p95, p99 and max duration (ms). The series behind the duration-trend charts.
-- param since: Start of the window: 7d, 24h or an ISO-8601 time with zone | 7d
-- param period: Bucket size: day or hour | day
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
    SELECT
        CASE WHEN lower(coalesce(:period, '')) = 'hour'
            THEN substr(started_at, 1, 13) || ':00:00Z'
            ELSE substr(started_at, 1, 10)
        END AS period,
        task_slug,
        duration_ms
    FROM task_executions, w
    WHERE started_at >= w.since
        AND status != 'running'
        AND duration_ms IS NOT NULL
        AND (coalesce(:task_slug, '') = '' OR task_slug = :task_slug)
),
counts AS MATERIALIZED (
    SELECT period, task_slug, count(*) AS n, max(duration_ms) AS max_ms
    FROM base
    GROUP BY period, task_slug
),
ranked AS (
    SELECT
        period,
        task_slug,
        duration_ms,
        row_number() OVER (PARTITION BY period, task_slug ORDER BY duration_ms) AS rn
    FROM base
),
-- Nearest rank: the smallest rn >= p * n. Only the rows at those ranks reach the GROUP BY.
pct AS (
    SELECT
        r.period,
        r.task_slug,
        min(CASE WHEN r.rn >= 0.50 * c.n THEN r.duration_ms END) AS p50_ms,
        min(CASE WHEN r.rn >= 0.95 * c.n THEN r.duration_ms END) AS p95_ms,
        min(CASE WHEN r.rn >= 0.99 * c.n THEN r.duration_ms END) AS p99_ms
    FROM ranked AS r
    JOIN counts AS c ON c.period = r.period AND c.task_slug = r.task_slug
    WHERE (r.rn >= 0.50 * c.n AND r.rn - 1 < 0.50 * c.n)
        OR (r.rn >= 0.95 * c.n AND r.rn - 1 < 0.95 * c.n)
        OR (r.rn >= 0.99 * c.n AND r.rn - 1 < 0.99 * c.n)
    GROUP BY r.period, r.task_slug
)
SELECT
    c.period,
    c.task_slug,
    c.n AS runs,
    p.p50_ms,
    p.p95_ms,
    p.p99_ms,
    c.max_ms
FROM counts AS c
JOIN pct AS p ON p.period = c.period AND p.task_slug = c.task_slug
ORDER BY c.period, c.task_slug
