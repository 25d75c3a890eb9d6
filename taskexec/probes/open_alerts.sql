-- title: Open alerts
-- description: Alerts that `taskexec check` found and that are still open, newest opened first: their kind (missed, late, stuck, long, new_error, regression, spike), task, what was found, since when, when the alert opened and how often it has opened, and the run to look at (trace_id, when the finding names one). An alert resolves at the first check that no longer finds it.
-- param task_slug: Only this task (empty: all tasks) |
SELECT
    a.kind,
    a.task_slug,
    a.title,
    a.since,
    a.opened_at,
    a.trace_id,
    a.detail,
    a.times_opened,
    a.last_seen_at
FROM alerts AS a
WHERE a.state = 'open'
    AND (coalesce(:task_slug, '') = '' OR a.task_slug = :task_slug)
ORDER BY a.opened_at DESC, a.id DESC
