-- title: Slots run more than once
-- description: Scheduled slots of a task that more than one first attempt started for (two workers, a slot re-run by hand, a scheduler that fired twice), newest slot first: how many runs, on which hosts, how they ended, the first and last start and the seconds between them.
-- param since: Start of the window: 7d, 24h or an ISO-8601 time with zone | 7d
-- param limit: How many slots | 50
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
