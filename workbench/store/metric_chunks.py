"""Packed metric points: one key's points as compressed blocks in ``metric_chunks``.

Each row holds up to :data:`BLOCK` points of one key (``metric_keys.id``) with distinct steps in
increasing order; the rows of one key hold disjoint step ranges, so reading one key (or a step range
of it) is one range read ``WHERE key_id = ? AND last_step >= ? AND first_step <= ?`` on the primary
key. A block is encoded by :func:`encode`:

* a 9-byte header: format byte, point count (uint32 little-endian), codec flags (uint32, reserved);
* three streams of ``count`` 8-byte little-endian integers: the steps delta-encoded, the times'
  float64 bit patterns delta-encoded (wrapping int64 arithmetic, so every time comes back bit for
  bit), the values' float64 bit patterns XORed with the previous value's;
* the three streams byte-shuffled (all first bytes, then all second bytes ...) and compressed with
  zstd. A typical training curve (step + 1, wall time, a noisy loss) takes about 8 to 10 bytes a point.

Values and times are kept exactly: NaN (its payload too), infinities and -0.0 round-trip bit for bit.
Writing merges: a step written again replaces the stored point (the newest value wins), out-of-order
steps land in order, and the block a batch touches (usually the open tail block of the key) is
decoded, merged and written again. Callers hold a write transaction.
"""

from __future__ import annotations

import sqlite3
import struct
import threading
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt
import zstandard

from workbench.errors import CorruptObjectError

BLOCK = 4096
"""Points per stored block; a key's last block may hold fewer (it is rewritten as points arrive)."""
FORMAT = 1
LEVEL = 3
_HEADER = struct.Struct("<BII")

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Points = tuple[Ints, Floats, Floats]
"""Steps, times and values of points in step order, distinct steps."""

CREATE_SQL = """
CREATE TABLE metric_chunks (
    key_id INTEGER NOT NULL,             -- metric_keys.id
    first_step INTEGER NOT NULL,
    last_step INTEGER NOT NULL,
    count INTEGER NOT NULL,
    data BLOB NOT NULL,                  -- see workbench.store.metric_chunks.encode
    PRIMARY KEY (key_id, first_step)
) WITHOUT ROWID
"""

_RANGE_SQL = ("SELECT first_step, count, data FROM metric_chunks WHERE key_id = ? AND last_step >= ?"
              " AND first_step <= ? ORDER BY first_step")
_local = threading.local()


class CorruptChunkError(CorruptObjectError):
    """A stored block that does not decode (a damaged database file)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "the database file is damaged: restore .workbench/workbench.db from a"
                                  " backup, or pull the run again from a remote")


def _compressor() -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
    found: tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor] | None = getattr(_local, "zstd", None)
    if found is None:
        found = _local.zstd = (zstandard.ZstdCompressor(level=LEVEL), zstandard.ZstdDecompressor())
    return found


def encode(steps: Ints, times: Floats, values: Floats) -> bytes:
    """One block of points (any order is stored as given; callers pass step order) as bytes."""
    count = len(steps)
    words = np.empty((3, count), dtype="<i8")
    step_words = np.ascontiguousarray(steps, dtype="<i8")
    time_words = np.ascontiguousarray(times, dtype="<f8").view("<i8")
    value_words = np.ascontiguousarray(values, dtype="<f8").view("<i8")
    with np.errstate(over="ignore"):
        np.subtract(step_words[1:], step_words[:-1], out=words[0, 1:])
        np.subtract(time_words[1:], time_words[:-1], out=words[1, 1:])
    np.bitwise_xor(value_words[1:], value_words[:-1], out=words[2, 1:])
    if count:
        words[0, 0], words[1, 0], words[2, 0] = step_words[0], time_words[0], value_words[0]
    shuffled = words.view(np.uint8).reshape(3 * count, 8).T.tobytes()
    return _HEADER.pack(FORMAT, count, 0) + _compressor()[0].compress(shuffled)


def decode(data: bytes) -> Points:
    """The steps, times and values of one block; :class:`CorruptChunkError` if it is damaged."""
    try:
        kind, count, _flags = _HEADER.unpack_from(data)
        raw = _compressor()[1].decompress(data[_HEADER.size:], max_output_size=24 * count)
    except (struct.error, zstandard.ZstdError) as exc:
        raise CorruptChunkError(f"stored metric block does not decode: {exc}") from None
    if kind != FORMAT or len(raw) != 24 * count:
        raise CorruptChunkError(
            f"stored metric block has format {kind} and {len(raw)} bytes for {count} points")
    words = np.frombuffer(raw, dtype=np.uint8).reshape(8, 3 * count).T.copy().view("<i8").reshape(3, count)
    with np.errstate(over="ignore"):
        steps = np.cumsum(words[0], dtype=np.int64)
        times = np.cumsum(words[1], dtype=np.int64).view(np.float64)
    values = np.bitwise_xor.accumulate(words[2]).view(np.float64) if count else words[2].view(np.float64)
    return steps, times, values


def as_points(steps: Sequence[int] | Ints, times: Sequence[float] | Floats,
              values: Sequence[float] | Floats) -> Points:
    """Parallel sequences as arrays in step order with distinct steps; a repeated step keeps the
    point that came last."""
    s = np.asarray(steps, dtype=np.int64)
    t = np.asarray(times, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if len(s) > 1 and not bool(np.all(s[1:] > s[:-1])):
        order = np.argsort(s, kind="stable")
        sorted_steps = s[order]
        keep = np.ones(len(s), dtype=bool)
        keep[:-1] = sorted_steps[1:] != sorted_steps[:-1]  # the last of equal steps (stable sort)
        index = order[keep]
        s, t, v = s[index], t[index], v[index]
    return s, t, v


def _concat(parts: list[Points]) -> Points:
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.float64)
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]))


def read(db: sqlite3.Connection, key_id: int, low: int = -(2**63), high: int = 2**63 - 1) -> Points:
    """The key's points with ``low <= step <= high``, in step order (one range read)."""
    parts = [decode(data) for _, _, data in db.execute(_RANGE_SQL, (key_id, low, high))]
    steps, times, values = _concat(parts)
    if len(steps) and (steps[0] < low or steps[-1] > high):
        inside = (steps >= low) & (steps <= high)
        return steps[inside], times[inside], values[inside]
    return steps, times, values


def span(db: sqlite3.Connection, key_id: int) -> tuple[int, int, int] | None:
    """``(count, first step, last step)`` of the key's stored points; None when it has none."""
    row = db.execute("SELECT SUM(count), MIN(first_step), MAX(last_step) FROM metric_chunks WHERE key_id = ?",
                     (key_id,)).fetchone()
    return None if row is None or row[0] is None else (int(row[0]), int(row[1]), int(row[2]))


def write(db: sqlite3.Connection, key_id: int, points: Points) -> int:
    """Merge points (step order, distinct steps: :func:`as_points`) into the key's blocks; returns
    how many of their steps were not stored before."""
    steps = points[0]
    if not len(steps):
        return 0
    low, high = int(steps[0]), int(steps[-1])
    rows = db.execute(_RANGE_SQL, (key_id, low, high)).fetchall()
    if not rows:  # the usual case: points after the last block; fill that block if it is open
        before = db.execute(
            "SELECT first_step, count, data FROM metric_chunks WHERE key_id = ? AND first_step < ?"
            " ORDER BY first_step DESC LIMIT 1", (key_id, low)).fetchone()
        if before is not None and before[1] < BLOCK:
            rows = [before]
    old = sum(int(count) for _, count, _ in rows)
    merged = as_points(*_concat([*(decode(data) for _, _, data in rows), points])) if rows else points
    if rows:
        db.executemany("DELETE FROM metric_chunks WHERE key_id = ? AND first_step = ?",
                       [(key_id, first) for first, _, _ in rows])
    _insert(db, key_id, merged)
    return len(merged[0]) - old


def _insert(db: sqlite3.Connection, key_id: int, points: Points) -> None:
    steps, times, values = points
    db.executemany(
        "INSERT INTO metric_chunks (key_id, first_step, last_step, count, data) VALUES (?, ?, ?, ?, ?)",
        [(key_id, int(steps[start]), int(steps[min(start + BLOCK, len(steps)) - 1]),
          min(BLOCK, len(steps) - start),
          encode(steps[start:start + BLOCK], times[start:start + BLOCK], values[start:start + BLOCK]))
         for start in range(0, len(steps), BLOCK)],
    )


def delete(db: sqlite3.Connection, key_ids: Sequence[int]) -> None:
    """Drop every block of these keys."""
    for start in range(0, len(key_ids), 500):
        part = list(key_ids[start:start + 500])
        db.execute(f"DELETE FROM metric_chunks WHERE key_id IN ({','.join('?' * len(part))})", part)


def migrate_rows(db: sqlite3.Connection) -> None:
    """The migration from one row per point (table ``metrics``) to blocks: every key's rows, in step
    order, become blocks (NULL values are NaN, as the rows meant), then the rows' table is dropped.
    Rows are read in batches; memory stays bounded however many points one key has."""
    db.execute(CREATE_SQL)
    cursor = db.execute("SELECT key_id, step, time, value FROM metrics ORDER BY key_id, step")
    pending: list[tuple[int, int, float, float | None]] = []
    while True:
        rows = cursor.fetchmany(50_000)
        pending.extend(rows)
        cut = len(pending) if not rows else _last_key_start(pending)
        if not cut and len(pending) >= 16 * BLOCK:  # one long key: write its whole blocks so far
            cut = len(pending) // BLOCK * BLOCK
        if cut:
            _insert_rows(db, pending[:cut])
            del pending[:cut]
        if not rows:
            break
    db.execute("DROP TABLE metrics")


def _last_key_start(rows: list[tuple[int, int, float, float | None]]) -> int:
    """Index of the first row of the last key in ``rows`` (its rows may continue in the next fetch)."""
    last = rows[-1][0]
    index = len(rows)
    while index and rows[index - 1][0] == last:
        index -= 1
    return index


def _insert_rows(db: sqlite3.Connection, rows: Iterable[tuple[int, int, float, float | None]]) -> None:
    by_key: dict[int, list[tuple[int, float, float]]] = {}
    for key_id, step, when, value in rows:
        by_key.setdefault(key_id, []).append((step, when, float("nan") if value is None else value))
    for key_id, points in by_key.items():
        steps, times, values = zip(*points, strict=True)
        _insert(db, key_id, as_points(steps, times, values))
