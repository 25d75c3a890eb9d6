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
base AS (
    SELECT substr(started_at, 1, 10) AS day, task_slug, status, duration_ms
    FROM task_executions, w
    WHERE started_at >= w.since
        AND status != 'running'
        AND (coalesce(:task_slug, '') = '' OR task_slug = :task_slug)
),
ranked AS (
    SELECT
        day,
        task_slug,
        duration_ms,
        row_number() OVER (PARTITION BY day, task_slug ORDER BY duration_ms) AS rn,
        count(*) OVER (PARTITION BY day, task_slug) AS n
    FROM base
    WHERE duration_ms IS NOT NULL
),
pct AS (
    SELECT
        day,
        task_slug,
        min(CASE WHEN rn >= 0.50 * n THEN duration_ms END) AS p50_ms,
        min(CASE WHEN rn >= 0.95 * n THEN duration_ms END) AS p95_ms
    FROM ranked
    GROUP BY day, task_slug
),
counts AS (
    SELECT
        day,
        task_slug,
        count(*) AS attempts,
        sum(status IN ('failed', 'timeout', 'abandoned')) AS failures
    FROM base
    GROUP BY day, task_slug
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
