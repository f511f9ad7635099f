"""How a batch of metric points is written: the points themselves, the key's rollups and the key's
summary row (count, last, min, max), inside the ingester's flush transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import numpy as np

from workbench.store import metric_chunks
from workbench.store.schema_tracking import ROLLUP_LEVELS
from workbench.tracking import rollups


def insert_points(
    db: sqlite3.Connection, key_id: int, chunks: list[tuple[Sequence[int], Sequence[float], Sequence[float]]]
) -> tuple[int, bool]:
    """Write one key's waiting points into its packed blocks and merge them into its rollups; returns
    how many steps are new and whether any stored point was replaced. Steps already stored (or
    repeated in the batch) are written again so that the newest value wins; they are not new."""
    sent = sum(len(s) for s, _, _ in chunks)
    if len(chunks) == 1:
        points = metric_chunks.as_points(*chunks[0])
    else:
        points = metric_chunks.as_points(*(np.concatenate([np.asarray(c[i], dtype=kind) for c in chunks])
                                           for i, kind in ((0, np.int64), (1, np.float64), (2, np.float64))))
    added = metric_chunks.write(db, key_id, points)
    if not len(points[0]):
        return 0, False
    if added < sent:
        # Replaced points may have been a bucket's min or max: rebuild the touched buckets.
        rollups.recompute(db, key_id, int(points[0][0]), int(points[0][-1]))
    else:
        rollups.write_points(db, key_id, points)
    return added, added < sent


SUMMARY_SQL = """
UPDATE metric_keys SET
    count = count + ?,
    last_value = CASE WHEN last_step IS NULL OR ? >= last_step THEN ? ELSE last_value END,
    last_time = CASE WHEN last_step IS NULL OR ? >= last_step THEN ? ELSE last_time END,
    last_step = CASE WHEN last_step IS NULL OR ? >= last_step THEN ? ELSE last_step END,
    min_value = CASE WHEN ? IS NULL THEN min_value WHEN min_value IS NULL THEN ? ELSE MIN(min_value, ?) END,
    max_value = CASE WHEN ? IS NULL THEN max_value WHEN max_value IS NULL THEN ? ELSE MAX(max_value, ?) END
WHERE id = ?
"""


EXACT_RANGE_SQL = f"""
UPDATE metric_keys SET
    min_value = (SELECT MIN(min_value) FROM metric_rollups WHERE key_id = ? AND level = {ROLLUP_LEVELS[-1]}),
    max_value = (SELECT MAX(max_value) FROM metric_rollups WHERE key_id = ? AND level = {ROLLUP_LEVELS[-1]})
WHERE id = ?
"""
