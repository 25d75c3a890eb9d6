-- title: Duration percentiles per task over time
-- description: Day (or hour) by task: finished attempts with a duration, their p50, p95, p99 (ms, from the rollups' histogram: within 1% of exact) and max duration (exact). The series behind the duration-trend charts.
-- param since: Start of the window: 30m, 24h, 7d, 2w, an ISO-8601 time with zone, or all | 7d
-- param period: Bucket size: day or hour | day
-- param task_slug: Only this task (empty: all tasks) |
WITH w AS MATERIALIZED (
    -- The window's whole hours (from w.whole on) are read from the rollups, the part-hour
    -- it starts in from the raw rows: exact for any start, whatever the table's size.
    SELECT
        since,
        CASE WHEN substr(since, 14) = ':00:00.000000Z' THEN substr(since, 1, 13)
            ELSE strftime('%Y-%m-%dT%H', since, '+1 hour') END AS whole,
        CASE WHEN substr(since, 11) = 'T00:00:00.000000Z' THEN substr(since, 1, 10)
            ELSE date(since, '+1 day') END AS whole_day,
        lower(coalesce(:period, '')) = 'hour' AS hourly
    FROM (SELECT te_since(:since, '7d') AS since)
),
-- The part-hour at the window's start, from the raw rows, counted once by period, task and
-- duration bin (up to an hour of rows: ~15,000 at 10M; both parts below read the counts).
edge AS MATERIALIZED (
    SELECT
        CASE WHEN w.hourly THEN substr(started_at, 1, 13) || ':00:00Z'
            ELSE substr(started_at, 1, 10) END AS period,
        task_slug,
        te_bin(duration_ms) AS bin,
        count(*) AS n,
        max(duration_ms) AS max_ms
    FROM task_executions, w
    WHERE started_at >= w.since AND started_at < w.whole AND duration_ms IS NOT NULL
        AND status != 'running'
        AND (coalesce(:task_slug, '') = '' OR task_slug = :task_slug)
    GROUP BY 1, 2, 3
),
counts AS (
    SELECT period, task_slug, sum(n) AS n, max(max_ms) AS max_ms
    FROM (
        SELECT
            CASE WHEN (SELECT hourly FROM w) THEN hour || ':00:00Z' ELSE substr(hour, 1, 10) END AS period,
            task_slug,
            dur_n AS n,
            dur_max AS max_ms
        FROM rollup_hourly
        WHERE rollup_hourly.hour >= (SELECT whole FROM w) AND dur_n > 0
            AND (coalesce(:task_slug, '') = '' OR task_slug = :task_slug)
        UNION ALL
        SELECT period, task_slug, n, max_ms FROM edge
    )
    GROUP BY period, task_slug
),
-- Percentiles: by hour, the hourly histogram (read in its key order); by day, whole days
-- from the daily one and the first, partial day from its hours and the part-hour's bins
-- (summed by bin in SQL first).
q AS (
    SELECT hour || ':00:00Z' AS period, task_slug, te_quantiles(bin, n) AS q
    FROM rollup_durations_hourly
    -- (the period picks the branch through the key ranges, so the other branch reads nothing)
    WHERE rollup_durations_hourly.hour >= CASE WHEN (SELECT hourly FROM w) THEN (SELECT whole FROM w) ELSE '9999' END
        AND (coalesce(:task_slug, '') = '' OR task_slug = :task_slug)
    GROUP BY hour, task_slug
    UNION ALL
    SELECT day, task_slug, te_quantiles(bin, n)
    FROM rollup_durations_daily
    WHERE rollup_durations_daily.day >= CASE WHEN (SELECT hourly FROM w) THEN '9999' ELSE (SELECT whole_day FROM w) END
        AND (coalesce(:task_slug, '') = '' OR task_slug = :task_slug)
    GROUP BY day, task_slug
    UNION ALL
    SELECT period, task_slug, te_quantiles(bin, n)
    FROM (SELECT period, task_slug, bin, sum(n) AS n FROM (
        SELECT substr(hour, 1, 10) AS period, task_slug, bin, n
        FROM rollup_durations_hourly
        WHERE rollup_durations_hourly.hour >= (SELECT whole FROM w)
            AND rollup_durations_hourly.hour < CASE WHEN (SELECT hourly FROM w) THEN '' ELSE (SELECT whole_day FROM w) END
            AND (coalesce(:task_slug, '') = '' OR task_slug = :task_slug)
        UNION ALL
        SELECT period, task_slug, bin, n FROM edge
    ) GROUP BY 1, 2, 3)
    GROUP BY period, task_slug
)
SELECT
    c.period,
    c.task_slug,
    c.n AS runs,
    min(json_extract(q.q, '$[0]'), c.max_ms) AS p50_ms,
    min(json_extract(q.q, '$[1]'), c.max_ms) AS p95_ms,
    min(json_extract(q.q, '$[2]'), c.max_ms) AS p99_ms,
    c.max_ms
FROM counts AS c
JOIN q ON q.period = c.period AND q.task_slug = c.task_slug
ORDER BY c.period, c.task_slug
