-- title: Error patterns
-- description: Failures grouped by stack hash since the start of the window: how often, how many tasks, first and last seen, and a sample message. Lines moving between deploys do not split a group.
-- param since: Start of the window: 7d, 24h or an ISO-8601 time with zone | 7d
-- param limit: How many rows | 50
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
)
SELECT
    e.stack_hash,
    g.error_type,
    count(*) AS occurrences,
    count(DISTINCT e.task_slug) AS tasks_affected,
    group_concat(DISTINCT e.task_slug) AS tasks,
    g.first_seen,
    max(e.started_at) AS last_seen,
    g.occurrences AS occurrences_all_time,
    g.sample_message
FROM task_executions AS e
JOIN error_groups AS g ON g.stack_hash = e.stack_hash, w
WHERE e.status IN ('failed', 'timeout', 'abandoned')
    AND e.started_at >= w.since
    AND e.stack_hash IS NOT NULL
GROUP BY e.stack_hash
ORDER BY occurrences DESC
LIMIT CAST(coalesce(nullif(:limit, ''), 50) AS INTEGER)
