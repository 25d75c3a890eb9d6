-- title: Alert history per day
-- description: Alerts opened per day (UTC) and kind in the window, how many tasks they concerned and how many of them are still open. An alert that opened again counts on the day of its latest opening (its times_opened says how often).
-- param since: Start of the window: 30d, 24h or an ISO-8601 time with zone | 30d
WITH w AS (
    SELECT CASE
        WHEN coalesce(:since, '') = ''
            THEN strftime('%Y-%m-%dT%H:%M:%f', 'now', '-30 days') || '000Z'
        WHEN :since GLOB '[0-9]*[dD]'
            THEN strftime('%Y-%m-%dT%H:%M:%f', 'now', '-' || CAST(:since AS INTEGER) || ' days') || '000Z'
        WHEN :since GLOB '[0-9]*[hH]'
            THEN strftime('%Y-%m-%dT%H:%M:%f', 'now', '-' || CAST(:since AS INTEGER) || ' hours') || '000Z'
        ELSE strftime('%Y-%m-%dT%H:%M:%f', :since) || '000Z'
    END AS since
)
SELECT
    substr(a.opened_at, 1, 10) AS day,
    a.kind,
    count(*) AS opened,
    count(DISTINCT a.task_slug) AS tasks,
    sum(a.state = 'open') AS still_open
FROM alerts AS a, w
WHERE a.opened_at >= w.since
GROUP BY day, a.kind
ORDER BY day, a.kind
