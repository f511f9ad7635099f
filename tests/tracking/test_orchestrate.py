"""Following a job: the flusher and the GPU sampler are done with the run's ingester (and its
connection) when follow() returns, so the caller's own transactions never meet theirs; the metric
path's imports are done beside a job that runs past ``WARM_AFTER``, never for one done sooner."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from workbench.core.workspace import Workspace
from workbench.tracking import orchestrate
from workbench.tracking.ingest import Ingester
from workbench.tracking.orchestrate import Flusher, Sampler
from workbench.tracking.records import create_run


class _HeldFlushes(Ingester):
    """An ingester whose timed flush waits until the test lets it go."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.entered, self.release = threading.Event(), threading.Event()
        self.order: list[str] = []

    def maybe_flush(self) -> None:
        self.entered.set()
        assert self.release.wait(60)
        self.flush()
        self.order.append("flushed")


def test_flusher_close_waits_for_a_flush_in_progress(ws: Workspace) -> None:
    create_run(ws.db, "r1", name="t", command=["x"])
    ingester = _HeldFlushes(ws.db, "r1", ws.root)
    flusher = Flusher(ingester)
    assert ingester.entered.wait(60)

    def close() -> None:
        flusher.close()
        ingester.order.append("closed")

    closing = threading.Thread(target=close)
    closing.start()
    closing.join(0.5)  # room for a close that does not wait to return early and be caught
    ingester.release.set()
    closing.join(60)
    assert ingester.order == ["flushed", "closed"]
    assert not flusher.thread.is_alive()


class _GpuHeldOpen:
    """A GPU driver whose sample call returns only when the test lets it."""

    def __init__(self) -> None:
        self.calls = 0
        self.inside, self.release = threading.Event(), threading.Event()

    def sample_gpus(self) -> list[dict[str, Any]]:
        self.calls += 1
        if self.calls > 1:
            self.inside.set()
            assert self.release.wait(60)
        return [{"index": 0, "utilisation": 50.0, "memory_used": 1024.0}]


def test_sampler_adds_nothing_after_close(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sample that comes back after the run's last flush is dropped, not left in the buffer
    (nobody would write it) or flushed on the connection the caller is now using."""
    create_run(ws.db, "r1", name="t", command=["x"])
    ingester = Ingester(ws.db, "r1", ws.root)
    gpus = _GpuHeldOpen()
    monkeypatch.setattr(orchestrate, "GPU_SAMPLE_SECONDS", 0.0)
    sampler = Sampler(ingester, gpus)
    assert gpus.inside.wait(60)  # the first sample is in, the second call is in the driver
    sampler.close()
    ingester.flush()
    gpus.release.set()
    sampler.thread.join(60)
    assert not sampler.thread.is_alive()
    assert ingester.pending == 0
    rows = ws.db.execute("SELECT key, count FROM metric_keys WHERE run_id = 'r1' ORDER BY key").fetchall()
    assert [tuple(r) for r in rows] == [("system/gpu0_memory_used", 1), ("system/gpu0_utilisation", 1)]


def test_the_metric_path_is_warmed_only_beside_a_job_still_running(monkeypatch: pytest.MonkeyPatch) -> None:
    warmed = threading.Event()
    monkeypatch.setattr(orchestrate, "warm_points_path", warmed.set)
    done = threading.Event()
    done.set()  # the job ended before WARM_AFTER: nothing is imported for it
    orchestrate._warm_when_long(done)
    assert not warmed.is_set()
    running = threading.Event()
    thread = threading.Thread(target=orchestrate._warm_when_long, args=(running,))
    thread.start()
    thread.join(60)
    assert warmed.is_set()


def test_warming_the_metric_path_imports_what_the_first_points_need() -> None:
    import subprocess
    import sys

    code = ("import sys; from workbench.tracking.ingest import warm_points_path; warm_points_path();"
            " print(all(m in sys.modules for m in ('numpy', 'zstandard', 'workbench.tracking.rollups',"
            " 'workbench.store.metric_chunks', 'workbench.tracking.point_writes')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "True", done.stderr


def test_the_warm_up_delay_can_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKBENCH_WARM_METRICS_AFTER", raising=False)
    assert orchestrate.warm_after() == orchestrate.WARM_AFTER
    for text, seconds in (("2.5", 2.5), ("0", 0.0), ("-1", 0.0), ("soon", orchestrate.WARM_AFTER)):
        monkeypatch.setenv("WORKBENCH_WARM_METRICS_AFTER", text)
        assert orchestrate.warm_after() == seconds, text
    monkeypatch.setenv("WORKBENCH_WARM_METRICS_AFTER", "600")
    warmed = threading.Event()
    monkeypatch.setattr(orchestrate, "warm_points_path", warmed.set)
    running = threading.Event()
    thread = threading.Thread(target=orchestrate._warm_when_long, args=(running,))
    thread.start()
    running.set()  # the job ends long before the delay: nothing imported
    thread.join(60)
    assert not warmed.is_set()
