-- title: Data range
-- description: The first and the last start time in the database and how many attempts it holds: where the data ends, so charts can take their window back from the newest row rather than from now.
SELECT
    min(started_at) AS first_started_at,
    max(started_at) AS last_started_at,
    count(*) AS attempts
FROM task_executions
