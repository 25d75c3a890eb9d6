-- title: Recent failures
-- description: The latest failed, timed-out or abandoned attempts, newest first, with their error group's size and whether this was the group's first occurrence.
-- param task_slug: Only this task (empty: all tasks) |
-- param limit: How many rows | 50
SELECT
    e.id,
    e.started_at,
    e.task_slug,
    e.status,
    e.attempt,
    e.trace_id,
    e.error_type,
    e.error_message,
    g.occurrences AS group_occurrences,
    e.first_seen_error,
    e.stack_hash
FROM task_executions AS e
LEFT JOIN error_groups AS g ON g.stack_hash = e.stack_hash
WHERE e.status IN ('failed', 'timeout', 'abandoned')
    AND (coalesce(:task_slug, '') = '' OR e.task_slug = :task_slug)
ORDER BY e.started_at DESC
LIMIT CAST(coalesce(nullif(:limit, ''), 50) AS INTEGER)
