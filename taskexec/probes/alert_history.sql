-- title: Alert history per day
-- description: Alerts opened per day (UTC) and kind in the window, how many tasks they concerned and how many of them are still open. An alert that opened again counts on the day of its latest opening (its times_opened says how often).
-- param since: Start of the window: 30m, 24h, 7d, 2w, an ISO-8601 time with zone, or all | 30d
WITH w AS MATERIALIZED (
    SELECT te_since(:since, '30d') AS since
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
