"""Packed metric blocks: encode/decode is bit-exact for every float64 (NaN payloads, infinities,
-0.0) and every int64 step; merging follows the row store's rules (a repeated step replaces, steps
out of order land in order, counts are of distinct steps); reading a key is one range read."""

from __future__ import annotations

import sqlite3
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.store import metric_chunks
from workbench.store.metric_chunks import BLOCK, CorruptChunkError, as_points, decode, encode

_bits = st.integers(min_value=0, max_value=2**64 - 1)
_steps = st.integers(min_value=-(2**62) + 1, max_value=2**62 - 1)


def _as_float(bits: int) -> float:
    value: float = struct.unpack("<d", struct.pack("<Q", bits))[0]
    return value


def _bits_of(values: np.ndarray) -> list[int]:
    return np.ascontiguousarray(values, dtype="<f8").view("<u8").tolist()  # type: ignore[no-any-return]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_steps, _bits, _bits), max_size=300))
def test_round_trip_is_bit_exact(points: list[tuple[int, int, int]]) -> None:
    steps = np.array([p[0] for p in points], dtype=np.int64)
    time_bits = np.array([p[1] for p in points], dtype=np.uint64)
    value_bits = np.array([p[2] for p in points], dtype=np.uint64)
    data = encode(steps, time_bits.view(np.float64), value_bits.view(np.float64))
    s, t, v = decode(data)
    assert s.tolist() == steps.tolist()
    assert _bits_of(t) == time_bits.tolist()
    assert _bits_of(v) == value_bits.tolist()


def test_special_values_survive() -> None:
    specials = [float("nan"), float("inf"), float("-inf"), -0.0, 0.0, 5e-324, 1.7976931348623157e308,
                _as_float(0x7FF8_0000_DEAD_BEEF), _as_float(0xFFF0_0000_0000_0001)]
    n = len(specials)
    values = np.array(specials, dtype=np.float64)
    _s, t, v = decode(encode(np.arange(n, dtype=np.int64), values.copy(), values))
    assert _bits_of(v) == _bits_of(values) and _bits_of(t) == _bits_of(values)


def test_a_typical_curve_takes_few_bytes_a_point() -> None:
    rng = np.random.default_rng(1)
    n = BLOCK
    steps = np.arange(n, dtype=np.int64)
    loss = 2.5 * np.exp(-steps / 1500) + 0.05 * rng.random(n)
    times = 1.765e9 + np.cumsum(0.02 + 0.002 * rng.random(n))
    assert len(encode(steps, times, loss)) / n < 12


def test_a_damaged_block_is_refused() -> None:
    data = encode(np.arange(10, dtype=np.int64), np.zeros(10), np.ones(10))
    with pytest.raises(CorruptChunkError):
        decode(data[:-3])
    with pytest.raises(CorruptChunkError):
        decode(b"\x07" + data[1:])


def test_as_points_sorts_and_keeps_the_last_of_a_repeated_step() -> None:
    s, t, v = as_points([5, 3, 5, 4, 3], [1.0, 2.0, 3.0, 4.0, 5.0], [10.0, 20.0, 30.0, 40.0, 50.0])
    assert s.tolist() == [3, 4, 5] and v.tolist() == [50.0, 40.0, 30.0] and t.tolist() == [5.0, 4.0, 3.0]


@pytest.fixture
def db() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute(metric_chunks.CREATE_SQL)
    return conn


def _write(db: sqlite3.Connection, key: int, steps: list[int], values: list[float]) -> int:
    return metric_chunks.write(db, key, as_points(steps, [float(s) for s in steps], values))


def test_merging_follows_the_row_rules(db: sqlite3.Connection) -> None:
    assert _write(db, 1, list(range(10_000)), [float(i) for i in range(10_000)]) == 10_000
    assert _write(db, 1, list(range(10_000, 10_100)), [1.0] * 100) == 100  # appends to the open tail
    assert _write(db, 1, [5, 20_000, 7_000], [-1.0, -2.0, -3.0]) == 1  # two replace, one is new
    assert _write(db, 1, [-4], [4.0]) == 1  # before everything
    assert _write(db, 2, [0], [9.0]) == 1  # another key is apart
    s, _t, v = metric_chunks.read(db, 1)
    assert len(s) == 10_102 and bool(np.all(s[1:] > s[:-1]))
    got = dict(zip(s.tolist(), v.tolist(), strict=True))
    assert got[5] == -1.0 and got[7_000] == -3.0 and got[20_000] == -2.0 and got[-4] == 4.0 and got[6] == 6.0
    assert metric_chunks.span(db, 1) == (10_102, -4, 20_000)
    rows = db.execute("SELECT first_step, last_step, count FROM metric_chunks WHERE key_id = 1"
                      " ORDER BY first_step").fetchall()
    assert all(count <= BLOCK for _, _, count in rows)
    assert all(rows[i][1] < rows[i + 1][0] for i in range(len(rows) - 1))  # disjoint, ordered
    part = metric_chunks.read(db, 1, 4_000, 4_010)
    assert part[0].tolist() == list(range(4_000, 4_011))
    plan = " ".join(str(r) for r in db.execute(
        "EXPLAIN QUERY PLAN " + metric_chunks._RANGE_SQL, (1, 0, 10)))
    assert "PRIMARY KEY" in plan and "SCAN" not in plan
    metric_chunks.delete(db, [1])
    assert metric_chunks.span(db, 1) is None and metric_chunks.span(db, 2) == (1, 0, 0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(-50, 9_000), st.floats(allow_nan=True)), max_size=400),
                max_size=6))
def test_any_sequence_of_batches_reads_back_as_a_dict_would_hold_it(
        batches: list[list[tuple[int, float]]]) -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute(metric_chunks.CREATE_SQL)
    expected: dict[int, float] = {}
    for batch in batches:
        new = len({s for s, _ in batch} - expected.keys())
        assert _write(conn, 3, [s for s, _ in batch], [v for _, v in batch]) == new
        expected.update(batch)
    s, _, v = metric_chunks.read(conn, 3)
    assert s.tolist() == sorted(expected)
    assert _bits_of(v) == _bits_of(np.array([expected[k] for k in sorted(expected)], dtype=np.float64))
