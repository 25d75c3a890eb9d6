"""The executions table page at any size: its count and its status and task facets come from the
rollups (or the search index), never from a scan, and they equal what SQL counts on the rows."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from datasette.tracer import capture_traces

from taskexec.db.store import Store, execution_counts, search_count
from taskexec.faces.datasette.pages import CountPlan, count_plan
from taskexec.faces.datasette.plugin import make_datasette
from taskexec.model import STATUSES


class Pages:
    """Datasette in process over one database; each page with the SQL it ran."""

    def __init__(self, db: Path) -> None:
        self.ds = make_datasette(db)
        self.loop = asyncio.new_event_loop()

    def get(self, path: str) -> tuple[str, list[str]]:
        async def fetch() -> tuple[str, list[str]]:
            traces: list[dict[str, Any]] = []
            with capture_traces(traces):
                response = await self.ds.client.get(path)
            assert response.status_code == 200, response.text[:500]
            return response.text, [t["sql"] for t in traces if t.get("type") == "sql"]

        return self.loop.run_until_complete(fetch())


@pytest.fixture(scope="module")
def pages(demo_db: Path) -> Iterator[Pages]:
    p = Pages(demo_db)
    yield p
    p.loop.close()


def sql(db: Path, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(query, params).fetchall()


def shown_count(html: str) -> int | None:
    match = re.search(r"<h3>\s*([\d,]+) rows?", html)
    return int(match.group(1).replace(",", "")) if match else None


def facet(html: str, column: str) -> dict[str, int]:
    """The values and counts a facet shows (selected ones included)."""
    if f'id="facet-{column}"' not in html:
        return {}
    block = html.split(f'id="facet-{column}"')[1].split("</ul>")[0]
    found = re.findall(r"<li>(?:<a [^>]*>)?([\w-]+)(?:</a>)?\s*(?:&middot;)?\s*([\d,]+)", block)
    return {value: int(count.replace(",", "")) for value, count in found}


def scans(queries: list[str]) -> list[str]:
    """Queries that count or group the executions themselves (what the rollups replace)."""
    return [
        q
        for q in queries
        if "task_executions" in q
        and re.search(r"count\(\*\)|group by", q, re.I)
        and "task_executions_fts" not in q
    ]


# -- the plan ------------------------------------------------------------------------------------


def test_count_plan_reads_status_and_task_filters() -> None:
    assert count_plan([]) == CountPlan()
    assert count_plan([("_sort", "id"), ("_next", "5"), ("_size", "3")]) == CountPlan()
    assert count_plan([("status", "failed")]) == CountPlan(statuses=frozenset({"failed"}))
    assert count_plan([("status__exact", "failed"), ("task_slug", "a")]) == CountPlan(
        statuses=frozenset({"failed"}), tasks=frozenset({"a"})
    )
    assert count_plan([("status__in", "failed,timeout")]) == CountPlan(
        statuses=frozenset({"failed", "timeout"})
    )
    assert count_plan([("task_slug__in", '["a", "b"]')]) == CountPlan(tasks=frozenset({"a", "b"}))
    assert count_plan([("status__not", "success")]) == CountPlan(
        statuses=frozenset(STATUSES) - {"success"}
    )
    assert count_plan([("status__notin", "success,failed"), ("status", "failed")]) == CountPlan(
        statuses=frozenset()
    )
    assert count_plan([("_search", 'timed "out')]) == CountPlan(search='"timed" "out"')


@pytest.mark.parametrize(
    "pairs",
    [
        [("error_type", "KeyError")],
        [("status", "failed"), ("status", "timeout")],  # Datasette ANDs repeats
        [("task_slug__not", "a")],
        [("status__gt", "a")],
        [("_search", "timed"), ("status", "failed")],
        [("_search", " ")],
        [("_search_content", "x")],
        [("_where", "1")],
        [("_searchmode", "raw"), ("_search", "x")],
        [("task_slug__in", "[1")],
    ],
)
def test_count_plan_leaves_the_rest_to_datasette(pairs: list[tuple[str, str]]) -> None:
    assert count_plan(pairs) is None


# -- the counts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "tasks"),
    [
        (None, None),
        ({"failed"}, None),
        (None, {"sync_inbox"}),
        ({"failed", "timeout"}, {"sync_inbox", "send_digest"}),
        ({"cancelled"}, {"no_such_task"}),
    ],
)
def test_execution_counts_equal_the_rows(
    demo_db: Path, statuses: set[str] | None, tasks: set[str] | None
) -> None:
    where, params = [], []
    if statuses is not None:
        where.append(f"status IN ({', '.join('?' * len(statuses))})")
        params += sorted(statuses)
    if tasks is not None:
        where.append(f"task_slug IN ({', '.join('?' * len(tasks))})")
        params += sorted(tasks)
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    by_status = dict(
        sql(demo_db, f"SELECT status, count(*) FROM task_executions {clause} GROUP BY 1", *params)
    )
    by_task = dict(
        sql(
            demo_db, f"SELECT task_slug, count(*) FROM task_executions {clause} GROUP BY 1", *params
        )
    )
    with Store.open_readonly(demo_db) as store:
        counts = store.execution_counts(statuses=statuses, tasks=tasks)
        assert store.rollup_count(statuses=statuses, tasks=tasks) == counts.total
    assert counts.by_status == by_status and counts.by_task == by_task
    assert counts.total == sum(by_status.values())
    assert list(counts.by_task.values()) == sorted(counts.by_task.values(), reverse=True)


def test_search_count_equals_the_rows(demo_db: Path) -> None:
    with sqlite3.connect(f"file:{demo_db}?mode=ro", uri=True) as conn:
        found = search_count(conn, '"refused"')
        expected = conn.execute(
            "SELECT count(*) FROM task_executions WHERE lower(coalesce(content, '') || ' ' || "
            "coalesce(error_message, '')) LIKE '%refused%'"
        ).fetchone()[0]
        assert found == expected > 0
        assert (
            execution_counts(conn).total
            == conn.execute("SELECT count(*) FROM task_executions").fetchone()[0]
        )


# -- the page ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "where", "params"),
    [
        ("", "", ()),
        ("?status=failed", "WHERE status = ?", ("failed",)),
        ("?task_slug=sync_inbox&_sort=duration_ms", "WHERE task_slug = ?", ("sync_inbox",)),
        (
            "?status__in=failed,timeout&task_slug=sync_inbox",
            "WHERE status IN ('failed', 'timeout') AND task_slug = ?",
            ("sync_inbox",),
        ),
    ],
)
def test_table_page_counts_from_the_rollups(
    pages: Pages, demo_db: Path, query: str, where: str, params: tuple[str, ...]
) -> None:
    html, queries = pages.get(f"/demo/task_executions{query}")
    assert scans(queries) == [], "the page counted or grouped the rows themselves"
    total = sql(demo_db, f"SELECT count(*) FROM task_executions {where}", *params)[0][0]
    assert shown_count(html) == total
    for column in ("status", "task_slug"):
        expected = sql(
            demo_db,
            f"SELECT {column}, count(*) FROM task_executions {where} GROUP BY 1 "
            "ORDER BY 2 DESC, 1 LIMIT 5",
            *params,
        )
        assert facet(html, column) == dict(expected)
    assert "_nocount" not in html  # the page's links are the page's own
    assert "te-facet-note" not in html


def test_facet_links_filter_and_unfilter(pages: Pages) -> None:
    html, _ = pages.get("/demo/task_executions?status=failed")
    block = html.split('id="facet-task_slug"')[1].split("</ul>")[0]
    assert "task_executions?status=failed&amp;task_slug=" in block
    status = html.split('id="facet-status"')[1].split("</ul>")[0]
    assert "failed &middot;" in status and 'href="http://localhost/demo/task_executions"' in status
    everything, _ = pages.get("/demo/task_executions?_facet_size=max")
    assert len(facet(everything, "task_slug")) > 5


def test_json_keeps_datasettes_count_and_gets_rollup_facets(pages: Pages, demo_db: Path) -> None:
    async def fetch() -> dict[str, Any]:
        r = await pages.ds.client.get("/demo/task_executions.json?status=failed&_size=1")
        return dict(r.json())

    data = pages.loop.run_until_complete(fetch())
    failed = sql(demo_db, "SELECT count(*) FROM task_executions WHERE status = 'failed'")[0][0]
    assert data["filtered_table_rows_count"] == failed
    results = data["facet_results"]
    assert results["status"]["type"] == "column"
    assert results["status"]["results"][0]["count"] == failed


def test_search_is_counted_from_the_index_and_newest_first(pages: Pages, demo_db: Path) -> None:
    html, queries = pages.get("/demo/task_executions?_search=refused")
    assert not [q for q in queries if q.lower().startswith("select count(*) from task_executions")]
    expected = sql(
        demo_db,
        "SELECT id FROM task_executions WHERE rowid IN (SELECT rowid FROM task_executions_fts "
        "WHERE task_executions_fts MATCH '\"refused\"') ORDER BY id DESC",
    )
    assert shown_count(html) == len(expected) > 0
    assert "sorted by id descending" in html
    ids = [
        int(i) for i in re.findall(r'<td class="col-id type-pk"><a href="[^"]*">(\d+)</a>', html)
    ]
    assert ids == [r[0] for r in expected[: len(ids)]] and ids
    # The status and task counts of a search are a click away (a scan: Datasette's facet).
    note = re.search(r'<p class="te-facet-note">.*?</p>', html, re.S)
    assert note and "_facet=status" in note.group(0) and "_facet=task_slug" in note.group(0)
    faceted, _ = pages.get("/demo/task_executions?_search=refused&_facet=status")
    assert sum(facet(faceted, "status").values()) == len(expected)
    # A sort the person chose stays theirs.
    chosen, _ = pages.get("/demo/task_executions?_search=refused&_sort=started_at")
    assert "sorted by started_at" in chosen


def test_other_filters_are_counted_by_datasette(pages: Pages, demo_db: Path) -> None:
    html, queries = pages.get("/demo/task_executions?error_type=KeyError")
    assert [q for q in queries if q.lower().startswith("select count(*)")]
    expected = sql(demo_db, "SELECT count(*) FROM task_executions WHERE error_type = 'KeyError'")
    assert shown_count(html) == expected[0][0]
    assert "te-facet-note" in html and 'id="facet-status"' not in html


def test_asked_nocount_is_kept(pages: Pages) -> None:
    html, queries = pages.get("/demo/task_executions?_nocount=1&error_type=KeyError")
    assert not [q for q in queries if q.lower().startswith("select count(*)")]
    assert shown_count(html) is None
