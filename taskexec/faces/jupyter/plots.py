"""Charts for the notebooks: each helper takes a frame from :mod:`taskexec.analysis` and
returns a :class:`matplotlib.figure.Figure`.

Figures are built with ``Figure()`` rather than pyplot, so no GUI backend is touched, nothing is
kept alive in pyplot's registry and nothing is shown twice in Jupyter (the returned figure is
displayed once, as the cell's value). An empty frame gives a figure that says so in words.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import (
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
    PercentFormatter,
)

from .analysis import NO_DATA, baseline, overall_failure_rate, overall_recovery

_COLUMNS = 4


def no_data(message: str = NO_DATA) -> Figure:
    """A small figure with ``message`` centred: what a chart shows when there is nothing to draw."""
    fig = Figure(figsize=(8, 1.6))
    ax = fig.add_subplot()  # IPython renders no image for a figure without axes
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=13, color="0.35")
    return fig


def _duration(value: float, _pos: object = None) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value / 1000:g} s"
    return f"{value:g} ms"


#: Tick labels for axes in milliseconds: "250 ms", "4 s", "120 s".
DURATION = FuncFormatter(_duration)
# tab10 without its grey, which the charts keep for "all tasks" and baselines.
_PALETTE = [colormaps["tab10"](i) for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)]
_ASSIGNED: dict[str, tuple[float, ...]] = {}


def task_colors(slugs: Iterable[str]) -> dict[str, tuple[float, ...]]:
    """A colour per task that stays the same across charts of one session: new tasks take the
    next palette colour in name order, so a chart showing only some tasks does not recolour."""
    for slug in sorted(set(slugs) - set(_ASSIGNED)):
        _ASSIGNED[slug] = _PALETTE[len(_ASSIGNED) % len(_PALETTE)]
    return {slug: _ASSIGNED[slug] for slug in slugs}


def _log_durations(ax: Axes, axis: str = "y") -> None:
    """A log duration axis ticked at 1, 2 and 5 times powers of ten, labelled in ms or s."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    target.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(DURATION)
    target.set_minor_formatter(NullFormatter())


def _grid(count: int, title: str, height: float = 2.4) -> tuple[Figure, list[Axes]]:
    """One small panel per series, ``_COLUMNS`` to a row; unused panels are hidden."""
    cols = min(_COLUMNS, count)
    rows = math.ceil(count / cols)
    fig = Figure(figsize=(3.6 * cols, height * rows + 0.6), layout="constrained")
    axes = list(np.atleast_1d(fig.subplots(rows, cols, sharex=True, squeeze=False)).ravel())
    for extra in axes[count:]:
        extra.set_visible(False)
    for ax in axes[max(0, count - cols) : count]:  # lowest panel of each column keeps its ticks
        ax.xaxis.set_tick_params(labelbottom=True)
    fig.suptitle(title, fontsize=13)
    return fig, axes[:count]


def _time_axis(ax: Axes) -> None:
    locator = mdates.AutoDateLocator(minticks=3, maxticks=6)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _present(frame: pd.DataFrame, column: str = "task_slug") -> list[str]:
    return sorted(str(v) for v in frame[column].dropna().unique())


# -- durations -----------------------------------------------------------------------------------


def percentiles_over_time(trend: pd.DataFrame) -> Figure:
    """p50, p95 and p99 duration per task over time, one panel per task (own y scale)."""
    if trend.empty:
        return no_data()
    tasks = _present(trend)
    fig, axes = _grid(
        len(tasks), "Duration percentiles per task (p50 solid, p95 dashed, p99 dotted)"
    )
    colors = task_colors(tasks)
    for ax, task in zip(axes, tasks, strict=True):
        rows = trend[trend["task_slug"] == task].sort_values("period")
        for column, style in (("p50_ms", "-"), ("p95_ms", "--"), ("p99_ms", ":")):
            ax.plot(
                rows["period"],
                rows[column],
                style,
                color=colors[task],
                marker=".",
                markersize=3,
                label=column.removesuffix("_ms"),
            )
        ax.set_title(task, fontsize=10)
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(DURATION)
        ax.grid(alpha=0.3)
        _time_axis(ax)
    axes[0].legend(fontsize=8, loc="upper left")
    return fig


def duration_distribution(sample: pd.DataFrame) -> Figure:
    """Box plot of durations per task on a log scale, fastest task at the top."""
    rows = sample.dropna(subset=["duration_ms"])
    rows = rows[rows["duration_ms"] > 0]
    if rows.empty:
        return no_data()
    groups = rows.groupby("task_slug", observed=True)["duration_ms"]
    order = groups.median().sort_values(ascending=False).index.astype(str).tolist()
    colors = task_colors(order)
    fig = Figure(figsize=(10, 0.5 * len(order) + 1.6), layout="constrained")
    ax = fig.subplots()
    box = ax.boxplot(
        [groups.get_group(t).to_numpy() for t in order],
        orientation="horizontal",
        tick_labels=order,
        patch_artist=True,
        flierprops={"markersize": 2, "alpha": 0.3},
        medianprops={"color": "black"},
    )
    for patch, task in zip(box["boxes"], order, strict=True):
        patch.set_facecolor(colors[task])
        patch.set_alpha(0.6)
    _log_durations(ax, "x")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"Duration distribution per task ({len(rows):,} attempts sampled)")
    return fig


def slowest_runs(slow: pd.DataFrame) -> Figure:
    """The slowest attempts as bars, labelled with task, start time and attempt number."""
    if slow.empty:
        return no_data()
    rows = slow.sort_values("duration_ms")
    colors = task_colors(_present(rows))
    labels = [
        f"{r.task_slug}  {r.started_at:%m-%d %H:%M}  #{r.attempt}"
        for r in rows.itertuples(index=False)
    ]
    fig = Figure(figsize=(10, 0.32 * len(rows) + 1.4), layout="constrained")
    ax = fig.subplots()
    ax.barh(labels, rows["duration_ms"], color=[colors[str(t)] for t in rows["task_slug"]])
    ax.xaxis.set_major_formatter(DURATION)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"The {len(rows)} slowest attempts (task, start UTC, attempt)")
    return fig


def duration_vs_memories(sample: pd.DataFrame) -> Figure:
    """Duration against memories retrieved, one panel per retrieving task, with the median
    duration per memories count drawn over the points."""
    rows = sample.dropna(subset=["duration_ms", "memories_retrieved"])
    if rows.empty:
        return no_data("No attempts with memories retrieved in this window")
    tasks = _present(rows)
    fig, axes = _grid(len(tasks), "Duration vs memories retrieved (line: median per count)", 2.8)
    colors = task_colors(_present(sample))
    for ax, task in zip(axes, tasks, strict=True):
        mine = rows[rows["task_slug"] == task]
        ax.scatter(
            mine["memories_retrieved"],
            mine["duration_ms"],
            s=4,
            alpha=0.25,
            color=colors[task],
            linewidths=0,
        )
        median = mine.groupby("memories_retrieved")["duration_ms"].median()
        ax.plot(median.index, median.to_numpy(), color="black", linewidth=1.2)
        ax.set_title(task, fontsize=10)
        _log_durations(ax)
        ax.set_xlabel("memories retrieved", fontsize=8)
        ax.grid(alpha=0.3)
    return fig


# -- failures ------------------------------------------------------------------------------------


def failure_rate_over_time(rates: pd.DataFrame) -> Figure:
    """Failure rate per task per period, each panel with all tasks' rate (grey) and the
    window's overall rate (dashed) as the baseline to compare against."""
    if rates.empty:
        return no_data()
    tasks = _present(rates)
    overall = overall_failure_rate(rates)
    base = baseline(rates)
    fig, axes = _grid(
        len(tasks), f"Failure rate per task (grey: all tasks; dashed: window baseline {base:.1%})"
    )
    colors = task_colors(tasks)
    for ax, task in zip(axes, tasks, strict=True):
        rows = rates[rates["task_slug"] == task].sort_values("period")
        ax.plot(overall["period"], overall["failure_rate"], color="0.6", linewidth=2)
        ax.axhline(base, color="0.3", linestyle="--", linewidth=1)
        ax.plot(rows["period"], rows["failure_rate"], color=colors[task], marker=".")
        ax.set_title(task, fontsize=10)
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.grid(alpha=0.3)
        _time_axis(ax)
    return fig


def failure_heatmap(hourly: pd.DataFrame) -> Figure:
    """Failure rate by hour (columns) and task (rows); blank cells had no attempts."""
    if hourly.empty:
        return no_data()
    grid = hourly.pivot_table(
        index="task_slug", columns="period", values="failure_rate", observed=True, aggfunc="mean"
    )
    hours = pd.date_range(grid.columns.min(), grid.columns.max(), freq="h")
    grid = grid.reindex(columns=hours)
    fig = Figure(figsize=(12, 0.45 * len(grid) + 1.8), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(
        np.ma.masked_invalid(grid.to_numpy(dtype=float)),
        aspect="auto",
        cmap="Reds",
        vmin=0,
        interpolation="nearest",
    )
    ax.set_yticks(range(len(grid)), [str(t) for t in grid.index])
    step = max(1, len(hours) // 12)
    ax.set_xticks(
        range(0, len(hours), step),
        [f"{h:%m-%d %H}h" for h in hours[::step]],
        rotation=45,
        ha="right",
        fontsize=8,
    )
    fig.colorbar(image, ax=ax, format=PercentFormatter(1.0, decimals=0), label="failure rate")
    ax.set_title("Hourly failure rate per task (UTC)")
    return fig


def error_groups_stacked(trend: pd.DataFrame) -> Figure:
    """Failures per day stacked by error group (the window's top groups)."""
    if trend.empty:
        return no_data("No failures in this window")
    wide = trend.pivot_table(
        index="day",
        columns="error_group",
        values="failures",
        aggfunc="sum",
        fill_value=0,
        observed=True,
    )
    wide = wide[wide.sum().sort_values(ascending=False).index]
    fig = Figure(figsize=(12, 4.8), layout="constrained")
    ax = fig.subplots()
    bottom = np.zeros(len(wide))
    palette = colormaps["tab20"]
    days = wide.index.tz_convert(None)
    for i, group in enumerate(wide.columns):
        values = wide[group].to_numpy(dtype=float)
        ax.bar(days, values, bottom=bottom, width=0.8, label=str(group), color=palette(i % 20))
        bottom += values
    _time_axis(ax)
    ax.set_ylabel("failures per day")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="error group", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title("Failures by error group per day (top groups of the window)")
    return fig


def new_error_patterns(new: pd.DataFrame) -> Figure:
    """Error groups first seen in the window, as bars of their occurrences so far."""
    if new.empty:
        return no_data("No new error patterns in this window")
    rows = new.sort_values("first_seen")
    labels = [
        f"{r.error_type} {r.stack_hash[:8]}  (first {r.first_seen:%m-%d %H:%M})"
        for r in rows.itertuples(index=False)
    ]
    fig = Figure(figsize=(10, 0.4 * len(rows) + 1.4), layout="constrained")
    ax = fig.subplots()
    ax.barh(labels, rows["occurrences"], color="tab:red", alpha=0.75)
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel("occurrences since first seen")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"{len(rows)} new error pattern(s), oldest first")
    return fig


def retry_recovery(retries: pd.DataFrame) -> Figure:
    """Retried runs per task split into recovered and never recovered, with the recovery rate."""
    rows = retries[retries["retried_runs"] > 0]
    if rows.empty:
        return no_data("No retried runs in this window")
    rows = rows.sort_values("retried_runs")
    labels = [str(t) for t in rows["task_slug"]]
    recovered = rows["succeeded_after_retry"].to_numpy(dtype=float)
    lost = rows["retried_never_succeeded"].to_numpy(dtype=float)
    fig = Figure(figsize=(10, 0.45 * len(rows) + 1.6), layout="constrained")
    ax = fig.subplots()
    ax.barh(labels, recovered, color="tab:green", alpha=0.8, label="recovered")
    ax.barh(labels, lost, left=recovered, color="tab:red", alpha=0.8, label="never succeeded")
    for y, (ok, bad, rate) in enumerate(
        zip(recovered, lost, rows["retry_recovery_rate"], strict=True)
    ):
        ax.text(ok + bad, y, f"  {rate:.0%}", va="center", fontsize=9)
    ax.set_xlabel("retried runs")
    ax.margins(x=0.12)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(
        f"Retry recovery per task (overall {overall_recovery(rows):.0%} of retried runs "
        "eventually succeeded)"
    )
    return fig


# -- alerts --------------------------------------------------------------------------------------

#: One colour per alert kind, the same in every chart; other kinds take grey.
ALERT_COLORS = {
    "missed": "tab:red",
    "late": "tab:orange",
    "stuck": "tab:purple",
    "long": "tab:brown",
    "new_error": "tab:pink",
    "regression": "tab:olive",
    "spike": "tab:cyan",
}


def alerts_per_day(history: pd.DataFrame) -> Figure:
    """Alerts opened per day stacked by kind (from :func:`analysis.alert_history`), with how
    many of each day's are still open written above its bar."""
    if history.empty:
        return no_data("No alerts in this window")
    wide = history.pivot_table(
        index="day", columns="kind", values="opened", aggfunc="sum", fill_value=0
    )
    kinds = [k for k in ALERT_COLORS if k in wide.columns]
    kinds += sorted(str(k) for k in wide.columns if k not in ALERT_COLORS)
    still_open = history.groupby("day")["still_open"].sum().reindex(wide.index, fill_value=0)
    fig = Figure(figsize=(12, 4.2), layout="constrained")
    ax = fig.subplots()
    days = wide.index.tz_convert(None)
    bottom = np.zeros(len(wide))
    for kind in kinds:
        values = wide[kind].to_numpy(dtype=float)
        color = ALERT_COLORS.get(kind, "0.6")
        ax.bar(days, values, bottom=bottom, width=0.8, label=kind, color=color, alpha=0.85)
        bottom += values
    for day, height, left in zip(days, bottom, still_open.to_numpy(), strict=True):
        if left:
            ax.text(day, height, f"{int(left)} open", ha="center", va="bottom", fontsize=8)
    _time_axis(ax)
    ax.set_ylabel("alerts opened")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.margins(y=0.15)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="kind", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    total = int(history["opened"].sum())
    ax.set_title(
        f"Alerts opened per day by kind ({total} in the window; above a bar: how many are "
        "still open)"
    )
    return fig
