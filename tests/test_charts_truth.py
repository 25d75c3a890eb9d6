"""Charts that tell the truth (issue 16, point 5), in the report and on the dashboard, each on a
hand-built database whose answers are known by construction:

- retries: every task is drawn, tasks whose retries never recovered at 0%, and the overall
  rate in the title is the one of the bars drawn;
- time axes: a one-day database is one labelled day, November is never labelled December, a
  year boundary is said once;
- rate axes never repeat a label and every label is its tick's value; count axes are whole;
- the day (and hour) in progress is drawn apart: hollow, faded or hatched, never as a whole day;
- the duration legend shows line styles, percentiles say they are within ±1%;
- error groups are named by what they say, with the hash on hover;
- the dashboard's task filter lists the tasks under "all tasks", and its text is for users.

The report's figures are real matplotlib figures (and the notebooks run in a real kernel); the
dashboard's are Datasette's real chart queries and, in headless Chromium, the real dashboard
page drawn by its own Vega-Lite as SVG.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import matplotlib.dates as mdates
import nbformat
import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from test_browser import chromium, serving

from taskexec.db import Store
from taskexec.faces.datasette.metadata import DASHBOARD, dashboard
from taskexec.faces.datasette.plugin import make_datasette
from taskexec.faces.jupyter import analysis, plots, report
from taskexec.model import TaskExecution, new_span_id, new_trace_id
from taskexec.probes import charts

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

DAY = datetime(2026, 11, 20, tzinfo=UTC)  # a Friday long over, so no day of it is "today"
SINCE = "2026-10-01T00:00:00Z"
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def run(slug: str, at: datetime, status: str = "success", **fields) -> TaskExecution:
    """One attempt; failures carry an error (ValueError "bad value" unless given)."""
    if status != "success" and "error_type" not in fields:
        fields.update(error_type="ValueError", error_message="bad value")
    fields.setdefault("duration_ms", 100.0)
    return TaskExecution(task_slug=slug, started_at=at, status=status, **fields)


def retried(slug: str, outcomes: list[str], at: datetime) -> list[TaskExecution]:
    """The attempts of one run (one trace), each retrying the one before."""
    trace, previous, out = new_trace_id(), None, []
    for number, status in enumerate(outcomes, start=1):
        span = new_span_id()
        out.append(
            run(
                slug,
                at + timedelta(minutes=number),
                status,
                trace_id=trace,
                span_id=span,
                attempt=number,
                retry_of=previous,
            )
        )
        previous = span
    return out


def build(path: Path, records: list[TaskExecution]) -> Path:
    with Store(path) as store:
        store.append_many(records)
    return path


@pytest.fixture
def opened(tmp_path):
    """``opened(records)``: a read-only store over a new database holding ``records``."""
    stores: list[Store] = []

    def make(records: list[TaskExecution]) -> Store:
        path = build(tmp_path / f"db{len(stores)}.db", records)
        stores.append(Store.open_readonly(path))
        return stores[-1]

    yield make
    for store in stores:
        store.close()


def drawn(fig: Figure) -> Figure:
    FigureCanvasAgg(fig).draw()  # ticks, legends and layout are settled by a real draw
    return fig


def xlabels(ax) -> list[str]:
    return [t.get_text() for t in ax.get_xticklabels()]


def ylabels(ax) -> list[str]:
    return [t.get_text() for t in ax.get_yticklabels()]


def panels(fig: Figure) -> list:
    return [ax for ax in fig.axes if ax.get_visible() and ax.axison]


def legend_texts(fig: Figure) -> list[str]:
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    return [t.get_text() for legend in legends for t in legend.get_texts()]


def assert_truthful_percent(labels: list[str], ticks: list[float]) -> None:
    """Every label differs and says its tick's value."""
    shown = [lab for lab in labels if lab]
    assert len(shown) == len(set(shown)), labels
    for label, tick in zip(labels, ticks, strict=True):
        assert label.endswith("%"), label
        decimals = len(label[:-1].partition(".")[2])
        assert float(label[:-1]) == pytest.approx(100 * tick, abs=0.51 * 10**-decimals), label
        assert round(100 * tick, decimals) == pytest.approx(100 * tick, abs=1e-9), (label, tick)


def assert_whole(labels: list[str]) -> None:
    assert labels and all(re.fullmatch(r"[−-]?\d+", lab) for lab in labels), labels


# -- retries: every task, and the overall rate of what is drawn --------------------------------


def three_tasks_one_recovery() -> list[TaskExecution]:
    """alpha's retry recovered, beta's and gamma's never did, delta never needed one."""
    return (
        retried("alpha", ["failed", "success"], DAY)
        + retried("beta", ["failed", "failed"], DAY + timedelta(hours=1))
        + retried("gamma", ["timeout", "failed", "failed"], DAY + timedelta(hours=2))
        + retried("delta", ["success"], DAY + timedelta(hours=3))
    )


def test_retry_probe_says_zero_for_no_recovery_and_null_for_no_retry(opened):
    retries = analysis.retry_outcomes(opened(three_tasks_one_recovery()), SINCE)
    rate = dict(zip(retries["task_slug"].astype(str), retries["retry_recovery_rate"], strict=True))
    assert rate["alpha"] == 1.0 and rate["beta"] == 0.0 and rate["gamma"] == 0.0
    assert pd.isna(rate["delta"])
    assert analysis.overall_recovery(retries) == pytest.approx(1 / 3)


def test_retry_chart_draws_every_task_under_a_consistent_title(opened):
    retries = analysis.retry_outcomes(opened(three_tasks_one_recovery()), SINCE)
    fig = drawn(plots.retry_recovery(retries))
    (ax,) = panels(fig)
    assert sorted(ylabels(ax)) == ["alpha", "beta", "delta", "gamma"]
    bars = {}
    for label, text in zip(ylabels(ax), [t.get_text().strip() for t in ax.texts], strict=True):
        bars[label] = text
    assert bars == {
        "alpha": "1 of 1 (100%)",
        "beta": "0 of 1 (0%)",
        "gamma": "0 of 1 (0%)",
        "delta": "no retries",
    }
    # The title counts the bars drawn: 1 recovered of the 3 retried runs.
    assert ax.get_title().endswith("1 of 3 retried runs eventually succeeded (33%)")
    drawn_recovered = sum(p.get_width() for p in ax.patches if p.get_facecolor()[1] > 0.4)
    assert drawn_recovered == 1
    assert_whole(xlabels(ax))  # retried runs: 0, 1, 2, never 0.2


# -- time axes -----------------------------------------------------------------------------------


def one_day() -> list[TaskExecution]:
    return [
        run(slug, DAY + timedelta(hours=h), "failed" if h % 4 == 0 else "success")
        for slug in ("alpha", "beta", "gamma")
        for h in range(0, 24, 2)
    ]


def day_figures(store: Store) -> dict[str, Figure]:
    since = analysis.data_window(store)
    groups = analysis.top_error_groups(store, since, limit=50)
    return {
        "failure rate": plots.failure_rate_over_time(analysis.failure_rate(store, since)),
        "percentiles": plots.percentiles_over_time(analysis.duration_percentiles(store, since)),
        "errors": plots.error_groups_stacked(analysis.error_trend(store, since), groups),
    }


def test_a_one_day_database_is_one_labelled_day(opened):
    store = opened(one_day())
    for name, fig in day_figures(store).items():
        for ax in panels(drawn(fig))[:3]:
            assert xlabels(ax) == ["Nov 20\n2026"], name
            assert ax.xaxis.get_offset_text().get_text() == "", name
            low, high = ax.get_xlim()
            assert high - low < 2, name  # days: not 2024 to 2029


def test_november_is_labelled_november(opened):
    records = [
        run("alpha", datetime(2026, 11, d, h, tzinfo=UTC), "failed" if h == 9 else "success")
        for d in range(23, 31)
        for h in (9, 15)
    ]
    days = [f"Nov {d}" for d in range(23, 31)]
    for name, fig in day_figures(opened(records)).items():
        ax = panels(drawn(fig))[0]
        labels = xlabels(ax)
        assert labels[0] == "Nov 23\n2026", (name, labels)
        assert all(label.split("\n")[0] in days for label in labels), (name, labels)
        assert ax.xaxis.get_offset_text().get_text() == "", name
    wide = panels(drawn(day_figures(opened(records))["errors"]))[0]  # room for every day
    assert xlabels(wide) == ["Nov 23\n2026", *days[1:]]


def test_a_new_year_is_said_once_where_it_starts(opened):
    records = [
        run("alpha", datetime(2026, 12, 30, 9, tzinfo=UTC) + timedelta(days=d), "failed")
        for d in range(4)
    ]
    store = opened(records)
    errors = drawn(plots.error_groups_stacked(analysis.error_trend(store, SINCE)))
    assert xlabels(panels(errors)[0]) == ["Dec 30\n2026", "Dec 31", "Jan 01\n2027", "Jan 02"]
    panel = drawn(plots.failure_rate_over_time(analysis.failure_rate(store, SINCE)))
    assert xlabels(panels(panel)[0]) == ["Dec 30\n2026", "Jan 01\n2027"]  # a narrow panel


def test_long_windows_tick_every_few_days_weeks_or_months_without_repeats():
    """A small panel has room for three labels: 30 days tick every 14, 200 days every three
    months; a full-width chart ticks every third day and every month."""
    for days, narrow, wide in (
        (30, ["Sep 01\n2026", "Sep 15", "Sep 29"], [f"Sep {d:02d}" for d in range(1, 31, 3)]),
        (
            200,
            ["Sep 01\n2026", "Dec 01", "Mar 01\n2027"],
            ["Sep 01", "Oct 01", "Nov 01", "Dec 01", "Jan 01\n2027", "Feb 01", "Mar 01"],
        ),
    ):
        periods = pd.date_range("2026-09-01", periods=days, freq="D", tz="UTC")
        rates = pd.DataFrame(
            {
                "period": periods,
                "task_slug": "alpha",
                "attempts": 10,
                "failures": 1,
                "failure_rate": 0.1,
            }
        )
        assert xlabels(panels(drawn(plots.failure_rate_over_time(rates)))[0]) == narrow
        trend = pd.DataFrame(
            {"day": periods, "stack_hash": "ab" * 32, "error_group": "E", "failures": 2}
        )
        wide[0] = "Sep 01\n2026"
        assert xlabels(panels(drawn(plots.error_groups_stacked(trend)))[0]) == wide


# -- rate and count axes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failed, total",
    [(1, 400), (1, 8), (3, 25), (2, 3)],
    ids=["quarter-percent", "twelve-and-a-half", "twelve", "two-thirds"],
)
def test_rate_axes_never_repeat_a_label(opened, failed, total):
    records = [
        run("alpha", DAY + timedelta(minutes=i), "failed" if i < failed else "success")
        for i in range(total)
    ]
    records += [run("alpha", DAY - timedelta(days=1) + timedelta(minutes=i)) for i in range(5)]
    store = opened(records)
    fig = drawn(plots.failure_rate_over_time(analysis.failure_rate(store, SINCE)))
    ax = panels(fig)[0]
    assert_truthful_percent(ylabels(ax), list(ax.get_yticks()))
    heat = drawn(plots.failure_heatmap(analysis.failure_rate(store, SINCE, period="hour")))
    bar = heat.axes[-1]  # the colour bar
    assert_truthful_percent(ylabels(bar), list(bar.get_yticks()))


def test_percent_labels_follow_the_tick_spacing():
    fmt = plots.Percent()
    for ticks, want in (
        ([0.11, 0.115, 0.12, 0.125, 0.13], ["11.0%", "11.5%", "12.0%", "12.5%", "13.0%"]),
        ([0.0, 0.05, 0.1], ["0%", "5%", "10%"]),
        ([0.0, 0.025, 0.05], ["0.0%", "2.5%", "5.0%"]),
        ([0.0, 0.0005, 0.001], ["0.00%", "0.05%", "0.10%"]),
    ):
        fmt.set_locs(ticks)
        assert [fmt(t) for t in ticks] == want


def test_counts_on_a_small_database_are_whole_numbers(opened):
    records = [run("alpha", DAY + timedelta(hours=1), "failed")]
    records += [run("alpha", DAY + timedelta(hours=2))]
    records += retried("beta", ["failed", "success"], DAY + timedelta(hours=3))
    store = opened(records)
    errors = drawn(plots.error_groups_stacked(analysis.error_trend(store, SINCE)))
    assert_whole(ylabels(panels(errors)[0]))
    new = drawn(plots.new_error_patterns(analysis.new_error_patterns(store, SINCE)))
    assert_whole(xlabels(panels(new)[0]))
    retries = drawn(plots.retry_recovery(analysis.retry_outcomes(store, SINCE)))
    assert_whole(xlabels(panels(retries)[0]))
    history = pd.DataFrame(
        {
            "day": [pd.Timestamp(DAY)],
            "kind": ["late"],
            "opened": [1],
            "tasks": [1],
            "still_open": [0],
        }
    )
    assert_whole(ylabels(panels(drawn(plots.alerts_per_day(history)))[0]))


# -- the day in progress -------------------------------------------------------------------------


def yesterday_and_today(now: datetime) -> list[TaskExecution]:
    """Two whole-ish days: yesterday 24 runs a task (1 in 4 failed), today 3 so far, all
    failed for alpha: a 100% "spike" that is only the day not being over."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    records = [
        run(
            slug,
            midnight - timedelta(days=1) + timedelta(hours=h),
            "failed" if h % 4 else "success",
        )
        for slug in ("alpha", "beta")
        for h in range(24)
    ]
    # Three runs a task so far today, the last in the hour in progress.
    so_far = [midnight + (now - midnight) / 3, midnight + (now - midnight) / 2]
    # (within the hour in progress even in its first minute, when a minute ago was the last)
    so_far.append(max(now.replace(minute=0, second=0, microsecond=0), now - timedelta(minutes=1)))
    records += [run("alpha", at, "failed") for at in so_far]
    records += [run("beta", at) for at in so_far]
    return records


def hollow_points(ax) -> list[Line2D]:
    return [
        line for line in ax.get_lines() if line.get_markerfacecolor() in ("white", (1, 1, 1, 1))
    ]


def test_today_is_a_hollow_marker_apart_from_the_line(opened):
    now = DAY + timedelta(hours=10)
    store = opened(yesterday_and_today(now))
    rates = analysis.failure_rate(store, SINCE)
    fig = drawn(plots.failure_rate_over_time(rates, now=now))
    alpha = panels(fig)[0]
    today = mdates_num(DAY)
    solid = [line for line in alpha.get_lines() if line.get_linestyle() == "-"]
    assert solid and all(today not in line.get_xdata(orig=False) for line in solid)
    (task_point, *_) = [p for p in hollow_points(alpha) if p.get_markeredgecolor() != "0.6"]
    assert list(task_point.get_xdata(orig=False)) == [today]
    assert list(task_point.get_ydata()) == [1.0]  # drawn, at its value, but hollow and alone
    assert plots.IN_PROGRESS in legend_texts(fig)
    # The day before "now" is whole: nothing hollow when now is a day later.
    later = drawn(plots.failure_rate_over_time(rates, now=now + timedelta(days=1)))
    assert not hollow_points(panels(later)[0]) and plots.IN_PROGRESS not in legend_texts(later)
    percentiles = analysis.duration_percentiles(store, SINCE)
    durations = drawn(plots.percentiles_over_time(percentiles, now=now))
    assert len(hollow_points(panels(durations)[0])) == 3  # p50, p95, p99 of today


def mdates_num(moment: datetime) -> float:
    return float(mdates.date2num(pd.Timestamp(moment).tz_convert(None)))


def test_todays_bars_are_faded_and_the_hour_in_progress_hatched(opened):
    now = DAY + timedelta(hours=10, minutes=30)
    store = opened(yesterday_and_today(now))
    errors = drawn(plots.error_groups_stacked(analysis.error_trend(store, SINCE), now=now))
    ax = panels(errors)[0]
    by_day: dict[float, list[float]] = {}
    for bar in ax.patches:
        by_day.setdefault(round(bar.get_x() + bar.get_width() / 2, 3), []).append(bar.get_alpha())
    assert by_day == {
        round(mdates_num(DAY - timedelta(days=1)), 3): [0.9],
        round(mdates_num(DAY), 3): [0.35],
    }
    assert any(p.get_hatch() == "//" for p in ax.patches)
    assert plots.IN_PROGRESS in legend_texts(errors)
    hourly = analysis.failure_rate(store, SINCE, period="hour")
    heat = drawn(plots.failure_heatmap(hourly, now=now))
    hatched = [p for p in heat.axes[0].patches if isinstance(p, Rectangle) and p.get_hatch()]
    columns = pd.date_range(hourly["period"].min(), hourly["period"].max(), freq="h")
    (column,) = np.flatnonzero(columns == pd.Timestamp(DAY + timedelta(hours=10)))
    assert [p.get_x() for p in hatched] == [column - 0.5]
    assert plots.HOUR_IN_PROGRESS in legend_texts(heat)


def test_the_report_kernel_marks_today_on_a_database_recorded_until_now(tmp_path):
    """The notebooks, run by a real kernel on a database whose last rows are from a few minutes
    ago: the charts they draw mark today (read from the clock, as for a user)."""
    db = build(tmp_path / "live.db", yesterday_and_today(datetime.now(UTC)))
    folder = tmp_path / "notebooks"
    folder.mkdir()
    notebook = nbformat.read(NOTEBOOKS / "failure_trends.ipynb", as_version=4)
    notebook.cells.append(
        nbformat.v4.new_code_cell(
            "import json\n"
            "from matplotlib.backends.backend_agg import FigureCanvasAgg\n"
            "def legends(fig):\n"
            "    FigureCanvasAgg(fig).draw()\n"
            "    found = [*fig.legends, *(a.get_legend() for a in fig.axes if a.get_legend())]\n"
            "    return [t.get_text() for lg in found for t in lg.get_texts()]\n"
            "print(json.dumps({\n"
            "    'daily': legends(plots.failure_rate_over_time(daily)),\n"
            "    'hourly': legends(plots.failure_heatmap(hourly)),\n"
            "    'errors': legends(plots.error_groups_stacked("
            "analysis.error_trend(store, since), groups)),\n"
            "}))"
        )
    )
    path = folder / "failure_trends.ipynb"
    nbformat.write(notebook, path)
    (executed,) = report.execute([path], db)
    printed = json.loads(executed.cells[-1].outputs[0]["text"])
    assert plots.IN_PROGRESS in printed["daily"]
    assert plots.HOUR_IN_PROGRESS in printed["hourly"]
    assert printed["errors"] == ["ValueError: bad value", plots.IN_PROGRESS]


# -- legends and labels --------------------------------------------------------------------------


def test_duration_legend_shows_line_styles_and_the_error_bound(opened):
    fig = drawn(
        plots.percentiles_over_time(analysis.duration_percentiles(opened(one_day()), SINCE))
    )
    (legend,) = fig.legends
    styles = {
        t.get_text(): h for t, h in zip(legend.get_texts(), legend.legend_handles, strict=True)
    }
    assert list(styles) == ["p50", "p95", "p99"]
    assert [styles[k].get_linestyle() for k in styles] == ["-", "--", ":"]
    assert all(styles[k].get_marker() in ("None", None, "") for k in styles)  # lines, not dots
    assert "±1%" in fig.get_suptitle()


MESSAGES = [
    ("myapp.clients.FetchError", "cannot reach api.example\nTraceback follows", "a.py"),
    ("ValueError", "bad value", "b.py"),
    ("KeyError", "bad value", "c.py"),
    ("ValueError", "x" * 80, "d.py"),
]


def error_records() -> list[TaskExecution]:
    out = []
    for i, (kind, message, where) in enumerate(MESSAGES):
        trace = f'Traceback (most recent call last):\n  File "{where}", line 1, in f\n{kind}: x\n'
        for n in range(4 - i):
            at = DAY + timedelta(hours=i, minutes=n)
            out.append(
                run(
                    "alpha", at, "failed", error_type=kind, error_message=message, stack_trace=trace
                )
            )
    return out


WANT_LABELS = [
    "FetchError: cannot reach api.example",
    "ValueError: bad value",
    "KeyError: bad value",
    "ValueError: " + "x" * 47 + "…",
]


def test_error_groups_are_named_by_their_message(opened):
    store = opened(error_records())
    groups = analysis.top_error_groups(store, SINCE, limit=50)
    labels = plots.error_labels(groups)
    assert sorted(labels.values()) == sorted(WANT_LABELS)
    assert all(len(label) <= plots.LABEL_CHARS for label in labels.values())
    fig = drawn(plots.error_groups_stacked(analysis.error_trend(store, SINCE), groups))
    assert legend_texts(fig) == WANT_LABELS  # biggest first
    new = drawn(plots.new_error_patterns(analysis.new_error_patterns(store, SINCE)))
    shown = [lab.split("  (first")[0] for lab in ylabels(panels(new)[0])]
    assert sorted(shown) == sorted(WANT_LABELS)


def test_two_bugs_with_one_message_keep_two_names():
    groups = pd.DataFrame(
        {
            "stack_hash": ["aaaaaaaa11", "bbbbbbbb22"],
            "error_type": ["ValueError", "builtins.ValueError"],
            "sample_message": ["bad value", "bad value"],
        }
    )
    assert plots.error_labels(groups) == {
        "aaaaaaaa11": "ValueError: bad value #aaaaaa",
        "bbbbbbbb22": "ValueError: bad value #bbbbbb",
    }


# -- the dashboard: Datasette's real chart queries -----------------------------------------------


class Client:
    def __init__(self, db: Path) -> None:
        self.ds = make_datasette(db)
        self.name = db.stem
        self.loop = asyncio.new_event_loop()

    def get(self, path: str):
        return self.loop.run_until_complete(self.ds.client.get(path))

    def chart(self, slug: str, **params: str) -> list[dict]:
        """A chart's rows, fetched as the dashboard's JavaScript fetches them."""
        spec = self.ds.plugin_config("datasette-dashboards")[DASHBOARD]["charts"][slug]
        query = "".join(f"&{k}={quote(v)}" for k, v in params.items())
        response = self.get(f"/{self.name}.json?_shape=objects&sql={quote(spec['query'])}{query}")
        assert response.status_code == 200, response.text[:300]
        return response.json()["rows"]


@pytest.fixture
def client(tmp_path):
    made: list[Client] = []

    def make(records: list[TaskExecution], name: str = "tasks") -> Client:
        made.append(Client(build(tmp_path / f"{name}.db", records)))
        return made[-1]

    yield make
    for c in made:
        c.loop.close()


def test_the_task_filter_lists_every_task_under_all_tasks(client):
    c = client(one_day())
    first = c.get(f"/-/dashboards/{DASHBOARD}")
    assert first.status_code == 302
    assert first.headers["location"].endswith("?since=7d&task_slug=all+tasks")
    page = c.get(f"/-/dashboards/{DASHBOARD}?since=7d&task_slug=all+tasks").text
    select = re.search(r'<select id="task_slug".*?</select>', page, re.S)
    assert select is not None
    options = re.findall(r'<option value="([^"]*)"\s*(selected)?', select[0])
    assert [v for v, _ in options] == ["all tasks", "alpha", "beta", "gamma"]  # no blank one
    assert [v for v, chosen in options if chosen] == ["all tasks"]
    every = c.chart("attempts-per-day", since="all", task_slug="all tasks")
    assert {r["task_slug"] for r in every} == {"alpha", "beta", "gamma"}
    assert every == c.chart("attempts-per-day", since="all", task_slug="")
    alpha = c.chart("duration-per-day", since="all", task_slug="alpha")
    assert alpha and {r["task_slug"] for r in alpha} == {"alpha"}


def test_dashboard_marks_the_days_the_window_covers_in_part(client):
    now = datetime.now(UTC)
    c = client(yesterday_and_today(now))
    today, yesterday = now.date().isoformat(), (now.date() - timedelta(days=1)).isoformat()
    for slug in ("attempts-per-day", "failure-rate-per-day", "duration-per-day", "errors-per-day"):
        rows = c.chart(slug, since="7d", task_slug="")
        marked = {r["day"]: (r["partial"], r["covers"]) for r in rows}
        assert marked == {
            yesterday: (0, "whole day"),
            today: (1, "so far: the day is not over"),
        }, slug
    # A window starting mid-morning yesterday: yesterday is only partly in it.
    start = f"{yesterday}T09:30:00Z"
    rows = c.chart("attempts-per-day", since=start, task_slug="")
    assert {r["day"]: r["covers"] for r in rows}[yesterday] == "from the window start only"
    alpha = [r for r in rows if r["task_slug"] == "alpha" and r["day"] == yesterday]
    assert alpha[0]["attempts"] == 14  # 10:00 to 23:00
    spec = dashboard("x")["charts"]
    rate_layers = spec["failure-rate-per-day"]["display"]["layer"]
    assert [layer["transform"] for layer in rate_layers] == [
        [{"filter": "datum.partial == 0"}],
        [{"filter": "datum.partial == 0"}],
        [{"filter": "datum.partial == 1"}],
    ]
    assert rate_layers[2]["mark"]["filled"] is False
    for slug in ("attempts-per-day", "errors-per-day"):
        opacity = spec[slug]["display"]["encoding"]["opacity"]
        assert opacity["field"] == "partial" and opacity["scale"]["range"] == [0.9, 0.35]


def test_dashboard_error_charts_are_named_by_message_with_the_hash_on_hover(client):
    c = client(error_records())
    top = c.chart("top-errors", since="all", task_slug="")
    assert [r["error_group"] for r in top] == WANT_LABELS
    assert all(len(r["hash"]) == 12 for r in top)
    per_day = c.chart("errors-per-day", since="all", task_slug="")
    assert sorted({r["error_group"] for r in per_day}) == sorted(WANT_LABELS)
    with Store.open_readonly(c.ds.databases[c.name].path) as store:
        same = plots.error_labels(analysis.top_error_groups(store, SINCE))
    assert sorted(same.values()) == sorted(WANT_LABELS)  # the report names them the same
    spec = dashboard("x")["charts"]
    tips = [t["field"] for t in spec["top-errors"]["display"]["encoding"]["tooltip"]]
    assert "hash" in tips and "sample_message" in tips
    assert spec["top-errors"]["display"]["encoding"]["y"]["field"] == "error_group"


def test_dashboard_axes_legends_and_words():
    dash = dashboard("x")
    charts_ = dash["charts"]
    for slug, field in (
        ("attempts-per-day", "y"),
        ("errors-per-day", "y"),
        ("top-errors", "x"),
    ):
        axis = charts_[slug]["display"]["encoding"][field]["axis"]
        assert axis["tickMinStep"] == 1 and axis["format"] == ",d", slug
    percent = charts_["failure-rate-per-day"]["display"]["encoding"]["y"]["axis"]
    assert percent["format"] == "~%"
    assert charts_["failure-rate-by-task"]["display"]["encoding"]["x"]["axis"]["format"] == "~%"
    dash_legend = charts_["duration-per-day"]["display"]["layer"][0]["encoding"]["strokeDash"]
    assert dash_legend["legend"]["symbolType"] == "stroke"
    assert charts_["duration-per-day"]["display"]["layer"][0]["mark"]["point"] is False
    assert "±1%" in charts_["duration-per-day"]["title"]
    assert "±1%" in dash_legend["title"]
    assert "taskexec/probes" not in dash["description"] and "probe" not in dash["description"]
    assert "today" in dash["description"]
    assert dash["filters"]["task_slug"]["default"] == charts.ALL_TASKS


# -- the dashboard, drawn: its own Vega-Lite in headless Chromium --------------------------------

#: Before the page's scripts run: every vegaEmbed call draws SVG (so the axis labels and legend
#: symbols can be read) and is remembered, so the test knows when all charts are drawn.
SVG_EMBED = """
(() => {
  let real;
  window.__drawn = [];
  Object.defineProperty(window, 'vegaEmbed', {
    configurable: true,
    get() { return real && ((el, spec, opts) => {
      const done = real(el, spec, {...(opts || {}), renderer: 'svg'});
      window.__drawn.push(done);
      return done;
    }); },
    set(value) { real = value; },
  });
})();
"""

READ_CHARTS = """
async (slugs) => {
  await Promise.all(window.__drawn);
  const out = {};
  for (const slug of slugs) {
    const el = document.getElementById('chart-' + slug);
    const texts = sel => [...el.querySelectorAll(sel)].map(t => t.textContent);
    out[slug] = {
      x: texts('.role-axis[aria-label^="X-axis"] .role-axis-label text'),
      y: texts('.role-axis[aria-label^="Y-axis"] .role-axis-label text'),
      legend: texts('.role-legend-label text'),
      strokes: [...el.querySelectorAll('.role-legend-symbol path')]
        .map(p => [p.getAttribute('stroke'), p.getAttribute('stroke-dasharray')]),
    };
  }
  return out;
}
"""


def draw_dashboard(db: Path, query: str) -> dict[str, dict]:
    """The dashboard over ``db`` (``taskexec serve``) drawn in headless Chromium: each Vega-Lite
    chart's axis labels, legend labels and legend symbols' strokes."""
    from playwright.sync_api import sync_playwright

    with serving(db) as base:
        slugs = [s for s, c in dashboard(db.stem)["charts"].items() if c["library"] == "vega-lite"]
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium(), args=["--headless", "--no-sandbox", "--disable-gpu"]
            )
            # A zone far from UTC: days must still be UTC days.
            context = browser.new_context(timezone_id="Pacific/Auckland")
            page = context.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.add_init_script(SVG_EMBED)
            page.goto(f"{base}/-/dashboards/{DASHBOARD}?{query}")
            page.wait_for_function(f"window.__drawn && window.__drawn.length >= {len(slugs)}")
            found = page.evaluate(READ_CHARTS, slugs)
            browser.close()
        assert problems == []
        return found


def test_the_dashboard_draws_a_one_day_database_truthfully(tmp_path):
    records = one_day()
    records += [
        run("alpha", DAY + timedelta(minutes=m), "failed", error_message="bad value")
        for m in range(3)
    ]
    drawn_ = draw_dashboard(build(tmp_path / "oneday.db", records), "since=all&task_slug=all+tasks")
    for slug in ("attempts-per-day", "failure-rate-per-day", "duration-per-day", "errors-per-day"):
        assert drawn_[slug]["x"] == ["Nov 20"], (slug, drawn_[slug]["x"])
    for slug, chart in drawn_.items():
        for axis in ("x", "y"):
            assert len(chart[axis]) == len(set(chart[axis])), (slug, axis, chart[axis])
    for slug, axis in (("attempts-per-day", "y"), ("errors-per-day", "y"), ("top-errors", "x")):
        assert all(re.fullmatch(r"[\d,]+", t) for t in drawn_[slug][axis]), (slug, drawn_[slug])
    rates = drawn_["failure-rate-per-day"]["y"] + drawn_["failure-rate-by-task"]["x"]
    assert rates and all(t.endswith("%") for t in rates)
    strokes = drawn_["duration-per-day"]["strokes"]
    dashed = [s for s in strokes if s[1] not in (None, "")]
    assert [d for _, d in dashed] == ["1,0", "6,3"]  # p50 solid, p95 dashed: not two dots
    assert all(stroke not in (None, "transparent") for stroke, _ in dashed)
    assert "p50" in drawn_["duration-per-day"]["legend"]
    assert "ValueError: bad value" in drawn_["top-errors"]["y"]
