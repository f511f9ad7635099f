"""The compiled chunker (``workbench/versioning/_cdc.c``) on its own: built by this checkout's install,
it cuts where pyfastcdc cuts, byte for byte, for every size bound and kind of content."""

from __future__ import annotations

import random

import pyfastcdc
import pytest
from pyfastcdc import utils
from pyfastcdc.py.constants import GEAR, MASKS

from workbench.versioning import _cdc, chunking

MiB = 1024 * 1024


def _reference(data: bytes, avg: int, low: int, high: int, whole: bool) -> list[int]:
    lengths: list[int] = []
    start = 0
    cuts = iter(pyfastcdc.FastCDC(avg, min_size=low, max_size=high).cut_buf(data))
    while start < len(data) and (whole or len(data) - start >= high):
        lengths.append(next(cuts).length)
        start += lengths[-1]
    return lengths


def _compiled(data: bytes, avg: int, low: int, high: int, whole: bool) -> list[int]:
    bits = utils.logarithm2(avg)
    return _cdc.cuts(data, GEAR.tobytes(), MASKS[bits + 1], MASKS[bits - 1], low, avg, high, whole)


def _content(rng: random.Random, size: int, kind: str) -> bytes:
    if kind == "random":
        return rng.randbytes(size)
    if kind == "repeating":  # the same short run again and again: the hash repeats too
        return (rng.randbytes(rng.randint(1, 300)) * (size + 1))[:size]
    return bytes(size)  # zeros: no cut before max_size


@pytest.mark.parametrize("seed", range(6))
def test_the_same_cuts_as_pyfastcdc_for_any_bounds(seed: int) -> None:
    """Random average, minimum (odd ones too) and maximum sizes, sizes from empty to forty average
    chunks, three kinds of content, both with and without the whole buffer cut."""
    rng = random.Random(seed)
    cut = 0
    for _ in range(40):
        avg = rng.choice([256, 1024, 4096, 16384, 65536])
        low = max(64, rng.randint(avg // 8, avg))
        high = rng.randint(max(avg, 1024), avg * 8)
        data = _content(rng, rng.randint(0, 40 * avg), rng.choice(["random", "repeating", "zeros"]))
        for whole in (True, False):
            expected = _reference(data, avg, low, high, whole)
            assert _compiled(data, avg, low, high, whole) == expected, (avg, low, high, len(data), whole)
            cut += len(expected)
    assert cut > 500  # the comparison saw many cuts, not a few whole buffers


@pytest.mark.parametrize("size", [0, 1, chunking.MIN_CHUNK, chunking.MIN_CHUNK + 1, 5 * MiB, 24 * MiB + 3])
def test_the_shipped_sizes_cut_as_pyfastcdc(size: int) -> None:
    """The sizes chunking.py uses (1 MiB average): the windows of four chains and the rescan of the
    window where one matched."""
    data = random.Random(size).randbytes(size)
    view = memoryview(data)
    for whole in (True, False):
        expected = _reference(data, chunking.AVG_CHUNK, chunking.MIN_CHUNK, chunking.MAX_CHUNK, whole)
        assert chunking.cut_lengths(view, whole) == expected
    assert sum(chunking.cut_lengths(view, True)) == size


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="gear table"):
        _cdc.cuts(b"x" * 100, b"short", 1, 1, 64, 256, 1024, True)
    with pytest.raises(ValueError, match="min <= avg <= max"):
        _cdc.cuts(b"x" * 100, GEAR.tobytes(), 1, 1, 512, 256, 1024, True)
