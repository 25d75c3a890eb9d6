-- title: Scheduled tasks
-- description: One row per schedule (`taskexec schedule add`), worst first: the task, its cron expression or interval and time zone, its last start and the status of that attempt, the next slot it is expected at, the grace after it, and a state judged against now: missed (the slot plus grace has passed with no start: `taskexec check` opens a missed-run alert), due (the slot has come, still within grace), never-run (no run recorded yet, nothing due) or ok. For an interval the next slot is the last start plus the interval; for a cron expression it is the slot `taskexec check` last computed, blank once a start has covered it (the next check computes the next one).
-- param now: The time to judge at (ISO-8601 with zone; blank: now) |
WITH clock AS (
    SELECT CASE
        WHEN coalesce(:now, '') = '' THEN strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'
        ELSE strftime('%Y-%m-%dT%H:%M:%f', :now) || '000Z'
    END AS now
),
last AS (
    SELECT
        s.task_slug,
        s.cron,
        s.every_seconds,
        s.timezone,
        s.grace_seconds,
        s.tolerance_seconds,
        s.source,
        s.expected_at AS stored_slot,
        s.created_at,
        (SELECT max(t.started_at) FROM task_executions AS t
            WHERE t.task_slug = s.task_slug) AS last_start
    FROM schedules AS s
),
slot AS (
    SELECT
        l.task_slug,
        l.cron,
        l.every_seconds,
        l.timezone,
        l.grace_seconds,
        l.source,
        l.last_start,
        clock.now,
        (SELECT t.status FROM task_executions AS t
            WHERE t.task_slug = l.task_slug
            ORDER BY t.started_at DESC, t.id DESC LIMIT 1) AS last_status,
        CASE
            -- An interval: the first slot after the last start (or after the schedule was made),
            -- the rule `taskexec check` keeps expected_at by; a start in the future counts as now.
            WHEN l.every_seconds IS NOT NULL THEN strftime(
                '%Y-%m-%dT%H:%M:%f',
                coalesce(min(l.last_start, clock.now), l.created_at),
                '+' || l.every_seconds || ' seconds'
            ) || '000Z'
            -- A cron slot already covered by a start: the next one is not known until a check.
            WHEN l.last_start >= strftime(
                '%Y-%m-%dT%H:%M:%f', l.stored_slot, '-' || l.tolerance_seconds || ' seconds'
            ) || '000Z' THEN NULL
            ELSE l.stored_slot
        END AS expected_at
    FROM last AS l, clock
)
SELECT
    task_slug,
    coalesce(cron, printf('every %g s', every_seconds)) AS schedule,
    timezone,
    CASE
        WHEN expected_at IS NULL THEN CASE WHEN last_start IS NULL THEN 'never-run' ELSE 'ok' END
        WHEN strftime('%Y-%m-%dT%H:%M:%f', expected_at, '+' || grace_seconds || ' seconds') || '000Z'
            < now THEN 'missed'
        WHEN expected_at <= now THEN 'due'
        WHEN last_start IS NULL THEN 'never-run'
        ELSE 'ok'
    END AS state,
    last_start AS last_started_at,
    last_status,
    expected_at,
    grace_seconds,
    source
FROM slot
ORDER BY
    CASE state WHEN 'missed' THEN 0 WHEN 'due' THEN 1 WHEN 'never-run' THEN 2 ELSE 3 END,
    task_slug
