"""The Datasette metadata: generated from the probes, committed file current, dashboard complete."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import yaml
from click.testing import CliRunner

from taskexec import probes
from taskexec.cli import cli
from taskexec.faces.datasette.metadata import (
    DASHBOARD,
    HIDDEN_TABLES,
    build_metadata,
    canned_query,
    query_groups,
    to_yaml,
)
from taskexec.probes.charts import pin_default, task_filtered

ROOT = Path(__file__).resolve().parents[1]


def test_committed_metadata_yml_is_current():
    committed = ROOT.joinpath("metadata.yml").read_text(encoding="utf-8")
    assert committed == to_yaml(build_metadata()), (
        "metadata.yml is stale: regenerate it with `taskexec metadata > metadata.yml`"
    )


def test_cli_prints_the_same_yaml():
    result = CliRunner().invoke(cli, ["metadata"])
    assert result.exit_code == 0, result.output
    assert result.output == to_yaml(build_metadata())
    named = CliRunner().invoke(cli, ["metadata", "--database", "demo"])
    assert "databases:\n  demo:\n" in named.output


def test_yaml_round_trips_and_is_deterministic():
    text = to_yaml(build_metadata("x"))
    assert text == to_yaml(build_metadata("x"))
    assert yaml.safe_load(text) == build_metadata("x")
    assert "sql: |" in text  # the SQL is readable as a block, not one escaped line


def test_queries_are_listed_most_useful_first():
    """The database page lists them in QUERY_GROUPS order; a new probe lands under "More"."""
    names = list(build_metadata("db")["databases"]["db"]["queries"])
    grouped = [name for _, group in query_groups(names) for name in group]
    assert names == grouped
    assert names[:3] == ["open_alerts", "schedule_health", "recent_failures"]
    assert query_groups(["zz_new", "headline"])[-1] == ("More", ["zz_new"])


def test_every_probe_is_a_canned_query_with_its_sql_verbatim():
    queries = build_metadata("db")["databases"]["db"]["queries"]
    assert set(queries) == {p.name for p in probes.all_probes()}
    for probe in probes.all_probes():
        query = queries[probe.name]
        assert query["sql"] == probe.sql
        assert query["title"] == probe.title
        assert query.get("params", []) == [p.name for p in probe.params]
        for p in probe.params:
            assert p.name in query["description"]


def test_canned_query_describes_defaults():
    query = canned_query(probes.get("error_patterns"))
    assert "(default 7d)" in query["description"] and "(default 50)" in query["description"]


def test_tables_search_sort_facets_and_hidden():
    tables = build_metadata("db")["databases"]["db"]["tables"]
    executions = tables["task_executions"]
    assert executions["fts_table"] == "task_executions_fts" and executions["fts_pk"] == "id"
    assert executions["sort_desc"] == "started_at"
    # Counted from the rollups (plugin.RollupFacet), so they cost nothing at any size.
    assert executions["facets"] == [{"rollup": "status"}, {"rollup": "task_slug"}]
    assert executions["size"] == 50
    assert {"trace_id", "stack_hash", "status", "idempotency_key"} <= set(executions["columns"])
    assert "occurrences" in tables["error_groups"]["columns"]
    assert tables["alerts"]["sort_desc"] == "opened_at"
    assert tables["alerts"]["facets"] == ["state", "kind", "task_slug"]
    for name in ("_taskexec_migrations", "taskexec_meta", "task_executions_fts"):
        assert name in HIDDEN_TABLES and tables[name] == {"hidden": True}


def test_columns_described_exist_in_the_schema(demo_db):
    tables = build_metadata("db")["databases"]["db"]["tables"]
    with sqlite3.connect(demo_db) as conn:
        for table in ("task_executions", "error_groups", "alerts", "schedules"):
            actual = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            described = set(tables[table]["columns"])
            assert described == actual, f"{table}: {described ^ actual}"


def test_dashboard_has_the_required_charts():
    dash = build_metadata("db")["plugins"]["datasette-dashboards"][DASHBOARD]
    charts = dash["charts"]
    assert dash["title"] == "Task health"
    metrics = {c["display"]["field"] for c in charts.values() if c["library"] == "metric"}
    assert {"attempts", "failure_rate", "new_error_patterns"} <= metrics
    lite = {k: c for k, c in charts.items() if c["library"] == "vega-lite"}
    fields = {k: str(c["display"]) for k, c in lite.items()}
    assert any("failure_rate" in f and "'day'" in f for f in fields.values())  # rate over time
    assert any("'percentile'" in f and "'ms'" in f for f in fields.values())  # durations over time
    assert "p50_ms" in charts["duration-per-day"]["query"]
    assert "p95_ms" in charts["duration-per-day"]["query"]
    assert any("'attempts'" in f and "'day'" in f for f in fields.values())  # runs over time
    assert "top-errors" in charts
    assert charts["open-alerts"]["library"] == "metric"
    assert charts["open-alerts"]["display"]["field"] == "open_alerts"
    tables = {k for k, c in charts.items() if c["library"] == "table"}
    assert tables == {"open-alerts-table", "scheduled-tasks"}
    # What needs attention now sits right under the headline numbers.
    assert dash["layout"][1] == ["open-alerts", *["open-alerts-table"] * 3]
    assert dash["layout"][2] == ["scheduled-tasks"] * 4
    assert all(len(row) == 4 for row in dash["layout"])
    laid_out = {slug for row in dash["layout"] for slug in row}
    assert laid_out == set(charts)
    assert dash["filters"]["since"]["default"] == "7d"


def test_every_chart_query_is_built_from_a_probe():
    dash = build_metadata("db")["plugins"]["datasette-dashboards"][DASHBOARD]
    bodies = {p.name: p.sql for p in probes.all_probes()}
    # Headline tiles pin the window, alert panels the task (they show every task, like the
    # tiles), top lists their length; trend charts read "all tasks" from the task filter.
    variants = []
    for probe in probes.all_probes():
        names = [p.name for p in probe.params]
        for size in range(len(names) + 1):
            for pinned in itertools.combinations(names, size):
                sql = pin_default(probe.sql, *pinned)
                variants += [sql, task_filtered(sql)]
    for slug, chart in dash["charts"].items():
        if "query" not in chart:
            continue
        assert chart["db"] == "db"
        assert any(sql in chart["query"] for sql in variants), slug
    assert bodies["task_list"] in dash["filters"]["task_slug"]["query"]


def test_alert_tables_escape_and_always_answer_a_row(tmp_path):
    """datasette-dashboards sets table cells as HTML and reads the headers from the first row:
    the alert tables escape every value and say "none" in a row of their own."""
    from taskexec.db import Store, awareness

    path = tmp_path / "t.db"
    Store(path).close()
    dash = build_metadata("db")["plugins"]["datasette-dashboards"][DASHBOARD]
    alerts_sql = dash["charts"]["open-alerts-table"]["query"]
    schedules_sql = dash["charts"]["scheduled-tasks"]["query"]
    with sqlite3.connect(path) as conn:
        none = conn.execute(alerts_sql, {"since": "7d", "task_slug": ""}).fetchall()
        assert len(none) == 1 and "No open alerts" in none[0][2]
        no_schedule = conn.execute(schedules_sql, {"now": ""}).fetchall()
        assert len(no_schedule) == 1 and "taskexec schedule add" in no_schedule[0][0]
    hostile = '<b onclick="x()">&</b>'
    with Store(path) as store:
        awareness.apply_findings(
            store,
            [
                {
                    "kind": "late",
                    "task_slug": "t",
                    "alert_key": str(i),
                    "since": None,
                    "title": hostile,
                    "detail": hostile,
                    "trace_id": f'"><script>{i}',
                }
                for i in range(20)
            ],
            "2026-11-20T10:00:00.000000Z",
        )
    with sqlite3.connect(path) as conn:
        shown = conn.execute(alerts_sql, {"task_slug": "other"}).fetchall()  # the task is pinned
    assert len(shown) == 15
    text = repr(shown)
    assert "<b" not in text and "<script" not in text and 'onclick="' not in text
    assert "&lt;b onclick=&quot;x()&quot;&gt;&amp;&lt;/b&gt;" in text
    assert "&quot;&gt;&lt;script&gt;" in shown[0][4]


def test_pin_default_replaces_only_that_parameter(demo_db):
    from taskexec.db.connection import connect

    sql = probes.get("daily_trend").sql
    pinned = pin_default(sql, "since")
    assert ":since" not in pinned and ":task_slug" in pinned
    conn = connect(str(demo_db), readonly=True)  # taskexec's connection: te_since is defined
    try:
        params = {"task_slug": "sync_inbox"}
        expected = conn.execute(sql, {"since": None, **params}).fetchall()
        assert [tuple(r) for r in conn.execute(pinned, params)] == [tuple(r) for r in expected]
    finally:
        conn.close()


def test_home_links_use_the_database_name():
    html = build_metadata("my db")["description_html"]
    assert 'href="/my~20db/task_executions"' in html
    assert f'href="/-/dashboards/{DASHBOARD}"' in html


def test_docs_list_every_canned_query():
    docs = ROOT.joinpath("docs", "datasette.md").read_text(encoding="utf-8")
    missing = [p.name for p in probes.all_probes() if f"| `{p.name}` |" not in docs]
    assert not missing, f"docs/datasette.md does not describe: {missing}"
