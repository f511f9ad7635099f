"""Metric series queries: one key of one run is one range read of its packed blocks
(:mod:`workbench.store.metric_chunks`).

:func:`metric_series` returns every point, or with ``max_points`` a downsampled series: the steps
are cut into contiguous buckets and each bucket gives its exact min, max and last value (so a plot
keeps spikes and the curve's end without loading a million points); long series are downsampled
from the rollups the ingester keeps (:mod:`workbench.tracking.rollups`). NaN comes back as NaN.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.errors import UnknownIdError
from workbench.store import metric_chunks
from workbench.tracking import rollups
from workbench.tracking.capture import finite_or_text


@dataclass
class MetricSeries:
    """Points of one metric; ``mins``/``maxs`` are filled (per bucket) when downsampled."""

    key: str
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    mins: list[float] = field(default_factory=list)
    maxs: list[float] = field(default_factory=list)
    downsampled: bool = False
    total: int = 0

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "key": self.key, "total": self.total, "downsampled": self.downsampled, "steps": self.steps,
            "values": [finite_or_text(v) for v in self.values], "times": self.times,
        }
        if self.downsampled:
            data["mins"] = [finite_or_text(v) for v in self.mins]
            data["maxs"] = [finite_or_text(v) for v in self.maxs]
        return data


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def metric_keys(db: sqlite3.Connection, run_id: str) -> list[str]:
    return [r[0] for r in db.execute("SELECT key FROM metric_keys WHERE run_id = ? ORDER BY key", (run_id,))]


RAW_LIMIT = 20_000
"""Series up to this many points are downsampled from the points themselves; longer ones from
the rollups (when the rollups give at least ``max_points`` buckets)."""


def metric_series(
    db: sqlite3.Connection, run_id: str, key: str, *, max_points: int | None = None
) -> MetricSeries:
    """Points of ``key`` in step order, downsampled to at most ``max_points`` buckets when given.

    Downsampled: each bucket is a contiguous step range; ``mins``/``maxs`` are the exact min and
    max of the finite values stored in it (NaN where there is none), ``steps``/``values``/``times``
    its largest step with that step's value and time. Short series are cut into ``max_points``
    equal step ranges; long ones into runs of whole rollup buckets (64, 4,096 or 262,144 steps),
    the coarsest level that still gives ``max_points`` buckets, so a million points cost about
    15,000 rollup rows, not a scan of the points.
    """
    row = db.execute(
        "SELECT id, count FROM metric_keys WHERE run_id = ? AND key = ?", (run_id, key)
    ).fetchone()
    if row is None:
        raise UnknownIdError(f"run {run_id} has no metric {key!r}", "see 'workbench metrics RUN'")
    key_id, total = int(row[0]), int(row[1])
    series = MetricSeries(key=key, total=total)
    if max_points is None or total <= max_points or max_points < 1:
        steps, times, values = metric_chunks.read(db, key_id)
        series.steps, series.times, series.values = steps.tolist(), times.tolist(), values.tolist()
        series.total = len(series.steps)
        return series
    stored = metric_chunks.span(db, key_id)
    if stored is None:
        series.total = 0
        return series
    _, low, high = stored
    level = rollups.choose_level(low, high, max_points) if total > RAW_LIMIT else None
    buckets = rollups.read(db, key_id, level, low, high, max_points) if level else []
    if not buckets:  # short series (or a store written without rollups): from the points
        buckets = _from_points(metric_chunks.read(db, key_id), low, high, max_points)
    series.downsampled = True
    for step, value, lo, hi, when in buckets:
        series.steps.append(int(step))
        series.times.append(when)
        series.values.append(_nan(value))
        series.mins.append(_nan(lo))
        series.maxs.append(_nan(hi))
    return series


def _from_points(points: metric_chunks.Points, low: int, high: int, max_points: int,
                 ) -> list[tuple[int, float | None, float | None, float | None, float]]:
    """``max_points`` equal step ranges aggregated from the points: (last_step, last_value, min,
    max, last_time) per non-empty range."""
    steps, times, values = points
    span = high - low + 1
    if span * max_points < 2**62:
        index = ((steps - low) * max_points) // span
    else:  # beyond int64: Python integers
        index = np.array([((s - low) * max_points) // span for s in steps.tolist()], dtype=np.int64)
    starts = np.flatnonzero(np.concatenate(([True], index[1:] != index[:-1])))
    ends = np.concatenate((starts[1:], [len(steps)])) - 1
    with np.errstate(invalid="ignore"):
        lows = np.fmin.reduceat(values, starts).tolist()
        highs = np.fmax.reduceat(values, starts).tolist()
    return [(step, value, lo, hi, when) for step, value, lo, hi, when in zip(
        steps[ends].tolist(), values[ends].tolist(), lows, highs, times[ends].tolist(), strict=True)]
