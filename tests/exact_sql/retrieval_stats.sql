-- title: Memory retrieval statistics
-- description: Per task since the start of the window: runs, runs that retrieved memories, mean and max memories retrieved, and how often each source was used.
-- param since: Start of the window: 7d, 24h or an ISO-8601 time with zone | 7d
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
-- MATERIALIZED: fetch each row once; both CTEs below read this copy.
base AS MATERIALIZED (
    SELECT task_slug, memories_retrieved, retrieval_sources
    FROM task_executions, w
    WHERE started_at >= w.since AND status != 'running'
),
-- MATERIALIZED: the per-task subquery below would otherwise re-run json_each for every task.
sources AS MATERIALIZED (
    SELECT task_slug, j.value AS source, count(*) AS uses
    FROM base, json_each(base.retrieval_sources) AS j
    WHERE base.retrieval_sources IS NOT NULL
    GROUP BY task_slug, j.value
)
SELECT
    b.task_slug,
    count(*) AS runs,
    sum(b.memories_retrieved > 0) AS runs_with_retrieval,
    round(avg(b.memories_retrieved), 2) AS mean_memories,
    max(b.memories_retrieved) AS max_memories,
    (SELECT group_concat(source || ': ' || uses, ', ')
        FROM (SELECT source, uses FROM sources AS s
              WHERE s.task_slug = b.task_slug ORDER BY uses DESC)) AS sources
FROM base AS b
GROUP BY b.task_slug
ORDER BY runs_with_retrieval DESC
