"""Charts for the notebooks: each helper takes a frame from :mod:`taskexec.analysis` and
returns a :class:`matplotlib.figure.Figure`.

Figures are built with ``Figure()`` rather than pyplot, so no GUI backend is touched, nothing is
kept alive in pyplot's registry and nothing is shown twice in Jupyter (the returned figure is
displayed once, as the cell's value). An empty frame gives a figure that says so in words.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import (
    FixedLocator,
    Formatter,
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
)

from ...model import utcnow
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


# -- axes that say what they show ---------------------------------------------------------------


class Percent(Formatter):
    """Tick labels for a rate axis (fractions) in percent, with as many decimals as the ticks'
    spacing needs: ``0% 5% 10%``, ``0% 2.5% 5%``, ``0.2% 0.4%``: never two ticks alike."""

    def __init__(self) -> None:
        self.decimals = 0

    def set_locs(self, locs: list[float]) -> None:
        super().set_locs(locs)
        ticks = np.unique(np.round(np.asarray(locs, dtype=float) * 100, 9))
        step = float(np.min(np.diff(ticks))) if len(ticks) > 1 else 1.0
        decimals = 0
        while decimals < 6 and abs(round(step, decimals) - step) > 1e-9 * max(step, 1e-9):
            decimals += 1
        self.decimals = decimals

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{100 * x:.{self.decimals}f}%"


def _percent_axis(axis: Axis) -> None:
    """A rate axis: ticks at round percentages, labelled by :class:`Percent`."""
    axis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    axis.set_major_formatter(Percent())


def _count_axis(axis: Axis) -> None:
    """A count axis: whole numbers only (no 0.2, 0.4, ... on a handful of runs)."""
    axis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=2))


def _naive_utc(values: Iterable[object]) -> list[pd.Timestamp]:
    """Times as naive UTC timestamps (what matplotlib draws as UTC), sorted, without repeats."""
    stamps = {pd.Timestamp(v) for v in values if not pd.isna(v)}
    return sorted(t.tz_convert("UTC").tz_localize(None) if t.tzinfo else t for t in stamps)


#: Room a day label ("Nov 20") takes on an axis, in inches, so labels never overlap.
_DAY_LABEL_INCHES = 0.75


def _day_ticks(first: pd.Timestamp, last: pd.Timestamp, room: int) -> list[pd.Timestamp]:
    """Midnights to tick on a day axis from ``first`` to ``last``, at most ``room`` of them:
    every day, every 2, 3, 7 or 14 days from the first, else the 1st of every 1, 2, 3, 6 or 12
    months."""
    days = (last - first).days + 1
    for step in (1, 2, 3, 7, 14):
        if math.ceil(days / step) <= room:
            return list(pd.date_range(first, last, freq=f"{step}D"))
    start = first.to_period("M").to_timestamp()
    for months in (1, 2, 3, 6, 12):
        ticks = [m for m in pd.date_range(start, last, freq=f"{months}MS") if m >= first]
        if len(ticks) <= room:
            return ticks or [first]
    return [first]


def _day_label(ticks: Sequence[pd.Timestamp]) -> FuncFormatter:
    """ "Nov 20" for each tick; the year under the first label and where the year changes."""
    years = {}
    previous = None
    for tick in ticks:
        years[mdates.date2num(tick)] = tick.year != previous
        previous = tick.year

    def label(value: float, _pos: object = None) -> str:
        day = mdates.num2date(value)
        text = day.strftime("%b %d")
        return f"{text}\n{day.year}" if years.get(value) else text

    return FuncFormatter(label)


def day_axis(ax: Axes, periods: Iterable[object]) -> None:
    """A time axis of whole days (UTC): ticks at midnight (a marker or bar of a day sits on its
    tick), from half a day before the first day to half a day after the last, so one day of
    data is one labelled tick, not a span of years, and no tick names a month without data."""
    days = [d.normalize() for d in _naive_utc(periods)]
    if not days:
        return
    first, last = days[0], days[-1]
    figure = ax.get_figure(root=True)
    inches = ax.get_position().width * (figure.get_figwidth() if figure else 8.0)
    ticks = _day_ticks(first, last, max(2, int(inches / _DAY_LABEL_INCHES)))
    ax.set_xlim(
        mdates.date2num(first - pd.Timedelta(hours=14)),
        mdates.date2num(last + pd.Timedelta(hours=14)),
    )
    ax.xaxis.set_major_locator(FixedLocator([mdates.date2num(t) for t in ticks]))
    ax.xaxis.set_major_formatter(_day_label(ticks))
    ax.xaxis.set_minor_locator(FixedLocator([]))


# -- what is not over yet ------------------------------------------------------------------------

#: How a chart names the period in progress, drawn hollow (lines) or faded (bars).
IN_PROGRESS = "today so far (the day is not over)"


def in_progress(
    periods: Iterable[object], length: pd.Timedelta, now: datetime | None = None
) -> np.ndarray:
    """For each period start, whether that period (of ``length``) holds ``now``: the day or
    hour in progress, whose numbers are not a whole period's (fewer runs, rates that jump)."""
    moment = pd.Timestamp(now or utcnow())
    moment = moment.tz_convert("UTC").tz_localize(None) if moment.tzinfo else moment
    starts = [
        pd.Timestamp(p).tz_convert("UTC").tz_localize(None) if pd.Timestamp(p).tzinfo else p
        for p in periods
    ]
    return np.array([s <= moment < s + length for s in starts], dtype=bool)


def _hollow(color: Any, label: str | None = None) -> Line2D:
    """A legend handle for a hollow marker: a period not over yet."""
    return Line2D(
        [], [], linestyle="none", marker="o", markersize=6, markerfacecolor="white",
        markeredgecolor=color, markeredgewidth=1.5, label=label,
    )  # fmt: skip


def _line_with_partial(
    ax: Axes,
    x: pd.Series,
    y: pd.Series,
    partial: np.ndarray,
    *,
    color: object,
    style: str = "-",
    linewidth: float = 1.5,
    marker: str = ".",
    label: str | None = None,
) -> bool:
    """``y`` over ``x`` as a line through the whole periods; a period in progress is a hollow
    marker of its own, not joined to the line (half a day's jump is not a trend). True when
    one was drawn."""
    whole = ~partial
    ax.plot(
        x[whole], y[whole], style, color=color, marker=marker, markersize=4,
        linewidth=linewidth, label=label,
    )  # fmt: skip
    if partial.any():
        ax.plot(
            x[partial], y[partial], linestyle="none", marker="o", markersize=5,
            markerfacecolor="white", markeredgecolor=color, markeredgewidth=1.5,
        )  # fmt: skip
    return bool(partial.any())


def _present(frame: pd.DataFrame, column: str = "task_slug") -> list[str]:
    return sorted(str(v) for v in frame[column].dropna().unique())


# -- durations -----------------------------------------------------------------------------------


#: The line style of each duration percentile, the same in every chart and legend.
PERCENTILE_STYLES: tuple[tuple[str, Literal["-", "--", ":"]], ...] = (
    ("p50_ms", "-"),
    ("p95_ms", "--"),
    ("p99_ms", ":"),
)


def percentiles_over_time(trend: pd.DataFrame, *, now: datetime | None = None) -> Figure:
    """p50, p95 and p99 duration per task over time, one panel per task (own y scale). The
    legend shows each percentile's line style; the day in progress is a hollow marker."""
    if trend.empty:
        return no_data()
    tasks = _present(trend)
    fig, axes = _grid(
        len(tasks), "Duration percentiles per task, per day (from the histogram: within ±1%)"
    )
    colors = task_colors(tasks)
    partial_drawn = False
    for ax, task in zip(axes, tasks, strict=True):
        rows = trend[trend["task_slug"] == task].sort_values("period")
        partial = in_progress(rows["period"], pd.Timedelta(days=1), now)
        for column, style in PERCENTILE_STYLES:
            partial_drawn |= _line_with_partial(
                ax, rows["period"], rows[column], partial, color=colors[task], style=style
            )
        ax.set_title(task, fontsize=10)
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(DURATION)
        ax.grid(alpha=0.3)
        day_axis(ax, trend["period"])
    handles: list[Artist] = [
        Line2D([], [], color="0.2", linestyle=style, linewidth=1.5, label=column[:3])
        for column, style in PERCENTILE_STYLES
    ]
    if partial_drawn:
        handles.append(_hollow("0.2", IN_PROGRESS))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=9)
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


def failure_rate_over_time(rates: pd.DataFrame, *, now: datetime | None = None) -> Figure:
    """Failure rate per task per day, each panel with all tasks' rate (grey) and the window's
    overall rate (dashed) as the baseline to compare against; the day in progress is a hollow
    marker, apart from the line."""
    if rates.empty:
        return no_data()
    tasks = _present(rates)
    overall = overall_failure_rate(rates)
    base = baseline(rates)
    fig, axes = _grid(len(tasks), "Failure rate per task per day")
    colors = task_colors(tasks)
    length = pd.Timedelta(days=1)
    overall_partial = in_progress(overall["period"], length, now)
    partial_drawn = False
    for ax, task in zip(axes, tasks, strict=True):
        rows = rates[rates["task_slug"] == task].sort_values("period")
        _line_with_partial(
            ax, overall["period"], overall["failure_rate"], overall_partial,
            color="0.6", linewidth=2, marker="",
        )  # fmt: skip
        ax.axhline(base, color="0.3", linestyle="--", linewidth=1)
        partial_drawn |= _line_with_partial(
            ax,
            rows["period"],
            rows["failure_rate"],
            in_progress(rows["period"], length, now),
            color=colors[task],
        )
        ax.set_title(task, fontsize=10)
        ax.set_ylim(bottom=0)
        _percent_axis(ax.yaxis)
        ax.grid(alpha=0.3)
        day_axis(ax, rates["period"])
    handles: list[Artist] = [
        Line2D([], [], color="0.6", linewidth=2, label="all tasks"),
        Line2D(
            [], [], color="0.3", linestyle="--", linewidth=1, label=f"window baseline {base:.1%}"
        ),
    ]
    if partial_drawn:
        handles.append(_hollow("0.2", IN_PROGRESS))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=9)
    return fig


#: How the heatmap names the hour in progress, hatched.
HOUR_IN_PROGRESS = "this hour so far (not over)"


def failure_heatmap(hourly: pd.DataFrame, *, now: datetime | None = None) -> Figure:
    """Failure rate by hour (columns) and task (rows); blank cells had no attempts, the hour
    in progress is hatched (its rate stands on the runs so far)."""
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
    for column in np.flatnonzero(in_progress(hours, pd.Timedelta(hours=1), now)):
        ax.add_patch(
            Rectangle(
                (column - 0.5, -0.5), 1, len(grid), fill=False, hatch="///",
                edgecolor="0.25", linewidth=1, label=HOUR_IN_PROGRESS,
            )
        )  # fmt: skip
        ax.legend(loc="upper left", bbox_to_anchor=(0, -0.25), fontsize=8, frameon=False)
    colorbar = fig.colorbar(image, ax=ax, label="failure rate")
    _percent_axis(colorbar.ax.yaxis)
    ax.set_title("Hourly failure rate per task (UTC)")
    return fig


#: The longest error label a chart shows (as the dashboard's ``charts.LABEL_CHARS``).
LABEL_CHARS = 60


def error_label(error_type: object, message: object) -> str:
    """An error group's short label, by what it says: the exception's class name (without its
    module) and the first line of its sample message, ``ValueError: bad value``, cut to
    :data:`LABEL_CHARS` (the dashboard's labels follow the same rule)."""
    kind = "" if pd.isna(error_type) else str(error_type).rpartition(".")[2]
    text = "" if pd.isna(message) else str(message).strip()
    line = text.split("\n", 1)[0].strip()
    whole = (kind or "error") if not line else f"{kind}: {line}" if kind else line
    return whole if len(whole) <= LABEL_CHARS else whole[: LABEL_CHARS - 1].rstrip() + "…"


def error_labels(groups: pd.DataFrame) -> dict[str, str]:
    """``stack_hash`` -> :func:`error_label` for a frame with ``stack_hash``, ``error_type``
    and ``sample_message``; two groups that would share a label get their short hash added."""
    labels = {
        str(r.stack_hash): error_label(r.error_type, r.sample_message)
        for r in groups.drop_duplicates("stack_hash").itertuples(index=False)
    }
    seen = pd.Series(list(labels.values())).value_counts()
    return {h: f"{t} #{h[:6]}" if seen[t] > 1 else t for h, t in labels.items()}


def _faded_bar_legend(ax: Axes, title: str, label: str = IN_PROGRESS) -> None:
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Patch(facecolor="0.6", alpha=0.35, hatch="//", edgecolor="0.4", label=label))
    labels.append(label)
    ax.legend(handles, labels, title=title, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))


def error_groups_stacked(
    trend: pd.DataFrame, groups: pd.DataFrame | None = None, *, now: datetime | None = None
) -> Figure:
    """Failures per day stacked by error group (the window's top groups), each named by what
    it says when ``groups`` (:func:`analysis.top_error_groups`: stack_hash, error_type,
    sample_message) names it, else by type and short hash. The day in progress is faded."""
    if trend.empty:
        return no_data("No failures in this window")
    named = {}
    if groups is not None and len(groups):  # names told apart among the groups drawn
        named = error_labels(groups[groups["stack_hash"].isin(trend["stack_hash"])])
    label = trend["stack_hash"].astype(str).map(named)
    trend = trend.assign(error_group=label.fillna(trend["error_group"].astype(str)))
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
    partial = in_progress(days, pd.Timedelta(days=1), now)
    for i, group in enumerate(wide.columns):
        values = wide[group].to_numpy(dtype=float)
        _bars(ax, days, values, bottom, partial, color=palette(i % 20), label=str(group))
        bottom += values
    day_axis(ax, days)
    _count_axis(ax.yaxis)
    ax.set_ylabel("failures per day")
    ax.grid(axis="y", alpha=0.3)
    if partial.any():
        _faded_bar_legend(ax, "error")
    else:
        ax.legend(title="error", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title("Failures by error per day (top groups of the window)")
    return fig


def _bars(
    ax: Axes,
    days: Sequence[object],
    values: np.ndarray,
    bottom: np.ndarray,
    partial: np.ndarray,
    *,
    color: object,
    label: str,
    alpha: float = 0.9,
) -> None:
    """One stacked layer of day bars: whole days solid, the day in progress faded and hatched."""
    x = np.asarray(days)
    whole = ~partial
    ax.bar(
        x[whole], values[whole], bottom=bottom[whole], width=0.8, color=color, alpha=alpha,
        label=label,
    )  # fmt: skip
    if partial.any():
        ax.bar(
            x[partial], values[partial], bottom=bottom[partial], width=0.8, color=color,
            alpha=0.35, hatch="//", edgecolor="white", linewidth=0,
        )  # fmt: skip


def new_error_patterns(new: pd.DataFrame) -> Figure:
    """Error groups first seen in the window, as bars of their occurrences so far, each named
    by what it says (type and message) and when it first occurred."""
    if new.empty:
        return no_data("No new error patterns in this window")
    rows = new.sort_values("first_seen")
    names = error_labels(rows)
    labels = [
        f"{names[str(r.stack_hash)]}  (first {r.first_seen:%m-%d %H:%M})"
        for r in rows.itertuples(index=False)
    ]
    fig = Figure(figsize=(10, 0.4 * len(rows) + 1.4), layout="constrained")
    ax = fig.subplots()
    ax.barh(labels, rows["occurrences"], color="tab:red", alpha=0.75)
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=8)
    _count_axis(ax.xaxis)
    ax.set_xlabel("occurrences since first seen")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"{len(rows)} new error pattern(s), oldest first")
    return fig


def retry_recovery(retries: pd.DataFrame) -> Figure:
    """Every task's retried runs split into recovered (green) and never recovered (red), with
    its recovery rate; a task that needed no retry is listed as such. The title's overall rate
    is of the runs drawn: all retried runs that recovered / all retried runs."""
    rows = retries[retries["runs"].fillna(0) > 0]
    retried = int(rows["retried_runs"].fillna(0).sum())
    if not retried:
        return no_data("No retried runs in this window")
    rows = rows.assign(
        retried_runs=rows["retried_runs"].fillna(0),
        succeeded_after_retry=rows["succeeded_after_retry"].fillna(0),
        retried_never_succeeded=rows["retried_never_succeeded"].fillna(0),
    ).sort_values(["retried_runs", "task_slug"], ascending=[True, False])
    labels = [str(t) for t in rows["task_slug"]]
    recovered = rows["succeeded_after_retry"].to_numpy(dtype=float)
    lost = rows["retried_never_succeeded"].to_numpy(dtype=float)
    fig = Figure(figsize=(10, 0.45 * len(rows) + 1.6), layout="constrained")
    ax = fig.subplots()
    ax.barh(labels, recovered, color="tab:green", alpha=0.8, label="recovered")
    ax.barh(labels, lost, left=recovered, color="tab:red", alpha=0.8, label="never succeeded")
    for y, (ok, bad) in enumerate(zip(recovered, lost, strict=True)):
        total = ok + bad
        text = f"  {ok:.0f} of {total:.0f} ({ok / total:.0%})" if total else "  no retries"
        ax.text(total, y, text, va="center", fontsize=9, color="0.2" if total else "0.45")
    _count_axis(ax.xaxis)
    ax.set_xlabel("retried runs")
    ax.margins(x=0.2)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    overall = overall_recovery(rows)
    ax.set_title(
        f"Retry recovery per task: {int(recovered.sum())} of {retried} retried runs "
        f"eventually succeeded ({overall:.0%})"
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


def alerts_per_day(history: pd.DataFrame, *, now: datetime | None = None) -> Figure:
    """Alerts opened per day stacked by kind (from :func:`analysis.alert_history`), with how
    many of each day's are still open written above its bar; the day in progress is faded."""
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
    partial = in_progress(days, pd.Timedelta(days=1), now)
    bottom = np.zeros(len(wide))
    for kind in kinds:
        values = wide[kind].to_numpy(dtype=float)
        color = ALERT_COLORS.get(kind, "0.6")
        _bars(ax, days, values, bottom, partial, color=color, label=kind, alpha=0.85)
        bottom += values
    for day, height, left in zip(days, bottom, still_open.to_numpy(), strict=True):
        if left:
            ax.text(day, height, f"{int(left)} open", ha="center", va="bottom", fontsize=8)
    day_axis(ax, days)
    ax.set_ylabel("alerts opened")
    _count_axis(ax.yaxis)
    ax.margins(y=0.15)
    ax.grid(axis="y", alpha=0.3)
    if partial.any():
        _faded_bar_legend(ax, "kind")
    else:
        ax.legend(title="kind", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    total = int(history["opened"].sum())
    ax.set_title(
        f"Alerts opened per day by kind ({total} in the window; above a bar: how many are "
        "still open)"
    )
    return fig
