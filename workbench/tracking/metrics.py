"""Metric series queries: one key of one run is an index range scan on ``(key_id, step)``.

:func:`metric_series` returns every point, or with ``max_points`` a downsampled series: the steps
are cut into contiguous buckets and each bucket gives its exact min, max and last value (so a plot
keeps spikes and the curve's end without loading a million points); long series are downsampled
from the rollups the ingester keeps (:mod:`workbench.tracking.rollups`). NaN is stored as NULL and
comes back as NaN.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import UnknownIdError
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
    cursor = db.cursor()
    cursor.row_factory = None
    series = MetricSeries(key=key, total=total)
    if max_points is None or total <= max_points or max_points < 1:
        for step, when, value in cursor.execute(
            "SELECT step, time, value FROM metrics WHERE key_id = ? ORDER BY step", (key_id,),
        ):
            series.steps.append(step)
            series.times.append(when)
            series.values.append(_nan(value))
        series.total = len(series.steps)
        return series
    low = cursor.execute("SELECT MIN(step) FROM metrics WHERE key_id = ?", (key_id,)).fetchone()[0]
    high = cursor.execute("SELECT MAX(step) FROM metrics WHERE key_id = ?", (key_id,)).fetchone()[0]
    if low is None:
        series.total = 0
        return series
    level = rollups.choose_level(int(low), int(high), max_points) if total > RAW_LIMIT else None
    buckets = rollups.read(db, key_id, level, int(low), int(high), max_points) if level else []
    if not buckets:  # short series (or a store written without rollups): from the points
        buckets = _from_points(cursor, key_id, int(low), int(high), max_points)
    series.downsampled = True
    for step, value, lo, hi, when in buckets:
        series.steps.append(int(step))
        series.times.append(when)
        series.values.append(_nan(value))
        series.mins.append(_nan(lo))
        series.maxs.append(_nan(hi))
    return series


def _from_points(cursor: sqlite3.Cursor, key_id: int, low: int, high: int, max_points: int,
                 ) -> list[tuple[int, float | None, float | None, float | None, float]]:
    """``max_points`` equal step ranges aggregated from the points: (last_step, last_value, min,
    max, last_time) per non-empty range."""
    span = high - low + 1
    buckets = cursor.execute(
        """SELECT ((step - ?) * ?) / ? AS bucket, MIN(value), MAX(value), MAX(step)
           FROM metrics WHERE key_id = ? GROUP BY bucket ORDER BY bucket""",
        (low, max_points, span, key_id),
    ).fetchall()
    last_steps = [int(b[3]) for b in buckets]
    lasts: dict[int, tuple[float, float | None]] = {}
    for start in range(0, len(last_steps), 500):
        chunk = last_steps[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for step, when, value in cursor.execute(
            f"SELECT step, time, value FROM metrics WHERE key_id = ? AND step IN ({marks})",
            (key_id, *chunk),
        ):
            lasts[int(step)] = (when, value)
    return [(int(step), lasts[int(step)][1], lo, hi, lasts[int(step)][0]) for _, lo, hi, step in buckets]
