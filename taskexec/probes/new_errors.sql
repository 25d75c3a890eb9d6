-- title: New error patterns
-- description: Error groups whose first occurrence ever falls inside the window: bugs that are new, not just recurring.
-- param since: Start of the window: 24h, 7d or an ISO-8601 time with zone | 24h
WITH w AS (
    SELECT CASE
        WHEN coalesce(:since, '') = ''
            THEN strftime('%Y-%m-%dT%H:%M:%f', 'now', '-24 hours') || '000Z'
        WHEN :since GLOB '[0-9]*[dD]'
            THEN strftime('%Y-%m-%dT%H:%M:%f', 'now', '-' || CAST(:since AS INTEGER) || ' days') || '000Z'
        WHEN :since GLOB '[0-9]*[hH]'
            THEN strftime('%Y-%m-%dT%H:%M:%f', 'now', '-' || CAST(:since AS INTEGER) || ' hours') || '000Z'
        ELSE strftime('%Y-%m-%dT%H:%M:%f', :since) || '000Z'
    END AS since
)
SELECT
    g.stack_hash,
    g.error_type,
    g.first_seen,
    g.last_seen,
    g.occurrences,
    (SELECT group_concat(DISTINCT t.task_slug) FROM task_executions AS t
        WHERE t.stack_hash = g.stack_hash) AS tasks,
    g.sample_message,
    g.first_span_id
FROM error_groups AS g, w
WHERE g.first_seen >= w.since
ORDER BY g.first_seen DESC
