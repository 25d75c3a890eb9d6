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
ranked AS (
    SELECT
        task_slug,
        duration_ms,
        row_number() OVER (PARTITION BY task_slug ORDER BY duration_ms) AS rn,
        count(*) OVER (PARTITION BY task_slug) AS n
    FROM task_executions, w
    WHERE started_at >= w.since
        AND duration_ms IS NOT NULL
        AND (coalesce(:task_slug, '') = '' OR task_slug = :task_slug)
)
SELECT
    task_slug,
    count(*) AS runs,
    round(avg(duration_ms), 1) AS mean_ms,
    min(CASE WHEN rn >= 0.50 * n THEN duration_ms END) AS p50_ms,
    min(CASE WHEN rn >= 0.95 * n THEN duration_ms END) AS p95_ms,
    min(CASE WHEN rn >= 0.99 * n THEN duration_ms END) AS p99_ms,
    max(duration_ms) AS max_ms
FROM ranked
GROUP BY task_slug
ORDER BY p95_ms DESC
