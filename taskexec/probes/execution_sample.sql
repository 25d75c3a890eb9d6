-- title: Sample of executions
-- description: An evenly spaced sample (every k-th id from the window's first row on) of at most limit finished attempts since the start of the window, for distribution and scatter charts that cannot load millions of rows. Deterministic: the same data gives the same sample.
-- param since: Start of the window: 30m, 24h, 7d, 2w, an ISO-8601 time with zone, or all | 7d
-- param limit: At most this many rows | 1000
WITH w AS MATERIALIZED (
    SELECT te_since(:since, '7d') AS since
),
-- Ids follow start times closely: step through the ids from the window's first row to the
-- last in strides of k, so the sample costs one lookup a row, whatever the window holds.
span AS (
    SELECT
        (SELECT id FROM task_executions WHERE started_at >= (SELECT since FROM w)
            ORDER BY started_at LIMIT 1) AS lo,
        (SELECT max(id) FROM task_executions) AS hi,
        max(1, CAST(coalesce(nullif(:limit, ''), 1000) AS INTEGER)) AS n
),
step AS MATERIALIZED (
    SELECT lo, hi, max(1, (hi - lo + n) / n) AS k, (SELECT since FROM w) AS since
    FROM span
    WHERE lo IS NOT NULL
),
ids(i) AS (
    SELECT lo FROM step
    UNION ALL
    SELECT i + step.k FROM ids, step WHERE i + step.k <= step.hi
)
SELECT
    t.id,
    t.started_at,
    t.task_slug,
    t.status,
    t.attempt,
    t.duration_ms,
    t.memories_retrieved,
    t.error_type,
    t.stack_hash
FROM task_executions AS t, step
-- IN, not a join: a join makes SQLite build a Bloom filter by reading the whole table.
WHERE t.id IN (SELECT i FROM ids)
    AND t.started_at >= step.since
    AND t.status != 'running'
ORDER BY t.started_at, t.id
