-- title: New error patterns
-- description: Error groups whose first occurrence ever falls inside the window: bugs that are new, not just recurring.
-- param since: Start of the window: 30m, 24h, 7d, 2w, an ISO-8601 time with zone, or all | 24h
WITH w AS MATERIALIZED (
    SELECT te_since(:since, '24h') AS since
)
SELECT
    g.stack_hash,
    g.error_type,
    g.sample_message,
    g.first_seen,
    g.last_seen,
    g.occurrences,
    (SELECT group_concat(DISTINCT r.task_slug) FROM rollup_errors AS r
        WHERE r.stack_hash = g.stack_hash) AS tasks,
    g.first_span_id
FROM error_groups AS g, w
WHERE g.first_seen >= w.since
ORDER BY g.first_seen DESC
