"""Metric series queries: one key of one run is an index range scan on ``(key_id, step)``.

:func:`metric_series` returns every point, or with ``max_points`` a downsampled series: the steps
are cut into equal buckets and each bucket gives its min, max and last value (so a plot keeps spikes
and the curve's end without loading a million points). NaN is stored as NULL and comes back as NaN.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import UnknownIdError
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


def metric_series(
    db: sqlite3.Connection, run_id: str, key: str, *, max_points: int | None = None
) -> MetricSeries:
    """Points of ``key`` in step order, downsampled to at most ``max_points`` buckets when given."""
    row = db.execute("SELECT id FROM metric_keys WHERE run_id = ? AND key = ?", (run_id, key)).fetchone()
    if row is None:
        raise UnknownIdError(f"run {run_id} has no metric {key!r}", "see 'workbench metrics RUN'")
    key_id = int(row[0])
    stats = db.execute(
        "SELECT COUNT(*), MIN(step), MAX(step) FROM metrics WHERE key_id = ?", (key_id,)
    ).fetchone()
    total, low, high = int(stats[0]), stats[1], stats[2]
    series = MetricSeries(key=key, total=total)
    if not total:
        return series
    if max_points is None or total <= max_points or max_points < 1:
        for step, when, value in db.execute(
            "SELECT step, time, value FROM metrics WHERE key_id = ? ORDER BY step", (key_id,),
        ):
            series.steps.append(step)
            series.times.append(when)
            series.values.append(_nan(value))
        return series
    span = int(high) - int(low) + 1
    buckets = db.execute(
        """SELECT ((step - ?) * ?) / ? AS bucket, MIN(value), MAX(value), MAX(step)
           FROM metrics WHERE key_id = ? GROUP BY bucket ORDER BY bucket""",
        (low, max_points, span, key_id),
    ).fetchall()
    last_steps = [int(b[3]) for b in buckets]
    lasts: dict[int, tuple[float, float | None]] = {}
    for start in range(0, len(last_steps), 500):
        chunk = last_steps[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for step, when, value in db.execute(
            f"SELECT step, time, value FROM metrics WHERE key_id = ? AND step IN ({marks})",
            (key_id, *chunk),
        ):
            lasts[int(step)] = (when, value)
    series.downsampled = True
    for _, lo, hi, step in buckets:
        when, value = lasts[int(step)]
        series.steps.append(int(step))
        series.times.append(when)
        series.values.append(_nan(value))
        series.mins.append(_nan(lo))
        series.maxs.append(_nan(hi))
    return series
