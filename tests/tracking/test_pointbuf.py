"""The compiled point buffer (``workbench/tracking/_pointbuf.c``) on its own: it is built by this
checkout's install, keeps exactly the points given in order (int64 steps, float64 values and times,
NaN and infinities too), hands them out once as native bytes, refuses a bad point whole, and
gives a burst's memory back after the drain."""

from __future__ import annotations

import math
import shutil
from array import array

import pytest

from workbench.tracking import api


@pytest.fixture
def buffer() -> object:
    if api.PointBuffer is None:
        assert shutil.which("cc") is None and shutil.which("gcc") is None, (
            "a C compiler is here but the buffer was not built: run pip install -e . again")
        pytest.skip("no C compiler on this machine: the tracking API uses its pure-Python buffer")
    return api.PointBuffer()


def _arrays(taken: tuple[bytes, bytes, bytes]) -> tuple[list[int], list[float], list[float]]:
    steps, values, times = array("q"), array("d"), array("d")
    steps.frombytes(taken[0])
    values.frombytes(taken[1])
    times.frombytes(taken[2])
    return steps.tolist(), values.tolist(), times.tolist()


def test_points_come_back_exactly_and_once(buffer: api.PointBuffer) -> None:
    points = [(2**63 - 1, math.inf, 1.7e9), (-(2**63), -0.0, 1.7e9 + 0.5), (3, math.nan, 0.0)]
    points += [(i, i * 0.25, 1.7e9 + i) for i in range(100_000)]  # past several growths
    for point in points:
        buffer.extend(point)
    assert len(buffer) == len(points)
    steps, values, times = _arrays(buffer.take())
    assert steps == [p[0] for p in points] and times == [p[2] for p in points]
    assert values[0] == math.inf and str(values[1]) == "-0.0" and math.isnan(values[2])
    assert values[3:] == [p[1] for p in points[3:]]
    assert len(buffer) == 0 and buffer.take() == (b"", b"", b"")
    buffer.extend((7, 1.0, 2.0))  # usable again after a burst gave its memory back
    assert _arrays(buffer.take()) == ([7], [1.0], [2.0])


@pytest.mark.parametrize("point, error", [
    ((2**63, 1.0, 1.0), OverflowError),
    ((-(2**63) - 1, 1.0, 1.0), OverflowError),
    ((1, 1, 1.0), TypeError),            # the API converts values to float before
    ((1.0, 1.0, 1.0), TypeError),
    ((True, 1.0, 1.0), TypeError),       # a subclass of int: its conversion could run Python code
    ((1, 1.0), TypeError),
    ([1, 1.0, 1.0], TypeError),
])
def test_a_bad_point_is_refused_whole(buffer: api.PointBuffer, point: object, error: type[Exception]) -> None:
    buffer.extend((1, 0.5, 9.0))
    with pytest.raises(error):
        buffer.extend(point)  # type: ignore[arg-type]
    assert len(buffer) == 1 and _arrays(buffer.take()) == ([1], [0.5], [9.0])
