"""Datasette in process: canned queries, search, cell rendering, the trace page, escaping, serve."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from conftest import end, free_port
from markupsafe import escape

from taskexec import probes
from taskexec.cli import cli
from taskexec.db.store import Store
from taskexec.faces.datasette.metadata import DASHBOARD
from taskexec.faces.datasette.plugin import human_ms, make_datasette, outcome, timeline
from taskexec.model import WINDOW_FORMS, TaskExecution, window_start

# A bad window in one's own SQL makes te_since raise inside SQLite; Datasette turns on sqlite3's
# callback tracebacks, so Python reports that exception as "unraisable" while the page shows our
# message (pytest's hook takes it; the server's drops it: see the console test).
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

WIDE = "2026-11-01T00:00:00Z"  # before the demo fixture's first row
HOSTILE = "<script>alert(1)</script>"


class Client:
    """Datasette's in-process client on one event loop, callable from sync tests."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.ds = make_datasette(db)
        self.loop = asyncio.new_event_loop()

    def get(self, path: str):
        return self.loop.run_until_complete(self.ds.client.get(path))

    def close(self) -> None:
        self.loop.close()


@pytest.fixture(scope="module")
def client(demo_db):
    c = Client(demo_db)
    yield c
    c.close()


@pytest.fixture(scope="module")
def hostile_client(tmp_path_factory):
    """A database holding one failed run whose text fields try to inject HTML."""
    path = tmp_path_factory.mktemp("hostile") / "hostile.db"
    start = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    first = TaskExecution(
        task_slug="inject",
        started_at=start,
        ended_at=start + timedelta(seconds=2),
        status="failed",
        error_type="<img src=x onerror=alert(2)>",
        error_message=f"boom {HOSTILE}",
        stack_trace=f'Traceback:\n  File "a.py", line 1, in f\nValueError: {HOSTILE}\n',
        content=f"summary {HOSTILE}",
        attributes={"note": HOSTILE},
        files_written=(HOSTILE,),
    )
    second = TaskExecution(
        task_slug="inject",
        trace_id=first.trace_id,
        attempt=2,
        retry_of=first.span_id,
        started_at=start + timedelta(seconds=5),
        ended_at=start + timedelta(seconds=6),
        status="success",
    )
    with Store(path) as store:
        store.append(first)
        store.append(second)
    c = Client(path)
    c.trace_id = first.trace_id  # type: ignore[attr-defined]
    yield c
    c.close()


def rows(client: Client, path: str) -> list[dict]:
    response = client.get(path)
    assert response.status_code == 200, response.text[:500]
    return response.json()["rows"]


def probe_path(name: str, **params: str) -> str:
    probe = probes.get(name)
    if "since" in {p.name for p in probe.params}:
        params.setdefault("since", WIDE)
    query = "".join(f"&{k}={quote(v)}" for k, v in params.items())
    return f"/demo/{name}.json?_shape=objects{query}"


# -- canned queries -------------------------------------------------------------------------


@pytest.mark.parametrize("name", [p.name for p in probes.all_probes()])
def test_every_canned_query_matches_its_probe(client, demo_db, name):
    got = rows(client, probe_path(name))
    # Alerts and schedules are empty on the demo data (no check ran); the others always answer.
    empty_ok = name.startswith("alert_") or name in ("open_alerts", "schedule_health")
    assert got or empty_ok, f"{name} returned no rows on the demo database"
    values = {"since": WIDE} if "since" in {p.name for p in probes.get(name).params} else {}
    with Store.open_readonly(demo_db) as store:
        expected = store.run_probe(name, values).dicts()
    assert got == expected[:1000]  # Datasette returns at most max_returned_rows


@pytest.mark.parametrize("name", [p.name for p in probes.all_probes()])
def test_every_canned_query_page_opens_with_blank_parameters(client, name):
    response = client.get(f"/demo/{name}")
    assert response.status_code == 200
    assert probes.get(name).title in response.text
    assert 'class="message-error"' not in response.text


def test_rates_between_zero_and_one(client):
    for r in rows(client, probe_path("failure_rates")):
        assert 0 <= r["failure_rate"] <= 1
        assert r["successes"] + r["failures"] + r["cancelled"] == r["attempts"]
    for r in rows(client, probe_path("daily_trend")):
        assert 0 <= r["failure_rate"] <= 1 and r["failures"] <= r["attempts"]
    headline = rows(client, probe_path("headline"))[0]
    assert headline["attempts"] > 3000 and 0 < headline["failure_rate"] < 1


def test_percentiles_ordered(client):
    stats = rows(client, probe_path("duration_stats"))
    assert len(stats) == 8
    for r in stats:
        assert 0 < r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"] <= r["max_ms"]
        assert r["mean_ms"] <= r["max_ms"]
    for r in rows(client, probe_path("daily_trend")):
        assert r["p50_ms"] <= r["p95_ms"]


def test_lists_are_ordered_and_limited(client):
    slow = rows(client, probe_path("slowest_runs", limit="7"))
    assert len(slow) == 7
    assert [r["duration_ms"] for r in slow] == sorted(
        (r["duration_ms"] for r in slow), reverse=True
    )
    failures = rows(client, probe_path("recent_failures", limit="5"))
    assert len(failures) == 5 and {r["status"] for r in failures} <= {
        "failed",
        "timeout",
        "abandoned",
    }
    patterns = rows(client, probe_path("error_patterns"))
    assert [r["occurrences"] for r in patterns] == sorted(
        (r["occurrences"] for r in patterns), reverse=True
    )


def test_canned_query_page_shows_parameter_defaults(client):
    html = client.get("/demo/error_patterns").text
    assert 'name="since" value="" placeholder="7d"' in html
    assert 'name="limit" value="" placeholder="50"' in html
    assert "(default 7d)" in html and "(default 50)" in html
    assert '<datalist id="te-since-list">' in html and '<option value="all">' in html


def test_canned_query_page_reads_like_a_report(client):
    """Title and description instead of "Custom SQL query returning 50 rows", the trace early,
    rates as percentages (the exact value on hover), tasks and periods as drop-downs."""
    html = client.get("/demo/recent_failures?limit=5").text
    assert "<title>Recent failures · demo</title>" in html
    assert "Custom SQL query" not in html and "<strong>5 rows</strong>" in html
    assert escape(probes.get("recent_failures").description) in html
    heads = re.findall(r'<th class="col-([a-z_]+)" scope="col">', html)
    assert heads[:6] == ["id", "started_at", "task_slug", "status", "attempt", "trace_id"]
    tasks = re.search(r'<select id="te-task_slug" name="task_slug">(.*?)</select>', html, re.S)
    assert tasks and '<option value="" selected>all tasks</option>' in tasks[1]
    with Store.open_readonly(client.db) as store:
        slugs = store.distinct_values("task_slug")
    assert re.findall(r'<option value="([a-z_]+)"', tasks[1]) == slugs
    picked = client.get(f"/demo/duration_trend?since={WIDE}&task_slug=sync_inbox&period=hour").text
    assert '<option value="sync_inbox" selected>sync_inbox</option>' in picked
    assert '<option value="hour" selected>hour</option>' in picked
    rates = client.get(f"/demo/failure_rates?since={WIDE}").text
    pct = r'<td class="col-failure_rate"><span class="te-pct" title="([0-9.]+)">([0-9.]+)%'
    cell = re.search(pct, rates)
    assert cell and float(cell[2]) == pytest.approx(float(cell[1]) * 100, abs=0.05)


# -- windows: one grammar, a bad one said, an empty one placed ------------------------------

WINDOWED = [p.name for p in probes.all_probes() if "since" in {q.name for q in p.params}]
UDF_ERROR = "user-defined function raised exception"


@pytest.mark.parametrize("name", WINDOWED)
def test_bad_window_is_said_on_every_windowed_query(client, name):
    message = "since: 'banana' is not a window; use " + WINDOW_FORMS
    page = client.get(f"/demo/{name}?since=banana")
    assert page.status_code == 400
    assert f'<p class="message-error te-window-error">{escape(message)}</p>' in page.text
    assert UDF_ERROR not in page.text and 'value="banana"' in page.text  # the form keeps it
    for fmt in ("json", "csv"):
        answer = client.get(f"/demo/{name}.{fmt}?since=banana")
        assert answer.status_code == 400
        assert answer.json()["error"] == message and answer.json()["rows"] == []


@pytest.mark.parametrize(
    "since", ["2026-11-19", "1w2d", "24", "yesterday", "2026-13-01T00:00:00Z", "100000000w"]
)
def test_each_bad_window_says_what_is_wrong(client, since):
    with pytest.raises(ValueError) as raised:
        window_start(since)
    answer = client.get(f"/demo/error_patterns.json?since={quote(since)}")
    assert answer.status_code == 400 and answer.json()["error"] == str(raised.value)


def test_bad_window_in_your_own_sql_and_other_parameters_untouched(client):
    sql = quote("select te_since(:since, '7d') as start")
    answer = client.get(f"/demo.json?sql={sql}&since=soon")
    assert answer.status_code == 400 and "'soon' is not a window" in answer.json()["error"]
    page = client.get(f"/demo?sql={sql}&since=soon")
    assert page.status_code == 400 and "&#39;soon&#39; is not a window" in page.text
    assert UDF_ERROR not in page.text
    # A parameter named since that no te_since reads is not a window.
    plain = client.get(f"/demo.json?sql={quote('select :since as s')}&since=soon")
    assert plain.status_code == 200 and plain.json()["rows"] == [["soon"]]


def test_bad_window_leaves_the_server_console_quiet(demo_db, tmp_path):
    """A real ``taskexec serve``: no traceback on the console of whoever runs it. A canned query
    is not run with the bad window at all (no rows shown, though headline answers zeros for
    an empty window), and te_since's own error in someone's SQL is left to Datasette's
    one-line message. (In-process, pytest's own hook would swallow what is printed.)"""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with (tmp_path / "console.txt").open("w+") as console:
        command = [sys.executable, "-m", "taskexec", "serve", str(demo_db), "--port", str(port)]
        proc = subprocess.Popen(command, stdout=console, stderr=subprocess.STDOUT)
        try:

            def get(path: str) -> tuple[int, str]:
                try:
                    with urllib.request.urlopen(base + path, timeout=10) as answer:
                        return answer.status, answer.read().decode()
                except urllib.error.HTTPError as refused:
                    return refused.code, refused.read().decode()

            for _ in range(200):
                try:
                    get("/-/versions.json")
                    break
                except OSError:
                    time.sleep(0.1)
            status, page = get("/demo/headline?since=banana&since=24h")
            assert status == 400 and 'value="banana"' in page
            assert "te-window-error" in page and '<table class="rows-and-columns"' not in page
            sql = quote("select te_since(:since, '7d') as start")
            assert get(f"/demo?sql={sql}&since=soon")[0] == 400
            assert get("/demo/headline?since=24h")[0] == 200  # the next one runs
        finally:
            end(proc)
        console.seek(0)
        printed = console.read()
    assert "Traceback" not in printed and "Exception ignored" not in printed, printed
    assert "Headline numbers" not in printed  # the probe's SQL never ran with 'banana'
    assert "select te_since(:since, '7d')" in printed  # Datasette's line for one's own SQL


@pytest.mark.parametrize("since", ["2w", "1.5d", "90m", "all", "2026-11-19T12:00:00+02:00"])
def test_every_window_of_the_grammar_answers_like_the_cli(client, demo_db, since):
    got = rows(client, f"/demo/failure_rates.json?_shape=objects&since={quote(since)}")
    with Store.open_readonly(demo_db) as store:
        assert got == store.run_probe("failure_rates", {"since": since}).dicts()
    if since in ("all", "2026-11-19T12:00:00+02:00"):
        assert got  # the demo data (to 2026-11-20) is inside these


def test_empty_window_says_where_the_data_is(client):
    """The demo data ends 2026-11-20: a window of the last hour holds none of it."""
    note = "No runs since "
    span = "this database spans 2026-11-06 to 2026-11-20."
    empty = client.get("/demo/error_patterns?since=1h").text
    assert '<p class="zero-results">No rows. <span class="te-empty-note">' + note in empty
    assert span in empty
    zeros = client.get("/demo/headline?since=1h").text  # one row of zeros: said as well
    assert '<p class="message-info te-window-note">' + note in zeros and span in zeros
    full = client.get(f"/demo/headline?since={WIDE}").text
    assert "te-window-note" not in full
    unwindowed = client.get("/demo/recent_failures?task_slug=nope").text
    assert "No rows." in unwindowed and "Nothing matched; " + span in unwindowed


def test_dashboard_says_a_bad_window_and_where_the_data_is(client):
    bad = client.get(f"/-/dashboards/{DASHBOARD}?since=banana&task_slug=").text
    message = "since: 'banana' is not a window; use " + WINDOW_FORMS
    script = re.search(r"const te = (\{.*?\});", bad)
    assert script is not None
    told = json.loads(script[1])
    assert told["message"] == message and told["kind"] == "error"
    charts = client.ds.plugin_config("datasette-dashboards")[DASHBOARD]["charts"]
    windowed = {s for s, c in charts.items() if "te_since(:since" in c.get("query", "")}
    assert windowed and set(told["hide"]) == windowed  # those charts step aside
    old = client.get(f"/-/dashboards/{DASHBOARD}?since=1h&task_slug=").text
    told = json.loads(re.search(r"const te = (\{.*?\});", old)[1])
    assert told["kind"] == "info" and told["hide"] == []
    assert told["message"].startswith("No runs since ")
    assert told["message"].endswith("this database spans 2026-11-06 to 2026-11-20.")
    fine = client.get(f"/-/dashboards/{DASHBOARD}?since=all&task_slug=").text
    assert "const te = " not in fine


# -- the dashboard --------------------------------------------------------------------------


def test_dashboard_page_and_every_chart_query(client):
    page = client.get(f"/-/dashboards/{DASHBOARD}?since=7d")
    assert page.status_code == 200
    dashboard = client.ds.plugin_config("datasette-dashboards")[DASHBOARD]
    for slug, chart in dashboard["charts"].items():
        assert f'id="chart-{slug}"' in page.text
        if "query" not in chart:
            continue
        got = rows(
            client, f"/demo.json?_shape=objects&since={WIDE}&task_slug=&sql={quote(chart['query'])}"
        )
        if chart["library"] == "metric":
            assert len(got) == 1 and chart["display"]["field"] in got[0]
        else:
            assert got, f"chart {slug} has no rows over the demo data"
    assert (
        "failure_rate"
        in rows(
            client,
            "/demo.json?_shape=objects&sql="
            + quote(dashboard["charts"]["failure-rate-24h"]["query"]),
        )[0]
    )


@pytest.fixture(scope="module")
def alerts_client(tmp_path_factory):
    """A database that `taskexec check` looked at just now: 'hourly' (every hour, last run three
    hours ago: missed), 'nightly' (every day, ran two hours ago and failed with a never-seen,
    HTML-laden error: a new_error alert naming its run) and 'weekly' (scheduled, never ran)."""
    from taskexec.alerts.check import check
    from taskexec.alerts.schedules import Schedule
    from taskexec.cli.alerts import save_schedule

    path = tmp_path_factory.mktemp("alerts") / "alerts.db"
    now = datetime.now(UTC)
    hourly = TaskExecution(
        task_slug="hourly",
        started_at=now - timedelta(hours=3),
        ended_at=now - timedelta(hours=3) + timedelta(seconds=1),
        status="success",
    )
    nightly = TaskExecution(
        task_slug="nightly",
        started_at=now - timedelta(hours=2),
        ended_at=now - timedelta(hours=2) + timedelta(seconds=3),
        status="failed",
        error_type="<img src=x onerror=alert(2)>",
        error_message=f"boom {HOSTILE}",
    )
    with Store(path) as store:
        store.append(hourly)
        store.append(nightly)
        save_schedule(store, Schedule("hourly", every_seconds=3600))
        save_schedule(store, Schedule("nightly", every_seconds=86400, grace_seconds=600))
        save_schedule(store, Schedule("weekly", every_seconds=7 * 86400))
        result = check(store, now=now)
    assert sorted(a["kind"] for a in result.opened) == ["missed", "new_error"]
    c = Client(path)
    c.trace_id = nightly.trace_id  # type: ignore[attr-defined]
    yield c
    c.close()


def chart_rows(client: Client, slug: str) -> list[dict]:
    """A dashboard chart's rows, fetched as the dashboard's JavaScript fetches them."""
    chart = client.ds.plugin_config("datasette-dashboards")[DASHBOARD]["charts"][slug]
    return rows(
        client, f"/alerts.json?sql={quote(chart['query'])}&since=7d&task_slug=&_shape=objects"
    )


def test_dashboard_lists_open_alerts_and_scheduled_tasks(alerts_client):
    c = alerts_client
    page = c.get(f"/-/dashboards/{DASHBOARD}?since=7d")
    assert page.status_code == 200
    for slug in ("open-alerts", "open-alerts-table", "scheduled-tasks"):
        assert f'id="chart-{slug}"' in page.text
        assert c.get(f"/-/dashboards/{DASHBOARD}/{slug}").status_code == 200
    assert chart_rows(c, "open-alerts") == [{"open_alerts": 2}]
    alerts = chart_rows(c, "open-alerts-table")
    # Both opened in the same check: the later detection (new errors) is the newer row.
    assert [a["kind"] for a in alerts] == ["new_error", "missed"]
    by_kind = {a["kind"]: a for a in alerts}
    assert list(alerts[0]) == ["kind", "task", "alert", "opened", "run", "detail"]
    new = by_kind["new_error"]
    assert new["task"] == "nightly"
    assert f'<a href="/-/trace/{c.trace_id}"' in new["run"]
    cells = " ".join(str(v) for a in alerts for v in a.values())
    assert "<img" not in cells and "<script" not in cells  # the table sets cells as HTML
    assert "&lt;img src=x onerror=alert(2)&gt;" in new["alert"]
    assert "&lt;script&gt;" in new["detail"]
    assert by_kind["missed"]["task"] == "hourly" and by_kind["missed"]["run"] == ""
    schedules = {s["task"]: s for s in chart_rows(c, "scheduled-tasks")}
    assert list(schedules) == ["hourly", "weekly", "nightly"]  # worst first
    assert ">missed</span>" in schedules["hourly"]["state"]
    assert ">never-run</span>" in schedules["weekly"]["state"]
    assert ">ok</span>" in schedules["nightly"]["state"]
    nightly = schedules["nightly"]
    assert nightly["schedule"] == "every 86400 s" and nightly["grace"] == "600 s"
    assert nightly["last status"] == "failed" and nightly["last start"] and nightly["next expected"]
    assert schedules["weekly"]["last start"] == "" and schedules["weekly"]["zone"] == "UTC"


def test_alert_and_schedule_queries_link_and_judge(alerts_client):
    c = alerts_client
    html = c.get("/alerts/open_alerts").text
    assert f'<a class="te-trace" href="/-/trace/{c.trace_id}">' in html
    assert_escaped(html)
    states = {
        r["task_slug"]: r["state"] for r in rows(c, "/alerts/schedule_health.json?_shape=objects")
    }
    assert states == {"hourly": "missed", "weekly": "never-run", "nightly": "ok"}
    later = rows(
        c,
        "/alerts/schedule_health.json?_shape=objects&now="
        + quote((datetime.now(UTC) + timedelta(hours=22, minutes=5)).isoformat()),
    )
    assert {r["task_slug"]: r["state"] for r in later}["nightly"] == "due"
    history = rows(c, "/alerts/alert_history.json?_shape=objects")
    assert {(r["kind"], r["opened"], r["still_open"]) for r in history} == {
        ("missed", 1, 1),
        ("new_error", 1, 1),
    }
    home = c.get("/").text
    assert 'href="/alerts/open_alerts"' in home and 'href="/alerts/schedule_health"' in home


def test_home_page_links_to_the_dashboard(client):
    html = client.get("/").text
    assert f'href="/-/dashboards/{DASHBOARD}"' in html
    assert "task_executions_fts" not in client.get("/demo").text.split("hidden")[0]


# -- table page: search, cells --------------------------------------------------------------


def test_full_text_search_from_the_table(client):
    found = rows(client, "/demo/task_executions.json?_shape=objects&_search=refused")
    assert found
    for r in found:
        assert "refused" in f"{r['content']} {r['error_message']}".lower()
    html = client.get("/demo/task_executions?_search=refused").text
    assert 'name="_search"' in html and "refused" in html


def test_cells_render_status_trace_link_and_stack(client, demo_db):
    with sqlite3.connect(demo_db) as conn:
        row_id, trace_id = conn.execute(
            "SELECT id, trace_id FROM task_executions WHERE status = 'failed' "
            "AND stack_trace IS NOT NULL AND retrieval_sources IS NOT NULL LIMIT 1"
        ).fetchone()
    table = client.get(f"/demo/task_executions?trace_id={trace_id}").text
    short = (
        f'<span class="te-short" title="{trace_id}">{trace_id[:8]}\u2026</span>'
        f'<span class="te-full">{trace_id}</span>'
    )
    assert f'<a class="te-trace" href="/-/trace/{trace_id}">{short}</a>' in table
    assert '<span class="te-status te-status-failed">failed</span>' in table
    assert "/-/taskexec/static/taskexec.css" in table
    row = client.get(f"/demo/task_executions/{row_id}").text
    assert '<pre class="te-stack">Traceback' in row
    assert '<code class="te-chip">' in row  # retrieval_sources as chips, not raw JSON
    assert re.search(r'href="/demo/task_executions\?stack_hash=[0-9a-f]+"', row)
    css = client.get("/-/taskexec/static/taskexec.css")
    assert css.status_code == 200 and ".te-status-failed" in css.text


def test_canned_query_cells_link_rows_and_traces(client):
    html = client.get("/demo/recent_failures").text
    assert re.search(r'<a href="/demo/task_executions/\d+">\d+</a>', html)
    assert re.search(r'<a class="te-trace" href="/-/trace/[0-9a-f]{32}">', html)


HUMAN_FIRST = ["task_slug", "status", "started_at", "duration_ms", "attempt", "trace_id"]


def test_executions_table_puts_people_first(client):
    """After the row link: what ran, how it ended, when, how long, which attempt, the run and
    the error; hex ids and the idempotency key last, short, whole on hover."""
    html = client.get("/demo/task_executions?_size=5").text
    heads = re.findall(r'scope="col" data-column="([a-z_]+)"', html)
    assert heads[: len(HUMAN_FIRST) + 3] == ["id", *HUMAN_FIRST, "error_type", "error_message"]
    assert heads[-4:] == ["span_id", "parent_span_id", "retry_of", "idempotency_key"]
    assert 'title="SHA-256 of (task_id' in html  # a column's meaning on its header
    keys = re.findall(
        r'<td class="col-idempotency_key type-str"><span class="te-hash">'
        r'<span class="te-short" title="([0-9a-f]{64})">([0-9a-f]{8})\u2026',
        html,
    )
    assert len(keys) == 5 and all(full.startswith(short) for full, short in keys)
    # Facets show a few values each, so the rows start on the first screen.
    task_facet = html.split('id="facet-task_slug"')[1].split("</ul>")[0]
    assert task_facet.count("<li><a ") == 5 and 'class="facet-truncated"' in task_facet
    # Choosing columns still works and keeps the order.
    picked = client.get("/demo/task_executions?_col=trace_id&_col=status&_size=1").text
    assert re.findall(r'scope="col" data-column="([a-z_]+)"', picked) == [
        "id",
        "status",
        "trace_id",
    ]


def test_row_page_is_a_readable_record(client, demo_db):
    with sqlite3.connect(demo_db) as conn:
        row_id, trace_id, key = conn.execute(
            "SELECT id, trace_id, idempotency_key FROM task_executions "
            "WHERE status = 'failed' AND stack_trace IS NOT NULL LIMIT 1"
        ).fetchone()
    html = client.get(f"/demo/task_executions/{row_id}").text
    assert '<table class="te-record">' in html
    fields = re.findall(r'<tr class="te-field col-[a-z_]+" data-column="([a-z_]+)">', html)
    assert fields[: len(HUMAN_FIRST) + 1] == ["id", *HUMAN_FIRST]
    assert len(fields) == len(set(fields)) == 31  # every column, once
    assert "When the attempt started (UTC, ISO-8601, microseconds).</small>" in html
    assert f'<span class="te-full">{trace_id}</span>' in html  # whole values on this page
    assert f'<span class="te-full">{key}</span>' in html
    css = client.get("/-/taskexec/static/taskexec.css").text
    assert "body.row .te-full { display: inline; }" in css


def test_error_groups_show_short_hashes(client):
    html = client.get("/demo/error_groups?_size=3").text
    heads = re.findall(r'scope="col" data-column="([a-z_]+)"', html)
    assert heads[:4] == ["stack_hash", "error_type", "sample_message", "occurrences"]
    links = re.findall(
        r'<td class="col-stack_hash type-pk"><a href="/demo/error_groups/([0-9a-f]{64})">'
        r'<span class="te-short" title="([0-9a-f]{64})">([0-9a-f]{8})\u2026</span>',
        html,
    )
    assert len(links) == 3 and all(a == b and a.startswith(c) for a, b, c in links)


def test_database_page_is_ordered_and_described(client):
    html = client.get("/demo").text
    assert 'href="/-/dashboards/task-health"><strong>Task health dashboard</strong>' in html
    groups = re.findall(r'<h3 class="te-query-group">([^<]+)</h3>', html)
    assert groups[0] == "What needs attention" and len(groups) >= 3
    listed = re.findall(r'<dt><a href="/demo/([a-z_]+)">', html)
    assert sorted(listed) == sorted(p.name for p in probes.all_probes())
    assert listed[:3] == ["open_alerts", "schedule_health", "recent_failures"]
    assert "<dd>The latest failed, timed-out or abandoned attempts" in html
    assert html.index('id="queries"') < html.index('id="tables"')


def test_plugin_leaves_other_databases_alone(tmp_path):
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, status TEXT, trace_id TEXT)")
        conn.execute("INSERT INTO jobs (status, trace_id) VALUES ('failed', ?)", ("a" * 32,))
    c = Client(other)
    try:
        html = c.get("/other/jobs").text
        row = c.get("/other/jobs/1").text
        database = c.get("/other").text
        query = c.get("/other?sql=select+1").text
    finally:
        c.close()
    assert "te-status" not in html and "/-/trace/" not in html and "taskexec.css" not in html
    assert "te-record" not in row and "te-query-group" not in database
    assert "Custom SQL query" in query and "te-params" not in query


# -- the trace page -------------------------------------------------------------------------


def test_trace_page_lists_attempts_in_order(client, demo_db):
    with sqlite3.connect(demo_db) as conn:
        trace_id = conn.execute(
            "SELECT trace_id FROM task_executions WHERE attempt = 3 LIMIT 1"
        ).fetchone()[0]
        expected = conn.execute(
            "SELECT id, span_id, status FROM task_executions WHERE trace_id = ? ORDER BY attempt",
            (trace_id,),
        ).fetchall()
    response = client.get(f"/-/trace/{trace_id}")
    assert response.status_code == 200
    html = response.text
    assert re.findall(r'data-attempt="(\d+)"', html) == ["1", "2", "3"]
    spans = re.findall(r'data-span-id="([0-9a-f]{16})"', html)
    assert spans == [span for _, span, _ in expected]
    for row_id, _, _ in expected:
        assert f'href="/demo/task_executions/{row_id}"' in html
    assert html.count("te-bar te-bar-") == 3
    assert f"/demo/task_executions?trace_id={trace_id}" in html
    # Upper case is the same W3C id.
    assert client.get(f"/-/trace/{trace_id.upper()}").status_code == 200


@pytest.mark.parametrize(
    "bad", ["nope", "1234", "g" * 32, "0" * 32, "%3Cscript%3Ealert(1)%3C%2Fscript%3E"]
)
def test_malformed_trace_id_is_400_with_a_message(client, bad):
    response = client.get(f"/-/trace/{bad}")
    assert response.status_code == 400
    assert "is not a trace id" in response.text and "32 hexadecimal" in response.text
    assert "<script>alert(1)" not in response.text


def test_unknown_trace_id_is_404(client):
    response = client.get("/-/trace/" + "ab" * 16)
    assert response.status_code == 404
    assert "No attempt has trace id" in response.text
    assert 'href="/demo/task_executions"' in response.text


# -- escaping -------------------------------------------------------------------------------


def assert_escaped(html: str) -> None:
    assert HOSTILE not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_hostile_text_is_escaped_everywhere(hostile_client):
    c = hostile_client
    trace = c.get(f"/-/trace/{c.trace_id}")
    assert trace.status_code == 200 and 'data-attempt="2"' in trace.text
    assert "succeeded on attempt 2 of 2" in trace.text
    for path in (
        "/hostile/task_executions",
        "/hostile/task_executions/1",
        "/hostile/recent_failures",
        "/hostile/error_groups",
        f"/-/trace/{c.trace_id}",
        "/hostile/task_executions?_search=summary",
    ):
        response = c.get(path)
        assert response.status_code == 200, path
        assert_escaped(response.text)


# -- pure helpers ---------------------------------------------------------------------------


def test_timeline_places_attempts_on_one_axis():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def at(seconds: float) -> str:
        return (t0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def attempt(n: int, status: str, start: float, end: float | None) -> dict:
        duration = None if end is None else (end - start) * 1000
        return {
            "attempt": n,
            "status": status,
            "task_slug": "t",
            "started_at": at(start),
            "ended_at": None if end is None else at(end),
            "duration_ms": duration,
        }

    attempts = [
        attempt(1, "failed", 0, 2),
        attempt(2, "failed", 6, 8),
        attempt(3, "running", 10, None),
    ]
    view = timeline(attempts)
    bars = view["attempts"]
    assert [b["left_pct"] for b in bars] == [0.0, 60.0, 100.0]
    assert bars[0]["width_pct"] == 20.0 and bars[2]["width_pct"] == 0.4
    assert bars[0]["wait_ms"] is None and bars[1]["wait_ms"] == 4000.0
    assert view["outcome"] == "still running (attempt 3 of 3)"
    assert view["wall_text"] == "10.0 s"


def test_outcome_and_human_ms():
    ok = [{"attempt": 1, "status": "failed"}, {"attempt": 2, "status": "success"}]
    assert outcome(ok) == "succeeded on attempt 2 of 2"
    assert outcome([{"attempt": 1, "status": "timeout"}]) == "timeout after 1 attempt"
    assert [human_ms(x) for x in (None, 12.4, 1500, 125_000)] == [
        "\u2014",
        "12 ms",
        "1.5 s",
        "2 min 05 s",
    ]


# -- serve refuses bad databases ------------------------------------------------------------


def test_serve_missing_database(tmp_path):
    result = CliRunner().invoke(cli, ["serve", str(tmp_path / "nope.db")])
    assert result.exit_code == 1
    assert "no database at" in result.output and "taskexec demo" in result.output
    assert "Traceback" not in result.output


def test_serve_foreign_sqlite_database(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE foo (x)")
    result = CliRunner().invoke(cli, ["serve", str(path)])
    assert result.exit_code == 1 and "not a taskexec database" in result.output


def test_serve_not_sqlite(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("hello, this is not a database\n" * 100)
    result = CliRunner().invoke(cli, ["serve", str(path)])
    assert result.exit_code == 1 and "not a usable SQLite database" in result.output


def test_serve_port_in_use(demo_db):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", str(demo_db), "--port", str(port)])
    assert result.exit_code == 1 and f"port {port}" in result.output and "in use" in result.output


def test_a_server_keeps_what_it_loaded_out_of_the_cyclic_gc(demo_db):
    """Startup freezes the heap (gc.freeze): a full collection over a server's ~125,000
    long-lived objects paused one request in 20 to 40 by 66-76 ms."""
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    c = Client(demo_db)
    try:
        assert c.get("/demo/headline.json").status_code == 200
        assert gc.get_freeze_count() > 50_000
    finally:
        c.close()
