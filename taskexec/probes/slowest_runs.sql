-- title: Slowest runs
-- description: The longest attempts since the start of the window, slowest first (cancelled attempts left out).
-- param since: Start of the window: 30m, 24h, 7d, 2w, an ISO-8601 time with zone, or all | 7d
-- param limit: How many rows | 50
WITH w0 AS MATERIALIZED (
    SELECT
        te_since(:since, '7d') AS since,
        max(1, CAST(coalesce(nullif(:limit, ''), 50) AS INTEGER)) AS n
),
-- Two ways to read: the window's rows through the start-time index (cost ~ W, the rows in the
-- window), or each task's longest attempts until n fall in the window (cost ~ tasks x n x
-- total / W). The rollups count both sides: the second wins when W^2 > tasks x n x total.
w AS MATERIALIZED (
    SELECT
        since,
        n,
        1.0 * (SELECT coalesce(sum(attempts), 0) FROM rollup_hourly
            WHERE hour >= substr(since, 1, 13))
        * (SELECT coalesce(sum(attempts), 0) FROM rollup_hourly
            WHERE hour >= substr(since, 1, 13))
        > 1.0 * n * (SELECT count(DISTINCT task_slug) FROM rollup_hourly)
        * (SELECT coalesce(sum(attempts), 0) FROM rollup_hourly) AS large
    FROM w0
),
tasks AS (
    SELECT DISTINCT task_slug FROM rollup_hourly
    WHERE hour >= substr((SELECT since FROM w), 1, 13) AND (SELECT large FROM w)
),
candidates AS (
    -- A small window: its rows through the start-time index.
    SELECT id, duration_ms
    FROM task_executions
    -- (the bound, not a WHERE term, switches it off: SQLite would test that term row by row)
    WHERE started_at >= CASE WHEN (SELECT large FROM w) THEN '9999' ELSE (SELECT since FROM w) END
        AND duration_ms IS NOT NULL
        AND status NOT IN ('cancelled', 'abandoned')
    UNION ALL
    -- A large one: each task's longest attempts from ix_te_long_runs (task, duration, start),
    -- stopping at the limit once that many fall in the window: a few hundred entries a task.
    SELECT x.id, x.duration_ms
    FROM tasks
    JOIN task_executions AS x ON x.id IN (
        SELECT y.id
        FROM task_executions AS y
        WHERE y.task_slug = tasks.task_slug
            AND y.status NOT IN ('cancelled', 'abandoned')
            AND y.duration_ms IS NOT NULL
            AND y.started_at >= (SELECT since FROM w)
        ORDER BY y.duration_ms DESC
        LIMIT (SELECT n FROM w)
    )
)
SELECT
    id,
    task_slug,
    duration_ms,
    status,
    started_at,
    attempt,
    trace_id,
    memories_retrieved
FROM task_executions
WHERE id IN (
    SELECT id FROM candidates ORDER BY duration_ms DESC LIMIT (SELECT n FROM w)
)
ORDER BY duration_ms DESC, id
