-- title: Tasks
-- description: Every task slug with its task id and when it last started. Fast at any size: it hops along the (task_slug, started_at) index once per task instead of scanning rows.
WITH RECURSIVE slugs (task_slug) AS (
    SELECT min(task_slug) FROM task_executions
    UNION ALL
    SELECT (SELECT min(t.task_slug) FROM task_executions AS t WHERE t.task_slug > s.task_slug)
    FROM slugs AS s
    WHERE s.task_slug IS NOT NULL
)
SELECT
    s.task_slug,
    (SELECT t.task_id FROM task_executions AS t
        WHERE t.task_slug = s.task_slug ORDER BY t.started_at DESC LIMIT 1) AS task_id,
    (SELECT max(t.started_at) FROM task_executions AS t
        WHERE t.task_slug = s.task_slug) AS last_started_at
FROM slugs AS s
WHERE s.task_slug IS NOT NULL
ORDER BY s.task_slug
