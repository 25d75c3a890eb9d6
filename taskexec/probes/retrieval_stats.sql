-- title: Memory retrieval statistics
-- description: Per task since the start of the window: finished runs, runs that retrieved memories, mean and max memories retrieved, and how often each source was used. Read from the hourly rollup.
-- param since: Start of the window: 30m, 24h, 7d, 2w, an ISO-8601 time with zone, or all | 7d
WITH w AS MATERIALIZED (
    -- The window's whole hours (from w.whole on) are read from the rollups, the part-hour
    -- it starts in from the raw rows: exact for any start, whatever the table's size.
    SELECT
        since,
        CASE WHEN substr(since, 14) = ':00:00.000000Z' THEN substr(since, 1, 13)
            ELSE strftime('%Y-%m-%dT%H', since, '+1 hour') END AS whole
    FROM (SELECT te_since(:since, '7d') AS since)
),
-- The part-hour at the window's start, from the raw rows.
edge AS MATERIALIZED (
    SELECT task_slug, memories_retrieved, retrieval_sources
    FROM task_executions, w
    WHERE started_at >= w.since AND started_at < w.whole AND status != 'running'
),
r AS (
    SELECT task_slug, ended, retrieval_n, retrieval_hits, memories_sum, memories_max
    FROM rollup_hourly
    WHERE rollup_hourly.hour >= (SELECT whole FROM w)
    UNION ALL
    SELECT
        task_slug,
        1,
        memories_retrieved IS NOT NULL,
        coalesce(memories_retrieved > 0, 0),
        coalesce(memories_retrieved, 0),
        memories_retrieved
    FROM edge
),
sources AS MATERIALIZED (
    SELECT task_slug, source, sum(uses) AS uses
    FROM (
        SELECT task_slug, source, uses
        FROM rollup_sources
        WHERE rollup_sources.hour >= (SELECT whole FROM w)
        UNION ALL
        SELECT edge.task_slug, CAST(j.value AS TEXT), 1
        FROM edge, json_each(CASE WHEN json_valid(edge.retrieval_sources)
            THEN edge.retrieval_sources END) AS j
        WHERE j.type NOT IN ('null', 'object', 'array')
    )
    GROUP BY task_slug, source
)
SELECT
    r.task_slug,
    sum(r.ended) AS runs,
    sum(r.retrieval_hits) AS runs_with_retrieval,
    round(1.0 * sum(r.memories_sum) / nullif(sum(r.retrieval_n), 0), 2) AS mean_memories,
    max(r.memories_max) AS max_memories,
    (SELECT group_concat(source || ': ' || uses, ', ')
        FROM (SELECT source, uses FROM sources AS s
              WHERE s.task_slug = r.task_slug ORDER BY uses DESC, source)) AS sources
FROM r
GROUP BY r.task_slug
HAVING sum(r.ended) > 0
ORDER BY runs_with_retrieval DESC
