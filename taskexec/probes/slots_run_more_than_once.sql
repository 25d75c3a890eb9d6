-- title: Slots run more than once
-- description: Scheduled slots in the window that more than one first attempt started for (two workers, a slot re-run by hand, a scheduler that fired twice), newest slot first: how many runs, on which hosts, how they ended, the first and last start and the seconds between them.
-- param since: Start of the window: 30m, 24h, 7d, 2w, an ISO-8601 time with zone, or all | 7d
-- param limit: How many slots | 50
WITH w AS MATERIALIZED (
    SELECT te_since(:since, '7d') AS since
),
-- Index-only (ix_te_slots), newest slot first: stops once it has found enough slots.
slots AS MATERIALIZED (
    SELECT scheduled_at, task_id, count(*) AS runs
    FROM task_executions
    WHERE scheduled_at >= (SELECT since FROM w) AND scheduled_at IS NOT NULL AND attempt = 1
    GROUP BY scheduled_at, task_id
    HAVING count(*) > 1
    ORDER BY scheduled_at DESC, task_id DESC
    LIMIT CAST(coalesce(nullif(:limit, ''), 50) AS INTEGER)
),
firsts AS (
    SELECT t.task_id, t.task_slug, t.scheduled_at, t.started_at, t.host, t.status
    FROM slots AS s
    JOIN task_executions AS t
        ON t.scheduled_at = s.scheduled_at AND t.task_id = s.task_id AND t.attempt = 1
    ORDER BY t.started_at
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
ORDER BY scheduled_at DESC, task_id
