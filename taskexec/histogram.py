"""The rollups' duration histogram: DDSketch's log buckets, so a percentile read from merged
buckets is within ``ALPHA`` (1%) of the exact one, whatever the hours or tasks merged.

A duration ``d`` (ms) falls in bin ``ceil(ln(d) / ln(GAMMA))``; the bin stands for
``2 * GAMMA**bin / (GAMMA + 1)``, within ALPHA of every duration in it.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from itertools import accumulate

#: Relative error of a percentile read from the histogram (DDSketch's alpha: 1%).
ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
LN_GAMMA = math.log(GAMMA)
#: Durations below this (ms) share the lowest bin: 1 µs.
MIN_MS = 0.001
#: The bin of a duration ``{0}`` in SQL: the same arithmetic as ``te_bin``, with built-ins only,
#: so triggers work on any connection (SQLite's math functions, on since 3.35).
BIN_SQL = "CAST(ceil(ln(max({0}, " + repr(MIN_MS) + ")) / " + repr(LN_GAMMA) + ") AS INTEGER)"
#: The value a bin ``{0}`` stands for, in SQL (``te_bin_ms``).
BIN_MS_SQL = "round(2 * pow(" + repr(GAMMA) + ", {0}) / " + repr(GAMMA + 1) + ", 3)"


def te_bin(ms: float | None) -> int | None:
    """The histogram bin of a duration in ms (None stays None)."""
    if ms is None:
        return None
    return math.ceil(math.log(max(float(ms), MIN_MS)) / LN_GAMMA)


def te_bin_ms(b: int | None) -> float | None:
    """The value that stands for bin ``b``: within ALPHA of any duration in it."""
    if b is None:
        return None
    return round(2 * GAMMA ** int(b) / (GAMMA + 1), 3)


#: The percentiles ``Quantiles`` reads, in the order it answers them.
QUANTILES = (0.50, 0.95, 0.99)


class Quantiles:
    """SQL aggregate ``te_quantiles(bin, n)``: nearest-rank p50, p95 and p99 of a merged
    histogram, as the JSON array ``[p50, p95, p99]`` of ms (each the first bin whose running
    count reaches p x total). SQLite's window functions take ~2 µs a row for the same answer.

    A step only appends: the rollups are read in key order, so the bins usually come sorted
    and the merge is a running sum searched with ``bisect`` (a dict per step cost a third
    more at 50,000 rows)."""

    __slots__ = ("bins", "counts")

    def __init__(self) -> None:
        self.bins: list[int] = []
        self.counts: list[int] = []

    def step(self, b: int | None, n: int | None) -> None:
        if b is not None and n:
            self.bins.append(b)
            self.counts.append(n)

    def finalize(self) -> str | None:
        bins, counts = self.bins, self.counts
        if not bins:
            return None
        if bins != sorted(bins):  # e.g. merged across days: sort positions, not pairs
            order = sorted(range(len(bins)), key=bins.__getitem__)
            bins = [bins[i] for i in order]
            counts = [counts[i] for i in order]
        running = list(accumulate(counts))
        total = running[-1]
        return (
            "["
            + ", ".join(repr(te_bin_ms(bins[bisect_left(running, q * total)])) for q in QUANTILES)
            + "]"
        )
