-- title: Daily trend per task
-- description: Day by task: finished attempts, failures, failure rate, and p50/p95 duration (ms, from the rollups' histogram: within 1% of exact). The series behind the dashboard's charts.
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
-- The part-hour at the window's start, from the raw rows, counted once by day, task and
-- duration bin (up to an hour of rows: ~15,000 at 10M; both parts below read the counts).
edge AS MATERIALIZED (
    SELECT
        substr(started_at, 1, 10) AS day,
        task_slug,
        te_bin(duration_ms) AS bin,
        count(*) AS n,
        sum(status IN ('failed', 'timeout', 'abandoned')) AS failures,
        max(duration_ms) AS max_ms
    FROM task_executions, w
    WHERE started_at >= w.since AND started_at < w.whole AND status != 'running'
        AND (coalesce(:task_slug, '') = '' OR task_slug = :task_slug)
    GROUP BY 1, 2, 3
),
counts AS (
    SELECT day, task_slug, sum(ended) AS attempts, sum(failures) AS failures, max(max_ms) AS max_ms
    FROM (
        SELECT
            substr(hour, 1, 10) AS day,
            task_slug,
            ended,
            failed + timeout + abandoned AS failures,
            dur_max AS max_ms
        FROM rollup_hourly
        WHERE rollup_hourly.hour >= (SELECT whole FROM w)
            AND (coalesce(:task_slug, '') = '' OR task_slug = :task_slug)
        UNION ALL
        SELECT day, task_slug, n, failures, max_ms FROM edge
    )
    GROUP BY day, task_slug
),
-- Percentiles: whole days from the daily histogram (read in its key order), the first,
-- partial day from its whole hours and the part-hour's bins, summed by bin in SQL first.
q AS (
    SELECT day, task_slug, te_quantiles(bin, n) AS q
    FROM rollup_durations_daily
    WHERE rollup_durations_daily.day >= (SELECT whole_day FROM w)
        AND (coalesce(:task_slug, '') = '' OR task_slug = :task_slug)
    GROUP BY day, task_slug
    UNION ALL
    SELECT day, task_slug, te_quantiles(bin, n)
    FROM (SELECT day, task_slug, bin, sum(n) AS n FROM (
        SELECT substr(hour, 1, 10) AS day, task_slug, bin, n
        FROM rollup_durations_hourly
        WHERE rollup_durations_hourly.hour >= (SELECT whole FROM w) AND rollup_durations_hourly.hour < (SELECT whole_day FROM w)
            AND (coalesce(:task_slug, '') = '' OR task_slug = :task_slug)
        UNION ALL
        SELECT day, task_slug, bin, n FROM edge WHERE bin IS NOT NULL
    ) GROUP BY 1, 2, 3)
    GROUP BY day, task_slug
)
SELECT
    c.day,
    c.task_slug,
    c.attempts,
    c.failures,
    round(1.0 * c.failures / c.attempts, 4) AS failure_rate,
    min(json_extract(q.q, '$[0]'), c.max_ms) AS p50_ms,
    min(json_extract(q.q, '$[1]'), c.max_ms) AS p95_ms
FROM counts AS c
LEFT JOIN q ON q.day = c.day AND q.task_slug = c.task_slug
WHERE c.attempts > 0
ORDER BY c.day, c.task_slug
