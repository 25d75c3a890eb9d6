-- title: Data range
-- description: The first and the last start time in the database and how many attempts it holds: where the data ends, so charts can take their window back from the newest row rather than from now.
SELECT
    (SELECT min(started_at) FROM task_executions) AS first_started_at,
    (SELECT max(started_at) FROM task_executions) AS last_started_at,
    (SELECT coalesce(sum(attempts), 0) FROM rollup_hourly) AS attempts
