"""Packed ``series`` events: what the API writes is what the runner reads back, exactly, through the
SIMD base64 of pybase64 and through the standard library's (a job's interpreter without pybase64),
in either direction; a field that is not strict base64, or holds the wrong count, is refused as an
:class:`EventError` (the ingester counts it as a dropped event) by both."""

from __future__ import annotations

import base64
import math
from array import array

import pybase64
import pytest

from workbench.tracking import events
from workbench.tracking.events import EventError, decode, series_lines, unpack_series

CODECS = {"pybase64": (pybase64.b64encode, pybase64.b64decode),
          "standard library": (base64.b64encode, base64.b64decode)}


@pytest.mark.parametrize("writer", list(CODECS))
@pytest.mark.parametrize("reader", list(CODECS))
def test_series_lines_round_trip(monkeypatch: pytest.MonkeyPatch, writer: str, reader: str) -> None:
    steps = array("q", [-(2**63), 0, 1, 2**62, 2**63 - 1, *range(10, 20_000)])
    values = array("d", [math.inf, -0.0, math.nan, 1e-300, -1e300, *(i * 0.5 for i in range(10, 20_000))])
    times = array("d", [1.7e9 + i for i in range(len(steps))])
    monkeypatch.setattr(events, "b64encode", CODECS[writer][0])
    lines = series_lines("loss", steps, values, times)
    assert len(lines) > 1  # cut at the line bound
    monkeypatch.setattr(events, "b64decode", CODECS[reader][1])
    got_steps: list[int] = []
    got_values: list[float] = []
    got_times: list[float] = []
    for line in lines:
        s, v, t = unpack_series(decode(line))
        got_steps += s.tolist()
        got_values += v.tolist()
        got_times += t.tolist()
    assert got_steps == steps.tolist() and got_times == times.tolist()
    assert math.isnan(got_values[2]) and str(got_values[1]) == "-0.0"
    assert got_values[:2] + got_values[3:] == values.tolist()[:2] + values.tolist()[3:]


@pytest.mark.parametrize("reader", list(CODECS))
@pytest.mark.parametrize("bad", ["AAAAAAAAAAA!", "AAAA AAAAAAA", "AAAAAAAAAAA", "AAAAAAAA"])
def test_a_field_that_is_not_strict_base64_or_holds_another_count_is_refused(
        monkeypatch: pytest.MonkeyPatch, reader: str, bad: str) -> None:
    monkeypatch.setattr(events, "b64decode", CODECS[reader][1])
    good = base64.b64encode(b"\0" * 8).decode()
    with pytest.raises(EventError):
        unpack_series({"e": "series", "k": "x", "n": 1, "sb": bad, "vb": good, "tb": good})


def test_the_runner_reads_with_pybase64() -> None:
    assert events.b64decode is pybase64.b64decode and events.b64encode is pybase64.b64encode
