-- title: Duration statistics per task
-- description: Per task since the start of the window: attempts with a duration, mean and max (exact), and p50, p95, p99 (ms) read from the rollups' histogram, within 1% of the exact nearest-rank value.
-- param since: Start of the window: 30m, 24h, 7d, 2w, an ISO-8601 time with zone, or all | 7d
-- param task_slug: Only this task (empty: all tasks) |
WITH w AS MATERIALIZED (
    -- The window's whole hours (from w.whole on) are read from the rollups, the part-hour
    -- it starts in from the raw rows: exact for any start, whatever the table's size.
    SELECT
        since,
        CASE WHEN substr(since, 14) = ':00:00.000000Z' THEN substr(since, 1, 13)
            ELSE strftime('%Y-%m-%dT%H', since, '+1 hour') END AS whole,
        CASE WHEN substr(since, 11) = 'T00:00:00.000000Z' THEN substr(since, 1, 10)
            ELSE date(since, '+1 day') END AS whole_day
    FROM (SELECT te_since(:since, '7d') AS since)
),
-- The part-hour at the window's start, from the raw rows.
edge AS MATERIALIZED (
    SELECT task_slug, duration_ms
    FROM task_executions, w
    WHERE started_at >= w.since AND started_at < w.whole AND duration_ms IS NOT NULL
        AND (coalesce(:task_slug, '') = '' OR task_slug = :task_slug)
),
counts AS (
    SELECT task_slug, sum(n) AS n, sum(us) AS us, max(max_ms) AS max_ms
    FROM (
        SELECT task_slug, dur_n AS n, dur_sum_us AS us, dur_max AS max_ms
        FROM rollup_hourly
        WHERE rollup_hourly.hour >= (SELECT whole FROM w) AND dur_n > 0
            AND (coalesce(:task_slug, '') = '' OR task_slug = :task_slug)
        UNION ALL
        SELECT task_slug, 1, round(duration_ms * 1000), duration_ms FROM edge
    )
    GROUP BY task_slug
),
-- Percentiles: hours up to the first whole day, whole days, and the part-hour binned.
-- Each task's bins are summed first in SQLite (2,000 rows, not 50,000, at 10M), so the Python
-- aggregate steps once per bin, in bin order.
q AS (
    SELECT task_slug, te_quantiles(bin, n) AS q
    FROM (SELECT task_slug, bin, sum(n) AS n FROM (
        SELECT task_slug, bin, n
        FROM rollup_durations_hourly
        WHERE rollup_durations_hourly.hour >= (SELECT whole FROM w) AND rollup_durations_hourly.hour < (SELECT whole_day FROM w)
            AND (coalesce(:task_slug, '') = '' OR task_slug = :task_slug)
        UNION ALL
        SELECT task_slug, bin, n
        FROM rollup_durations_daily
        WHERE rollup_durations_daily.day >= (SELECT whole_day FROM w)
            AND (coalesce(:task_slug, '') = '' OR task_slug = :task_slug)
        UNION ALL
        SELECT task_slug, te_bin(duration_ms), 1 FROM edge
    ) GROUP BY task_slug, bin)
    GROUP BY task_slug
)
SELECT
    c.task_slug,
    c.n AS runs,
    round(c.us / 1000.0 / c.n, 1) AS mean_ms,
    min(json_extract(q.q, '$[0]'), c.max_ms) AS p50_ms,
    min(json_extract(q.q, '$[1]'), c.max_ms) AS p95_ms,
    min(json_extract(q.q, '$[2]'), c.max_ms) AS p99_ms,
    c.max_ms
FROM counts AS c
JOIN q ON q.task_slug = c.task_slug
ORDER BY p95_ms DESC
