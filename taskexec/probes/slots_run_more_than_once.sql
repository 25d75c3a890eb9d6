-- title: Slots run more than once
-- description: Scheduled slots of a task that more than one first attempt started for (two workers, a slot re-run by hand, a scheduler that fired twice), newest slot first: how many runs, on which hosts, how they ended, the first and last start and the seconds between them.
-- param since: Start of the window: 30m, 24h, 7d, 2w, an ISO-8601 time with zone, or all | 7d
-- param limit: How many slots | 50
WITH w AS (
    SELECT te_since(:since, '7d') AS since
),
firsts AS (
    SELECT task_id, task_slug, scheduled_at, started_at, host, status
    FROM task_executions, w
    WHERE started_at >= w.since AND attempt = 1 AND scheduled_at IS NOT NULL
    ORDER BY started_at
)
SELECT
    max(task_slug) AS task_slug,
    task_id,
    scheduled_at,
    count(*) AS runs,
    group_concat(DISTINCT host) AS hosts,
    group_concat(status) AS statuses,
    min(started_at) AS first_started_at,
    max(started_at) AS last_started_at,
    round((julianday(max(started_at)) - julianday(min(started_at))) * 86400, 3) AS seconds_apart
FROM firsts
GROUP BY task_id, scheduled_at
HAVING count(*) > 1
ORDER BY scheduled_at DESC, task_id
LIMIT CAST(coalesce(nullif(:limit, ''), 50) AS INTEGER)
