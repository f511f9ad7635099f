"""Metric rollups: per-bucket min, max and last of each key's points, kept at three resolutions.

Level 1 buckets hold 64 steps, level 2 4,096, level 3 262,144 (``bucket = step >> 6 * level``).
Each bucket records the exact min and max of the finite values stored in its step range (NULL
when there is none) and the step, value and time of its largest step. The ingester computes them
from the batch it is writing with numpy (``np.fmin.reduceat`` per bucket) and merges them into the
table in the same transaction as the points; when a batch replaced points already stored (a step
logged again), the buckets it touched are recomputed from the stored blocks, so min and max never
keep a replaced value. A downsampled read
(:func:`workbench.tracking.metrics.metric_series`) merges whole rollup buckets into at most
``max_points`` output buckets, so its min/max/last are exact for each output bucket's step range.
"""

from __future__ import annotations

import sqlite3

import numpy as np

from workbench.store import metric_chunks
from workbench.store.schema_tracking import ROLLUP_LEVELS, ROLLUP_SHIFT

Bucket = list[float | int | None]
"""[min, max, last_step, last_value, last_time]; min/max None: no finite value."""


_UPSERT = """
INSERT INTO metric_rollups (key_id, level, bucket, min_value, max_value, last_step, last_value, last_time)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (key_id, level, bucket) DO UPDATE SET
    min_value = CASE WHEN excluded.min_value IS NULL THEN min_value WHEN min_value IS NULL
                     THEN excluded.min_value ELSE MIN(min_value, excluded.min_value) END,
    max_value = CASE WHEN excluded.max_value IS NULL THEN max_value WHEN max_value IS NULL
                     THEN excluded.max_value ELSE MAX(max_value, excluded.max_value) END,
    last_value = CASE WHEN excluded.last_step >= last_step THEN excluded.last_value ELSE last_value END,
    last_time = CASE WHEN excluded.last_step >= last_step THEN excluded.last_time ELSE last_time END,
    last_step = MAX(last_step, excluded.last_step)
"""


def from_points(points: metric_chunks.Points, shift: int) -> dict[int, Bucket]:
    """Buckets (``step >> shift``) of points in step order with distinct steps, computed with numpy:
    exact min and max of the finite values (None: none), the last point's step, value and time."""
    steps, times, values = points
    if not len(steps):
        return {}
    buckets = steps >> shift
    starts = np.flatnonzero(np.concatenate(([True], buckets[1:] != buckets[:-1])))
    ends = np.concatenate((starts[1:], [len(steps)])) - 1
    with np.errstate(invalid="ignore"):
        lows = np.fmin.reduceat(values, starts)  # fmin/fmax skip NaN; all NaN gives NaN
        highs = np.fmax.reduceat(values, starts)
    return {
        bucket: [None if lo != lo else lo, None if hi != hi else hi, step, value, when]
        for bucket, lo, hi, step, value, when in zip(
            buckets[starts].tolist(), lows.tolist(), highs.tolist(), steps[ends].tolist(),
            values[ends].tolist(), times[ends].tolist(), strict=True)
    }


def write_points(db: sqlite3.Connection, key_id: int, points: metric_chunks.Points) -> None:
    """Merge a batch of points (step order, distinct steps, none of them stored before) into every
    level's buckets."""
    db.executemany(_UPSERT, [(key_id, level, bucket, *agg) for level in ROLLUP_LEVELS
                             for bucket, agg in from_points(points, ROLLUP_SHIFT * level).items()])


def recompute(db: sqlite3.Connection, key_id: int, low: int, high: int) -> None:
    """Rebuild every bucket that overlaps steps ``low..high`` from the stored points."""
    top = ROLLUP_SHIFT * ROLLUP_LEVELS[-1]
    points = metric_chunks.read(db, key_id, (low >> top) << top, (((high >> top) + 1) << top) - 1)
    for level in ROLLUP_LEVELS:
        shift = ROLLUP_SHIFT * level
        first, last = low >> shift, high >> shift
        db.execute("DELETE FROM metric_rollups WHERE key_id = ? AND level = ? AND bucket BETWEEN ? AND ?",
                   (key_id, level, first, last))
        db.executemany(
            "INSERT INTO metric_rollups VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(key_id, level, bucket, *agg) for bucket, agg in from_points(points, shift).items()
             if first <= bucket <= last],
        )


def delete_points(db: sqlite3.Connection, key_ids: list[int]) -> None:
    """Drop every stored point of these keys and their rollups (the caller deletes the keys' rows:
    a run removed, or a key whose points were only read from the output, replaced)."""
    metric_chunks.delete(db, key_ids)
    for start in range(0, len(key_ids), 500):
        part = key_ids[start:start + 500]
        db.execute(f"DELETE FROM metric_rollups WHERE key_id IN ({','.join('?' * len(part))})", part)


def choose_level(low: int, high: int, max_points: int) -> int | None:
    """The coarsest level that still gives at least ``max_points`` buckets over ``low..high``."""
    for level in reversed(ROLLUP_LEVELS):
        shift = ROLLUP_SHIFT * level
        if (high >> shift) - (low >> shift) + 1 >= max_points:
            return level
    return None


def read(db: sqlite3.Connection, key_id: int, level: int, low: int, high: int, max_points: int,
         ) -> list[tuple[int, float | None, float | None, float | None, float]]:
    """At most ``max_points`` output buckets over ``low..high``, each a run of whole rollup buckets:
    ``(last_step, last_value, min, max, last_time)`` in step order (values None: NULL)."""
    shift = ROLLUP_SHIFT * level
    first, last = low >> shift, high >> shift
    group = -(-(last - first + 1) // max_points)
    cursor = db.cursor()
    cursor.row_factory = None
    out: list[tuple[int, float | None, float | None, float | None, float]] = []
    current = -1
    lo: float | None = None
    hi: float | None = None
    step = 0
    value: float | None = None
    when = 0.0
    for bucket, b_lo, b_hi, b_step, b_value, b_when in cursor.execute(
        "SELECT bucket, min_value, max_value, last_step, last_value, last_time FROM metric_rollups"
        " WHERE key_id = ? AND level = ? AND bucket BETWEEN ? AND ? ORDER BY bucket",
        (key_id, level, first, last),
    ):
        index = (bucket - first) // group
        if index != current:
            if current >= 0:
                out.append((step, value, lo, hi, when))
            current, lo, hi = index, b_lo, b_hi
        elif b_lo is not None:
            lo = b_lo if lo is None or b_lo < lo else lo
            hi = b_hi if hi is None or b_hi > hi else hi
        step, value, when = b_step, b_value, b_when
    if current >= 0:
        out.append((step, value, lo, hi, when))
    return out

