"""The lock-free metric buffer of the tracking API, compiled (``PointBuffer``) and pure Python (a
flat list) alike: threads logging while the drain runs lose, duplicate and misalign nothing (each
step keeps its own value and time), a step outside 64-bit integers drops only its own point, counted
as a dropped event, and a key holding a full line's worth of points is drained without waiting for
the fifth of a second (a burst streams to the runner while the script logs)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from workbench.tracking import api
from workbench.tracking.events import unpack_series


@pytest.fixture(params=["compiled", "list"])
def buffer_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Each test once with the compiled buffer (which this checkout builds) and once with the list."""
    if request.param == "compiled":
        assert api.PointBuffer is not None, "the C buffer was not built: pip install -e . needs a C compiler"
        kind: Any = api.PointBuffer
    else:
        kind = list
    monkeypatch.setattr(api, "_BUFFER", kind)
    return kind


def _points(path: Path) -> dict[str, list[tuple[int, float, float]]]:
    found: dict[str, list[tuple[int, float, float]]] = {}
    data = path.read_bytes()
    for line in data[:data.rfind(b"\n") + 1].splitlines():  # a line still being written is not read
        event = json.loads(line)
        if event["e"] != "series":
            continue
        steps, values, times = unpack_series(event)
        found.setdefault(event["k"], []).extend(
            zip(steps.tolist(), values.tolist(), times.tolist(), strict=True))
    return found


def test_threads_logging_during_drains_lose_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   buffer_kind: Any) -> None:
    events = tmp_path / "events.jsonl"
    run = api.ActiveRun(id="r", project=str(tmp_path), events_path=str(events), own=False)
    monkeypatch.setattr(api, "_run", run)
    per_thread = 60_000
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            run.flush()

    def log(index: int) -> None:
        for i in range(per_thread):
            api.log_metric(f"k{index}", index * 1e6 + i, step=i)   # each thread its own key
            api.log_metric("shared", float(index * per_thread + i), step=index * per_thread + i)

    drainer = threading.Thread(target=drain)
    drainer.start()
    loggers = [threading.Thread(target=log, args=(n,)) for n in range(3)]
    for thread in loggers:
        thread.start()
    for thread in loggers:
        thread.join()
    stop.set()
    drainer.join()
    run.close()
    assert all(type(buffer) is buffer_kind for buffer in run.series.values())
    got = _points(events)
    assert events.read_bytes().count(b"\n") > 3  # drained many times on the way
    for index in range(3):
        points = got[f"k{index}"]
        assert [p[0] for p in points] == list(range(per_thread))
        assert all(value == index * 1e6 + step for step, value, _ in points)
    shared = got["shared"]
    assert len(shared) == 3 * per_thread
    assert sorted(p[0] for p in shared) == list(range(3 * per_thread))
    assert all(value == float(step) for step, value, _ in shared)  # no value met another's step
    assert all(when > 1e9 for _, _, when in shared)


def test_a_step_outside_int64_drops_only_its_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   buffer_kind: Any) -> None:
    events = tmp_path / "events.jsonl"
    run = api.ActiveRun(id="r", project=str(tmp_path), events_path=str(events), own=False)
    monkeypatch.setattr(api, "_run", run)
    api.log_metric("loss", 1.0, step=1)
    with pytest.warns(UserWarning, match="dropped 1 point"):
        api.log_metric("loss", 2.0, step=2**70)
        api.log_metric("loss", 3.0, step=3)
        run.close()
    assert [(s, v) for s, v, _ in _points(events)["loss"]] == [(1, 1.0), (3, 3.0)]
    kinds = [json.loads(line)["e"] for line in events.read_bytes().splitlines()]
    assert kinds.count("dropped") == 1


def test_a_full_line_of_points_is_drained_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  buffer_kind: Any) -> None:
    events = tmp_path / "events.jsonl"
    run = api.ActiveRun(id="r", project=str(tmp_path), events_path=str(events), own=False)
    monkeypatch.setattr(api, "_run", run)
    monkeypatch.setattr(api, "FLUSH_INTERVAL", 1e9)  # no timed drain: only a burst drains
    for i in range(api.BURST_POINTS - 1):
        api.log_metric("loss", i * 0.5, step=i)
    assert not api._burst(run)
    api.log_metric("loss", 1.0, step=api.BURST_POINTS - 1)
    assert api._burst(run)
    api._start_flusher()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # a burst is two lines (about 8,000 points a line): both
        if events.exists() and len(_points(events).get("loss", [])) >= api.BURST_POINTS:
            break
        time.sleep(0.01)
    assert [p[0] for p in _points(events)["loss"]] == list(range(api.BURST_POINTS))
    assert len(run.series["loss"]) == 0


def test_a_scripts_own_run_is_not_drained_for_a_burst(tmp_path: Path, buffer_kind: Any) -> None:
    run = api.ActiveRun(id="r", project=str(tmp_path), events_path=str(tmp_path / "e"), own=True)
    run._owner = object()  # its points are ingested in its own process: no runner beside it
    run.series["loss"] = buffer_kind()
    for i in range(api.BURST_POINTS):
        run.series["loss"].extend((i, 0.5, 1.7e9))
    assert not api._burst(run)
